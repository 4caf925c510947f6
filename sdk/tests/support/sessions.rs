//! Builds sessions of in-process players on loopback QUIC and checks them.

#![allow(dead_code)]

use super::game::Ledger;
use baton::raft::NodeId;
use baton::session::{Session, SessionConfig, SessionEvent, TickMode};
use baton::transport::Identity;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(60);

pub fn config(tick_mode: TickMode, max_voters: usize) -> SessionConfig {
    let mut config = SessionConfig {
        tick_mode,
        max_voters,
        ..SessionConfig::default()
    };
    config.node.transport.bind = "127.0.0.1:0".parse().unwrap();
    config.handoff_hold = Duration::from_millis(500);
    config.policy_interval = Duration::from_millis(100);
    config.voter_absence_limit = Duration::from_secs(1);
    config.node.snapshot_interval_entries = 64;
    config.snapshot_interval_ticks = 32;
    config
}

pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !within_limit(check).await {
        panic!("timed out after {LIMIT:?} waiting for {what}");
    }
}

/// Like [`eventually`]; a stall panics with what every one of `sessions` knows, so that a
/// failure on a CI machine explains itself.
pub async fn eventually_among<F, Fut>(sessions: &[Session<Ledger>], what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !within_limit(check).await {
        panic!(
            "timed out after {LIMIT:?} waiting for {what}; what each player knows:\n{}",
            views(sessions).await
        );
    }
}

async fn within_limit<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// One line per player: its role, term, leader, appended and committed voters, and log.
pub async fn views(sessions: &[Session<Ledger>]) -> String {
    let mut views = Vec::new();
    for session in sessions {
        views.push(match session.status().await {
            Ok(status) => format!(
                "{:016x}: {:?} term {} leader {:?} voters {:?} learners {:?} \
                 (committed voters {:?}) last index {} commit {}",
                session.id(),
                status.node.role,
                status.node.term,
                status.node.leader,
                status.node.membership.voters,
                status.node.membership.learners,
                status.node.committed_membership.voters,
                status.node.last_index,
                status.node.commit_index,
            ),
            Err(e) => format!("{:016x}: no status ({e})", session.id()),
        });
    }
    views.join("\n")
}

/// The host: the player that says it leads, else the leader some player last heard of.
/// A player's view of the leader lags a handoff; the leader's own view does not.
pub async fn host_of(sessions: &[Session<Ledger>]) -> Option<NodeId> {
    for session in sessions {
        if let Ok(status) = session.status().await {
            if status.node.leader == Some(session.id()) {
                return status.node.leader;
            }
        }
    }
    for session in sessions {
        if let Ok(status) = session.status().await {
            if status.node.leader.is_some() {
                return status.node.leader;
            }
        }
    }
    None
}

/// Starts a host and `players - 1` joiners, and waits until the host has filled the voter
/// set (up to `config.max_voters`) and every player has applied some ticks.
pub async fn start_session(players: usize, config: &SessionConfig) -> Vec<Session<Ledger>> {
    start_session_with(players, |_| config.clone()).await
}

/// Like [`start_session`], with player `n`'s settings from `config(n)` (player 0 hosts).
pub async fn start_session_with(
    players: usize,
    config: impl Fn(usize) -> SessionConfig,
) -> Vec<Session<Ledger>> {
    let sessions = host_and_join(players, &config).await;
    let voters_wanted = players.min(config(0).max_voters);
    eventually_among(&sessions, "the voter set to fill", || async {
        let status = sessions[0].status().await.unwrap();
        status.node.membership.voters.len() == voters_wanted
            && status.node.membership.voters.len() + status.node.membership.learners.len()
                == players
    })
    .await;
    // The voter set above is the host's appended one: a configuration takes effect on
    // append, so a host stopped before its last promotion left it takes the promotion
    // along, and the voters left may never elect a new host. Tests crash hosts: wait
    // until the committed set survives that.
    let failures = (voters_wanted - 1) / 2;
    eventually_among(&sessions, "the host to survive a crash", || async {
        sessions[0]
            .status()
            .await
            .is_ok_and(|status| status.survivable_voter_failures >= failures)
    })
    .await;
    eventually_among(&sessions, "every player to apply ticks", || async {
        sessions
            .iter()
            .all(|session| session.with_game(|_, tick| tick > 3))
    })
    .await;
    sessions
}

