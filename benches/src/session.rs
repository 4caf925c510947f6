//! Tick-commit latency of a real session: 3, 5 or 10 players on loopback QUIC in this
//! process (at most [`VOTERS_MAX`] voters, the rest warm learners, as the session default
//! has it), a trivial game whose `tick` and `apply` stamp the time, and one follower sending
//! an input every tick period.
//!
//! All players live in one process, so one monotonic clock times every hop: from the host's
//! `Game::tick` (the tick record is produced) to the host's `TickCommitted` event, to a
//! follower's `Game::apply`, and from a follower's `submit_input` to its `InputCommitted`.

use crate::{BenchError, SETUP_LIMIT};
use baton::session::{
    Game, GameError, PlayerInput, Session, SessionConfig, SessionEvent, TickMode, TickRecord,
};
use baton::transport::Identity;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Voters of every measured session (the session default): a larger session's other
/// players are learners.
pub const VOTERS_MAX: usize = 5;
/// Most players one in-process session may have (each player is a node with its own QUIC
/// endpoint and tasks).
pub const PLAYERS_MAX: usize = 64;
/// Ticks (and inputs) the timeline keeps at most, whatever the flags say.
const TIMELINE_TICKS_MAX: usize = 1_000_000;
/// Ticks every player applies before the measurement window opens (connections warm,
/// first snapshot-free steady state).
pub(crate) const WARMUP_TICKS: u64 = 10;
/// Play before a host is crashed in a failover trial: about the window of gaps the
/// followers' detector remembers (128 arrivals at 60 Hz), so a trial times the steady
/// state of a game in progress rather than the session's first second.
pub const DETECTOR_WARMUP: Duration = Duration::from_secs(2);
/// Fractional part of the golden ratio: consecutive multiples of it fill [0, 1) evenly.
const GOLDEN_RATIO_FRACTION: f64 = 0.618_033_988_749_895;
/// How often the harness polls the session while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Extra time, over the window's own length, the window may take before the run is
/// declared stalled.
const WINDOW_SLACK: Duration = Duration::from_secs(20);

/// What one fixed-rate session measured.
#[derive(Debug, Clone, Default)]
pub struct TickLatencies {
    /// Players in the session.
    pub players: usize,
    /// Tick rate, in ticks per second.
    pub hz: u32,
    /// From the host's `Game::tick` to its `TickCommitted` event.
    pub produced_to_host_commit: Vec<Duration>,
    /// From the host's `Game::tick` to `Game::apply` on each other player (all pooled).
    pub produced_to_follower_apply: Vec<Duration>,
    /// From a follower's `submit_input` to its `InputCommitted` event.
    pub input_to_commit: Vec<Duration>,
    /// `TickOverrun` events the host raised during the window.
    pub overruns: u64,
    /// Ticks per second actually committed during the window.
    pub committed_rate_hz: f64,
    /// Host changes during the window (0 in a healthy run).
    pub host_changes: u64,
}

/// Times stamped by the game and by the event recorders of every player.
#[derive(Default)]
pub(crate) struct Timeline {
    /// Tick → (player that produced it, when). A tick produced twice (a new host retrying
    /// it) keeps the last production, the one that committed.
    pub(crate) produced: BTreeMap<u64, (usize, Instant)>,
    /// Per player: tick → when `Game::apply` ran.
    pub(crate) applied: Vec<BTreeMap<u64, Instant>>,
    /// Per player: tick → when its `TickCommitted` event was received.
    committed: Vec<BTreeMap<u64, Instant>>,
    /// Input sequence → when the input player submitted it.
    input_submitted: BTreeMap<u64, Instant>,
    /// Input sequence → when the input player heard it was committed.
    input_committed: BTreeMap<u64, Instant>,
    /// Per player: `TickOverrun` events seen.
    overruns: Vec<u64>,
    /// Per player: `HostChanged` events seen.
    pub(crate) host_changes: Vec<u64>,
}

pub(crate) type SharedTimeline = Arc<Mutex<Timeline>>;

