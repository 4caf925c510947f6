//! Measurements with players in processes of their own (`baton-bench-player`): crash
//! failover with the host killed by SIGKILL, each node's CPU and memory as the OS counts
//! them, and how the host's cost grows in a 64-player session.
//!
//! Every process is started, driven and ended by this module: a [`PlayerProcess`] is killed
//! when dropped, so a failed measurement leaves nothing running.

use crate::migration::{MigrationKind, MigrationTrials};
use crate::netns::NamespacePair;
use crate::progress::Progress;
use crate::session::{Detection, DETECTOR_WARMUP, WARMUP_TICKS};
use crate::{procfs, BenchError, SETUP_LIMIT};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Longest wait for a process's answer to one command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process may take to exit after `quit` before it is killed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the harness asks processes for their status while waiting.
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Ticks the new host must produce and every survivor apply before a crash trial ends.
const TICKS_AFTER_FAILOVER: u64 = 5;
/// Players of a crash trial (all voters).
const CRASH_PLAYERS: usize = 3;
/// Bytes of the input every player of a cost session submits each tick (a game's
/// controller state).
pub const COST_INPUT_BYTES: usize = 16;
/// Most players one crowd process of the large session runs.
const PLAYERS_PER_CROWD_PROCESS: usize = 16;
/// Setup limit of the large session: 63 joins go through one membership change at a time.
const LARGE_SETUP_LIMIT: Duration = Duration::from_secs(180);

/// How to start one player process.
#[derive(Debug, Clone)]
pub struct PlayerSpec {
    /// Tick rate of the session.
    pub hz: u32,
    /// Voters of the session.
    pub max_voters: usize,
    /// `None` founds the session; `Some(invite)` joins it.
    pub join: Option<String>,
    /// Players this process runs (joiners only; the host process runs one).
    pub players: usize,
    /// Report every tick applied (crash trials).
    pub print_ticks: bool,
    /// Bytes of the input each player submits every tick period (0: none).
    pub input_bytes: usize,
    /// Network namespace to run in (`None`: this process's own).
    pub netns: Option<String>,
    /// IP every player binds (`None`: 127.0.0.1).
    pub bind: Option<std::net::IpAddr>,
    /// How its players detect a host crash.
    pub detection: Detection,
}

/// Something a player process reported, with the time its line arrived here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlayerEvent {
    /// `player` of the process applied `tick`.
    Tick {
        /// Index of the player within its process.
        player: usize,
        /// The tick.
        tick: u64,
    },
    /// `player` of the process became the host; it produces `next_tick` first.
    BecameHost {
        /// Index of the player within its process.
        player: usize,
        /// The first tick it produces.
        next_tick: u64,
    },
}

/// One player's view, as its process answered `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerStatus {
    /// `leader`, `voter` or `learner`.
    pub role: String,
    /// Voters in the configuration it has applied.
    pub voters: usize,
    /// Learners in the configuration it has applied.
    pub learners: usize,
    /// Last tick it applied.
    pub last_tick: u64,
    /// UDP packets QUIC sent to all its peers so far.
    pub sent_packets: u64,
}

/// A running `baton-bench-player` process.
pub struct PlayerProcess {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    events: Receiver<(Instant, PlayerEvent)>,
    /// The session's invite, as the process's first player printed it.
    pub invite: String,
}

