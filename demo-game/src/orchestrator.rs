//! Runs a whole demo match as separate processes on loopback: a host and its players play
//! Territory, the host is killed with SIGKILL mid-game, a new host takes over, and the
//! survivors must agree on the game state turn by turn.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest any step of the demo may take before it is declared failed.
const STEP_LIMIT: Duration = Duration::from_secs(90);

/// What a demo match does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `baton-demo` executable (the player processes run `baton-demo player ...`).
    pub exe: PathBuf,
    /// Players, host included (all of them voters up to five).
    pub players: usize,
    /// Turns played before the host is killed.
    pub turns_before_kill: u64,
    /// Turns the survivors must play after the kill.
    pub turns_after_kill: u64,
    /// Turn timer of each player, in milliseconds.
    pub turn_ms: u64,
}

/// What a demo match measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The host that was killed.
    pub killed_host: String,
    /// Its successor.
    pub new_host: String,
    /// Last turn a survivor had applied when the host was killed.
    pub last_turn_before_kill: u64,
    /// Time from the kill to the first turn committed under the new host.
    pub failover: Duration,
    /// Turn at which the survivors' states were compared.
    pub compared_turn: u64,
    /// The state hash every survivor had at that turn.
    pub hash: String,
    /// Number of surviving players that agreed.
    pub players_agreeing: usize,
}

struct Line {
    text: String,
    at_micros: u128,
}

struct Player {
    id: String,
    invite: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    last_turn: u64,
    turns: Vec<(u64, u128)>,
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0)
}

impl Player {
    fn spawn(
        options: &DemoOptions,
        dir: &std::path::Path,
        index: usize,
        join: Option<&str>,
    ) -> Result<Player, String> {
        let data_dir = dir.join(format!("player{index}"));
        let log = std::fs::File::create(dir.join(format!("player{index}.log")))
            .map_err(|err| err.to_string())?;
        let mut command = Command::new(&options.exe);
        command
            .arg("player")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--seed")
            .arg(index.to_string())
            .arg("--turn-ms")
            .arg(options.turn_ms.to_string());
        match join {
            Some(invite) => command.arg("--join").arg(invite),
            None => command.arg("--host"),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|err| format!("cannot start a player: {err}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx
                    .send(Line {
                        text,
                        at_micros: unix_micros(),
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut player = Player {
            id: String::new(),
            invite: String::new(),
            child,
            stdin,
            lines,
            last_turn: 0,
            turns: Vec::new(),
        };
        let ready = player.next_answer()?;
        let words: Vec<&str> = ready.split_whitespace().collect();
        match words.as_slice() {
            ["ready", id, _addr, invite] => {
                player.id = id.to_string();
                player.invite = invite.to_string();
                Ok(player)
            }
            _ => Err(format!("player {index} did not start: {ready}")),
        }
    }

    /// The next line that is not a turn report (turn reports are recorded on the way).
    fn next_answer(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.text.strip_prefix("turn ") {
                        let turn = rest
                            .split_whitespace()
                            .next()
                            .and_then(|turn| turn.parse().ok())
                            .unwrap_or(0);
                        self.last_turn = self.last_turn.max(turn);
                        self.turns.push((turn, line.at_micros));
                    } else if !line.text.starts_with("host ")
                        && !line.text.starts_with("became-host ")
                    {
                        return Ok(line.text);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err("a player stopped answering".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("a player exited".into()),
            }
        }
    }

    fn ask(&mut self, command: &str) -> Result<String, String> {
        writeln!(self.stdin, "{command}").map_err(|err| err.to_string())?;
        self.stdin.flush().map_err(|err| err.to_string())?;
        self.next_answer()
    }

    fn status(&mut self) -> Result<std::collections::HashMap<String, String>, String> {
        let line = self.ask("status")?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect())
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let deadline = Instant::now() + STEP_LIMIT;
    while Instant::now() < deadline {
        if done()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("timed out waiting for {what}"))
}

/// Plays one match with a host kill; `Ok` only if every survivor agrees on the state.
pub fn run(options: &DemoOptions) -> Result<DemoReport, String> {
    let dir = std::env::temp_dir().join(format!(
        "baton-demo-{}-{}",
        std::process::id(),
        unix_micros()
    ));
    std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
    let outcome = play(options, &dir);
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("player logs kept in {}", dir.display());
    }
    outcome
}

fn play(options: &DemoOptions, dir: &std::path::Path) -> Result<DemoReport, String> {
    let mut players = vec![Player::spawn(options, dir, 0, None)?];
    let invite = players[0].invite.clone();
    for index in 1..options.players {
        players.push(Player::spawn(options, dir, index, Some(&invite))?);
    }
    let voters_wanted = options.players.min(5).to_string();
    wait_until("every player to become a voter or learner", || {
        let status = players[0].status()?;
        Ok(status.get("voters") == Some(&voters_wanted))
    })?;
    wait_until("the opening turns", || {
        Ok(players[0].status()?["turn"].parse::<u64>().unwrap_or(0) >= options.turns_before_kill)
    })?;

    let host_id = players[0].status()?["host"].clone();
    let host = players
        .iter()
        .position(|player| player.id == host_id)
        .ok_or("the host is not a player")?;
    let mut killed = players.remove(host);
    let _ = killed.child.kill();
    let killed_at = unix_micros();
    let _ = killed.child.wait();
    let last_turn_before_kill = players
        .iter_mut()
        .map(|player| player.status().map(|_| player.last_turn))
        .try_fold(0, |most, turn| turn.map(|turn| most.max(turn)))?;

    let target = last_turn_before_kill + options.turns_after_kill;
    wait_until("the survivors to play on", || {
        for player in players.iter_mut() {
            player.status()?;
        }
        Ok(players.iter().all(|player| player.last_turn >= target))
    })?;
    let new_host = players[0].status()?["host"].clone();
    let first_new_turn_at = players
        .iter()
        .flat_map(|player| player.turns.iter())
        .filter(|(turn, at)| *turn > last_turn_before_kill && *at >= killed_at)
        .map(|(_, at)| *at)
        .min()
        .ok_or("no turn after the kill")?;

    let mut hashes = Vec::new();
    for player in players.iter_mut() {
        hashes.push(player.ask(&format!("hash {target}"))?);
    }
    let agreeing = hashes.iter().filter(|hash| **hash == hashes[0]).count();
    if agreeing != hashes.len() || !hashes[0].starts_with("hash ") {
        return Err(format!("players disagree at turn {target}: {hashes:?}"));
    }
    for player in players.iter_mut() {
        let _ = player.ask("quit");
    }
    Ok(DemoReport {
        killed_host: host_id,
        new_host,
        last_turn_before_kill,
        failover: Duration::from_micros(
            u64::try_from(first_new_turn_at.saturating_sub(killed_at)).unwrap_or(u64::MAX),
        ),
        compared_turn: target,
        hash: hashes[0]
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string(),
        players_agreeing: agreeing,
    })
}
