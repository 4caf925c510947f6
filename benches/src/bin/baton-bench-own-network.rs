//! Tick latency over the application's own network versus direct QUIC, in one run:
//! `cargo run --release -p baton-bench --bin baton-bench-own-network`.

use baton_bench::own_network::compare;
use baton_bench::session::TickLatencies;
use baton_bench::stats::Summary;
use clap::Parser;
use std::process::ExitCode;

/// Measures one session shape twice: over loopback UDP, then over an in-process platform.
#[derive(Parser)]
struct Args {
    /// Players in the session.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=10))]
    players: u16,
    /// Tick rate.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    hz: u32,
    /// Seconds each of the two sessions is timed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
    /// Largest datagram the platform carries (EOS P2P: 1170; Steam: 1200 and more).
    #[arg(long, default_value_t = 1170, value_parser = clap::value_parser!(u32).range(256..=65535))]
    datagram_bytes: u32,
}

fn row(name: &str, ticks: &TickLatencies) -> String {
    let summary = |samples| {
        Summary::of(samples).map_or("-".to_string(), |s: Summary| {
            format!("{:>8.0} {:>8.0}", s.p50_us, s.p99_us)
        })
    };
    format!(
        "{name:<26} {}   {}   {:>6.1}",
        summary(&ticks.produced_to_host_commit),
        summary(&ticks.input_to_commit),
        ticks.committed_rate_hz
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("baton-bench-own-network: {err}");
            return ExitCode::FAILURE;
        }
    };
    let ticks = u64::from(args.hz) * args.seconds;
    let players = usize::from(args.players);
    let outcome = runtime.block_on(compare(
        players,
        args.hz,
        ticks,
        args.datagram_bytes as usize,
    ));
    let (direct, platform) = match outcome {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("baton-bench-own-network: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} players, {} Hz, {ticks} ticks each; microseconds",
        players, args.hz
    );
    println!(
        "{:<26} {:>8} {:>8}   {:>8} {:>8}   {:>6}",
        "", "tick p50", "tick p99", "input50", "input99", "Hz"
    );
    println!("{}", row("direct QUIC (loopback UDP)", &direct));
    println!(
        "{}",
        row(
            &format!("app network ({} B)", args.datagram_bytes),
            &platform
        )
    );
    if let (Some(a), Some(b)) = (
        Summary::of(&direct.produced_to_host_commit),
        Summary::of(&platform.produced_to_host_commit),
    ) {
        println!(
            "ratio app network / direct: tick p50 {:.2}x, p99 {:.2}x",
            b.p50_us / a.p50_us,
            b.p99_us / a.p99_us
        );
    }
    ExitCode::SUCCESS
}
