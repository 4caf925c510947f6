//! Baton's tick-latency harness: in one run on loopback, the floors (raw QUIC round trip,
//! back to back and paced one per tick), the tick and input commit latencies of 3-, 5- and
//! 10-player sessions at 20, 30 and 60 Hz, host moves (planned handoff, fitness handoff,
//! crash failover in this process and with real processes killed by SIGKILL), saturation
//! throughput beside openraft, and what a node costs the OS (CPU, memory) in a 10-player
//! and a 64-player session. Every latency is also given as a ratio to the paced QUIC floor
//! of the same run.
//!
//! Run it with `cargo run --release -p baton-bench` (see `docs/benchmarks.md`). The library
//! is the harness itself, so the smoke test runs exactly what the binary runs:
//!
//! ```no_run
//! # async fn demo() -> Result<(), baton_bench::BenchError> {
//! let config = baton_bench::HarnessConfig::quick();
//! let report = baton_bench::run(&config, &baton_bench::progress::Progress::hidden()).await?;
//! println!("{}", report.table());
//! # Ok(()) }
//! ```
//!
//! Where to look: [`quic`] (the floors), [`session`] (tick latencies), [`migration`]
//! (host moves in this process), [`process`] (player processes: SIGKILL failover, CPU and
//! memory), [`saturation`] and [`openraft_cluster`] (throughput), [`cluster`] (proposals per
//! storage profile), [`stats`] (percentiles), [`report`] (tables and JSON), [`plot`] (SVG).

#![warn(missing_docs)]

pub mod cluster;
pub mod link;
pub mod migration;
pub mod netns;
pub mod openraft_cluster;
pub mod own_network;
pub mod plot;
pub mod process;
pub mod procfs;
pub mod progress;
pub mod quic;
pub mod report;
pub mod saturation;
pub mod session;
pub mod stats;

