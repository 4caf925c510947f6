//! `baton-demo`: with no arguments, plays a Territory match of five player processes on
//! loopback, kills the host with SIGKILL mid-game and checks the survivors carry on with
//! the same game. `baton-demo player ...` is one player (see `baton_demo::player`).

use baton_demo::orchestrator::{self, DemoOptions};
use baton_demo::player::{self, PlayerOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("player") => run_player(&args[1..]),
        None => run_match(),
        Some(other) => {
            eprintln!("usage: baton-demo [player ...]; unknown argument {other}");
            2
        }
    };
    std::process::exit(code);
}

fn run_player(args: &[String]) -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = match PlayerOptions::parse(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("baton-demo player: {err}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("baton-demo player: {err}");
            return 1;
        }
    };
    match runtime.block_on(player::run(options)) {
        Ok(()) => 0,
        Err(err) => {
            println!("error {err}");
            1
        }
    }
}

fn run_match() -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("baton-demo: cannot find my own executable: {err}");
            return 1;
        }
    };
    let options = DemoOptions {
        exe,
        players: 5,
        turns_before_kill: 30,
        turns_after_kill: 30,
        turn_ms: 100,
    };
    println!(
        "Territory on Baton: {} player processes on loopback QUIC; once every player has a \
         seat and at least {} turns are played, the host is killed with SIGKILL.",
        options.players, options.turns_before_kill
    );
    match orchestrator::run(&options) {
        Ok(report) => {
            println!(
                "host {} killed after turn {}",
                report.killed_host, report.last_turn_before_kill
            );
            println!(
                "new host {} committed its first turn {:.0} ms after the kill",
                report.new_host,
                report.failover.as_secs_f64() * 1000.0
            );
            println!(
                "all {} surviving players agree at turn {}: state hash {}",
                report.players_agreeing, report.compared_turn, report.hash
            );
            println!("no committed turn lost: OK");
            0
        }
        Err(err) => {
            eprintln!("demo failed: {err}");
            1
        }
    }
}
