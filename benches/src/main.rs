//! `baton-bench`: runs the tick-latency harness once and prints the tables (see
//! `docs/benchmarks.md`). `--help` lists the flags.

use baton_bench::progress::Progress;
use baton_bench::{BenchError, HarnessConfig};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Largest worker-thread count accepted.
const WORKER_THREADS_MAX: usize = 64;

/// Tick-latency harness of Baton: one run on loopback QUIC measures the floors, the session
/// matrix, host moves, saturation beside openraft, and node costs.
///
/// Every flag below `--quick` overrides the default (or the quick) configuration.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Small counts (under a minute); explicit flags still override it.
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also draw the distributions as an SVG to this file.
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
    /// Tokio worker threads of the harness (the machines here have 2 cores).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=WORKER_THREADS_MAX as i64))]
    worker_threads: u16,
    /// Round trips timed for each back-to-back floor [2000].
    #[arg(long)]
    rtt_samples: Option<usize>,
    /// Raw QUIC round trips timed one per 60 Hz tick [600].
    #[arg(long)]
    paced_rtt_samples: Option<usize>,
    /// Player counts of the session matrix [3,5,10].
    #[arg(long, value_delimiter = ',')]
    players: Option<Vec<usize>>,
    /// Tick rates of the session matrix [20,30,60].
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u32>>,
    /// Seconds each session of the matrix is timed [10].
    #[arg(long)]
    session_secs: Option<f64>,
    /// Tick rate of the host-move sessions [60].
    #[arg(long)]
    migration_hz: Option<u32>,
    /// Planned handoffs timed [30].
    #[arg(long)]
    handoff_trials: Option<usize>,
    /// Fitness (game score) handoffs timed [10].
    #[arg(long)]
    score_trials: Option<usize>,
    /// In-process crash failovers timed [30].
    #[arg(long)]
    crash_trials: Option<usize>,
    /// Crash failovers with the host process killed by SIGKILL [30].
    #[arg(long)]
    process_crash_trials: Option<usize>,
    /// Skip the crash trials with the fixed election timeout range (the "before").
    #[arg(long)]
    no_fixed_crashes: bool,
    /// Players of the faulty-link sessions [5].
    #[arg(long)]
    link_players: Option<usize>,
    /// Tick rate of the faulty-link sessions [30].
    #[arg(long)]
    link_hz: Option<u32>,
    /// Seconds a faulty-link session plays without a crash, per fault (0 skips it) [60].
    #[arg(long)]
    link_secs: Option<f64>,
    /// Crash failovers timed per faulty link [10].
    #[arg(long)]
    link_crash_trials: Option<usize>,
    /// Saturation payload sizes in bytes [64,1024].
    #[arg(long, value_delimiter = ',')]
    payloads: Option<Vec<usize>>,
    /// Saturation client counts [1,64,1024].
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Seconds each saturation case is timed, per system [2].
    #[arg(long)]
    saturation_secs: Option<f64>,
    /// Players of the cost session, one process each (0 skips it) [10].
    #[arg(long)]
    cost_players: Option<usize>,
    /// Tick rate of the cost session [60].
    #[arg(long)]
    cost_hz: Option<u32>,
    /// Seconds of CPU time counted in the cost and large sessions [10].
    #[arg(long)]
    cost_secs: Option<f64>,
    /// Players of the large session (0 skips it) [64].
    #[arg(long)]
    large_players: Option<usize>,
    /// Voters of the large session [5].
    #[arg(long)]
    large_voters: Option<usize>,
    /// Tick rate of the large session [30].
    #[arg(long)]
    large_hz: Option<u32>,
    /// Do not count the large session host's bytes (they need root: a network namespace).
    #[arg(long)]
    no_byte_count: bool,
    /// Single-client proposals timed per storage profile (0 skips them) [500].
    #[arg(long)]
    proposals: Option<usize>,
    /// Bytes per single-client proposal [64].
    #[arg(long)]
    payload_bytes: Option<usize>,
    /// Bytes per round-trip message [64].
    #[arg(long)]
    message_bytes: Option<usize>,
    /// Background fsync interval of the relaxed store, ms [10].
    #[arg(long)]
    relaxed_fsync_ms: Option<u64>,
    /// Where the file stores live [system temp dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The `baton-bench-player` binary [beside this executable].
    #[arg(long)]
    player_exe: Option<PathBuf>,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{flag}: {value} is not a duration"))
}