pub(crate) fn lock(timeline: &SharedTimeline) -> MutexGuard<'_, Timeline> {
    timeline
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn bounded_insert<V>(map: &mut BTreeMap<u64, V>, key: u64, value: V) {
    if map.len() < TIMELINE_TICKS_MAX || map.contains_key(&key) {
        map.insert(key, value);
    }
}

/// The trivial game: its state is the number of the last tick applied; it stamps times.
pub(crate) struct ProbeGame {
    player: usize,
    last_tick: u64,
    timeline: SharedTimeline,
}

impl Game for ProbeGame {
    fn apply(&mut self, record: &TickRecord) {
        self.last_tick = record.tick;
        let now = Instant::now();
        if let Some(applied) = lock(&self.timeline).applied.get_mut(self.player) {
            bounded_insert(applied, record.tick, now);
        }
    }

    fn tick(&self, tick: u64, _inputs: &[PlayerInput]) -> Vec<u8> {
        let now = Instant::now();
        bounded_insert(&mut lock(&self.timeline).produced, tick, (self.player, now));
        Vec::new()
    }

    fn snapshot(&self) -> Result<Vec<u8>, GameError> {
        Ok(self.last_tick.to_le_bytes().to_vec())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError> {
        let bytes = <[u8; 8]>::try_from(snapshot)
            .map_err(|_| GameError(format!("snapshot of {} bytes, not 8", snapshot.len())))?;
        self.last_tick = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// Records each player's session events into the timeline.
fn record_events(
    session: &Session<ProbeGame>,
    player: usize,
    input_player: Option<usize>,
    timeline: SharedTimeline,
) -> JoinHandle<()> {
    let mut events = session.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let now = Instant::now();
            let mut timeline = lock(&timeline);
            match event {
                SessionEvent::TickCommitted { tick } => {
                    if let Some(committed) = timeline.committed.get_mut(player) {
                        bounded_insert(committed, tick, now);
                    }
                }
                SessionEvent::InputCommitted { sequence, .. } if Some(player) == input_player => {
                    bounded_insert(&mut timeline.input_committed, sequence, now);
                }
                SessionEvent::TickOverrun { .. } => {
                    if let Some(count) = timeline.overruns.get_mut(player) {
                        *count += 1;
                    }
                }
                SessionEvent::HostChanged { .. } => {
                    if let Some(count) = timeline.host_changes.get_mut(player) {
                        *count += 1;
                    }
                }
                _ => {}
            }
        }
    })
}

/// A running session of [`ProbeGame`]s whose events are recorded into a
/// shared timeline; the setup both the tick measurements and the migration trials use.
pub(crate) struct ProbeSession {
    pub(crate) sessions: Vec<Session<ProbeGame>>,
    pub(crate) timeline: SharedTimeline,
    recorders: Vec<JoinHandle<()>>,
    /// Voters the session settles on (the rest are learners).
    voters: usize,
}

impl ProbeSession {
    /// Player 0 hosts, the others join; the `InputCommitted` events of `input_player`, if
    /// any, are recorded.
    pub(crate) async fn start(
        config: impl Fn(usize) -> SessionConfig,
        players: usize,
        input_player: Option<usize>,
    ) -> Result<ProbeSession, BenchError> {
        if !(1..=PLAYERS_MAX).contains(&players) {
            return Err(BenchError::Config(
                "players must be between 1 and PLAYERS_MAX",
            ));
        }
        let voters = players.min(config(0).max_voters);
        let timeline: SharedTimeline = Arc::new(Mutex::new(Timeline {
            applied: vec![BTreeMap::new(); players],
            committed: vec![BTreeMap::new(); players],
            overruns: vec![0; players],
            host_changes: vec![0; players],
            ..Timeline::default()
        }));
        let game = |player| ProbeGame {
            player,
            last_tick: 0,
            timeline: timeline.clone(),
        };
        let host = Session::host(config(0), Identity::generate()?, game(0)).await?;
        let invite = host.invite();
        let mut sessions = vec![host];
        for player in 1..players {
            sessions.push(
                Session::join(&invite, config(player), Identity::generate()?, game(player)).await?,
            );
        }
        let recorders = sessions
            .iter()
            .enumerate()
            .map(|(player, session)| record_events(session, player, input_player, timeline.clone()))
            .collect();
        Ok(ProbeSession {
            sessions,
            timeline,
            recorders,
            voters,
        })
    }

