//! One bot player as a process (`baton-demo player ...`): plays Territory with a [`Bot`]
//! and answers line commands on stdin. The scripted run is made of these, and
//! `baton-demo host --bots N` fills empty seats with them.
//!
//! Reports on stdout, one line each, as they happen (Rust's stdout is line-buffered, so a
//! line printed before a SIGKILL is in the pipe for whoever reads it — that is what lets
//! the scripted run hold a killed host to what it said it had committed):
//!
//! ```text
//! ready <id> <addr> <invite>
//! turn <n> <unix-micros> <hash-after-n>      tick n committed and applied here
//! host <id>|-                                the host changed (- while electing)
//! became-host <next-turn> <unix-micros>      this player now hosts
//! submitted <sequence>                       an order was handed to the session
//! committed <sequence> <turn>                an order of ours was applied in turn
//! ```
//!
//! Commands: `status`, `state` (the whole game state, hex), `network-changed` (what a
//! game calls from the OS's connectivity callback; answers `network-changed true|false`),
//! `leave`, `quit`.

use crate::{Bot, DemoError, Order, Territory};
use baton::internet::{InternetConfig, InternetStatus, PathKind};
use baton::session::{Session, SessionConfig, SessionError, SessionEvent, SessionStatus, TickMode};
use baton::storage::Durability;
use baton::transport::{Identity, Invite};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::sync::broadcast::error::RecvError;

/// Longest a detached bot (one filling a seat, with nobody on its stdin) lives, whatever
/// happens: it must never linger on someone's machine.
const DETACHED_LIFETIME_MAX: Duration = Duration::from_secs(2 * 60 * 60);

/// How a bot player process starts.
#[derive(Debug, Clone, clap::Args)]
pub struct PlayerArgs {
    /// Where the player keeps its identity and durable log.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// QUIC bind address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Address announced to the other players, if not the bind address.
    #[arg(long)]
    pub advertise: Option<SocketAddr>,
    /// Play across the Internet through this rendezvous service (UDP address): punch
    /// through NATs, relay through the studio's TURN server when punching cannot work.
    /// Repeat it to name other instances, used in order when one stops answering. A joiner
    /// without it uses the ones its invite names.
    #[arg(long)]
    pub rendezvous: Vec<SocketAddr>,
    /// How often to refresh the registration with the rendezvous service, in
    /// milliseconds (with `--rendezvous`; default 5000).
    #[arg(long, requires = "rendezvous")]
    pub register_ms: Option<u64>,
    /// Found a new session and host it.
    #[arg(long, conflicts_with = "join", required_unless_present = "join")]
    pub host: bool,
    /// Join the session of this invite code.
    #[arg(long, value_name = "INVITE")]
    pub join: Option<Invite>,
    /// Seed of the bot's choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Longest a turn waits for slow players, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub turn_ms: u64,
    /// How long the bot "thinks" before each order, in milliseconds (paces the match).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Last turn the bot orders for (0: no end).
    #[arg(long, default_value_t = 0)]
    pub turns: u64,
    /// Leave once no person has given an order for this many turns (0: never).
    #[arg(long, default_value_t = 0)]
    pub idle_exit_turns: u64,
    /// Nobody drives this bot's stdin: ignore it, and end after a bounded lifetime.
    #[arg(long)]
    pub detached: bool,
}

/// The current time in microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0)
}

/// The session settings every demo player uses: turn-based, durable log under `data_dir`.
pub fn session_config(
    data_dir: &Path,
    bind: SocketAddr,
    advertise: Option<SocketAddr>,
    turn_ms: u64,
) -> SessionConfig {
    let mut config = SessionConfig {
        tick_mode: TickMode::TurnBased {
            turn_timeout: Duration::from_millis(turn_ms),
        },
        ..SessionConfig::default()
    };
    config.node.transport.bind = bind;
    config.node.advertise_addr = advertise;
    config.node.storage.data_dir = Some(data_dir.join("raft"));
    config.node.storage.durability = Durability::Durable;
    config.node.snapshot_interval_entries = 256;
    config
}

