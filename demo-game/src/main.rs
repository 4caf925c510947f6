//! `baton-demo`: Territory on Baton.
//!
//! With no subcommand it plays the scripted match (bot processes on loopback, the host
//! SIGKILLed midway) and ends with one machine-readable line; `host` and `join` are the
//! terminal UI people play in; `lan` lists open sessions on the LAN.

use baton_demo::orchestrator::{self, Display, MatchArgs};
use baton_demo::player::{self, PlayerArgs};
use baton_demo::tui::{self, HostArgs, JoinArgs};
use baton_demo::DemoError;
use clap::{Parser, Subcommand};

/// Territory on Baton: a turn-based game whose players host it themselves, over QUIC, and
/// move the host when it goes away — with no committed turn lost.
///
/// Without a subcommand: a scripted match of bot players, each its own process on
/// loopback, joined by invite code; midway the host is killed with SIGKILL, another player
/// takes over and the match goes on. Its last line is machine-readable, and it exits
/// non-zero unless nothing was lost.
#[derive(Debug, Parser)]
#[command(name = "baton-demo", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    #[command(flatten)]
    scripted: MatchArgs,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Found a session, print its invite code and play in the terminal UI.
    Host(HostArgs),
    /// Join a session by its invite code (or one heard on the LAN) and play.
    Join(JoinArgs),
    /// List the open sessions heard on the LAN (mDNS), with their invite codes.
    Lan,
    /// One bot player driven by line commands (what the scripted match is made of).
    #[command(hide = true)]
    Player(PlayerArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => scripted(&cli.scripted),
        Some(Commands::Player(args)) => bot(args),
        Some(Commands::Host(args)) => interactive(|| {
            let exe = orchestrator::own_exe()?;
            tui::host(&exe, args)
        }),
        Some(Commands::Join(args)) => interactive(|| tui::join(args)),
        Some(Commands::Lan) => interactive(tui::list_lan),
    };
    std::process::exit(code);
}

fn init_logs(default: &str) {
    // Logs go to stderr (the player's stdout is its report channel) and only warnings by
    // default in the UI, whose screen they would otherwise scribble over.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn scripted(args: &MatchArgs) -> i32 {
    init_logs("warn");
    let outcome = orchestrator::own_exe()
        .and_then(|exe| orchestrator::run(&exe, args, Display::for_stdout(args.plain)));
    match outcome {
        Ok(report) => {
            for line in orchestrator::report_lines(&report) {
                println!("{line}");
            }
            if report.passed() {
                0
            } else {
                1
            }
        }
        Err(err) => {
            eprintln!("demo failed: {err}");
            1
        }
    }
}

fn bot(args: PlayerArgs) -> i32 {
    init_logs("info");
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
    match runtime.block_on(player::run(args)) {
        Ok(()) => 0,
        Err(err) => {
            println!("error {err}");
            1
        }
    }
}

fn interactive(run: impl FnOnce() -> Result<(), DemoError>) -> i32 {
    init_logs("off");
    match run() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("baton-demo: {err}");
            1
        }
    }
}