    /// Waits until the voter set is full, every other player is a learner, and every player
    /// has applied the warm-up ticks.
    pub(crate) async fn wait_until_warm(&self) -> Result<(), BenchError> {
        let (sessions, voters) = (&self.sessions, self.voters);
        let learners = sessions.len() - voters;
        wait_until(
            "the voter set to fill and every player to apply ticks",
            SETUP_LIMIT,
            || async {
                let Ok(status) = sessions[0].status().await else {
                    return false;
                };
                status.node.membership.voters.len() == voters
                    && status.node.membership.learners.len() == learners
                    && sessions
                        .iter()
                        .all(|session| session.with_game(|_, tick| tick >= WARMUP_TICKS))
            },
        )
        .await
    }

    /// Stops every player, joiners first.
    pub(crate) async fn stop(self) {
        for session in self.sessions.iter().rev() {
            session.stop().await;
        }
        for recorder in self.recorders {
            recorder.abort();
        }
    }
}

/// How followers decide that the host is gone: the crash trials run both, one after the
/// other in the same run, so the comparison shares the machine's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// The fixed election timeout range (150–300 ms): Baton before the adaptive detector.
    Fixed,
    /// The default: the host's silence judged against the measured arrival of its messages.
    Measured,
}

impl Detection {
    /// Stable name, for row keys and the player's flag.
    pub fn key(self) -> &'static str {
        match self {
            Detection::Fixed => "fixed",
            Detection::Measured => "measured",
        }
    }
}

/// The session configuration of every measurement, in this process and in player
/// processes alike: `hz` ticks per second, at most `max_voters` voters, the default
/// (measured) failure detection.
pub fn session_config(hz: u32, max_voters: usize) -> SessionConfig {
    session_config_with(hz, max_voters, Detection::Measured)
}

/// [`session_config`] with the failure detection `detection`.
pub fn session_config_with(hz: u32, max_voters: usize, detection: Detection) -> SessionConfig {
    // The default transport binds 127.0.0.1 on an ephemeral port: loopback only.
    let mut config = SessionConfig {
        tick_mode: TickMode::FixedRate { hz },
        max_voters,
        // Promote the joiners quickly, so setup does not dominate the run.
        policy_interval: Duration::from_millis(100),
        ..SessionConfig::default()
    };
    config.node.raft.adaptive_election_timeout = detection == Detection::Measured;
    config
}

/// Runs a session of `players` at `hz` until `ticks` ticks past the warm-up have been
/// applied by every player, with one follower submitting an input every tick period.
pub async fn measure_ticks(
    players: usize,
    hz: u32,
    ticks: u64,
) -> Result<TickLatencies, BenchError> {
    measure_ticks_with(players, hz, ticks, |_| session_config(hz, VOTERS_MAX)).await
}

/// Like [`measure_ticks`], with player `n`'s settings from `config(n)` (player 0 hosts).
pub async fn measure_ticks_with(
    players: usize,
    hz: u32,
    ticks: u64,
    config: impl Fn(usize) -> SessionConfig,
) -> Result<TickLatencies, BenchError> {
    // The input player is the first joiner, a voter: its inputs cross the network to the
    // host and back.
    let input_player = 1.min(players - 1);
    let probe = ProbeSession::start(config, players, Some(input_player)).await?;
    let outcome = run_window(&probe, hz, ticks, input_player).await;
    let timeline = probe.timeline.clone();
    probe.stop().await;
    let window = outcome?;
    let timeline = lock(&timeline);
    Ok(TickLatencies {
        players,
        hz,
        committed_rate_hz: production_rate_hz(&timeline, window.first_tick, window.last_tick),
        overruns: window.overruns,
        host_changes: window.host_changes,
        ..summarise(&timeline, window.first_tick, window.last_tick)
    })
}

/// The measurement window of one session.
struct Window {
    first_tick: u64,
    last_tick: u64,
    /// `TickOverrun` events within the window (counted before shutdown, whose lost quorum
    /// makes the host overrun on purpose).
    overruns: u64,
    /// Host changes within the window (each player reports each change: the most any
    /// player saw).
    host_changes: u64,
}

