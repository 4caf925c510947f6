//! Failure detection over a bad link: sessions in this process whose every player sends
//! through the fault-injecting socket (`baton::transport::FaultController`), one fault at a
//! time — every datagram delayed by 80 ± 40 ms (uniform in 40–120 ms, each path keeping its
//! order, as a queue does: `FaultController::set_jitter`), or 2 % of datagrams dropped.
//! Independent delays of that span would reorder most datagrams, which QUIC reads as loss
//! (its packet threshold is 3) until its congestion window collapses: that measures
//! QUIC's tolerance of reordering, which a real path seldom asks for, not the detector.
//!
//! Two measurements per fault: a session plays for a window with nobody crashing, and every
//! term change in it is a needless election (a player that only suspected the host and
//! failed its pre-vote changes no term, and costs no tick); then fresh sessions have their
//! host stopped dead, timed as [`crate::migration`] times a crash.

use crate::migration::{migrate, MigrationKind, MigrationTrials};
use crate::session::{lock, session_config_with, Detection, ProbeSession, DETECTOR_WARMUP};
use crate::BenchError;
use baton::session::SessionConfig;
use baton::transport::FaultController;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Shortest delay of the delayed link: 80 ms − 40 ms.
pub const DELAY_MIN: Duration = Duration::from_millis(40);
/// Longest delay of the delayed link: 80 ms + 40 ms.
pub const DELAY_MAX: Duration = Duration::from_millis(120);
/// Share of datagrams the lossy link drops.
pub const LOSS_RATE: f64 = 0.02;
/// Seed of the fault model (a shared controller's decisions depend on the interleaving of
/// sends, so this bounds the statistics rather than replaying a run).
const FAULT_SEED: u64 = 0xBAD_11AC;

/// The fault every link of a session suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkFault {
    /// Every datagram delayed uniformly in `[DELAY_MIN, DELAY_MAX]`.
    Delay,
    /// `LOSS_RATE` of the datagrams dropped.
    Loss,
}

impl LinkFault {
    /// Both, in the order the harness measures them.
    pub const ALL: [LinkFault; 2] = [LinkFault::Delay, LinkFault::Loss];

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            LinkFault::Delay => "80 ± 40 ms delay",
            LinkFault::Loss => "2 % loss",
        }
    }

    fn controller(self) -> FaultController {
        let faults = FaultController::new(FAULT_SEED);
        match self {
            LinkFault::Delay => faults.set_jitter(DELAY_MIN, DELAY_MAX),
            LinkFault::Loss => faults.set_drop_rate(LOSS_RATE),
        }
        faults
    }

    /// A session configuration whose every player sends through this fault.
    fn session_config(self, hz: u32, players: usize, detection: Detection) -> SessionConfig {
        let mut config = session_config_with(hz, players, detection);
        config.node.transport.faults = Some(self.controller());
        config
    }
}

/// What a session saw while it played over a faulty link with nobody crashing.
#[derive(Debug, Clone, Serialize)]
pub struct LinkPlay {
    /// The fault.
    pub fault: LinkFault,
    /// Players (all voters).
    pub players: usize,
    /// Tick rate.
    pub hz: u32,
    /// Length of the window, in seconds.
    pub window_s: f64,
    /// Term changes during the window, over all players: each is an election nobody
    /// needed.
    pub term_changes: u64,
    /// `HostChanged` events during the window, over all players.
    pub host_changes: u64,
    /// Ticks per second the first player applied during the window.
    pub applied_rate_hz: f64,
    /// At the end of the window, each follower's detection timeout, ms (what a crash
    /// would cost there before the election round; the fixed range is 150–300 ms).
    pub detection_timeout_ms: Vec<f64>,
}

/// Plays `window` over `fault` with `players` at `hz` and counts the elections.
pub async fn play(
    fault: LinkFault,
    players: usize,
    hz: u32,
    window: Duration,
) -> Result<LinkPlay, BenchError> {
    let config = fault.session_config(hz, players, Detection::Measured);
    let probe = ProbeSession::start(|_| config.clone(), players, None).await?;
    let outcome = play_window(&probe, fault, hz, window).await;
    probe.stop().await;
    outcome
}

async fn play_window(
    probe: &ProbeSession,
    fault: LinkFault,
    hz: u32,
    window: Duration,
) -> Result<LinkPlay, BenchError> {
    probe.wait_until_warm().await?;
    // Let the setup's elections and promotions settle, as a game would before play.
    tokio::time::sleep(DETECTOR_WARMUP).await;
    let term_before = highest_term(probe).await?;
    let hosts_before: u64 = lock(&probe.timeline).host_changes.iter().sum();
    let tick_before = probe.sessions[0].with_game(|_, tick| tick);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    let tick_after = probe.sessions[0].with_game(|_, tick| tick);
    let term_after = highest_term(probe).await?;
    let hosts_after: u64 = lock(&probe.timeline).host_changes.iter().sum();
    let mut detection_timeout_ms = Vec::new();
    for session in &probe.sessions {
        let status = session.status().await?;
        if let Some(timeout) = status.node.detection_timeout {
            detection_timeout_ms.push(timeout.as_secs_f64() * 1e3);
        }
    }
    Ok(LinkPlay {
        fault,
        players: probe.sessions.len(),
        hz,
        window_s: elapsed,
        term_changes: term_after.saturating_sub(term_before),
        host_changes: hosts_after.saturating_sub(hosts_before),
        applied_rate_hz: tick_after.saturating_sub(tick_before) as f64 / elapsed,
        detection_timeout_ms,
    })
}

async fn highest_term(probe: &ProbeSession) -> Result<u64, BenchError> {
    let mut highest = 0;
    for session in &probe.sessions {
        highest = highest.max(session.status().await?.node.term);
    }
    Ok(highest)
}

/// The shape of the faulty-link crash trials.
#[derive(Debug, Clone, Copy)]
pub struct LinkCrashes {
    /// The fault on every link.
    pub fault: LinkFault,
    /// Players (all voters) of each session.
    pub players: usize,
    /// Tick rate.
    pub hz: u32,
    /// How the survivors detect the crash.
    pub detection: Detection,
}

/// `trials` crash failovers as `shape` says, each in a fresh session.
pub async fn crashes(
    shape: LinkCrashes,
    trials: usize,
    progress: &crate::progress::Progress,
) -> Result<MigrationTrials, BenchError> {
    let LinkCrashes {
        fault,
        players,
        hz,
        detection,
    } = shape;
    let mut run = MigrationTrials::new(MigrationKind::Crash, hz, trials);
    for trial in 0..trials {
        tracing::debug!(?fault, trial, "crash trial over a faulty link");
        let config = fault.session_config(hz, players, detection);
        let probe = ProbeSession::start(|_| config.clone(), players, None).await?;
        let outcome = migrate(&probe, MigrationKind::Crash).await;
        probe.stop().await;
        run.record("link crash", trials, outcome)?;
        progress.step();
    }
    Ok(run)
}
