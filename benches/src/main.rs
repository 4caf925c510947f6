//! `baton-bench`: runs the tick-latency harness once and prints the table (see
//! `docs/benchmarks.md`). `--help` lists the flags.

use baton_bench::{BenchError, HarnessConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
baton-bench: tick-latency harness of Baton, one run on loopback QUIC.

USAGE: cargo run --release -p baton-bench -- [FLAGS]

FLAGS:
  --rtt-samples N        round trips timed per floor (raw QUIC, Baton transport) [2000]
  --paced-rtt-samples N  raw QUIC round trips timed one per 60 Hz tick [180]
  --ticks N              ticks timed per session tick rate [600]
  --rates HZ[,HZ...]     session tick rates [60,30]
  --proposals N          proposals timed per storage profile [500]
  --message-bytes N      bytes per round-trip message [64]
  --payload-bytes N      bytes per proposal [64]
  --relaxed-fsync-ms N   fsync interval of the relaxed profile [10]
  --migration-trials N   host moves timed per kind (leave, game score, crash) [5]
  --migration-hz HZ      tick rate of the migration sessions [30]
  --data-dir PATH        where the file stores live [system temp dir]
  --worker-threads N     tokio worker threads [2]
  --quick                tiny counts (a smoke run, a few seconds of ticks)
  --json PATH            also write the report as JSON to PATH
  -h, --help             this text";

/// Largest worker-thread count accepted.
const WORKER_THREADS_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("unknown flag {0}")]
    UnknownFlag(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{flag}: {value:?} is not a valid number")]
    BadNumber { flag: String, value: String },
    #[error("--worker-threads must be between 1 and {WORKER_THREADS_MAX}")]
    WorkerThreads,
}

struct Args {
    config: HarnessConfig,
    json: Option<PathBuf>,
    worker_threads: usize,
    help: bool,
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgsError> {
    value.parse().map_err(|_| ArgsError::BadNumber {
        flag: flag.to_string(),
        value: value.to_string(),
    })
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut args = Args {
        config: HarnessConfig::default(),
        json: None,
        worker_threads: 2,
        help: false,
    };
    // `--quick` sets counts, and explicit flags override it wherever they appear.
    let mut explicit: Vec<(String, String)> = Vec::new();
    while let Some(flag) = raw.next() {
        match flag.as_str() {
            "-h" | "--help" => args.help = true,
            "--quick" => {
                let data_dir = args.config.data_dir.take();
                args.config = HarnessConfig {
                    data_dir,
                    ..HarnessConfig::smoke()
                };
            }
            _ => {
                let value = raw
                    .next()
                    .ok_or_else(|| ArgsError::MissingValue(flag.clone()))?;
                explicit.push((flag, value));
            }
        }
    }
    for (flag, value) in explicit {
        let config = &mut args.config;
        match flag.as_str() {
            "--rtt-samples" => config.rtt_samples = number(&flag, &value)?,
            "--paced-rtt-samples" => config.paced_rtt_samples = number(&flag, &value)?,
            "--ticks" => config.ticks_per_rate = number(&flag, &value)?,
            "--rates" => {
                config.tick_rates_hz = value
                    .split(',')
                    .map(|hz| number(&flag, hz.trim()))
                    .collect::<Result<_, _>>()?
            }
            "--proposals" => config.proposals = number(&flag, &value)?,
            "--message-bytes" => config.message_bytes = number(&flag, &value)?,
            "--payload-bytes" => config.payload_bytes = number(&flag, &value)?,
            "--relaxed-fsync-ms" => {
                config.relaxed_fsync_interval = Duration::from_millis(number(&flag, &value)?)
            }
            "--migration-trials" => config.migration_trials = number(&flag, &value)?,
            "--migration-hz" => config.migration_hz = number(&flag, &value)?,
            "--data-dir" => config.data_dir = Some(PathBuf::from(value)),
            "--json" => args.json = Some(PathBuf::from(value)),
            "--worker-threads" => {
                args.worker_threads = number(&flag, &value)?;
                if !(1..=WORKER_THREADS_MAX).contains(&args.worker_threads) {
                    return Err(ArgsError::WorkerThreads);
                }
            }
            _ => return Err(ArgsError::UnknownFlag(flag)),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("baton_bench=info,error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("baton-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()?;
    let report = runtime.block_on(baton_bench::run(&args.config))?;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()?)?;
        eprintln!("JSON report written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgsError> {
        parse_args(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn explicit_flags_override_quick_wherever_they_appear() {
        let args = parse("--ticks 7 --quick --rates 20,40 --json out.json").unwrap();
        assert_eq!(args.config.ticks_per_rate, 7);
        assert_eq!(args.config.tick_rates_hz, vec![20, 40]);
        assert_eq!(args.config.rtt_samples, HarnessConfig::smoke().rtt_samples);
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        assert!(matches!(parse("--nope 1"), Err(ArgsError::UnknownFlag(_))));
        assert!(matches!(parse("--ticks"), Err(ArgsError::MissingValue(_))));
        assert!(matches!(
            parse("--ticks many"),
            Err(ArgsError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("--worker-threads 0"),
            Err(ArgsError::WorkerThreads)
        ));
    }
}