impl PlayerProcess {
    /// Starts `exe` as `spec` says and waits until every player in it is ready.
    pub fn spawn(exe: &Path, spec: &PlayerSpec) -> Result<PlayerProcess, BenchError> {
        // `ip netns exec` execs the player in place, so the child is the player itself: its
        // pid is the one /proc is read for, and a kill reaches it.
        let mut command = match &spec.netns {
            None => Command::new(exe),
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(exe);
                command
            }
        };
        if let Some(ip) = spec.bind {
            command.arg("--bind").arg(ip.to_string());
        }
        command
            .arg("--hz")
            .arg(spec.hz.to_string())
            .arg("--max-voters")
            .arg(spec.max_voters.to_string())
            .arg("--input-bytes")
            .arg(spec.input_bytes.to_string());
        match &spec.join {
            None => command.arg("--host"),
            Some(invite) => command
                .arg("--join")
                .arg(invite)
                .arg("--players")
                .arg(spec.players.to_string()),
        };
        if spec.print_ticks {
            command.arg("--print-ticks");
        }
        if spec.detection == Detection::Fixed {
            command.arg("--fixed-election-timeout");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its logs would tear the progress bar; RUST_LOG and a terminal of its own are
            // for debugging the player by hand.
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| BenchError::Process(format!("spawn {}: {err}", exe.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(BenchError::Process("player pipes missing".into()));
        };
        let (answer_tx, answers) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let arrived = Instant::now();
                match parse_event(&line) {
                    Some(event) => {
                        if event_tx.send((arrived, event)).is_err() {
                            return;
                        }
                    }
                    None => {
                        if answer_tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut process = PlayerProcess {
            child,
            stdin,
            answers,
            events,
            invite: String::new(),
        };
        let expected = if spec.join.is_none() { 1 } else { spec.players };
        for _ in 0..expected {
            let line = process.answer(SETUP_LIMIT)?;
            let mut words = line.split_whitespace();
            match (words.next(), words.nth(2)) {
                (Some("ready"), Some(invite)) => {
                    if process.invite.is_empty() {
                        process.invite = invite.to_string();
                    }
                }
                _ => return Err(BenchError::Process(format!("player said {line:?}"))),
            }
        }
        Ok(process)
    }

    /// The OS's id of the process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn answer(&self, limit: Duration) -> Result<String, BenchError> {
        match self.answers.recv_timeout(limit) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(BenchError::Timeout("a player process")),
            Err(RecvTimeoutError::Disconnected) => {
                Err(BenchError::Process("a player process exited".into()))
            }
        }
    }

    fn send(&mut self, command: &str) -> Result<(), BenchError> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(|err| BenchError::Process(format!("player stdin: {err}")))
    }

    /// Every player's status, in the process's order.
    pub fn status(&mut self) -> Result<Vec<PlayerStatus>, BenchError> {
        self.send("status")?;
        let mut players = Vec::new();
        loop {
            let line = self.answer(ANSWER_TIMEOUT)?;
            if line == "end" {
                return Ok(players);
            }
            if let Some(status) = parse_status(&line) {
                players.push(status);
            }
        }
    }

    /// Every event reported since the last call.
    pub fn drain_events(&self) -> Vec<(Instant, PlayerEvent)> {
        self.events.try_iter().collect()
    }

