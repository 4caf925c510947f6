//! The scripted run: a whole Territory match of bot players, each its own OS process on
//! loopback QUIC, joining the first one by its invite code. Midway the host is killed with
//! SIGKILL (as many times in a row as asked); a new host takes over and the match goes on.
//!
//! Nothing at the end is asserted from the inside; it is computed from what the processes
//! reported:
//! - *committed turns lost*: every `turn <n> .. <hash>` line a killed host printed before
//!   it died is a turn it saw committed; each one whose hash is not the hash some survivor
//!   holds for that turn, at the end, is a committed turn lost;
//! - *inputs applied once*: every survivor's state counts, per player, the inputs applied
//!   and any sequence that was not the previous one plus one; each survivor's count must
//!   also equal the number of orders it says it submitted;
//! - *hashes equal*: the survivors' per-turn hash histories agree on every turn they all
//!   applied;
//! - *failover*: from the kill to the first turn committed under the next host, in
//!   milliseconds and in turns of the pace before the kill.

use crate::player::{from_hex, unix_micros};
use crate::view::{self, PlayerRow};
use crate::{seat_letter, DemoError, Territory, SEATS_MAX};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Widget};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// Longest any one step of the match (a start, a failover, an answer) may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);
/// Longest a whole match may take, whatever its options.
const MATCH_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Voters a session keeps (`SessionConfig::max_voters`'s default, which the players use).
const VOTERS_MAX: usize = 5;
/// Turns a new host plays before it may be killed in turn.
const TURNS_BETWEEN_KILLS: u64 = 5;
/// Turns before a kill whose pace is the yardstick of the pause.
const PACE_WINDOW_TURNS: usize = 10;
/// How often the live view redraws.
const VIEW_REFRESH: Duration = Duration::from_millis(150);
/// Turns between two plain progress lines.
const PROGRESS_EVERY_TURNS: u64 = 10;
/// Events kept on the live view.
const VIEW_EVENTS_MAX: usize = 6;

/// What a scripted match does.
#[derive(Debug, Clone, clap::Args)]
pub struct MatchArgs {
    /// Players, host included (2–8), each its own process.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub players: u8,
    /// Turns in the match.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub turns: u64,
    /// Turn at which the host is killed with SIGKILL (default: half the turns).
    #[arg(long, value_name = "TURN")]
    pub kill_at: Option<u64>,
    /// Hosts to kill in a row; each new host is killed once it has played a few turns.
    #[arg(long, default_value_t = 1)]
    pub kills: usize,
    /// Seed of the bots' choices (bot i plays with seed + i).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long each bot thinks before an order, in milliseconds (paces the match).
    #[arg(long, default_value_t = 120)]
    pub think_ms: u64,
    /// Longest a turn waits for a player that has not ordered, in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub turn_ms: u64,
    /// Plain progress lines even when stdout is a terminal.
    #[arg(long)]
    pub plain: bool,
    /// A rolling-upgrade drill: the `baton-demo` binary process 0, 1, … runs (repeat the
    /// flag, in process order), e.g. an earlier release's beside today's; processes past
    /// the list run this binary.
    #[arg(long, value_name = "PATH")]
    pub player_exe: Vec<PathBuf>,
}

impl MatchArgs {
    /// The turn of the first kill.
    pub fn first_kill_turn(&self) -> u64 {
        self.kill_at.unwrap_or(self.turns / 2).max(1)
    }

    /// Refuses options no match can satisfy, saying why.
    pub fn validate(&self) -> Result<(), DemoError> {
        let players = usize::from(self.players);
        if !(2..=SEATS_MAX).contains(&players) {
            return Err(DemoError::Usage(format!(
                "--players must be 2 to {SEATS_MAX}"
            )));
        }
        let survivable = kills_survivable(players);
        if self.kills > survivable {
            return Err(DemoError::Usage(format!(
                "{players} players survive at most {survivable} host kill(s) in a row: each \
                 kill must leave a majority of the voters alive (a dead voter is replaced \
                 only by a learner, and there are {} learner(s))",
                players.saturating_sub(VOTERS_MAX)
            )));
        }
        if self.player_exe.len() > players {
            return Err(DemoError::Usage(format!(
                "--player-exe names {} binaries for {players} players",
                self.player_exe.len()
            )));
        }
        if self.kills > 0 && self.first_kill_turn() >= self.turns {
            return Err(DemoError::Usage(format!(
                "--kill-at {} must come before the last turn ({})",
                self.first_kill_turn(),
                self.turns
            )));
        }
        Ok(())
    }
}

/// Host kills in a row `players` survive: every kill must leave a majority of the voter
/// set alive, and a dead voter only leaves the set when a live learner takes its seat.
pub fn kills_survivable(players: usize) -> usize {
    let voters = players.min(VOTERS_MAX);
    let learners = players - voters;
    learners + voters.saturating_sub(1) / 2
}

/// One host kill and what followed.
#[derive(Debug, Clone)]
pub struct KillReport {
    /// Seat letter of the killed host.
    pub victim: char,
    /// Last turn the killed host reported committed before it died.
    pub victim_last_turn: u64,
    /// Seat letter of the player that took over.
    pub successor: char,
    /// From the kill to the first turn committed under the successor.
    pub pause: Duration,
    /// Mean time per turn over the turns before the kill.
    pub turn_pace: Duration,
}

impl KillReport {
    /// The pause counted in turns of the pace before the kill.
    pub fn pause_turns(&self) -> f64 {
        if self.turn_pace.is_zero() {
            return 0.0;
        }
        self.pause.as_secs_f64() / self.turn_pace.as_secs_f64()
    }
}

/// The end of a player: still playing, or killed at some turn.
#[derive(Debug, Clone)]
pub struct PlayerReport {
    /// Seat letter.
    pub letter: char,
    /// Index of its process in start order (0 founded the session).
    pub process: usize,
    /// Node id.
    pub id: u64,
    /// Killed with SIGKILL (as a host).
    pub killed: bool,
    /// The state hash at the match's last turn (a survivor), or the last hash it reported
    /// (a killed host), with that turn.
    pub final_hash: Option<(u64, u64)>,
}

/// What a scripted match measured and computed.
#[derive(Debug, Clone)]
pub struct MatchReport {
    /// Players at the start.
    pub players: usize,
    /// Turns of the match.
    pub turns: u64,
    /// Host changes seen (kills and any planned handoff).
    pub migrations: usize,
    /// Each kill.
    pub kills: Vec<KillReport>,
    /// Each player.
    pub player_reports: Vec<PlayerReport>,
    /// Turns a killed host reported committed that the survivors do not hold alike.
    pub committed_turns_lost: usize,
    /// Every input was applied once, in order, and every survivor's orders all were.
    pub inputs_applied_once: bool,
    /// The survivors' hash histories agree on every turn they all applied.
    pub hashes_equal: bool,
    /// Turn up to which the survivors' histories were compared.
    pub compared_turn: u64,
}

impl MatchReport {
    /// The longest pause of all kills, in whole milliseconds (0 without kills).
    pub fn failover_ms(&self) -> u128 {
        self.kills
            .iter()
            .map(|kill| kill.pause.as_millis())
            .max()
            .unwrap_or(0)
    }

    /// Everything holds: nothing lost, every input once, equal hashes, one migration per
    /// kill at least.
    pub fn passed(&self) -> bool {
        self.committed_turns_lost == 0
            && self.inputs_applied_once
            && self.hashes_equal
            && self.migrations >= self.kills.len()
    }

    /// The machine-readable last line of the run.
    pub fn summary_line(&self) -> String {
        format!(
            "demo: players={} turns={} migrations={} committed_turns_lost={} \
             inputs_applied_once={} hashes_equal={} failover_ms={}",
            self.players,
            self.turns,
            self.migrations,
            self.committed_turns_lost,
            self.inputs_applied_once,
            self.hashes_equal,
            self.failover_ms()
        )
    }
}

/// Where the run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A live view redrawn in place (stdout is a terminal).
    Live,
    /// Plain progress lines on stdout.
    Plain,
    /// Nothing but errors (tests).
    Quiet,
}