impl Args {
    fn config(&self) -> Result<HarnessConfig, String> {
        let mut c = if self.quick {
            HarnessConfig::quick()
        } else {
            HarnessConfig::default()
        };
        macro_rules! set {
            ($($field:ident <- $flag:ident),* $(,)?) => {
                $(if let Some(value) = &self.$flag { c.$field = value.clone(); })*
            };
        }
        set!(
            rtt_samples <- rtt_samples,
            paced_rtt_samples <- paced_rtt_samples,
            player_counts <- players,
            tick_rates_hz <- rates,
            migration_hz <- migration_hz,
            handoff_trials <- handoff_trials,
            score_trials <- score_trials,
            crash_trials <- crash_trials,
            process_crash_trials <- process_crash_trials,
            link_players <- link_players,
            link_hz <- link_hz,
            link_crash_trials <- link_crash_trials,
            saturation_payloads <- payloads,
            saturation_clients <- clients,
            cost_players <- cost_players,
            cost_hz <- cost_hz,
            large_players <- large_players,
            large_voters <- large_voters,
            large_hz <- large_hz,
            proposals <- proposals,
            payload_bytes <- payload_bytes,
            message_bytes <- message_bytes,
        );
        if let Some(secs) = self.session_secs {
            c.session_window = seconds("session-secs", secs)?;
        }
        if let Some(secs) = self.link_secs {
            c.link_window = seconds("link-secs", secs)?;
        }
        if self.no_fixed_crashes {
            c.crash_fixed_too = false;
        }
        if let Some(secs) = self.saturation_secs {
            c.saturation_window = seconds("saturation-secs", secs)?;
        }
        if let Some(secs) = self.cost_secs {
            c.cost_window = seconds("cost-secs", secs)?;
        }
        if let Some(ms) = self.relaxed_fsync_ms {
            c.relaxed_fsync_interval = Duration::from_millis(ms);
        }
        if self.no_byte_count {
            c.large_count_bytes = false;
        }
        if self.data_dir.is_some() {
            c.data_dir = self.data_dir.clone();
        }
        if self.player_exe.is_some() {
            c.player_exe = self.player_exe.clone();
        }
        c.validate().map_err(|err| err.to_string())?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("baton-bench: {err}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("baton_bench=info,error"));
    // Colours only on a terminal: a CI log shows escape codes as garbage.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(&args, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("baton-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, config: &HarnessConfig) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.worker_threads))
        .enable_all()
        .build()?;
    let progress = Progress::new(config.steps());
    let outcome = runtime.block_on(baton_bench::run(config, &progress));
    progress.finish();
    let report = outcome?;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()?)?;
        eprintln!("JSON report written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        baton_bench::plot::write_svg(&report, path)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<HarnessConfig, String> {
        let args =
            Args::try_parse_from(std::iter::once("baton-bench").chain(line.split_whitespace()))
                .map_err(|err| err.to_string())?;
        args.config()
    }

    #[test]
    fn explicit_flags_override_quick() {
        let config = parse("--quick --rates 20,40 --players 3 --session-secs 0.5").unwrap();
        assert_eq!(config.tick_rates_hz, vec![20, 40]);
        assert_eq!(config.player_counts, vec![3]);
        assert_eq!(config.session_window, Duration::from_millis(500));
        assert_eq!(config.rtt_samples, HarnessConfig::quick().rtt_samples);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        assert!(parse("--nope 1").is_err());
        assert!(parse("--rtt-samples many").is_err());
        assert!(parse("--worker-threads 0").is_err());
        assert!(parse("--players 1").is_err(), "one player is no session");
        assert!(parse("--session-secs -1").is_err());
    }
}
