//! Baton's tick-latency harness: in one run on loopback, the raw QUIC round trip (the
//! floor), Baton's transport round trip, the tick-commit latency of a three-voter session
//! at fixed tick rates, and propose→apply latency of a three-voter runtime cluster for each
//! storage profile, and the pause players see when the host moves (leave, fitness
//! handoff, crash) — each figure absolute, as a multiple of the QUIC round trip measured in
//! the same run, and as a share of a tick's budget.
//!
//! Run it with `cargo run --release -p baton-bench` (see `docs/benchmarks.md`). The library
//! is the harness itself, so the smoke test runs exactly what the binary runs:
//!
//! ```no_run
//! # async fn demo() -> Result<(), baton_bench::BenchError> {
//! let config = baton_bench::HarnessConfig::default();
//! let report = baton_bench::run(&config).await?;
//! println!("{}", report.table());
//! # Ok(()) }
//! ```
//!
//! Where to look: [`quic`] (the floors), [`session`] (tick latencies), [`migration`]
//! (host moves), [`cluster`] (proposals per storage profile), [`stats`] (percentiles), [`report`] (table and JSON).

#![warn(missing_docs)]

pub mod cluster;
pub mod migration;
pub mod quic;
pub mod report;
pub mod session;
pub mod stats;

use cluster::StoreProfile;
pub use report::{MigrationNote, Report, Row, SessionNote};
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

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HarnessConfig {
    /// Round trips timed for each floor (raw quinn, Baton's transport).
    pub rtt_samples: usize,
    /// Raw QUIC round trips timed at one per 60 Hz tick (threads idle in between).
    pub paced_rtt_samples: usize,
    /// Bytes of each round-trip message.
    pub message_bytes: usize,
    /// Tick rates of the session measurements, in ticks per second; one session each.
    pub tick_rates_hz: Vec<u32>,
    /// Ticks timed per tick rate (after a warm-up).
    pub ticks_per_rate: u64,
    /// Proposals timed per storage profile.
    pub proposals: usize,
    /// Bytes of each proposal.
    pub payload_bytes: usize,
    /// Background fsync interval of the relaxed profile.
    #[serde(rename = "relaxed_fsync_interval_ms", serialize_with = "as_millis")]
    pub relaxed_fsync_interval: Duration,
    /// Host migrations timed per kind (leave, game-score handoff, crash), each in a fresh
    /// session.
    pub migration_trials: usize,
    /// Tick rate of the migration sessions, in ticks per second.
    pub migration_hz: u32,
    /// Where the file stores live (a fresh directory inside, removed afterwards);
    /// `None` uses the system's temporary directory.
    pub data_dir: Option<PathBuf>,
}

impl Default for HarnessConfig {
    /// About 50 s on a loaded 2-core machine.
    fn default() -> Self {
        HarnessConfig {
            rtt_samples: 2_000,
            paced_rtt_samples: 180,
            message_bytes: 64,
            tick_rates_hz: vec![60, 30],
            ticks_per_rate: 600,
            proposals: 500,
            payload_bytes: 64,
            relaxed_fsync_interval: Duration::from_millis(10),
            migration_trials: 5,
            migration_hz: 30,
            data_dir: None,
        }
    }
}

impl HarnessConfig {
    /// A tiny run (a few seconds of ticks) that still measures every row; for smoke tests.
    pub fn smoke() -> HarnessConfig {
        HarnessConfig {
            rtt_samples: 20,
            paced_rtt_samples: 10,
            tick_rates_hz: vec![60, 30],
            ticks_per_rate: 15,
            proposals: 20,
            migration_trials: 1,
            ..HarnessConfig::default()
        }
    }