impl Display {
    /// `Live` on a terminal unless `plain`, else `Plain`.
    pub fn for_stdout(plain: bool) -> Display {
        if !plain && std::io::stdout().is_terminal() {
            Display::Live
        } else {
            Display::Plain
        }
    }
}

enum Report {
    Line { text: String, at_micros: u128 },
    Closed,
}

struct Seat {
    letter: char,
    id: u64,
    invite: String,
    child: Child,
    stdin: Option<ChildStdin>,
    alive: bool,
    exited: bool,
    /// (turn, unix micros, hash) of every `turn` line.
    turns: Vec<(u64, u128, Option<u64>)>,
    last_turn: u64,
    submitted: u64,
    committed: u64,
    answers: VecDeque<String>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        // Whatever went wrong, no player process outlives the match.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Kill {
    victim: usize,
    at_micros: u128,
    successor: Option<(usize, u128)>,
    first_turn_after: Option<u128>,
    turn_pace: Duration,
}

struct Match<'a> {
    exe: &'a Path,
    args: &'a MatchArgs,
    dir: &'a Path,
    display: Display,
    seats: Vec<Seat>,
    reports: Receiver<(usize, Report)>,
    reports_tx: Sender<(usize, Report)>,
    host: Option<usize>,
    migrations: usize,
    kills: Vec<Kill>,
    events: VecDeque<String>,
    all_events: Vec<String>,
    view_state: Option<Territory>,
    terminal: Option<LiveTerminal>,
    last_progress_turn: u64,
    started: Instant,
}

type LiveTerminal = ratatui::Terminal<ratatui::backend::CrosstermBackend<std::io::Stdout>>;