/// Waits for the voter set, then measures ticks `first..=last`.
async fn run_window(
    probe: &ProbeSession,
    hz: u32,
    ticks: u64,
    input_player: usize,
) -> Result<Window, BenchError> {
    let (sessions, timeline) = (&probe.sessions, &probe.timeline);
    probe.wait_until_warm().await?;
    {
        let mut timeline = lock(timeline);
        timeline.overruns.iter_mut().for_each(|count| *count = 0);
        timeline
            .host_changes
            .iter_mut()
            .for_each(|count| *count = 0);
    }
    let first_tick = sessions
        .iter()
        .map(|session| session.with_game(|_, tick| tick))
        .max()
        .unwrap_or(0)
        + 2;
    let last_tick = first_tick + ticks - 1;
    wait_until("the window to open", SETUP_LIMIT, || async {
        sessions[0].with_game(|_, tick| tick + 1 >= first_tick)
    })
    .await?;
    let opened = Instant::now();

    let period = Duration::from_secs_f64(1.0 / f64::from(hz));
    for input in 0..ticks {
        // One input per tick period, at every phase of the host's tick timer: a fixed phase
        // would turn the wait for the next tick into a constant picked by chance. The
        // golden-ratio sequence spreads the phases evenly without a random generator.
        let phase = (input as f64 * GOLDEN_RATIO_FRACTION).fract();
        let due = opened + period.mul_f64(input as f64 + phase);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let submitted = Instant::now();
        let sequence = sessions[input_player].submit_input(vec![0u8; 16]).await?;
        bounded_insert(&mut lock(timeline).input_submitted, sequence, submitted);
    }

    let limit = period * u32::try_from(ticks).unwrap_or(u32::MAX) + WINDOW_SLACK;
    wait_until("every player to apply the window", limit, || async {
        sessions
            .iter()
            .all(|session| session.with_game(|_, tick| tick >= last_tick))
    })
    .await?;
    let (overruns, host_changes) = {
        let timeline = lock(timeline);
        (
            timeline.overruns.iter().sum(),
            timeline.host_changes.iter().copied().max().unwrap_or(0),
        )
    };
    wait_until("every input to be committed", WINDOW_SLACK, || async {
        let timeline = lock(timeline);
        timeline.input_committed.len() >= timeline.input_submitted.len()
    })
    .await?;
    Ok(Window {
        first_tick,
        last_tick,
        overruns,
        host_changes,
    })
}

/// Ticks per second the host produced between the window's first and last tick (each one
/// committed, or the window would not have closed).
fn production_rate_hz(timeline: &Timeline, first_tick: u64, last_tick: u64) -> f64 {
    match (
        timeline.produced.get(&first_tick),
        timeline.produced.get(&last_tick),
    ) {
        (Some((_, first)), Some((_, last))) if last_tick > first_tick => {
            (last_tick - first_tick) as f64 / last.duration_since(*first).as_secs_f64()
        }
        _ => 0.0,
    }
}

fn summarise(timeline: &Timeline, first_tick: u64, last_tick: u64) -> TickLatencies {
    let mut latencies = TickLatencies::default();
    for (tick, (producer, produced)) in timeline.produced.range(first_tick..=last_tick) {
        if let Some(committed) = timeline.committed[*producer].get(tick) {
            latencies
                .produced_to_host_commit
                .push(committed.saturating_duration_since(*produced));
        }
        for (player, applied) in timeline.applied.iter().enumerate() {
            if player == *producer {
                continue;
            }
            if let Some(applied) = applied.get(tick) {
                latencies
                    .produced_to_follower_apply
                    .push(applied.saturating_duration_since(*produced));
            }
        }
    }
    for (sequence, submitted) in &timeline.input_submitted {
        if let Some(committed) = timeline.input_committed.get(sequence) {
            latencies
                .input_to_commit
                .push(committed.saturating_duration_since(*submitted));
        }
    }
    latencies
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds or `limit` passes.
pub(crate) async fn wait_until<F, Fut>(
    what: &'static str,
    limit: Duration,
    mut condition: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(what));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
