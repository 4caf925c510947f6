//! `baton-rendezvous`: the rendezvous service players behind NATs find each other through.
//!
//! ```text
//! baton-rendezvous --bind 0.0.0.0:3479
//! baton-rendezvous --bind 192.0.2.1:3479 --turn-server 192.0.2.2:3478 --turn-secret-file /etc/baton/turn-secret
//! ```
//! Soft state only (registrations expire), nothing on disk, nothing shared between instances.
//! With a TURN server it hands registered players short-lived credentials for it (coturn's
//! `use-auth-secret`; the file holds coturn's `static-auth-secret`). Prints `ready <addr>`
//! once bound, then a `stats ...` line every `--stats-interval-s`. See `docs/internet-play.md`.

use baton::internet::rendezvous::{Registry, RegistryConfig, TurnSecret, DATAGRAM_BYTES_MAX};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The rendezvous service of Baton sessions played across the Internet.
#[derive(Debug, clap::Parser)]
#[command(name = "baton-rendezvous", version)]
struct Args {
    /// UDP address to serve on. Bind a specific IP on a multi-homed host: replies must
    /// leave from the address players sent to, or their NATs drop them.
    #[arg(long, default_value = "0.0.0.0:3479")]
    bind: SocketAddr,
    /// The TURN server (UDP) players may relay through.
    #[arg(long, requires = "turn_secret_file")]
    turn_server: Option<SocketAddr>,
    /// File holding the secret shared with the TURN server (coturn's static-auth-secret).
    #[arg(long, requires = "turn_server")]
    turn_secret_file: Option<PathBuf>,
    /// Lifetime of the TURN credentials handed out, in seconds.
    #[arg(long, default_value_t = 3600)]
    turn_ttl_s: u64,
    /// How long a registration lasts without a refresh, in seconds.
    #[arg(long, default_value_t = 30)]
    member_ttl_s: u64,
    /// Most sessions this instance holds at once.
    #[arg(long, default_value_t = 10_000)]
    sessions_max: usize,
    /// Seconds between two `stats` lines.
    #[arg(long, default_value_t = 60)]
    stats_interval_s: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run().await {
        eprintln!("baton-rendezvous: {err}");
        std::process::exit(1);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn run() -> Result<(), String> {
    let args = <Args as clap::Parser>::parse();
    let turn = match (args.turn_server, &args.turn_secret_file) {
        (Some(server), Some(path)) => {
            let secret = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?
                .trim()
                .to_string();
            if secret.is_empty() {
                return Err(format!("{} is empty", path.display()));
            }
            Some(TurnSecret {
                server,
                secret,
                ttl: Duration::from_secs(args.turn_ttl_s),
            })
        }
        _ => None,
    };
    let mut registry = Registry::new(RegistryConfig {
        member_ttl: Duration::from_secs(args.member_ttl_s.max(1)),
        sessions_max: args.sessions_max,
        turn,
        ..RegistryConfig::default()
    });
    let socket = tokio::net::UdpSocket::bind(args.bind)
        .await
        .map_err(|e| format!("binding {}: {e}", args.bind))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    println!("ready {local}");
    let mut stats = tokio::time::interval(Duration::from_secs(args.stats_interval_s.max(1)));
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    // One byte more than the limit, so an oversized datagram is seen as such, not cut.
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX + 1];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, from) = match received {
                    Ok(got) => got,
                    // ICMP errors surface as receive errors on some systems; keep serving.
                    Err(e) => {
                        tracing::debug!(error = %e, "receive error");
                        continue;
                    }
                };
                for (to, bytes) in registry.handle(Instant::now(), unix_now(), from, &buf[..len]) {
                    if let Err(e) = socket.send_to(&bytes, to).await {
                        tracing::debug!(%to, error = %e, "send failed");
                    }
                }
            }
            _ = expiry.tick() => registry.expire(Instant::now()),
            _ = stats.tick() => {
                let s = registry.stats();
                println!(
                    "stats sessions={} members={} sources={} accepted={} refused={} malformed={} rate_limited={} table_bytes={}",
                    s.sessions, s.members, s.sources, s.accepted, s.refused, s.malformed, s.rate_limited, registry.approx_bytes()
                );
            }
        }
    }
}