/// Hosts (`join` = `None`) or joins a Territory session, keeping identity and log under
/// `data_dir`.
pub async fn open_session(
    data_dir: &Path,
    join: Option<&Invite>,
    config: SessionConfig,
) -> Result<Session<Territory>, DemoError> {
    std::fs::create_dir_all(data_dir)
        .map_err(DemoError::io(format!("creating {}", data_dir.display())))?;
    let identity = Identity::load_or_generate(&data_dir.join("identity"))
        .map_err(|err| DemoError::Session(SessionError::Node(err.into())))?;
    let session = match join {
        None => Session::host(config, identity, Territory::default()).await?,
        Some(invite) => Session::join(invite, config, identity, Territory::default()).await?,
    };
    Ok(session)
}

fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

fn id_list(ids: &BTreeSet<u64>) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter()
        .map(|id| hex_id(*id))
        .collect::<Vec<_>>()
        .join(",")
}

/// Each connected peer as `id:direct|relayed:rtt-microseconds`, comma-separated (`-` if none).
fn links(peer_links: &[(u64, baton::transport::LinkStats)]) -> String {
    if peer_links.is_empty() {
        return "-".into();
    }
    peer_links
        .iter()
        .map(|(id, link)| {
            let path = match link.path {
                PathKind::Direct => "direct",
                PathKind::Relayed => "relayed",
            };
            format!("{}:{path}:{}", hex_id(*id), link.rtt.as_micros())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One address of the node's Internet status for the `status` line, `-` if none.
fn internet_field(
    status: &SessionStatus,
    field: impl Fn(&InternetStatus) -> Option<SocketAddr>,
) -> String {
    status
        .node
        .internet
        .as_ref()
        .and_then(field)
        .map(|addr| addr.to_string())
        .unwrap_or_else(|| "-".into())
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes of lower-case or upper-case hex; `None` for anything else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The fitness this node reports, in thousandths (0 if the node does not answer).
pub async fn own_fitness(session: &Session<Territory>) -> u16 {
    session
        .status()
        .await
        .map(|status| status.node.fitness.0)
        .unwrap_or(0)
}

struct Bookkeeping {
    submitted: u64,
    committed: u64,
}

/// Runs the bot player until `quit`, `leave`, the end of stdin (unless detached), or — with
/// `idle_exit_turns` — until people stopped playing.
pub async fn run(args: PlayerArgs) -> Result<(), DemoError> {
    let mut config = session_config(&args.data_dir, args.bind, args.advertise, args.turn_ms);
    config.node.transport.internet =
        InternetConfig::of_instances(&args.rendezvous).map(|internet| InternetConfig {
            register_interval: args
                .register_ms
                .map_or(internet.register_interval, Duration::from_millis),
            ..internet
        });
    let session = open_session(&args.data_dir, args.join.as_ref(), config).await?;
    let invite = session.invite();
    let addr = invite
        .addrs
        .first()
        .map(ToString::to_string)
        .unwrap_or_else(|| "-".into());
    println!("ready {} {addr} {invite}", hex_id(session.id()));

    let mut bot = Bot::new(args.seed);
    let mut events = session.events();
    // A founder hosts from its first moment, which can come before the subscription
    // above: report it from the session's view, as the event would have. (A later
    // `BecameHost` repeats the line; the orchestrator takes it once.)
    let view = session.handle().view();
    if view.hosting {
        println!("became-host {} {}", view.last_tick + 1, unix_micros());
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let think = Duration::from_millis(args.think_ms);
    let lifetime_end = tokio::time::Instant::now() + DETACHED_LIFETIME_MAX;
    let mut next_order_at: Option<tokio::time::Instant> = None;
    let mut ordered_after_turn = 0;
    let mut books = Bookkeeping {
        submitted: 0,
        committed: 0,
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SessionEvent::TickCommitted { tick }) => {
                    let (hash, last_human_turn) = session
                        .with_game(|state, _| (state.hash_at(tick), state.last_human_turn));
                    let hash = hash.map(|hash| format!("{hash:016x}")).unwrap_or_else(|| "-".into());
                    println!("turn {tick} {} {hash}", unix_micros());
                    let more_turns = args.turns == 0 || tick < args.turns;
                    if more_turns && tick > ordered_after_turn && next_order_at.is_none() {
                        ordered_after_turn = tick;
                        next_order_at = Some(tokio::time::Instant::now() + think);
                    }
                    if args.idle_exit_turns > 0 && tick > last_human_turn + args.idle_exit_turns {
                        tracing::info!(tick, last_human_turn, "nobody plays any more: leaving");
                        return leave(&session).await;
                    }
                }
                Ok(SessionEvent::InputCommitted { sequence, tick }) => {
                    books.committed = books.committed.max(sequence);
                    println!("committed {sequence} {tick}");
                }
                Ok(SessionEvent::HostChanged { host }) => {
                    println!("host {}", host.map(hex_id).unwrap_or_else(|| "-".into()));
                }
                Ok(SessionEvent::BecameHost { next_tick }) => {
                    println!("became-host {next_tick} {}", unix_micros());
                }
                Ok(SessionEvent::Error(reason)) => tracing::warn!(%reason, "session error"),
                Ok(_) => {}
                // A burst of events outran us; the next TickCommitted catches the bot up.
                Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "session events lagged"),
                Err(RecvError::Closed) => break,
            },
            () = sleep_until(next_order_at) => {
                next_order_at = None;
                let claim = session.with_game(|state, _| bot.choose(state));
                let order = Order { claim, fitness: own_fitness(&session).await, human: false };
                let sequence = session.submit_input(order.to_bytes()).await?;
                books.submitted = sequence;
                println!("submitted {sequence}");
            }
            () = tokio::time::sleep_until(lifetime_end), if args.detached => {
                tracing::info!("detached bot reached its lifetime limit");
                return leave(&session).await;
            }
            line = lines.next_line(), if !args.detached => {
                let Ok(Some(line)) = line else { break };
                match answer(&session, &books, line.trim()).await {
                    Answer::Reply(reply) => println!("{reply}"),
                    Answer::Leave => return leave(&session).await,
                    Answer::Quit => break,
                }
            }
        }
    }
    session.stop().await;
    println!("bye");
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn leave(session: &Session<Territory>) -> Result<(), DemoError> {
    let outcome = session.leave().await;
    match &outcome {
        Ok(outcome) => println!("left {outcome:?}"),
        Err(err) => println!("error {err}"),
    }
    outcome?;
    Ok(())
}

enum Answer {
    Reply(String),
    Leave,
    Quit,
}

async fn answer(session: &Session<Territory>, books: &Bookkeeping, line: &str) -> Answer {
    match line {
        "status" => Answer::Reply(match session.status().await {
            Ok(status) => format!(
                "status turn={} host={} role={:?} voters={} learners={} fitness={} submitted={} committed={} links={} public={} rendezvous={}",
                status.last_tick,
                status.node.leader.map(hex_id).unwrap_or_else(|| "-".into()),
                status.node.role,
                id_list(&status.node.membership.voters),
                id_list(&status.node.membership.learners),
                status.node.fitness.0,
                books.submitted,
                books.committed,
                links(&status.node.peer_links),
                internet_field(&status, InternetStatus::public_addr),
                internet_field(&status, |internet| internet.rendezvous),
            ),
            Err(err) => format!("error {err}"),
        }),
        "state" => Answer::Reply(match session.with_game(|state, _| state.to_bytes()) {
            Ok(bytes) => format!("state {}", to_hex(&bytes)),
            Err(err) => format!("error {err}"),
        }),
        "network-changed" => {
            Answer::Reply(format!("network-changed {}", session.network_changed()))
        }
        "leave" => Answer::Leave,
        "quit" => Answer::Quit,
        other => Answer::Reply(format!("error unknown command: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes.to_vec()));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