    /// Refuses counts that would measure nothing or run unbounded.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &'static str| Err(BenchError::Config(what));
        if !(1..=SAMPLES_MAX).contains(&self.rtt_samples)
            || !(1..=SAMPLES_MAX).contains(&self.paced_rtt_samples)
        {
            return bad("rtt samples (both kinds) must be between 1 and SAMPLES_MAX");
        }
        if !(1..=SAMPLES_MAX as u64).contains(&self.ticks_per_rate) {
            return bad("ticks per rate must be between 1 and SAMPLES_MAX");
        }
        if !(1..=SAMPLES_MAX).contains(&self.proposals) {
            return bad("proposals must be between 1 and SAMPLES_MAX");
        }
        if !(1..=SAMPLES_MAX).contains(&self.migration_trials) {
            return bad("migration trials must be between 1 and SAMPLES_MAX");
        }
        if self.tick_rates_hz.is_empty()
            || !(1..=TICK_RATE_HZ_MAX).contains(&self.migration_hz)
            || self
                .tick_rates_hz
                .iter()
                .any(|hz| !(1..=TICK_RATE_HZ_MAX).contains(hz))
        {
            return bad("tick rates (migration's too) must be between 1 and TICK_RATE_HZ_MAX Hz");
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
}

/// Measures everything `config` asks for, one measurement after another (never two at
/// once: they would share the machine's cores), and returns the report.
pub async fn run(config: &HarnessConfig) -> Result<Report, BenchError> {
    config.validate()?;
    let started = Instant::now();
    let mut report = Report::new(config);

    tracing::info!(samples = config.rtt_samples, "raw QUIC round trip");
    let quinn = quic::quinn_round_trips(config.rtt_samples, config.message_bytes, None).await?;
    report.set_baseline(
        "quic_rtt",
        "raw QUIC round trip (quinn bi-stream echo)",
        &quinn,
    )?;
    tracing::info!(
        samples = config.paced_rtt_samples,
        "raw QUIC round trip, paced"
    );
    let paced = quic::quinn_round_trips(
        config.paced_rtt_samples,
        config.message_bytes,
        Some(PACED_RTT_INTERVAL),
    )
    .await?;
    report.add(
        "quic_rtt_paced",
        "raw QUIC round trip, one per 60 Hz tick",
        &paced,
    )?;
    tracing::info!(samples = config.rtt_samples, "Baton transport round trip");
    let transport = quic::transport_round_trips(config.rtt_samples, config.message_bytes).await?;
    report.add(
        "transport_rtt",
        "Baton transport round trip (echo)",
        &transport,
    )?;

    for &hz in &config.tick_rates_hz {
        tracing::info!(hz, ticks = config.ticks_per_rate, "session tick latency");
        let ticks = session::measure_ticks(hz, config.ticks_per_rate).await?;
        report.add_session(&ticks)?;
    }

    for kind in migration::MigrationKind::ALL {
        tracing::info!(
            kind = kind.key(),
            trials = config.migration_trials,
            hz = config.migration_hz,
            "host migration"
        );
        let trials =
            migration::measure_migrations(kind, config.migration_hz, config.migration_trials)
                .await?;
        report.add_migrations(&trials)?;
    }

    let data_root = config.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let profiles = [
        (
            "memory",
            "in-memory store".to_string(),
            StoreProfile::Memory,
        ),
        (
            "relaxed",
            format!(
                "relaxed file (fsync {} ms)",
                config.relaxed_fsync_interval.as_millis()
            ),
            StoreProfile::Relaxed {
                fsync_interval: config.relaxed_fsync_interval,
            },
        ),
        (
            "durable",
            "durable file store".to_string(),
            StoreProfile::Durable,
        ),
    ];
    for (key, store, profile) in profiles {
        tracing::info!(
            store = key,
            proposals = config.proposals,
            "runtime propose latency"
        );
        let samples =
            cluster::measure_proposals(profile, config.proposals, config.payload_bytes, &data_root)
                .await?;
        report.add(
            &format!("propose_{key}"),
            &format!("cluster propose -> applied, {store}"),
            &samples,
        )?;
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}
