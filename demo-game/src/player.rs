//! One player as a process: plays Territory with a bot and answers line commands on stdin
//! (`status`, `hash <turn>`, `leave`, `quit`). It reports on stdout, one line each:
//! `ready <id> <addr> <invite>`, `host <id>`, `turn <n> <unix-micros>`, `became-host <next-turn>`.

use crate::{Bot, Territory};
use baton::session::{Session, SessionConfig, SessionEvent, TickMode};
use baton::storage::Durability;
use baton::transport::{Identity, Invite};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;

/// How a player process starts.
pub struct PlayerOptions {
    /// Where the player keeps its identity and durable log.
    pub data_dir: PathBuf,
    /// QUIC bind address.
    pub bind: SocketAddr,
    /// Address announced to the other players, if not the bind address.
    pub advertise: Option<SocketAddr>,
    /// `None` to host a new session, or the invite to join.
    pub join: Option<Invite>,
    /// Seed of the bot's choices.
    pub seed: u64,
    /// Longest a turn waits for slow players.
    pub turn_timeout: Duration,
}

impl PlayerOptions {
    /// Parses `--data-dir D --bind A [--advertise A] (--host | --join INVITE) [--seed S]
    /// [--turn-ms M]`.
    pub fn parse(args: &[String]) -> Result<PlayerOptions, String> {
        let mut options = PlayerOptions {
            data_dir: PathBuf::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            join: None,
            seed: 1,
            turn_timeout: Duration::from_millis(250),
        };
        let mut host = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            match arg.as_str() {
                "--data-dir" => options.data_dir = PathBuf::from(value()?),
                "--bind" => {
                    options.bind = value()?.parse().map_err(|err| format!("--bind: {err}"))?
                }
                "--advertise" => {
                    options.advertise = Some(
                        value()?
                            .parse()
                            .map_err(|err| format!("--advertise: {err}"))?,
                    )
                }
                "--join" => {
                    options.join =
                        Some(Invite::from_str(&value()?).map_err(|err| format!("--join: {err}"))?)
                }
                "--host" => host = true,
                "--seed" => {
                    options.seed = value()?.parse().map_err(|err| format!("--seed: {err}"))?
                }
                "--turn-ms" => {
                    let ms: u64 = value()?
                        .parse()
                        .map_err(|err| format!("--turn-ms: {err}"))?;
                    options.turn_timeout = Duration::from_millis(ms);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if host == options.join.is_some() {
            return Err("give exactly one of --host and --join <invite>".into());
        }
        if options.data_dir.as_os_str().is_empty() {
            return Err("--data-dir is required".into());
        }
        Ok(options)
    }
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0)
}

/// Runs the player until `quit`, `leave` or the end of stdin.
pub async fn run(options: PlayerOptions) -> Result<(), String> {
    std::fs::create_dir_all(&options.data_dir).map_err(|err| err.to_string())?;
    let identity = Identity::load_or_generate(&options.data_dir.join("identity"))
        .map_err(|err| err.to_string())?;
    let mut config = SessionConfig {
        tick_mode: TickMode::TurnBased {
            turn_timeout: options.turn_timeout,
        },
        ..SessionConfig::default()
    };
    config.node.transport.bind = options.bind;
    config.node.advertise_addr = options.advertise;
    config.node.storage.data_dir = Some(options.data_dir.join("raft"));
    config.node.storage.durability = Durability::Durable;
    config.node.snapshot_interval_entries = 256;
    let session = match &options.join {
        None => Session::host(config, identity, Territory::default()).await,
        Some(invite) => Session::join(invite, config, identity, Territory::default()).await,
    }
    .map_err(|err| err.to_string())?;
    println!(
        "ready {:016x} {} {}",
        session.id(),
        session.invite().addrs[0],
        session.invite()
    );

    let mut bot = Bot::new(options.seed);
    let mut events = session.events();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut claimed_turn = 0;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SessionEvent::TickCommitted { tick }) => {
                    println!("turn {tick} {}", unix_micros());
                    if tick > claimed_turn {
                        claimed_turn = tick;
                        let claim = session.with_game(|state, _| bot.choose(state));
                        session.submit_input(claim.to_bytes()).await.map_err(|err| err.to_string())?;
                    }
                }
                Ok(SessionEvent::HostChanged { host: Some(host) }) => println!("host {host:016x}"),
                Ok(SessionEvent::BecameHost { next_tick }) => println!("became-host {next_tick} {}", unix_micros()),
                Ok(SessionEvent::Error(reason)) => eprintln!("session error: {reason}"),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["status"] => match session.status().await {
                        Ok(status) => println!(
                            "status turn={} host={} voters={} learners={} claims={}",
                            status.last_tick,
                            status.node.leader.map(|id| format!("{id:016x}")).unwrap_or_else(|| "-".into()),
                            status.node.membership.voters.len(),
                            status.node.membership.learners.len(),
                            session.with_game(|state, _| state.claims_applied),
                        ),
                        Err(err) => println!("error {err}"),
                    },
                    ["hash", turn] => {
                        let turn: usize = turn.parse().map_err(|_| "bad turn")?;
                        let hash = session.with_game(|state, _| state.history.get(turn.wrapping_sub(1)).copied());
                        match hash {
                            Some(hash) => println!("hash {turn} {hash:016x}"),
                            None => println!("error turn {turn} not applied here"),
                        }
                    }
                    ["leave"] => {
                        let outcome = session.leave().await;
                        println!("{}", outcome.map(|_| "left".to_string()).unwrap_or_else(|err| format!("error {err}")));
                        return Ok(());
                    }
                    ["quit"] => break,
                    _ => println!("error unknown command: {line}"),
                }
            }
        }
    }
    session.stop().await;
    println!("bye");
    Ok(())
}