use cluster::StoreProfile;
use migration::MigrationKind;
use progress::Progress;
pub use report::Report;
use session::Detection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest any setup step (a session filling its voter set, a cluster electing a leader)
/// may take before the run is abandoned.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);
/// Pace of the idle-between round trips: one 60 Hz tick.
pub const PACED_RTT_INTERVAL: Duration = Duration::from_nanos(16_666_667);
/// Largest sample count any flag accepts, so a typo cannot start an hours-long run.
pub const SAMPLES_MAX: usize = 100_000;
/// Highest tick rate accepted (ticks per second).
pub const TICK_RATE_HZ_MAX: u32 = 1_000;
/// Largest message or payload accepted, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 1 << 20;
/// Longest window any measurement may be given.
pub const WINDOW_MAX: Duration = Duration::from_secs(600);

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HarnessConfig {
    /// Round trips timed for each back-to-back floor (raw quinn, Baton's transport).
    pub rtt_samples: usize,
    /// Raw QUIC round trips timed at one per 60 Hz tick (threads idle in between).
    pub paced_rtt_samples: usize,
    /// Bytes of each round-trip message.
    pub message_bytes: usize,
    /// Players of the session matrix; one session per count and rate.
    pub player_counts: Vec<usize>,
    /// Tick rates of the session matrix, in ticks per second.
    pub tick_rates_hz: Vec<u32>,
    /// How long each session of the matrix is timed (after its warm-up).
    #[serde(rename = "session_window_s", serialize_with = "as_secs")]
    pub session_window: Duration,
    /// Tick rate of every host-move session.
    pub migration_hz: u32,
    /// Planned handoffs (`leave()`) timed, each in a fresh 3-voter session.
    pub handoff_trials: usize,
    /// Fitness handoffs (game score to 0) timed.
    pub score_trials: usize,
    /// Crash failovers with the host stopped inside this process.
    pub crash_trials: usize,
    /// Crash failovers with the host's process killed by SIGKILL (0: none).
    pub process_crash_trials: usize,
    /// Run both kinds of crash trials a second time with the fixed election timeout range
    /// (Baton before the measured detector), in the same run.
    pub crash_fixed_too: bool,
    /// Players (all voters) of the faulty-link sessions.
    pub link_players: usize,
    /// Tick rate of the faulty-link sessions.
    pub link_hz: u32,
    /// How long a faulty-link session plays without a crash, per fault (zero: skip).
    #[serde(rename = "link_window_s", serialize_with = "as_secs")]
    pub link_window: Duration,
    /// Crash failovers timed per fault over the faulty link (0: none).
    pub link_crash_trials: usize,
    /// Payload sizes of the saturation cases, in bytes.
    pub saturation_payloads: Vec<usize>,
    /// Client counts of the saturation cases.
    pub saturation_clients: Vec<usize>,
    /// How long each saturation case is timed, per system.
    #[serde(rename = "saturation_window_s", serialize_with = "as_secs")]
    pub saturation_window: Duration,
    /// Players of the cost session (one process each; 0: skip it).
    pub cost_players: usize,
    /// Tick rate of the cost session.
    pub cost_hz: u32,
    /// How long CPU time is counted in the cost and large sessions.
    #[serde(rename = "cost_window_s", serialize_with = "as_secs")]
    pub cost_window: Duration,
    /// Players of the large session (0: skip it).
    pub large_players: usize,
    /// Voters of the large session.
    pub large_voters: usize,
    /// Tick rate of the large session.
    pub large_hz: u32,
    /// Count the large session host's bytes sent (its own network namespace; root only).
    pub large_count_bytes: bool,
    /// Proposals timed per storage profile (single client; 0: skip them).
    pub proposals: usize,
    /// Bytes of each of those proposals.
    pub payload_bytes: usize,
    /// Background fsync interval of the relaxed profile.
    #[serde(rename = "relaxed_fsync_interval_ms", serialize_with = "as_millis")]
    pub relaxed_fsync_interval: Duration,
    /// Where the file stores live (a fresh directory inside, removed afterwards);
    /// `None` uses the system's temporary directory.
    pub data_dir: Option<PathBuf>,
    /// The `baton-bench-player` binary; `None` looks beside the running executable.
    pub player_exe: Option<PathBuf>,
}

impl Default for HarnessConfig {
    /// The full matrix: about 18 minutes on a loaded 2-core machine.
    fn default() -> Self {
        HarnessConfig {
            rtt_samples: 2_000,
            paced_rtt_samples: 600,
            message_bytes: 64,
            player_counts: vec![3, 5, 10],
            tick_rates_hz: vec![20, 30, 60],
            session_window: Duration::from_secs(10),
            migration_hz: 60,
            handoff_trials: 30,
            score_trials: 10,
            crash_trials: 30,
            process_crash_trials: 30,
            crash_fixed_too: true,
            link_players: 5,
            link_hz: 30,
            link_window: Duration::from_secs(60),
            link_crash_trials: 10,
            saturation_payloads: vec![64, 1024],
            saturation_clients: vec![1, 64, 1024],
            saturation_window: Duration::from_secs(2),
            cost_players: 10,
            cost_hz: 60,
            cost_window: Duration::from_secs(10),
            large_players: 64,
            large_voters: 5,
            large_hz: 30,
            large_count_bytes: true,
            proposals: 500,
            payload_bytes: 64,
            relaxed_fsync_interval: Duration::from_millis(10),
            data_dir: None,
            player_exe: None,
        }
    }
}

impl HarnessConfig {
    /// Every measurement with small counts: under a minute in a release build.
    pub fn quick() -> HarnessConfig {
        HarnessConfig {
            rtt_samples: 300,
            paced_rtt_samples: 60,
            player_counts: vec![3, 10],
            tick_rates_hz: vec![60, 20],
            session_window: Duration::from_secs(1),
            handoff_trials: 3,
            score_trials: 1,
            crash_trials: 2,
            process_crash_trials: 2,
            link_window: Duration::from_secs(3),
            link_crash_trials: 1,
            saturation_payloads: vec![64, 1024],
            saturation_clients: vec![1, 64],
            saturation_window: Duration::from_millis(300),
            cost_window: Duration::from_secs(2),
            large_players: 16,
            proposals: 30,
            ..HarnessConfig::default()
        }
    }