/// Player 0 hosts and players `1..players` join with its invite, each with the settings
/// of `config(n)`; nothing is waited for beyond each call's return.
pub async fn host_and_join(
    players: usize,
    config: impl Fn(usize) -> SessionConfig,
) -> Vec<Session<Ledger>> {
    super::init_logging();
    let host = Session::host(config(0), Identity::generate().unwrap(), Ledger::default())
        .await
        .unwrap();
    let invite = host.invite();
    let mut sessions = vec![host];
    for n in 1..players {
        let joiner = Session::join(
            &invite,
            config(n),
            Identity::generate().unwrap(),
            Ledger::default(),
        )
        .await
        .unwrap();
        sessions.push(joiner);
    }
    sessions
}

/// Every player agrees on the game hash at every tick they have all applied, the ticks
/// have no gaps, and no input was applied twice.
pub fn assert_replicas_agree(sessions: &[&Session<Ledger>]) {
    let ledgers: Vec<Ledger> = sessions
        .iter()
        .map(|session| session.with_game(|game, _| game.clone()))
        .collect();
    let common = ledgers
        .iter()
        .map(|ledger| ledger.history.len())
        .min()
        .unwrap_or(0);
    assert!(common > 0, "no tick applied everywhere");
    for ledger in &ledgers {
        assert_eq!(
            ledger.payload_mismatches, 0,
            "the host's state and the inputs disagree"
        );
        assert_eq!(
            ledger.history.len() as u64,
            ledger.ticks,
            "a tick is missing from a replica"
        );
        assert_eq!(
            ledger.history[..common],
            ledgers[0].history[..common],
            "replicas disagree"
        );
        let mut seen = BTreeSet::new();
        for (player, sequence, _) in &ledger.applied {
            assert!(
                seen.insert((*player, *sequence)),
                "input {sequence} of {player:016x} applied twice"
            );
        }
    }
}

/// Every input 1..=count of every player in `inputs` was applied exactly once, in order.
pub fn assert_inputs_applied_once(session: &Session<Ledger>, inputs: &BTreeMap<NodeId, u64>) {
    let ledger = session.with_game(|game, _| game.clone());
    for (player, count) in inputs {
        let sequences: Vec<u64> = ledger
            .applied
            .iter()
            .filter(|(who, _, _)| who == player)
            .map(|(_, sequence, _)| *sequence)
            .collect();
        assert_eq!(
            sequences,
            (1..=*count).collect::<Vec<_>>(),
            "inputs of {player:016x}"
        );
    }
}

pub type TickTimes = std::sync::Arc<std::sync::Mutex<Vec<(u64, std::time::Instant)>>>;

/// Collects the times of TickCommitted events, to measure the pause around a migration.
/// Returns once two ticks are recorded: a pause is measured between ticks, so a migration
/// started before the first recorded tick would fall outside every measured interval.
pub async fn record_ticks(session: &Session<Ledger>) -> TickTimes {
    let mut events = session.events();
    let ticks = TickTimes::default();
    let sink = ticks.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let SessionEvent::TickCommitted { tick } = event {
                sink.lock().unwrap().push((tick, std::time::Instant::now()));
            }
        }
    });
    eventually("two ticks recorded before the migration", || async {
        ticks.lock().unwrap().len() >= 2
    })
    .await;
    ticks
}

/// The longest pause between consecutive committed ticks seen in `ticks`.
pub fn longest_gap(ticks: &[(u64, std::time::Instant)]) -> Duration {
    ticks
        .windows(2)
        .map(|pair| pair[1].1.duration_since(pair[0].1))
        .max()
        .unwrap_or_default()
}

/// Waits until every one of `sessions` has applied `ticks` more ticks than the first has
/// now, then checks that they all agree tick by tick.
pub async fn play_on_and_agree(sessions: &[&Session<Ledger>], ticks: u64) {
    play_on_and_agree_with_departed(sessions, &[], ticks).await;
}

/// Like [`play_on_and_agree`], and the players who left or crashed must agree with the
/// others on every tick they applied: a committed tick they held and the others lost
/// shows as a disagreement.
pub async fn play_on_and_agree_with_departed(
    live: &[&Session<Ledger>],
    departed: &[&Session<Ledger>],
    ticks: u64,
) {
    let from = live[0].with_game(|_, tick| tick);
    eventually("the game to go on", || async {
        live.iter()
            .all(|session| session.with_game(|_, now| now > from + ticks))
    })
    .await;
    let everyone: Vec<_> = live.iter().chain(departed).copied().collect();
    assert_replicas_agree(&everyone);
}

/// The position of player `id` in `sessions`.
pub fn index_of(sessions: &[Session<Ledger>], id: NodeId) -> usize {
    sessions
        .iter()
        .position(|session| session.id() == id)
        .expect("a player of the session")
}
