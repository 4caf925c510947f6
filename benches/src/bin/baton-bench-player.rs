//! One or more Baton players in a process of their own, driven by `baton-bench` (see
//! `baton_bench::process`): so a crash trial can kill the host with SIGKILL, and so `/proc`
//! can tell one node's CPU time and memory from another's.
//!
//! ```text
//! baton-bench-player --hz 60 --max-voters 5 --host
//! baton-bench-player --hz 60 --max-voters 5 --join <invite> [--players K]
//! ```
//! Lines on stdout: `ready <player> <id-hex> <invite>` once per player; with
//! `--print-ticks`, `tick <player> <tick>` when a tick is committed and applied there;
//! `became_host <player> <next_tick>`. Commands on stdin: `status` (one `status <player>
//! key=value...` line per player, then `end`), `quit` (every player stops, then `bye`).

use baton::raft::Role;
use baton::session::{Game, GameError, PlayerInput, Session, SessionEvent, TickRecord};
use baton::transport::{Identity, Invite};
use baton_bench::session::{session_config_with, Detection};
use clap::Parser;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Most players one process runs.
const PLAYERS_PER_PROCESS_MAX: usize = 64;
/// Largest input a player submits per tick.
const INPUT_BYTES_MAX: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Baton players in a process of their own, for baton-bench")]
struct Args {
    /// Tick rate of the session.
    #[arg(long, default_value_t = 60)]
    hz: u32,
    /// Voters of the session (the rest are learners).
    #[arg(long, default_value_t = baton_bench::session::VOTERS_MAX)]
    max_voters: usize,
    /// Found the session (one player).
    #[arg(long, conflicts_with_all = ["join", "players"])]
    host: bool,
    /// Join the session this invite names.
    #[arg(long)]
    join: Option<String>,
    /// Players this process runs (joiners only).
    #[arg(long, default_value_t = 1)]
    players: usize,
    /// Print a `tick` line for every tick each player applies.
    #[arg(long)]
    print_ticks: bool,
    /// Each player submits an input of this many bytes once per tick period (0: none).
    #[arg(long, default_value_t = 0)]
    input_bytes: usize,
    /// Bind every player to this IP (an ephemeral port each) instead of 127.0.0.1.
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Detect a host crash with the fixed election timeout range instead of the measured
    /// one (the crash trials' "before").
    #[arg(long)]
    fixed_election_timeout: bool,
    /// Tokio worker threads of this process.
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

/// The game of every player process: its state is the last tick applied.
struct CountingGame {
    last_tick: u64,
}

impl Game for CountingGame {
    fn apply(&mut self, record: &TickRecord) {
        self.last_tick = record.tick;
    }

    fn tick(&self, _tick: u64, _inputs: &[PlayerInput]) -> Vec<u8> {
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

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads.clamp(1, 16))
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(err) => Err(err.to_string()),
    };
    if let Err(err) = outcome {
        println!("error {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !(1..=PLAYERS_PER_PROCESS_MAX).contains(&args.players) {
        return Err(format!("--players must be 1..={PLAYERS_PER_PROCESS_MAX}"));
    }
    if args.input_bytes > INPUT_BYTES_MAX {
        return Err(format!("--input-bytes must be at most {INPUT_BYTES_MAX}"));
    }
    if args.hz == 0 {
        return Err("--hz must be positive".into());
    }
    let detection = if args.fixed_election_timeout {
        Detection::Fixed
    } else {
        Detection::Measured
    };
    let mut config = session_config_with(args.hz, args.max_voters, detection);
    if let Some(ip) = args.bind {
        config.node.transport.bind = std::net::SocketAddr::new(ip, 0);
    }
    let game = || CountingGame { last_tick: 0 };
    let mut sessions = Vec::with_capacity(args.players);
    match (&args.join, args.host) {
        (None, true) => {
            let identity = Identity::generate().map_err(|err| err.to_string())?;
            sessions.push(Arc::new(
                Session::host(config, identity, game())
                    .await
                    .map_err(|err| err.to_string())?,
            ));
        }
        (Some(invite), false) => {
            let invite = Invite::from_str(invite).map_err(|err| format!("--join: {err}"))?;
            for _ in 0..args.players {
                let identity = Identity::generate().map_err(|err| err.to_string())?;
                sessions.push(Arc::new(
                    Session::join(&invite, config.clone(), identity, game())
                        .await
                        .map_err(|err| err.to_string())?,
                ));
            }
        }
        _ => return Err("give exactly one of --host and --join <invite>".into()),
    }
    let mut tasks = Vec::new();
    for (player, session) in sessions.iter().enumerate() {
        println!("ready {player} {:016x} {}", session.id(), session.invite());
        tasks.push(tokio::spawn(report_events(
            player,
            session.events(),
            args.print_ticks,
        )));
    }
    if args.input_bytes > 0 {
        let period = Duration::from_secs_f64(1.0 / f64::from(args.hz));
        for session in &sessions {
            tasks.push(tokio::spawn(submit_inputs(
                session.clone(),
                period,
                args.input_bytes,
            )));
        }
    }

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "status" => {
                for (player, session) in sessions.iter().enumerate() {
                    println!("{}", status_line(player, session).await);
                }
                println!("end");
            }
            "quit" => break,
            other => println!("error unknown command: {other}"),
        }
    }
    for task in &tasks {
        task.abort();
    }
    for session in sessions.iter().rev() {
        session.stop().await;
    }
    println!("bye");
    Ok(())
}

async fn status_line(player: usize, session: &Session<CountingGame>) -> String {
    match session.status().await {
        Ok(status) => {
            let node = &status.node;
            let sent_packets: u64 = node
                .peer_links
                .iter()
                .map(|(_, link)| link.sent_packets)
                .sum();
            let role = match node.role {
                Role::Leader => "leader",
                _ if node.membership.learners.contains(&node.id) => "learner",
                _ => "voter",
            };
            format!(
                "status {player} role={role} voters={} learners={} last_tick={} sent_packets={sent_packets} peers={}",
                node.membership.voters.len(),
                node.membership.learners.len(),
                status.last_tick,
                node.peer_links.len(),
            )
        }
        Err(err) => format!(
            "status {player} error={}",
            err.to_string().replace(' ', "_")
        ),
    }
}

/// Submits one input of `bytes` every `period` (as a game sends its player's input every
/// frame), until the task is aborted.
async fn submit_inputs(session: Arc<Session<CountingGame>>, period: Duration, bytes: usize) {
    let mut interval = tokio::time::interval(period);
    // A late tick of the timer is skipped, not bunched: a game sends one input per frame.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        // The host may be moving: an input refused now is simply not sent (the next frame
        // sends a fresh one), as a game would.
        let _ = session.submit_input(vec![0u8; bytes]).await;
    }
}

async fn report_events(
    player: usize,
    mut events: tokio::sync::broadcast::Receiver<SessionEvent>,
    print_ticks: bool,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(SessionEvent::TickCommitted { tick }) if print_ticks => {
                println!("tick {player} {tick}")
            }
            Ok(SessionEvent::BecameHost { next_tick }) => {
                println!("became_host {player} {next_tick}")
            }
            Ok(_) => {}
            // A slow reader misses events, never the session: keep reading.
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