    /// Smaller still, for the smoke test in a debug build: one session per rate of the
    /// smallest matrix, one trial of each kind, a small large session.
    pub fn smoke() -> HarnessConfig {
        HarnessConfig {
            rtt_samples: 20,
            paced_rtt_samples: 10,
            player_counts: vec![3],
            tick_rates_hz: vec![60],
            session_window: Duration::from_millis(500),
            handoff_trials: 1,
            score_trials: 1,
            crash_trials: 1,
            process_crash_trials: 1,
            link_players: 3,
            link_window: Duration::from_secs(1),
            saturation_payloads: vec![64],
            saturation_clients: vec![1, 8],
            saturation_window: Duration::from_millis(200),
            // Six: five voters and one learner, so both roles are measured.
            cost_players: 6,
            cost_window: Duration::from_secs(1),
            large_players: 6,
            // CI stays out of namespaces: the bytes are the full run's business.
            large_count_bytes: false,
            proposals: 10,
            ..HarnessConfig::quick()
        }
    }

    /// Ticks timed in a session of the matrix at `hz`.
    pub fn ticks_at(&self, hz: u32) -> u64 {
        ((self.session_window.as_secs_f64() * f64::from(hz)).round() as u64).max(1)
    }

    /// How many progress steps a run of this configuration has.
    pub fn steps(&self) -> u64 {
        let floors = 3;
        let matrix = self.player_counts.len() * self.tick_rates_hz.len();
        let detections = if self.crash_fixed_too { 2 } else { 1 };
        let crashes = (self.crash_trials + self.process_crash_trials) * detections;
        let links = link::LinkFault::ALL.len()
            * (self.link_crash_trials * detections + usize::from(!self.link_window.is_zero()));
        let moves = self.handoff_trials + self.score_trials + crashes + links;
        let saturation = self.saturation_payloads.len() * self.saturation_clients.len();
        let costs = usize::from(self.cost_players > 0) + usize::from(self.large_players > 0);
        let stores = if self.proposals > 0 { 3 } else { 0 };
        (floors + matrix + moves + saturation + costs + stores) as u64
    }