/// Plays one match; `Ok` carries the report whether or not it passed (see
/// [`MatchReport::passed`]); `Err` is a match that could not be played.
pub fn run(exe: &Path, args: &MatchArgs, display: Display) -> Result<MatchReport, DemoError> {
    args.validate()?;
    let dir = std::env::temp_dir().join(format!(
        "baton-demo-{}-{}",
        std::process::id(),
        unix_micros()
    ));
    std::fs::create_dir_all(&dir).map_err(DemoError::io(format!("creating {}", dir.display())))?;
    let outcome = play(exe, args, &dir, display);
    match &outcome {
        Ok(report) if report.passed() => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => eprintln!("player logs kept in {}", dir.display()),
    }
    outcome
}

fn play(
    exe: &Path,
    args: &MatchArgs,
    dir: &Path,
    display: Display,
) -> Result<MatchReport, DemoError> {
    let (reports_tx, reports) = std::sync::mpsc::channel();
    let mut game = Match {
        exe,
        args,
        dir,
        display,
        seats: Vec::new(),
        reports,
        reports_tx,
        host: None,
        migrations: 0,
        kills: Vec::new(),
        events: VecDeque::new(),
        all_events: Vec::new(),
        view_state: None,
        terminal: None,
        last_progress_turn: 0,
        started: Instant::now(),
    };
    let outcome = game.play();
    game.close_view();
    outcome
}

