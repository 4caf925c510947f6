//! Host migration trials: how long the game stops when the host moves.
//!
//! Each trial starts a fresh three-voter session at a fixed tick rate, lets it warm up,
//! then moves the host one way — the host calls `leave()` (planned handoff), the host's
//! game score drops to zero (fitness handoff), or the host stops dead without a word
//! (crash: its peers only notice the silence) — and waits until the new host has
//! ticked a few times. The figure of a trial is the pause the players saw: the longest
//! interval between two consecutive ticks applied on a remaining player, across the
//! migration. A healthy session shows one tick period there, so a pause of 1.2 ticks
//! means the move cost a fifth of a tick. Each trial also times the move itself: from the
//! moment the host is told to go (or stopped) until every remaining player has applied the
//! first tick the new host produced (for a crash, that is the failover time).
//!
//! These trials stop the host inside this process; [`crate::process`] kills real player
//! processes with SIGKILL.

use crate::session::{lock, session_config_with, Detection, ProbeSession, DETECTOR_WARMUP};
use crate::{BenchError, SETUP_LIMIT};
use std::time::{Duration, Instant};

/// Players (all voters) of every migration session.
pub const PLAYERS: usize = 3;

/// Ticks the new host must produce, and every remaining player apply, before a trial ends.
const TICKS_AFTER_MIGRATION: u64 = 5;
/// How long a fitter voter must stay fitter before the host hands over (the session default
/// is longer, to ride out noisy RTT samples; here the score change is a clean step).
const HANDOFF_HOLD: Duration = Duration::from_millis(500);

/// How the host is made to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationKind {
    /// The host calls `Session::leave()`: it hands the host role over, then exits.
    Leave,
    /// The host's game score drops to zero; the fitness policy hands over after the hold.
    GameScore,
    /// The host stops without handing over; the others elect a new host after their
    /// election timeout.
    Crash,
}

impl MigrationKind {
    /// Every kind, in the order the harness measures them.
    pub const ALL: [MigrationKind; 3] = [
        MigrationKind::Leave,
        MigrationKind::GameScore,
        MigrationKind::Crash,
    ];

    /// Stable name used in row keys.
    pub fn key(self) -> &'static str {
        match self {
            MigrationKind::Leave => "leave",
            MigrationKind::GameScore => "game_score",
            MigrationKind::Crash => "crash",
        }
    }

    /// What happens to the host, for people.
    pub fn label(self) -> &'static str {
        match self {
            MigrationKind::Leave => "host leave() handoff",
            MigrationKind::GameScore => "host score 0 handoff",
            MigrationKind::Crash => "host crash failover",
        }
    }
}

/// What the trials of one kind measured.
#[derive(Debug, Clone)]
pub struct MigrationTrials {
    /// How the host was moved.
    pub kind: MigrationKind,
    /// Tick rate of the sessions.
    pub hz: u32,
    /// Per trial: the longest interval between consecutive ticks applied on a remaining
    /// player, across the migration.
    pub pauses: Vec<Duration>,
    /// Per trial: from the host being told to go (or stopped) until the last remaining
    /// player applied the new host's first tick.
    pub to_new_host: Vec<Duration>,
    /// Trials in which the host did not move within the setup limit (the session never
    /// showed a tick by a new host). Counted, not hidden; see [`MigrationTrials::record`].
    pub failed: usize,
}

impl MigrationTrials {
    /// No trial yet, room for `trials`.
    pub fn new(kind: MigrationKind, hz: u32, trials: usize) -> MigrationTrials {
        MigrationTrials {
            kind,
            hz,
            pauses: Vec::with_capacity(trials),
            to_new_host: Vec::with_capacity(trials),
            failed: 0,
        }
    }