    /// Refuses counts that would measure nothing or run unbounded.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &'static str| Err(BenchError::Config(what));
        if !(1..=SAMPLES_MAX).contains(&self.rtt_samples)
            || !(1..=SAMPLES_MAX).contains(&self.paced_rtt_samples)
        {
            return bad("rtt samples (both kinds) must be between 1 and SAMPLES_MAX");
        }
        let rate_ok = |hz: &u32| (1..=TICK_RATE_HZ_MAX).contains(hz);
        if self.tick_rates_hz.is_empty()
            || !self.tick_rates_hz.iter().all(rate_ok)
            || ![self.migration_hz, self.cost_hz, self.large_hz, self.link_hz]
                .iter()
                .all(rate_ok)
        {
            return bad("tick rates must be between 1 and TICK_RATE_HZ_MAX Hz");
        }
        if self.player_counts.is_empty()
            || self
                .player_counts
                .iter()
                .any(|n| !(2..=session::PLAYERS_MAX).contains(n))
        {
            return bad("player counts must be between 2 and PLAYERS_MAX");
        }
        for window in [
            self.session_window,
            self.saturation_window,
            self.cost_window,
        ] {
            if window.is_zero() || window > WINDOW_MAX {
                return bad("windows must be positive and at most WINDOW_MAX");
            }
        }
        if self.link_window > WINDOW_MAX {
            return bad("the faulty-link window must be at most WINDOW_MAX");
        }
        if !(2..=session::PLAYERS_MAX).contains(&self.link_players) {
            return bad("faulty-link sessions need 2..=PLAYERS_MAX players");
        }
        if self
            .tick_rates_hz
            .iter()
            .any(|hz| self.ticks_at(*hz) > SAMPLES_MAX as u64)
        {
            return bad("a session window may time at most SAMPLES_MAX ticks");
        }
        for trials in [
            self.handoff_trials,
            self.score_trials,
            self.crash_trials,
            self.process_crash_trials,
            self.link_crash_trials,
            self.proposals,
        ] {
            if trials > SAMPLES_MAX {
                return bad("trial and proposal counts must be at most SAMPLES_MAX");
            }
        }
        if self.handoff_trials == 0 || self.crash_trials == 0 {
            return bad("handoff and crash trials must be at least 1");
        }
        if self.saturation_payloads.is_empty()
            || self.saturation_clients.is_empty()
            || self
                .saturation_clients
                .iter()
                .any(|c| !(1..=saturation::CLIENTS_MAX).contains(c))
            || self
                .saturation_payloads
                .iter()
                .any(|b| !(1..=MESSAGE_BYTES_MAX).contains(b))
        {
            return bad(
                "saturation needs payloads of 1..=MESSAGE_BYTES_MAX and 1..=CLIENTS_MAX clients",
            );
        }
        if self.cost_players == 1
            || self.cost_players > session::PLAYERS_MAX
            || self.large_players == 1
            || self.large_players > session::PLAYERS_MAX
            || self.large_voters == 0
        {
            return bad("cost and large sessions need 2..=PLAYERS_MAX players (or 0 to skip)");
        }
        // The transport echo stamps 8 bytes of sequence into every message.
        if !(8..=MESSAGE_BYTES_MAX).contains(&self.message_bytes)
            || !(1..=MESSAGE_BYTES_MAX).contains(&self.payload_bytes)
        {
            return bad("message bytes must be 8..=MESSAGE_BYTES_MAX, payload bytes 1..=it");
        }
        if self.relaxed_fsync_interval.is_zero() {
            return bad("the relaxed fsync interval must be positive");
        }
        Ok(())
    }

    /// The player binary: as configured, else `baton-bench-player` beside the running
    /// executable (where cargo puts both).
    pub fn player_exe(&self) -> Result<PathBuf, BenchError> {
        if let Some(exe) = &self.player_exe {
            return Ok(exe.clone());
        }
        let exe = std::env::current_exe()?;
        let dir = exe.parent().ok_or(BenchError::Config(
            "the running executable has no directory",
        ))?;
        let player = dir.join("baton-bench-player");
        if player.exists() {
            Ok(player)
        } else {
            Err(BenchError::Process(format!(
                "{} not found: build it with `cargo build --release -p baton-bench`",
                player.display()
            )))
        }
    }
}

fn as_secs<S: serde::Serializer>(interval: &Duration, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_f64(interval.as_secs_f64())
}