impl Match<'_> {
    fn play(&mut self) -> Result<MatchReport, DemoError> {
        let players = usize::from(self.args.players);
        self.say(format!(
            "Territory on Baton: {players} bot players, each its own process, on loopback \
             QUIC; {} turns; the host is killed with SIGKILL at turn {} ({} time(s) in a row)",
            self.args.turns,
            self.args.first_kill_turn(),
            self.args.kills
        ));
        self.spawn(None)?;
        let invite = self.seats[0].invite.clone();
        self.say(format!(
            "process 0 founded the session; invite code {invite}"
        ));
        for _ in 1..players {
            self.spawn(Some(&invite))?;
        }
        self.say(format!(
            "{} players joined by invite code",
            players.saturating_sub(1)
        ));
        self.learn_seat_letters()?;
        self.open_view();
        let mut next_kill_turn = self.args.first_kill_turn();
        let mut last_draw = Instant::now();
        let mut marker = self.progress_marker();
        let mut moved_at = Instant::now();
        loop {
            self.check_limit("the match to end")?;
            let now_marker = self.progress_marker();
            if now_marker != marker {
                marker = now_marker;
                moved_at = Instant::now();
            } else if moved_at.elapsed() > STEP_LIMIT {
                return Err(DemoError::Timeout {
                    what: format!("the match to go on ({})", self.waiting_for()),
                    limit: STEP_LIMIT,
                });
            }
            self.pump(Duration::from_millis(20));
            self.track_kills()?;
            if let Some(resumed) = self.last_resumed_turn() {
                next_kill_turn = next_kill_turn.max(resumed + TURNS_BETWEEN_KILLS);
            }
            let turn = self.turn();
            if self.kills.len() < self.args.kills && turn >= next_kill_turn && self.may_kill()? {
                self.kill_host()?;
            }
            if last_draw.elapsed() >= VIEW_REFRESH {
                self.refresh_view()?;
                last_draw = Instant::now();
            }
            if self.finished() {
                break;
            }
        }
        self.refresh_view()?;
        self.conclude()
    }

    /// Names every process by its seat in the game (the order of first orders applied), so
    /// that what the run says and what the board shows use the same letters.
    fn learn_seat_letters(&mut self) -> Result<(), DemoError> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let state = self.state(0)?;
            if state.players.len() >= self.seats.len() {
                for seat in &mut self.seats {
                    seat.letter = state.seat_letter(seat.id);
                }
                let names: Vec<String> = self
                    .seats
                    .iter()
                    .enumerate()
                    .map(|(index, seat)| format!("{} = process {index}", seat.letter))
                    .collect();
                self.say(format!("seats: {}", names.join(", ")));
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout {
                    what: "every player's first order".into(),
                    limit: STEP_LIMIT,
                });
            }
            self.pump(Duration::from_millis(50));
        }
    }

    fn spawn(&mut self, join: Option<&str>) -> Result<(), DemoError> {
        let index = self.seats.len();
        let letter = seat_letter(index);
        let log_path = self.dir.join(format!("process-{index}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(DemoError::io(format!("creating {}", log_path.display())))?;
        let exe = self
            .args
            .player_exe
            .get(index)
            .map_or(self.exe, PathBuf::as_path);
        let mut command = Command::new(exe);
        command
            .arg("player")
            .arg("--data-dir")
            .arg(self.dir.join(format!("process-{index}")))
            .arg("--seed")
            .arg(self.args.seed.wrapping_add(index as u64).to_string())
            .arg("--turn-ms")
            .arg(self.args.turn_ms.to_string())
            .arg("--think-ms")
            .arg(self.args.think_ms.to_string())
            .arg("--turns")
            .arg(self.args.turns.to_string());
        match join {
            Some(invite) => command.arg("--join").arg(invite),
            None => command.arg("--host"),
        };
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(DemoError::io("starting a player process"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| DemoError::Player {
            seat: letter,
            reason: "no stdout pipe".into(),
        })?;
        let tx = self.reports_tx.clone();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = Report::Line {
                    text,
                    at_micros: unix_micros(),
                };
                if tx.send((index, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send((index, Report::Closed));
        });
        self.seats.push(Seat {
            letter,
            id: 0,
            invite: String::new(),
            child,
            stdin,
            alive: true,
            exited: false,
            turns: Vec::new(),
            last_turn: 0,
            submitted: 0,
            committed: 0,
            answers: VecDeque::new(),
        });
        let ready = self.answer(index, "to start")?;
        match ready.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ready", id, _addr, invite] => {
                let seat = &mut self.seats[index];
                seat.id = u64::from_str_radix(id, 16).map_err(|_| DemoError::Player {
                    seat: letter,
                    reason: format!("bad id in {ready:?}"),
                })?;
                seat.invite = invite.to_string();
                Ok(())
            }
            _ => Err(DemoError::Player {
                seat: letter,
                reason: format!("did not start: {ready}"),
            }),
        }
    }

    /// Takes in what the players reported, waiting up to `wait` for the first report.
    fn pump(&mut self, wait: Duration) {
        let mut next = self.reports.recv_timeout(wait).ok();
        while let Some((index, report)) = next {
            self.absorb(index, report);
            next = self.reports.try_recv().ok();
        }
    }

    fn absorb(&mut self, index: usize, report: Report) {
        let (text, at_micros) = match report {
            Report::Line { text, at_micros } => (text, at_micros),
            Report::Closed => {
                self.seats[index].exited = true;
                return;
            }
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        if let ["became-host", _next, micros] = words.as_slice() {
            let micros = micros.parse().unwrap_or(at_micros);
            self.became_host(index, micros);
            return;
        }
        let seat = &mut self.seats[index];
        match words.as_slice() {
            ["turn", turn, micros, hash] => {
                let Ok(turn) = turn.parse::<u64>() else {
                    return;
                };
                let micros = micros.parse().unwrap_or(at_micros);
                let hash = u64::from_str_radix(hash, 16).ok();
                seat.last_turn = seat.last_turn.max(turn);
                seat.turns.push((turn, micros, hash));
            }
            ["submitted", sequence] => {
                seat.submitted = sequence.parse().unwrap_or(seat.submitted);
            }
            ["committed", sequence, _turn] => {
                let sequence = sequence.parse().unwrap_or(0);
                seat.committed = seat.committed.max(sequence);
            }
            ["host", _] => {}
            _ => seat.answers.push_back(text),
        }
    }

    fn became_host(&mut self, index: usize, micros: u128) {
        if self.seats[index].alive && self.host != Some(index) {
            if let Some(previous) = self.host {
                self.migrations += 1;
                let from = self.seats[previous].letter;
                let to = self.seats[index].letter;
                let turn = self.turn();
                self.event(format!("turn {turn}: host {from} -> {to}"));
            }
            self.host = Some(index);
        }
        if let Some(kill) = self.kills.last_mut() {
            if kill.successor.is_none() && index != kill.victim && micros >= kill.at_micros {
                kill.successor = Some((index, micros));
            }
        }
    }

    /// The next answer (a line that is not a report) of seat `index`.
    fn answer(&mut self, index: usize, what: &str) -> Result<String, DemoError> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if let Some(answer) = self.seats[index].answers.pop_front() {
                return Ok(answer);
            }
            if self.seats[index].exited {
                return Err(DemoError::Player {
                    seat: self.seats[index].letter,
                    reason: format!("exited while we waited for it {what}"),
                });
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout {
                    what: format!("player {} {what}", self.seats[index].letter),
                    limit: STEP_LIMIT,
                });
            }
            self.pump(Duration::from_millis(20));
        }
    }

    fn ask(&mut self, index: usize, command: &str) -> Result<String, DemoError> {
        let letter = self.seats[index].letter;
        let stdin = self.seats[index]
            .stdin
            .as_mut()
            .ok_or_else(|| DemoError::Player {
                seat: letter,
                reason: "its stdin is closed".into(),
            })?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(DemoError::io(format!("writing to player {letter}")))?;
        self.answer(index, &format!("to answer {command:?}"))
    }

    fn status(&mut self, index: usize) -> Result<Status, DemoError> {
        let line = self.ask(index, "status")?;
        Status::parse(&line).ok_or_else(|| DemoError::Player {
            seat: self.seats[index].letter,
            reason: format!("bad status {line:?}"),
        })
    }

    fn state(&mut self, index: usize) -> Result<Territory, DemoError> {
        let line = self.ask(index, "state")?;
        let letter = self.seats[index].letter;
        let bytes = line
            .strip_prefix("state ")
            .and_then(from_hex)
            .ok_or_else(|| DemoError::Player {
                seat: letter,
                reason: format!("bad state answer ({} bytes)", line.len()),
            })?;
        Ok(Territory::from_bytes(&bytes)?)
    }

    fn alive(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.seats.len()).filter(|index| self.seats[*index].alive)
    }

    /// The furthest turn any live player reported.
    fn turn(&self) -> u64 {
        self.alive()
            .map(|index| self.seats[index].last_turn)
            .max()
            .unwrap_or(0)
    }

    fn check_limit(&self, what: &str) -> Result<(), DemoError> {
        if self.started.elapsed() > MATCH_LIMIT {
            return Err(DemoError::Timeout {
                what: what.into(),
                limit: MATCH_LIMIT,
            });
        }
        Ok(())
    }

    /// The host may be killed now: its successor is settled, and the voters left alive
    /// after the kill would still be a majority of the voter set.
    fn may_kill(&mut self) -> Result<bool, DemoError> {
        if self
            .kills
            .last()
            .is_some_and(|kill| kill.first_turn_after.is_none())
        {
            return Ok(false);
        }
        let Some(witness) = self.alive().find(|index| Some(*index) != self.host) else {
            return Ok(false);
        };
        let status = self.status(witness)?;
        if self.host.is_none() {
            // A founder that hosted before its player subscribed to session events never
            // says `became-host` (the 0.2.0 release's player has that race, and the
            // release-compatibility match plays it); the witness's status names it.
            let named = status
                .host
                .and_then(|id| self.alive().find(|index| self.seats[*index].id == id));
            if let Some(index) = named {
                self.became_host(index, unix_micros());
            }
        }
        let Some(host) = self.host else {
            return Ok(false);
        };
        if witness == host || status.host != Some(self.seats[host].id) {
            return Ok(false);
        }
        let alive_ids: BTreeSet<u64> = self.alive().map(|index| self.seats[index].id).collect();
        let alive_voters = status.voters.intersection(&alive_ids).count();
        let after_kill = alive_voters.saturating_sub(1);
        Ok(after_kill * 2 > status.voters.len())
    }

    fn kill_host(&mut self) -> Result<(), DemoError> {
        let Some(victim) = self.host else {
            return Ok(());
        };
        let turn_pace = self.pace(victim);
        let seat = &mut self.seats[victim];
        seat.child
            .kill()
            .map_err(DemoError::io(format!("killing player {}", seat.letter)))?;
        let at_micros = unix_micros();
        let _ = seat.child.wait();
        seat.alive = false;
        seat.stdin = None;
        let letter = seat.letter;
        let pid = seat.child.id();
        let turn = seat.last_turn;
        self.kills.push(Kill {
            victim,
            at_micros,
            successor: None,
            first_turn_after: None,
            turn_pace,
        });
        self.event(format!(
            "turn {turn}: SIGKILL host {letter} (pid {pid}); the others elect a new host"
        ));
        Ok(())
    }

    /// Mean time per turn over the last turns `index` reported.
    fn pace(&self, index: usize) -> Duration {
        let turns = &self.seats[index].turns;
        let window = &turns[turns.len().saturating_sub(PACE_WINDOW_TURNS)..];
        match (window.first(), window.last()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                let micros = last.1.saturating_sub(first.1) / u128::from(last.0 - first.0);
                Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
            }
            _ => Duration::ZERO,
        }
    }

    /// Completes the latest kill's record once a turn commits under its successor.
    fn track_kills(&mut self) -> Result<(), DemoError> {
        let Some(kill) = self.kills.last() else {
            return Ok(());
        };
        if kill.first_turn_after.is_some() {
            return Ok(());
        }
        let elapsed = Duration::from_micros(
            u64::try_from(unix_micros().saturating_sub(kill.at_micros)).unwrap_or(u64::MAX),
        );
        if elapsed > STEP_LIMIT {
            return Err(DemoError::Timeout {
                what: "a new host after the kill".into(),
                limit: STEP_LIMIT,
            });
        }
        let Some((successor, became_at)) = kill.successor else {
            return Ok(());
        };
        let first = self
            .alive()
            .flat_map(|index| self.seats[index].turns.iter())
            .filter(|(_, micros, _)| *micros >= became_at)
            .map(|(_, micros, _)| *micros)
            .min();
        let Some(first) = first else {
            return Ok(());
        };
        let pause = Duration::from_micros(
            u64::try_from(first.saturating_sub(kill.at_micros)).unwrap_or(u64::MAX),
        );
        let turns = pause.as_secs_f64() / kill.turn_pace.as_secs_f64().max(1e-6);
        let (victim, taker) = (self.seats[kill.victim].letter, self.seats[successor].letter);
        let pace_ms = kill.turn_pace.as_secs_f64() * 1000.0;
        if let Some(kill) = self.kills.last_mut() {
            kill.first_turn_after = Some(first);
        }
        let turn = self.turn();
        self.event(format!(
            "turn {turn}: {taker} took over from {victim}; play paused {} ms (≈ {turns:.1} \
             turns at {pace_ms:.0} ms/turn)",
            pause.as_millis()
        ));
        Ok(())
    }

    fn last_resumed_turn(&self) -> Option<u64> {
        let kill = self.kills.last()?;
        let resumed_at = kill.first_turn_after?;
        self.alive()
            .flat_map(|index| self.seats[index].turns.iter())
            .filter(|(_, micros, _)| *micros >= resumed_at)
            .map(|(turn, _, _)| *turn)
            .min()
    }

    /// Changes whenever the match moves: a turn, an order applied, a kill or its end.
    fn progress_marker(&self) -> (u64, u64, usize, usize) {
        let committed = self.alive().map(|index| self.seats[index].committed).sum();
        let resumed = self
            .kills
            .iter()
            .filter(|kill| kill.first_turn_after.is_some())
            .count();
        (self.turn(), committed, self.kills.len(), resumed)
    }

    /// What the match waits for, for a timeout's message.
    fn waiting_for(&self) -> String {
        let seats: Vec<String> = self
            .alive()
            .map(|index| {
                let seat = &self.seats[index];
                format!(
                    "{}: turn {} orders {}/{} applied",
                    seat.letter, seat.last_turn, seat.committed, seat.submitted
                )
            })
            .collect();
        let host = self.host.map(|host| self.seats[host].letter).unwrap_or('-');
        format!(
            "kills {}/{}, host {host}, {}",
            self.kills.len(),
            self.args.kills,
            seats.join("; ")
        )
    }

    fn finished(&self) -> bool {
        let kills_done = self.kills.len() >= self.args.kills
            && self
                .kills
                .iter()
                .all(|kill| kill.first_turn_after.is_some());
        kills_done
            && self.alive().all(|index| {
                let seat = &self.seats[index];
                seat.last_turn >= self.args.turns && seat.committed >= seat.submitted
            })
    }

    fn conclude(&mut self) -> Result<MatchReport, DemoError> {
        let survivors: Vec<usize> = self.alive().collect();
        let mut states = Vec::new();
        for index in &survivors {
            states.push((*index, self.state(*index)?));
        }
        for index in &survivors {
            let _ = self.ask(*index, "quit");
        }
        // The killed hosts' reports are complete once their pipes hit end of file.
        let deadline = Instant::now() + STEP_LIMIT;
        while self
            .kills
            .iter()
            .any(|kill| !self.seats[kill.victim].exited)
            && Instant::now() < deadline
        {
            self.pump(Duration::from_millis(20));
        }

        let compared_turn = states
            .iter()
            .map(|(_, state)| state.turn)
            .min()
            .unwrap_or(0);
        let common = usize::try_from(compared_turn).unwrap_or(usize::MAX);
        let hashes_equal = compared_turn >= self.args.turns
            && states
                .windows(2)
                .all(|pair| pair[0].1.history.get(..common) == pair[1].1.history.get(..common));

        let mut lost_turns = BTreeSet::new();
        for kill in &self.kills {
            for (turn, _, hash) in &self.seats[kill.victim].turns {
                let held = states
                    .iter()
                    .all(|(_, state)| hash.is_some() && state.hash_at(*turn) == *hash);
                if !held {
                    lost_turns.insert(*turn);
                }
            }
        }

        let inputs_applied_once = !states.is_empty()
            && states.iter().all(|(_, state)| {
                state.inputs_applied_once()
                    && survivors.iter().all(|index| {
                        let seat = &self.seats[*index];
                        state
                            .players
                            .get(&seat.id)
                            .map(|record| record.inputs_applied)
                            .unwrap_or(0)
                            == seat.submitted
                    })
            });

        let final_state = states.first().map(|(_, state)| state);
        let mut player_reports: Vec<PlayerReport> = self
            .seats
            .iter()
            .enumerate()
            .map(|(process, seat)| {
                let final_hash = if seat.alive {
                    states
                        .iter()
                        .find(|(index, _)| self.seats[*index].id == seat.id)
                        .and_then(|(_, state)| state.hash_at(self.args.turns))
                        .map(|hash| (self.args.turns, hash))
                } else {
                    seat.turns
                        .iter()
                        .rev()
                        .find_map(|(turn, _, hash)| hash.map(|hash| (*turn, hash)))
                };
                PlayerReport {
                    letter: final_state
                        .map(|state| state.seat_letter(seat.id))
                        .filter(|letter| *letter != '?')
                        .unwrap_or(seat.letter),
                    process,
                    id: seat.id,
                    killed: !seat.alive,
                    final_hash,
                }
            })
            .collect();
        player_reports.sort_by_key(|player| player.letter);

        let kills = self
            .kills
            .iter()
            .map(|kill| {
                let successor = kill
                    .successor
                    .map(|(index, _)| self.seats[index].letter)
                    .unwrap_or('?');
                let pause = kill
                    .first_turn_after
                    .map(|first| {
                        Duration::from_micros(
                            u64::try_from(first.saturating_sub(kill.at_micros)).unwrap_or(u64::MAX),
                        )
                    })
                    .unwrap_or(Duration::ZERO);
                KillReport {
                    victim: self.seats[kill.victim].letter,
                    victim_last_turn: self.seats[kill.victim].last_turn,
                    successor,
                    pause,
                    turn_pace: kill.turn_pace,
                }
            })
            .collect();

        Ok(MatchReport {
            players: self.seats.len(),
            turns: self.args.turns,
            migrations: self.migrations,
            kills,
            player_reports,
            committed_turns_lost: lost_turns.len(),
            inputs_applied_once,
            hashes_equal,
            compared_turn,
        })
    }

    /// A line for people: on the live view's event list, or printed.
    fn event(&mut self, text: String) {
        match self.display {
            Display::Plain => println!("{text}"),
            Display::Live => {
                self.all_events.push(text.clone());
                if self.events.len() == VIEW_EVENTS_MAX {
                    self.events.pop_front();
                }
                self.events.push_back(text);
            }
            Display::Quiet => tracing::info!("{text}"),
        }
    }

    /// A line printed before the live view starts (or at any time when plain).
    fn say(&mut self, text: String) {
        match self.display {
            Display::Quiet => tracing::info!("{text}"),
            Display::Live if self.terminal.is_some() => self.event(text),
            _ => println!("{text}"),
        }
    }

    fn open_view(&mut self) {
        if self.display != Display::Live {
            return;
        }
        // The alternate screen, not an inline viewport: an inline one must ask the
        // terminal where its cursor is, and a terminal that never answers (a `script`
        // log, some CI consoles) would hold the match up for seconds. Raw mode stays off
        // so that Ctrl-C still interrupts the run.
        let opened = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::terminal::EnterAlternateScreen,
            ratatui::crossterm::cursor::Hide
        )
        .and_then(|()| {
            ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
        });
        match opened {
            Ok(terminal) => self.terminal = Some(terminal),
            Err(err) => {
                self.close_view();
                println!("no live view ({err}); plain progress instead");
                self.display = Display::Plain;
            }
        }
    }

    fn close_view(&mut self) {
        if self.display != Display::Live {
            return;
        }
        self.terminal = None;
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::terminal::LeaveAlternateScreen,
            ratatui::crossterm::cursor::Show
        );
        // What the live view showed, kept on the normal screen once it is gone.
        if let Some(state) = &self.view_state {
            println!("final board (turn {}):", state.turn);
            for row in view::board_text(state) {
                println!("  {row}");
            }
        }
        for event in &self.all_events {
            println!("{event}");
        }
    }

    fn view_source(&self) -> Option<usize> {
        self.host
            .filter(|host| self.seats[*host].alive)
            .or_else(|| self.alive().next())
    }

    fn refresh_view(&mut self) -> Result<(), DemoError> {
        match self.display {
            Display::Quiet => Ok(()),
            Display::Plain => {
                let turn = self.turn();
                if turn >= self.last_progress_turn + PROGRESS_EVERY_TURNS {
                    self.last_progress_turn = turn - turn % PROGRESS_EVERY_TURNS;
                    if let Some(source) = self.view_source() {
                        let state = self.state(source)?;
                        println!("{}", self.progress_line(&state));
                    }
                }
                Ok(())
            }
            Display::Live => {
                if let Some(source) = self.view_source() {
                    self.view_state = Some(self.state(source)?);
                }
                self.draw()
            }
        }
    }

    fn host_id(&self) -> Option<u64> {
        self.host.map(|host| self.seats[host].id)
    }

    fn progress_line(&self, state: &Territory) -> String {
        let host = self
            .host
            .map(|host| state.seat_letter(self.seats[host].id))
            .unwrap_or('-');
        let rows = view::player_rows(state, self.host_id(), None);
        let players: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "{} {} cells fitness {:.3}",
                    row.letter,
                    row.cells,
                    f64::from(row.fitness) / 1000.0
                )
            })
            .collect();
        format!(
            "turn {}/{}: host {host}; {}",
            state.turn,
            self.args.turns,
            players.join(", ")
        )
    }

    fn rows(&self, state: &Territory) -> Vec<PlayerRow> {
        let mut rows = view::player_rows(state, self.host_id(), None);
        for row in &mut rows {
            if let Some(seat) = self.seats.iter().find(|seat| seat.id == row.id) {
                row.note = if seat.alive {
                    String::new()
                } else {
                    "killed".into()
                };
            }
        }
        rows
    }

    fn draw(&mut self) -> Result<(), DemoError> {
        let Some(state) = self.view_state.clone() else {
            return Ok(());
        };
        let rows = self.rows(&state);
        let host = self
            .host
            .map(|host| state.seat_letter(self.seats[host].id))
            .unwrap_or('-');
        let host_fitness = self
            .host_id()
            .and_then(|id| state.players.get(&id))
            .map(|record| format!("{:.3}", f64::from(record.fitness) / 1000.0))
            .unwrap_or_else(|| "-".into());
        let header = format!(
            " turn {}/{}   host {host} (fitness {host_fitness})   migrations {}   kills {}/{}",
            state.turn,
            self.args.turns,
            self.migrations,
            self.kills.len(),
            self.args.kills
        );
        let events: Vec<Line> = self.events.iter().map(|e| Line::from(e.clone())).collect();
        let Some(terminal) = self.terminal.as_mut() else {
            return Ok(());
        };
        terminal
            .draw(|frame| {
                let area = frame.area();
                let [top, body] = Layout::default()
                    .direction(Direction::Vertical)
                    .constraints([
                        Constraint::Length(1),
                        Constraint::Length(view::BOARD_HEIGHT),
                    ])
                    .areas(area);
                frame.render_widget(Paragraph::new(header), top);
                let [board, side] = Layout::default()
                    .direction(Direction::Horizontal)
                    .constraints([Constraint::Length(view::BOARD_WIDTH), Constraint::Min(20)])
                    .areas(body);
                view::board(&state, None, "Territory").render(board, frame.buffer_mut());
                let rows_height = u16::try_from(rows.len()).unwrap_or(8) + 3;
                let [table, log] = Layout::default()
                    .direction(Direction::Vertical)
                    .constraints([Constraint::Length(rows_height), Constraint::Min(3)])
                    .areas(side);
                frame.render_widget(view::players(&rows), table);
                frame.render_widget(
                    Paragraph::new(events)
                        .block(Block::default().borders(Borders::ALL).title("events")),
                    log,
                );
            })
            .map_err(DemoError::io("drawing the live view"))?;
        Ok(())
    }
}