    /// Takes one trial's outcome (its pause and its time to the new host) out of `trials`.
    /// A move that did not complete in time is counted and logged, so one stuck move does
    /// not throw away the rest of a run, while at most half of `trials` failed; any other
    /// error, or too many timeouts, ends the run.
    pub fn record(
        &mut self,
        what: &str,
        trials: usize,
        outcome: Result<(Duration, Duration), BenchError>,
    ) -> Result<(), BenchError> {
        match outcome {
            Ok((pause, moved)) => {
                self.pauses.push(pause);
                self.to_new_host.push(moved);
                Ok(())
            }
            Err(BenchError::Timeout(why)) if (self.failed + 1) * 2 <= trials => {
                self.failed += 1;
                tracing::warn!(
                    what,
                    why,
                    failed = self.failed,
                    "a host-move trial did not complete"
                );
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// One tick period at the trials' rate.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.hz))
    }
}

/// Runs `trials` migrations of `kind`, each in a fresh session ticking at `hz`, with the
/// default (measured) failure detection.
pub async fn measure_migrations(
    kind: MigrationKind,
    hz: u32,
    trials: usize,
) -> Result<MigrationTrials, BenchError> {
    let hidden = crate::progress::Progress::hidden();
    measure_migrations_with(kind, hz, trials, Detection::Measured, &hidden).await
}

/// [`measure_migrations`] with the failure detection `detection`, advancing `progress`
/// once per trial.
pub async fn measure_migrations_with(
    kind: MigrationKind,
    hz: u32,
    trials: usize,
    detection: Detection,
    progress: &crate::progress::Progress,
) -> Result<MigrationTrials, BenchError> {
    let mut run = MigrationTrials::new(kind, hz, trials);
    for trial in 0..trials {
        tracing::debug!(kind = kind.key(), trial, "migration trial");
        run.record(kind.key(), trials, one_trial(kind, hz, detection).await)?;
        progress.step();
    }
    Ok(run)
}

async fn one_trial(
    kind: MigrationKind,
    hz: u32,
    detection: Detection,
) -> Result<(Duration, Duration), BenchError> {
    let mut config = session_config_with(hz, PLAYERS, detection);
    config.handoff_hold = HANDOFF_HOLD;
    // Nobody submits inputs here.
    let probe = ProbeSession::start(|_| config.clone(), PLAYERS, None).await?;
    let outcome = migrate(&probe, kind).await;
    probe.stop().await;
    outcome
}

/// Moves the host of a warm session one way; returns the pause and the move's duration.
pub(crate) async fn migrate(
    probe: &ProbeSession,
    kind: MigrationKind,
) -> Result<(Duration, Duration), BenchError> {
    probe.wait_until_warm().await?;
    if kind == MigrationKind::Crash {
        // A host crashes after some play: see `DETECTOR_WARMUP`.
        tokio::time::sleep(DETECTOR_WARMUP).await;
    }
    let sessions = &probe.sessions;
    let host = sessions[0]
        .status()
        .await?
        .node
        .leader
        .ok_or(BenchError::Protocol("a warm session without a host"))?;
    let old = sessions
        .iter()
        .position(|session| session.id() == host)
        .ok_or(BenchError::Protocol("the host is not one of the players"))?;
    let remaining: Vec<usize> = (0..sessions.len())
        .filter(|player| *player != old)
        .collect();
    let last_tick_before = sessions[old].with_game(|_, tick| tick);

    let told = Instant::now();
    match kind {
        MigrationKind::Leave => {
            sessions[old].leave().await?;
        }
        MigrationKind::GameScore => sessions[old].set_game_score(0.0).await?,
        MigrationKind::Crash => sessions[old].stop().await,
    }

    let mut first_new_tick = None;
    crate::session::wait_until("the new host to tick", SETUP_LIMIT, || {
        let timeline = lock(&probe.timeline);
        first_new_tick = timeline
            .produced
            .range(last_tick_before..)
            .find(|(_, (producer, _))| *producer != old)
            .map(|(tick, _)| *tick);
        let done = first_new_tick.is_some_and(|first| {
            remaining.iter().all(|player| {
                timeline.applied[*player]
                    .last_key_value()
                    .is_some_and(|(tick, _)| *tick >= first + TICKS_AFTER_MIGRATION)
            })
        });
        async move { done }
    })
    .await?;
    let first_new_tick = first_new_tick.ok_or(BenchError::Protocol("no tick by a new host"))?;

    let timeline = lock(&probe.timeline);
    let pause = remaining
        .iter()
        .filter_map(|player| {
            longest_pause(
                timeline.applied[*player]
                    .range(last_tick_before.saturating_sub(1)..=first_new_tick)
                    .map(|(_, applied)| *applied),
            )
        })
        .max()
        .ok_or_else(|| BenchError::NoSamples(format!("migration_{}", kind.key())))?;
    // Every remaining player applied the new host's first tick (the wait above saw them
    // past it); the slowest of them is when the whole session had moved.
    let moved = remaining
        .iter()
        .filter_map(|player| timeline.applied[*player].get(&first_new_tick))
        .max()
        .map(|applied| applied.saturating_duration_since(told))
        .ok_or_else(|| BenchError::NoSamples(format!("migration_{}", kind.key())))?;
    Ok((pause, moved))
}

/// The longest interval between consecutive instants (`None` for fewer than two).
fn longest_pause(applied: impl Iterator<Item = Instant>) -> Option<Duration> {
    let mut previous: Option<Instant> = None;
    let mut longest = None;
    for at in applied {
        if let Some(before) = previous {
            let pause = at.saturating_duration_since(before);
            longest = Some(longest.map_or(pause, |l: Duration| l.max(pause)));
        }
        previous = Some(at);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_pause_is_the_widest_step_between_consecutive_ticks() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(
            longest_pause([at(0), at(33), at(100), at(133)].into_iter()),
            Some(Duration::from_millis(67))
        );
        assert_eq!(longest_pause([at(5)].into_iter()), None);
    }
}