fn as_millis<S: serde::Serializer>(interval: &Duration, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_u128(interval.as_millis())
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration asks for something the harness refuses.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A setup step or an exchange did not finish in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A peer answered something other than what was sent.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// A measurement produced no sample.
    #[error("no samples for {0}")]
    NoSamples(String),
    /// The self-signed certificate of the raw QUIC floor could not be made.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// TLS refused the raw QUIC floor's configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The raw QUIC client's certificate verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// A raw QUIC dial could not start.
    #[error("QUIC dial: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// A raw QUIC connection failed.
    #[error("QUIC connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing to a raw QUIC stream failed.
    #[error("QUIC write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading from a raw QUIC stream failed.
    #[error("QUIC read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Baton's transport failed.
    #[error("transport: {0}")]
    Transport(#[from] baton::transport::TransportError),
    /// A Baton node or session failed.
    #[error("node: {0}")]
    Node(#[from] baton::runtime::NodeError),
    /// A Baton session failed.
    #[error("session: {0}")]
    Session(#[from] baton::session::SessionError),
    /// A file or socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON report could not be encoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A player process could not be started or driven.
    #[error("player process: {0}")]
    Process(String),
    /// The compared openraft cluster failed.
    #[error("openraft: {0}")]
    Openraft(String),
    /// The plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

/// Measures everything `config` asks for, one measurement after another (never two at
/// once: they would share the machine's cores), and returns the report.
pub async fn run(config: &HarnessConfig, progress: &Progress) -> Result<Report, BenchError> {
    config.validate()?;
    let started = Instant::now();
    let mut report = Report::new(config);
    let player_exe = config.player_exe()?;

    progress.stage("raw QUIC round trip, back to back");
    let quinn = quic::quinn_round_trips(config.rtt_samples, config.message_bytes, None).await?;
    report.set_floor("quic", &quinn)?;
    progress.step();
    progress.stage("raw QUIC round trip, paced one per 60 Hz tick");
    let paced = quic::quinn_round_trips(
        config.paced_rtt_samples,
        config.message_bytes,
        Some(PACED_RTT_INTERVAL),
    )
    .await?;
    report.set_floor("quic_paced", &paced)?;
    progress.step();
    progress.stage("Baton transport round trip");
    let transport = quic::transport_round_trips(config.rtt_samples, config.message_bytes).await?;
    report.set_floor("transport", &transport)?;
    progress.step();

    for &players in &config.player_counts {
        for &hz in &config.tick_rates_hz {
            progress.stage(&format!("session: {players} players at {hz} Hz"));
            let ticks = session::measure_ticks(players, hz, config.ticks_at(hz)).await?;
            report.add_session(&ticks)?;
            progress.step();
        }
    }

    for (kind, trials) in [
        (MigrationKind::Leave, config.handoff_trials),
        (MigrationKind::GameScore, config.score_trials),
    ] {
        if trials == 0 {
            continue;
        }
        progress.stage(&format!("host moves: {}", kind.label()));
        let measured = migration::measure_migrations_with(
            kind,
            config.migration_hz,
            trials,
            Detection::Measured,
            progress,
        )
        .await?;
        report.add_moves(&measured, false, Detection::Measured)?;
    }
    // Before (the fixed range) and after (the measured detector), in the same run.
    let detections: &[Detection] = if config.crash_fixed_too {
        &[Detection::Fixed, Detection::Measured]
    } else {
        &[Detection::Measured]
    };
    for &detection in detections {
        progress.stage(&format!(
            "host moves: crash failover, {} detection",
            detection.key()
        ));
        let measured = migration::measure_migrations_with(
            MigrationKind::Crash,
            config.migration_hz,
            config.crash_trials,
            detection,
            progress,
        )
        .await?;
        report.add_moves(&measured, false, detection)?;
        if config.process_crash_trials > 0 {
            progress.stage(&format!(
                "host moves: SIGKILL of the host process, {} detection",
                detection.key()
            ));
            let (exe, hz, trials) = (
                player_exe.clone(),
                config.migration_hz,
                config.process_crash_trials,
            );
            let measured = blocking(
                move |progress| process::crash_trials(&exe, hz, trials, detection, progress),
                progress,
            )
            .await?;
            report.add_moves(&measured, true, detection)?;
        }
    }

    for fault in link::LinkFault::ALL {
        let (players, hz) = (config.link_players, config.link_hz);
        if !config.link_window.is_zero() {
            progress.stage(&format!(
                "faulty link, {}: {players} players at {hz} Hz play",
                fault.label()
            ));
            let played = link::play(fault, players, hz, config.link_window).await?;
            report.links.push(report::LinkRow::played(played));
            progress.step();
        }
        for &detection in detections {
            if config.link_crash_trials == 0 {
                break;
            }
            progress.stage(&format!(
                "faulty link, {}: crash failover, {} detection",
                fault.label(),
                detection.key()
            ));
            let shape = link::LinkCrashes {
                fault,
                players,
                hz,
                detection,
            };
            let crashed = link::crashes(shape, config.link_crash_trials, progress).await?;
            report.add_link_crashes(fault, detection, &crashed)?;
        }
    }

    for &payload in &config.saturation_payloads {
        for &clients in &config.saturation_clients {
            progress.stage(&format!("saturation: {payload} B, {clients} clients"));
            let baton = {
                let cluster = saturation::BatonCluster::start().await?;
                let measured = saturation::drive(
                    cluster.propose_fn(),
                    clients,
                    payload,
                    config.saturation_window,
                )
                .await;
                cluster.shutdown().await;
                measured?
            };
            let openraft = {
                let cluster = openraft_cluster::Cluster::start().await?;
                let measured = saturation::drive(
                    saturation::openraft_propose_fn(&cluster),
                    clients,
                    payload,
                    config.saturation_window,
                )
                .await;
                cluster.shutdown().await;
                measured?
            };
            report.add_throughput(payload, clients, &baton, &openraft);
            progress.step();
        }
    }

    if config.cost_players > 0 {
        progress.stage(&format!(
            "node cost: {} player processes at {} Hz",
            config.cost_players, config.cost_hz
        ));
        let (exe, players, hz, window) = (
            player_exe.clone(),
            config.cost_players,
            config.cost_hz,
            config.cost_window,
        );
        let costs = blocking(
            move |_| process::session_costs(&exe, players, hz, window),
            progress,
        )
        .await?;
        report.set_costs(costs);
        progress.step();
    }
    if config.large_players > 0 {
        progress.stage(&format!(
            "large session: {} players at {} Hz",
            config.large_players, config.large_hz
        ));
        let (exe, players, voters, hz, window, count_bytes) = (
            player_exe.clone(),
            config.large_players,
            config.large_voters.min(config.large_players),
            config.large_hz,
            config.cost_window,
            config.large_count_bytes,
        );
        let large = blocking(
            move |_| process::large_session(&exe, players, voters, hz, window, count_bytes),
            progress,
        )
        .await?;
        report.large_session = Some(large);
        progress.step();
    }

    if config.proposals > 0 {
        let data_root = config.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        let profiles = [
            ("memory", StoreProfile::Memory),
            (
                "relaxed",
                StoreProfile::Relaxed {
                    fsync_interval: config.relaxed_fsync_interval,
                },
            ),
            ("durable", StoreProfile::Durable),
        ];
        for (key, profile) in profiles {
            progress.stage(&format!("single-client propose, {key} store"));
            let samples = cluster::measure_proposals(
                profile,
                config.proposals,
                config.payload_bytes,
                &data_root,
            )
            .await?;
            report.propose_us.push(report::ProposeRow {
                store: key.to_string(),
                summary: stats::Summary::of(&samples)
                    .ok_or_else(|| BenchError::NoSamples(format!("propose_{key}")))?,
            });
            progress.step();
        }
    }
    report.judge();
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs a measurement that drives processes (blocking reads of their pipes) on a blocking
/// thread, so the runtime's workers stay free; its progress steps reach `progress`.
async fn blocking<T: Send + 'static>(
    measure: impl FnOnce(&Progress) -> Result<T, BenchError> + Send + 'static,
    progress: &Progress,
) -> Result<T, BenchError> {
    // The blocking thread reports steps through a channel, since `progress` is borrowed.
    let (steps_tx, mut steps_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        let local = Progress::forwarding(steps_tx);
        measure(&local)
    });
    tokio::pin!(task);
    loop {
        tokio::select! {
            outcome = &mut task => {
                while steps_rx.try_recv().is_ok() {
                    progress.step();
                }
                return outcome.map_err(|_| BenchError::Protocol("a process measurement panicked"))?;
            }
            Some(()) = steps_rx.recv() => progress.step(),
        }
    }
}