/// A player's `status` answer.
struct Status {
    host: Option<u64>,
    voters: BTreeSet<u64>,
}

impl Status {
    fn parse(line: &str) -> Option<Status> {
        let mut words = line.split_whitespace();
        if words.next() != Some("status") {
            return None;
        }
        let mut status = Status {
            host: None,
            voters: BTreeSet::new(),
        };
        for field in words {
            match field.split_once('=') {
                Some(("host", id)) => status.host = u64::from_str_radix(id, 16).ok(),
                Some(("voters", ids)) => {
                    status.voters = ids
                        .split(',')
                        .filter_map(|id| u64::from_str_radix(id, 16).ok())
                        .collect();
                }
                _ => {}
            }
        }
        Some(status)
    }
}

/// The end of the run as lines for people, then the machine-readable line last.
pub fn report_lines(report: &MatchReport) -> Vec<String> {
    let mut lines = Vec::new();
    for kill in &report.kills {
        lines.push(format!(
            "host {} killed after it reported turn {} committed; {} took over; play paused \
             {} ms (≈ {:.1} turns at {:.0} ms/turn)",
            kill.victim,
            kill.victim_last_turn,
            kill.successor,
            kill.pause.as_millis(),
            kill.pause_turns(),
            kill.turn_pace.as_secs_f64() * 1000.0
        ));
    }
    for player in &report.player_reports {
        let hash = match player.final_hash {
            Some((turn, hash)) => format!("{hash:016x} at turn {turn}"),
            None => "-".into(),
        };
        let fate = if player.killed {
            "killed; last reported"
        } else {
            "final state"
        };
        lines.push(format!(
            "player {} {:016x}: {fate} {hash}",
            player.letter, player.id
        ));
    }
    lines.push(format!(
        "migrations {}; committed turns lost {} (the killed hosts' reported turns checked \
         against every survivor's history); inputs applied once: {}; survivors' histories \
         equal up to turn {}: {}",
        report.migrations,
        report.committed_turns_lost,
        report.inputs_applied_once,
        report.compared_turn,
        report.hashes_equal
    ));
    lines.push(report.summary_line());
    lines
}

/// The `baton-demo` executable next to a test binary, or this process's own.
pub fn own_exe() -> Result<PathBuf, DemoError> {
    std::env::current_exe().map_err(DemoError::io("finding my own executable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_survivable_keep_a_majority() {
        assert_eq!(kills_survivable(2), 0);
        assert_eq!(kills_survivable(3), 1);
        assert_eq!(kills_survivable(4), 1);
        assert_eq!(kills_survivable(5), 2);
        assert_eq!(kills_survivable(6), 3);
        assert_eq!(kills_survivable(8), 5);
    }

    #[test]
    fn status_lines_parse() {
        let status = Status::parse(
            "status turn=3 host=00000000000000ab role=Leader voters=00000000000000ab,0000000000000001 learners=- fitness=900 submitted=2 committed=1",
        )
        .expect("parses");
        assert_eq!(status.host, Some(0xab));
        assert_eq!(status.voters.len(), 2);
        assert!(Status::parse("error nope").is_none());
    }
}
