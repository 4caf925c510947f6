//! Sessions over the application's own network: players exchange datagrams only through
//! an in-process "platform" that knows them by opaque ids and loses, delays and reorders
//! what it carries. The host migrates after a crash and after a planned handoff with
//! every replica agreeing; garbage pushed in from the platform changes nothing.

mod support;

use baton::raft::NodeId;
use baton::session::{LeaveOutcome, Session, SessionConfig, TickMode};
use baton::transport::{AppNet, Identity, NetAddr, NetConfig, NetError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::game::Ledger;
use support::sessions::{
    config, eventually_among, host_and_join, host_of, index_of, play_on_and_agree_with_departed,
    start_session_with, LIMIT,
};

/// EOS P2P's packet size: below QUIC's 1200 bytes, so every full QUIC datagram travels
/// in two fragments.
const EOS_PACKET_BYTES: usize = 1170;

/// A stand-in for Steam or EOS: delivers datagrams between players by id, with loss and
/// a random delay per datagram (so later ones overtake earlier ones).
#[derive(Clone)]
struct Platform {
    players: Arc<Mutex<HashMap<NetAddr, AppNet>>>,
    rng: Arc<Mutex<ChaCha8Rng>>,
    loss: f64,
    delay_max: Duration,
    carried: Arc<AtomicU64>,
}

impl Platform {
    fn new(seed: u64, loss: f64, delay_max: Duration) -> Platform {
        Platform {
            players: Arc::default(),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
            loss,
            delay_max,
            carried: Arc::default(),
        }
    }

    /// A player's network on this platform, carried from now on.
    fn join(&self, name: &str) -> AppNet {
        let addr = NetAddr::new(name.as_bytes()).unwrap();
        let net = AppNet::new(NetConfig::new(addr.clone(), EOS_PACKET_BYTES)).unwrap();
        self.players.lock().unwrap().insert(addr, net.clone());
        let platform = self.clone();
        let sender = net.clone();
        tokio::spawn(async move {
            loop {
                let datagram = sender.next_outgoing().await;
                let (lost, delay) = {
                    let mut rng = platform.rng.lock().unwrap();
                    (
                        rng.random_bool(platform.loss),
                        platform.delay_max.mul_f64(rng.random::<f64>()),
                    )
                };
                if lost {
                    continue;
                }
                let Some(to) = platform
                    .players
                    .lock()
                    .unwrap()
                    .get(&datagram.peer)
                    .cloned()
                else {
                    continue; // an unknown id: the platform drops it
                };
                let from = sender.local().clone();
                let carried = platform.carried.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // A full queue is the platform's loss, as a full socket buffer is.
                    if to.push_incoming(&from, &datagram.bytes).is_ok() {
                        carried.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        net
    }
}

fn config_on(net: &AppNet) -> SessionConfig {
    let mut config = config(TickMode::FixedRate { hz: 30 }, 5);
    config.node.transport.app_net = Some(net.clone());
    config
}

/// A session of `players` on the platform whose host may crash (`start_session_with`
/// waits until the committed voter set survives that).
async fn session_on_platform(platform: &Platform, players: usize) -> Vec<Session<Ledger>> {
    let nets: Vec<AppNet> = (0..players)
        .map(|n| platform.join(&format!("player-{n}")))
        .collect();
    start_session_with(players, |n| config_on(&nets[n])).await
}

/// Waits for a host other than `crashed`; on timeout, panics with what every player
/// knows, so that a stall explains itself.
async fn a_new_host(sessions: &[Session<Ledger>], crashed: NodeId) -> NodeId {
    let found = std::cell::Cell::new(None);
    eventually_among(
        sessions,
        &format!("a host other than {crashed:016x}"),
        || async {
            found.set(host_of(sessions).await.filter(|&host| host != crashed));
            found.get().is_some()
        },
    )
    .await;
    found.get().expect("the wait ends on a host")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_host_is_replaced_over_a_lossy_platform() {
    let platform = Platform::new(1, 0.02, Duration::from_millis(8));
    let mut sessions = session_on_platform(&platform, 3).await;
    let invite = sessions[0].invite();
    assert!(
        invite.addrs.iter().all(|addr| NetAddr::is_app(*addr)),
        "the invite names players on the platform: {:?}",
        invite.addrs
    );
    let host = host_of(&sessions).await.unwrap();
    let crashed = sessions.remove(index_of(&sessions, host));
    crashed.stop().await;
    a_new_host(&sessions, host).await;
    let live: Vec<_> = sessions.iter().collect();
    play_on_and_agree_with_departed(&live, &[&crashed], 20).await;
    eprintln!(
        "platform carried {} datagrams",
        platform.carried.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_host_hands_over_over_the_platform() {
    let platform = Platform::new(2, 0.01, Duration::from_millis(5));
    let mut sessions = session_on_platform(&platform, 3).await;
    let host = host_of(&sessions).await.unwrap();
    let leaving = sessions.remove(index_of(&sessions, host));
    let outcome = leaving.leave().await.unwrap();
    assert!(
        matches!(outcome, LeaveOutcome::HandedOver { .. }),
        "{outcome:?}"
    );
    let live: Vec<_> = sessions.iter().collect();
    play_on_and_agree_with_departed(&live, &[&leaving], 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_platform_is_refused_and_the_game_goes_on() {
    let platform = Platform::new(3, 0.0, Duration::from_millis(2));
    let sessions = session_on_platform(&platform, 3).await;
    let victim = platform.players.lock().unwrap()[&NetAddr::new(b"player-1").unwrap()].clone();
    let stranger = NetAddr::new(b"mallory").unwrap();
    let member = NetAddr::new(b"player-0").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let before = victim.stats();
    // Oversized, empty, truncated and unframed datagrams, and fragments that lie.
    for bad in [
        vec![0; EOS_PACKET_BYTES + 1],
        vec![],
        vec![0x01, 0, 0],
        vec![0x42; 100],
        vec![0x01, 0, 7, 3, 2, 1, 2, 3],
    ] {
        assert!(victim.push_incoming(&member, &bad).is_err() || bad[0] == 0x01);
    }
    assert!(matches!(
        victim.push_incoming(&member, &[0; EOS_PACKET_BYTES + 1]),
        Err(NetError::DatagramLength { .. })
    ));
    // A flood of well-framed random bytes, from a stranger and in a member's name: QUIC
    // authenticates nothing of it, so none reaches Raft.
    let mut refused_full = 0;
    for n in 0..20_000 {
        let mut bytes = vec![0u8; rng.random_range(2..EOS_PACKET_BYTES)];
        rng.fill(&mut bytes[1..]);
        bytes[0] = 0x00;
        let from = if n % 2 == 0 { &stranger } else { &member };
        if let Err(NetError::WouldBlock) = victim.push_incoming(from, &bytes) {
            refused_full += 1;
            tokio::task::yield_now().await;
        }
    }
    let after = victim.stats();
    assert!(after.refused > before.refused);
    eprintln!("flood: {refused_full} pushes refused while the queue was full; stats {after:?}");
    let live: Vec<_> = sessions.iter().collect();
    play_on_and_agree_with_departed(&live, &[], 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_of_ip_addresses_is_refused_on_the_platform() {
    let host = Session::host(
        config(TickMode::FixedRate { hz: 30 }, 5),
        Identity::generate().unwrap(),
        Ledger::default(),
    )
    .await
    .unwrap();
    let platform = Platform::new(4, 0.0, Duration::ZERO);
    let net = platform.join("late");
    let refused = Session::join(
        &host.invite(),
        config_on(&net),
        Identity::generate().unwrap(),
        Ledger::default(),
    )
    .await;
    let message = refused
        .err()
        .expect("mixing networks is refused")
        .to_string();
    assert!(message.contains("application's network"), "{message}");
    host.stop().await;
}

/// The host crashes the moment its status says the session survives that (polled every
/// millisecond, right behind the promotion of the last voter): a status that counted the
/// voters appended, not the ones committed, let it crash with the promotion still on its
/// own, and the session never found a new host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_crash_the_status_calls_survivable_is_survived() {
    let platform = Platform::new(4, 0.02, Duration::from_millis(8));
    let nets: Vec<AppNet> = (0..3)
        .map(|n| platform.join(&format!("player-{n}")))
        .collect();
    let mut sessions = host_and_join(3, |n| config_on(&nets[n])).await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let status = sessions[0].status().await.unwrap();
        if status.survivable_voter_failures >= 1 {
            assert_eq!(status.node.membership.voters.len(), 3);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the voters never filled"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let crashed = sessions.remove(0);
    crashed.stop().await;
    a_new_host(&sessions, crashed.id()).await;
}