    /// Kills the process with SIGKILL (no handoff, no goodbye) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop its players and exit; kills it if it does not in time.
    pub fn quit(mut self) {
        if self.send("quit").is_ok() {
            let deadline = Instant::now() + QUIT_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

impl Drop for PlayerProcess {
    fn drop(&mut self) {
        // A process that already exited makes this a no-op; a running one must not outlive
        // the measurement that started it.
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn parse_event(line: &str) -> Option<PlayerEvent> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let player = words.next()?.parse().ok()?;
    let number = words.next()?.parse().ok()?;
    match kind {
        "tick" => Some(PlayerEvent::Tick {
            player,
            tick: number,
        }),
        "became_host" => Some(PlayerEvent::BecameHost {
            player,
            next_tick: number,
        }),
        _ => None,
    }
}

fn parse_status(line: &str) -> Option<PlayerStatus> {
    let mut words = line.split_whitespace();
    if words.next()? != "status" {
        return None;
    }
    let mut status = PlayerStatus {
        role: String::new(),
        voters: 0,
        learners: 0,
        last_tick: 0,
        sent_packets: 0,
    };
    for word in words.skip(1) {
        let (key, value) = word.split_once('=')?;
        match key {
            "role" => status.role = value.to_string(),
            "voters" => status.voters = value.parse().ok()?,
            "learners" => status.learners = value.parse().ok()?,
            "last_tick" => status.last_tick = value.parse().ok()?,
            "sent_packets" => status.sent_packets = value.parse().ok()?,
            // An error answer, or a key a newer player added.
            _ => {}
        }
    }
    (!status.role.is_empty()).then_some(status)
}

/// Polls every process's status until `ready` holds for all the statuses together.
fn wait_for_processes(
    what: &'static str,
    processes: &mut [PlayerProcess],
    limit: Duration,
    mut ready: impl FnMut(&[PlayerStatus]) -> bool,
) -> Result<Vec<PlayerStatus>, BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = Vec::new();
        for process in processes.iter_mut() {
            all.extend(process.status()?);
        }
        if ready(&all) {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(what));
        }
        std::thread::sleep(STATUS_POLL_INTERVAL);
    }
}

impl PlayerSpec {
    /// The host's spec of a session on loopback: `hz`, `max_voters`, the default detection.
    fn host(hz: u32, max_voters: usize, print_ticks: bool, input_bytes: usize) -> PlayerSpec {
        PlayerSpec {
            hz,
            max_voters,
            join: None,
            players: 1,
            print_ticks,
            input_bytes,
            netns: None,
            bind: None,
            detection: Detection::Measured,
        }
    }
}

/// Starts a host process as `host` says and joiner processes of `joiners[i]` players each;
/// with `netns`, the host alone in the pair's host namespace and the joiners in its crowd
/// namespace.
fn start_session(
    exe: &Path,
    host: PlayerSpec,
    joiners: &[usize],
    netns: Option<&NamespacePair>,
) -> Result<Vec<PlayerProcess>, BenchError> {
    let spec = PlayerSpec {
        netns: netns.map(|pair| pair.host.clone()),
        bind: netns.map(|_| crate::netns::HOST_ADDR),
        ..host
    };
    let host = PlayerProcess::spawn(exe, &spec)?;
    let invite = host.invite.clone();
    let mut processes = vec![host];
    for &players in joiners {
        processes.push(PlayerProcess::spawn(
            exe,
            &PlayerSpec {
                join: Some(invite.clone()),
                players,
                netns: netns.map(|pair| pair.crowd.clone()),
                bind: netns.map(|_| crate::netns::CROWD_ADDR),
                ..spec.clone()
            },
        )?);
    }
    Ok(processes)
}

fn quit_all(processes: Vec<PlayerProcess>) {
    for process in processes.into_iter().rev() {
        process.quit();
    }
}

/// Crash trials with real processes: a fresh 3-player session of three processes, its host
/// process killed with SIGKILL once warm. Per trial, the pause (longest interval between two
/// ticks a survivor applied, across the kill) and the failover time (kill until the last
/// survivor applied the new host's first tick), both timed here as the survivors' lines
/// arrive (a pipe adds microseconds to figures of hundreds of milliseconds). The players
/// detect the crash as `detection` says.
pub fn crash_trials(
    exe: &Path,
    hz: u32,
    trials: usize,
    detection: Detection,
    progress: &Progress,
) -> Result<MigrationTrials, BenchError> {
    let mut run = MigrationTrials::new(MigrationKind::Crash, hz, trials);
    for trial in 0..trials {
        tracing::debug!(trial, "process crash trial");
        let host = PlayerSpec {
            detection,
            ..PlayerSpec::host(hz, CRASH_PLAYERS, true, 0)
        };
        let mut processes = start_session(exe, host, &[1, 1], None)?;
        let outcome = crash_one(&mut processes);
        quit_all(processes);
        run.record("process crash", trials, outcome)?;
        progress.step();
    }
    Ok(run)
}

fn crash_one(processes: &mut [PlayerProcess]) -> Result<(Duration, Duration), BenchError> {
    wait_for_processes(
        "every player process to be a voter and tick",
        processes,
        SETUP_LIMIT,
        |all| {
            all.len() == CRASH_PLAYERS
                && all.iter().all(|status| {
                    status.voters == CRASH_PLAYERS && status.last_tick >= WARMUP_TICKS
                })
                && all.first().is_some_and(|host| host.role == "leader")
        },
    )?;
    // A host crashes after some play, not in its first ticks: the followers' detector has
    // filled its window by then (the fixed timeout does not care).
    std::thread::sleep(DETECTOR_WARMUP);
    // Ticks from before the kill that the survivors already reported: the pause is measured
    // from the last of them.
    let mut before: Vec<Option<Instant>> = processes
        .iter()
        .map(|process| {
            process
                .drain_events()
                .iter()
                .filter(|(_, event)| matches!(event, PlayerEvent::Tick { .. }))
                .map(|(at, _)| *at)
                .next_back()
        })
        .collect();
    let killed = Instant::now();
    processes[0].kill();

    let survivors = 1..processes.len();
    let mut ticks: Vec<Vec<(Instant, u64)>> = vec![Vec::new(); processes.len()];
    let mut first_new_tick: Option<u64> = None;
    let deadline = killed + SETUP_LIMIT;
    loop {
        for s in survivors.clone() {
            for (at, event) in processes[s].drain_events() {
                match event {
                    PlayerEvent::Tick { tick, .. } => ticks[s].push((at, tick)),
                    PlayerEvent::BecameHost { next_tick, .. } => first_new_tick = Some(next_tick),
                }
            }
        }
        let done = first_new_tick.is_some_and(|first| {
            survivors.clone().all(|s| {
                ticks[s]
                    .last()
                    .is_some_and(|(_, tick)| *tick >= first + TICKS_AFTER_FAILOVER)
            })
        });
        if done {
            break;
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout("a new host after a SIGKILL"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = first_new_tick.ok_or(BenchError::Protocol("no new host"))?;
    let mut pause = Duration::ZERO;
    let mut moved = Duration::ZERO;
    for s in survivors {
        let mut previous = before[s].take();
        for (at, tick) in &ticks[s] {
            if let Some(prev) = previous {
                pause = pause.max(at.saturating_duration_since(prev));
            }
            previous = Some(*at);
            if *tick >= first {
                moved = moved.max(at.saturating_duration_since(killed));
                break;
            }
        }
    }
    Ok((pause, moved))
}

/// What one node process cost over the measurement window.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCost {
    /// `leader` (the host), `voter` or `learner`.
    pub role: String,
    /// CPU time over the window, in % of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end of the window, in MiB.
    pub rss_mib: f64,
}

/// What each node of a session cost, one process per player.
#[derive(Debug, Clone, Serialize)]
pub struct SessionCosts {
    /// Players in the session.
    pub players: usize,
    /// Tick rate.
    pub hz: u32,
    /// Length of the window, in seconds.
    pub window_s: f64,
    /// Ticks per second the host committed during the window.
    pub committed_rate_hz: f64,
    /// One per process, host first.
    pub nodes: Vec<NodeCost>,
}

fn cpu_and_rss(
    processes: &[PlayerProcess],
    window: Duration,
) -> Result<Vec<(f64, f64)>, BenchError> {
    let started = Instant::now();
    let before: Vec<Duration> = processes
        .iter()
        .map(|process| procfs::cpu_time(process.pid()))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(window);
    let elapsed = started.elapsed().as_secs_f64();
    processes
        .iter()
        .zip(before)
        .map(|(process, before)| {
            let used = procfs::cpu_time(process.pid())?.saturating_sub(before);
            let rss = procfs::rss_bytes(process.pid())? as f64 / (1024.0 * 1024.0);
            Ok((used.as_secs_f64() / elapsed * 100.0, rss))
        })
        .collect()
}

/// A session of `players` processes of one player each, every player sending a
/// [`COST_INPUT_BYTES`] input per tick; once warm, each process's CPU and memory over
/// `window`.
pub fn session_costs(
    exe: &Path,
    players: usize,
    hz: u32,
    window: Duration,
) -> Result<SessionCosts, BenchError> {
    let voters = players.min(crate::session::VOTERS_MAX);
    let joiners = vec![1; players.saturating_sub(1)];
    let host = PlayerSpec::host(hz, voters, false, COST_INPUT_BYTES);
    let mut processes = start_session(exe, host, &joiners, None)?;
    let outcome = measure_costs(&mut processes, players, voters, hz, window);
    quit_all(processes);
    outcome
}

fn measure_costs(
    processes: &mut [PlayerProcess],
    players: usize,
    voters: usize,
    hz: u32,
    window: Duration,
) -> Result<SessionCosts, BenchError> {
    let warm = |all: &[PlayerStatus]| {
        all.len() == players
            && all.iter().all(|status| {
                status.voters == voters
                    && status.learners == players - voters
                    && status.last_tick >= WARMUP_TICKS
            })
            && all.first().is_some_and(|host| host.role == "leader")
    };
    let start = wait_for_processes("the cost session to settle", processes, SETUP_LIMIT, warm)?;
    let measured = cpu_and_rss(processes, window)?;
    let end = wait_for_processes("the cost session's status", processes, SETUP_LIMIT, |_| {
        true
    })?;
    let ticks = end[0].last_tick.saturating_sub(start[0].last_tick);
    let nodes = end
        .iter()
        .zip(measured)
        .map(|(status, (cpu_percent, rss_mib))| NodeCost {
            role: status.role.clone(),
            cpu_percent,
            rss_mib,
        })
        .collect();
    Ok(SessionCosts {
        players,
        hz,
        window_s: window.as_secs_f64(),
        committed_rate_hz: ticks as f64 / window.as_secs_f64(),
        nodes,
    })
}

/// How the host's cost grows with the session: its CPU, memory and traffic in a large
/// session.
#[derive(Debug, Clone, Serialize)]
pub struct LargeSession {
    /// Players in the session.
    pub players: usize,
    /// Voters among them.
    pub voters: usize,
    /// Tick rate.
    pub hz: u32,
    /// Length of the window, in seconds.
    pub window_s: f64,
    /// Ticks per second the host committed during the window.
    pub committed_rate_hz: f64,
    /// Host CPU over the window, in % of one core.
    pub host_cpu_percent: f64,
    /// Host resident memory, in MiB.
    pub host_rss_mib: f64,
    /// UDP packets the host sent per tick (all peers).
    pub host_packets_per_tick: f64,
    /// Bytes the host sent per tick (IP packets on its own veth, headers included), where
    /// the machine lets them be counted.
    pub host_bytes_per_tick: Option<f64>,
    /// Why the bytes were not counted, when they were not.
    pub bytes_not_counted: Option<String>,
    /// CPU of all the other players' processes together, in % of one core.
    pub others_cpu_percent: f64,
}

/// A session of `players` players (`voters` of them voters) at `hz`: the host in a process
/// of its own, the others in crowd processes of up to 16 players, each player sending a
/// [`COST_INPUT_BYTES`] input per tick; once every player is in, the host's cost over
/// `window`. With `count_bytes`, the host runs alone in a network namespace of its own
/// (root only; without root the bytes are not counted and the session runs on loopback).
pub fn large_session(
    exe: &Path,
    players: usize,
    voters: usize,
    hz: u32,
    window: Duration,
    count_bytes: bool,
) -> Result<LargeSession, BenchError> {
    let mut joiners = Vec::new();
    let mut left = players.saturating_sub(1);
    while left > 0 {
        let take = left.min(PLAYERS_PER_CROWD_PROCESS);
        joiners.push(take);
        left -= take;
    }
    let pair = if count_bytes {
        NamespacePair::create()
    } else {
        Err("not asked for".to_string())
    };
    let (netns, not_counted) = match &pair {
        Ok(pair) => (Some(pair), None),
        Err(why) => (None, Some(why.clone())),
    };
    // The processes are declared after the namespaces, so they are gone before the
    // namespaces are deleted (the kernel keeps a namespace while a process is inside).
    let host = PlayerSpec::host(hz, voters, false, COST_INPUT_BYTES);
    let mut processes = start_session(exe, host, &joiners, netns)?;
    let outcome = measure_large(&mut processes, players, voters, hz, window, netns);
    quit_all(processes);
    outcome.map(|large| LargeSession {
        bytes_not_counted: not_counted,
        ..large
    })
}

fn measure_large(
    processes: &mut [PlayerProcess],
    players: usize,
    voters: usize,
    hz: u32,
    window: Duration,
    netns: Option<&NamespacePair>,
) -> Result<LargeSession, BenchError> {
    let settled = |all: &[PlayerStatus]| {
        all.len() == players
            && all.iter().all(|status| {
                status.voters == voters
                    && status.learners == players - voters
                    && status.last_tick >= WARMUP_TICKS
            })
    };
    wait_for_processes(
        "every player of the large session to join",
        processes,
        LARGE_SETUP_LIMIT,
        settled,
    )?;
    let host_pid = processes[0].pid();
    let bytes = |pair: &NamespacePair| crate::netns::transmitted_bytes(host_pid, &pair.host_link);
    let bytes_before = netns.map(bytes).transpose()?;
    let host_before = processes[0].status()?;
    let measured = cpu_and_rss(processes, window)?;
    let host_after = processes[0].status()?;
    let bytes_after = netns.map(bytes).transpose()?;
    let (Some(before), Some(after)) = (host_before.first(), host_after.first()) else {
        return Err(BenchError::Protocol("the host process has no player"));
    };
    let ticks = after.last_tick.saturating_sub(before.last_tick).max(1);
    let packets = after.sent_packets.saturating_sub(before.sent_packets);
    Ok(LargeSession {
        players,
        voters,
        hz,
        window_s: window.as_secs_f64(),
        committed_rate_hz: ticks as f64 / window.as_secs_f64(),
        host_cpu_percent: measured[0].0,
        host_rss_mib: measured[0].1,
        host_packets_per_tick: packets as f64 / ticks as f64,
        host_bytes_per_tick: bytes_before
            .zip(bytes_after)
            .map(|(before, after)| after.saturating_sub(before) as f64 / ticks as f64),
        bytes_not_counted: None,
        others_cpu_percent: measured[1..].iter().map(|(cpu, _)| cpu).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_and_status_lines_parse() {
        assert_eq!(
            parse_event("tick 2 41"),
            Some(PlayerEvent::Tick {
                player: 2,
                tick: 41
            })
        );
        assert_eq!(
            parse_event("became_host 0 42"),
            Some(PlayerEvent::BecameHost {
                player: 0,
                next_tick: 42
            })
        );
        assert_eq!(parse_event("status 0 role=leader"), None);
        let status = parse_status(
            "status 0 role=learner voters=5 learners=5 last_tick=9 sent_packets=7 peers=1",
        )
        .unwrap();
        assert_eq!(status.role, "learner");
        assert_eq!((status.voters, status.learners), (5, 5));
        assert_eq!((status.last_tick, status.sent_packets), (9, 7));
        assert_eq!(parse_status("status 0 error=shut_down"), None);
    }
}
