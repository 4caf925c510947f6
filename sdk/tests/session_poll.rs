//! The session as a game pumps it: polled events, answered requests, a game that is slow
//! or stops polling, bad settings, restarts with the same identity, and what the status
//! says the session can survive.

mod support;

use baton::raft::Role;
use baton::session::{
    CallError, ConfigError, Event, Game, GameError, PlayerInput, Session, SessionConfig,
    SessionError, SessionEvent, SessionHandle, TickMode, TickRecord,
};
use baton::storage::Durability;
use baton::transport::Identity;
use std::time::{Duration, Instant};
use support::game::Ledger;
use support::sessions::{config, eventually, start_session};

const FAST: TickMode = TickMode::FixedRate { hz: 60 };

/// Polls `handle` until `wanted` matches an event, answering the host's requests like a
/// lockstep game with nothing to add; returns every event seen.
fn poll_until(handle: &SessionHandle, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + support::sessions::LIMIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(event) = handle.wait_event(Duration::from_millis(50)) else {
            continue;
        };
        match &event {
            Event::RunTick { tick, .. } => handle.commit_tick(*tick, Vec::new()).unwrap(),
            Event::MakeSnapshot { tick } => handle.answer_snapshot(*tick, Vec::new()).unwrap(),
            _ => {}
        }
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("timed out; events seen: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founders_first_events_reach_a_game_that_starts_polling_late() {
    support::init_logging();
    let handle = SessionHandle::host(
        config(FAST, 5),
        Identity::generate().unwrap(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    // The game is busy loading a level: it polls for the first time well after the
    // founder became host.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = tokio::task::spawn_blocking(move || {
        let seen = poll_until(
            &handle,
            |event| matches!(event, Event::ApplyTick(r) if r.tick == 3),
        );
        (handle, seen)
    })
    .await
    .unwrap();
    let (handle, seen) = seen;
    assert!(
        matches!(seen[0], Event::Started { .. }),
        "first event: {:?}",
        seen[0]
    );
    assert!(seen.contains(&Event::BecameHost { next_tick: 1 }));
    let ticks: Vec<u64> = seen
        .iter()
        .filter_map(|event| match event {
            Event::ApplyTick(record) => Some(record.tick),
            _ => None,
        })
        .collect();
    assert_eq!(ticks, [1, 2, 3]);
    // A LAN session has no rendezvous service to tell of a new network.
    assert!(!handle.network_changed());
    handle.stop().await;
}

/// Breaks one setting of a good configuration.
type Spoil = Box<dyn Fn(&mut SessionConfig)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_at_start_naming_the_field() {
    let runtime = tokio::runtime::Handle::current();
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "tick_mode",
            Box::new(|c| c.tick_mode = TickMode::FixedRate { hz: 0 }),
        ),
        (
            "tick_mode",
            Box::new(|c| {
                c.tick_mode = TickMode::TurnBased {
                    turn_timeout: Duration::ZERO,
                }
            }),
        ),
        ("max_voters", Box::new(|c| c.max_voters = 0)),
        ("handoff_margin", Box::new(|c| c.handoff_margin = u16::MAX)),
        (
            "policy_interval",
            Box::new(|c| c.policy_interval = Duration::ZERO),
        ),
        (
            "input_retry_interval",
            Box::new(|c| c.input_retry_interval = Duration::ZERO),
        ),
        (
            "inputs_in_flight_max",
            Box::new(|c| c.inputs_in_flight_max = 0),
        ),
        ("input_bytes_max", Box::new(|c| c.input_bytes_max = 0)),
        (
            "tick_record_bytes_max",
            Box::new(|c| c.tick_record_bytes_max = c.node.transport.max_frame_bytes),
        ),
        (
            "tick_payload_bytes_max",
            Box::new(|c| c.tick_payload_bytes_max = c.tick_record_bytes_max),
        ),
        (
            "snapshot_interval_ticks",
            Box::new(|c| c.snapshot_interval_ticks = 0),
        ),
        ("events_queued_max", Box::new(|c| c.events_queued_max = 0)),
    ];
    for (field, spoil) in cases {
        let mut config = config(FAST, 5);
        spoil(&mut config);
        match SessionHandle::host(config, Identity::generate().unwrap(), &runtime) {
            Err(SessionError::Config(ConfigError { field: named, .. })) => {
                assert_eq!(named, field)
            }
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_input_is_refused_with_a_clear_error() {
    let sessions = start_session(2, &config(FAST, 5)).await;
    let limit = SessionConfig::default().input_bytes_max;
    match sessions[1].submit_input(vec![0; limit + 1]).await {
        Err(SessionError::Call(CallError::InputTooLarge { len, max })) => {
            assert_eq!((len, max), (limit + 1, limit))
        }
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
    // The largest allowed input goes through and commits.
    let sequence = sessions[1].submit_input(vec![7; limit]).await.unwrap();
    assert_eq!(sequence, 1);
    eventually("the largest input to commit", || async {
        sessions[0].with_game(|ledger, _| {
            ledger
                .applied
                .iter()
                .any(|(_, _, data)| data.len() == limit)
        })
    })
    .await;
    for session in &sessions {
        session.stop().await;
    }
}

/// A game whose every tick and snapshot takes 50 ms, longer than a 60 Hz tick.
#[derive(Default)]
struct Slow(Ledger);

const SLOW_CALL: Duration = Duration::from_millis(50);

impl Game for Slow {
    fn apply(&mut self, record: &TickRecord) {
        self.0.apply(record)
    }
    fn tick(&self, tick: u64, inputs: &[PlayerInput]) -> Vec<u8> {
        std::thread::sleep(SLOW_CALL);
        self.0.tick(tick, inputs)
    }
    fn snapshot(&self) -> Result<Vec<u8>, GameError> {
        std::thread::sleep(SLOW_CALL);
        self.0.snapshot()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError> {
        self.0.restore(snapshot)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_game_delays_ticks_but_causes_no_election() {
    support::init_logging();
    let mut config = config(FAST, 5);
    config.snapshot_interval_ticks = 4;
    let host = Session::host(
        config.clone(),
        Identity::generate().unwrap(),
        Slow::default(),
    )
    .await
    .unwrap();
    let mut events = host.events();
    let mut players = vec![];
    for _ in 0..2 {
        players.push(
            Session::join(
                &host.invite(),
                config.clone(),
                Identity::generate().unwrap(),
                Slow::default(),
            )
            .await
            .unwrap(),
        );
    }
    eventually("three voters", || async {
        host.status().await.unwrap().node.membership.voters.len() == 3
    })
    .await;
    let term = host.status().await.unwrap().node.term;
    let from = host.with_game(|_, tick| tick);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = host.status().await.unwrap();
    assert_eq!(status.node.role, Role::Leader, "the slow host still hosts");
    assert_eq!(status.node.term, term, "no election happened");
    let played = host.with_game(|_, tick| tick) - from;
    assert!(
        played >= 20,
        "the game goes on at its own pace: {played} ticks in 3 s"
    );
    let mut overruns = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, SessionEvent::TickOverrun { .. }) {
            overruns += 1;
        }
    }
    assert!(overruns > 0, "the late ticks are reported as overruns");
    for session in players.iter().chain([&host]) {
        session.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_stops_polling_is_stopped_with_a_clear_reason_and_a_consistent_state() {
    support::init_logging();
    let config = config(FAST, 5);
    let sessions = start_session(2, &config).await;
    let mut stalled_config = config.clone();
    stalled_config.events_queued_max = 128;
    let stalled = SessionHandle::join(
        &sessions[0].invite(),
        stalled_config,
        Identity::generate().unwrap(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    // Nobody polls `stalled`. At 60 Hz it overflows its bound within a few seconds.
    eventually("the stalled player to stop", || async {
        stalled.is_stopped()
    })
    .await;
    // The game comes back: everything up to the stop is there, in order, then Fatal.
    let events: Vec<Event> = std::iter::from_fn(|| stalled.poll_event()).collect();
    let ticks: Vec<u64> = events
        .iter()
        .filter_map(|event| match event {
            Event::ApplyTick(record) => Some(record.tick),
            _ => None,
        })
        .collect();
    assert!(!ticks.is_empty());
    assert!(
        ticks.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the ticks it holds are gapless"
    );
    match events.last() {
        Some(Event::Fatal(reason)) => assert!(reason.contains("stopped polling"), "{reason}"),
        other => panic!("expected Fatal last, got {other:?}"),
    }
    // The others play on.
    let from = sessions[0].with_game(|_, tick| tick);
    eventually("the others to go on", || async {
        sessions[1].with_game(|_, tick| tick > from + 10)
    })
    .await;
    for session in &sessions {
        session.stop().await;
    }
}

/// A game that panics when it applies its tenth tick.
#[derive(Default)]
struct Panicky(Ledger);

impl Game for Panicky {
    fn apply(&mut self, record: &TickRecord) {
        assert!(record.tick < 10, "the game's own bug");
        self.0.apply(record)
    }
    fn tick(&self, tick: u64, inputs: &[PlayerInput]) -> Vec<u8> {
        self.0.tick(tick, inputs)
    }
    fn snapshot(&self) -> Result<Vec<u8>, GameError> {
        self.0.snapshot()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError> {
        self.0.restore(snapshot)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_game_stops_the_session_with_a_fatal_event() {
    support::init_logging();
    let session = Session::host(
        config(FAST, 5),
        Identity::generate().unwrap(),
        Panicky::default(),
    )
    .await
    .unwrap();
    let mut events = session.events();
    let reason = tokio::time::timeout(support::sessions::LIMIT, async {
        loop {
            if let Ok(SessionEvent::Fatal(reason)) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("a Fatal event");
    assert!(reason.contains("panicked"), "{reason}");
    eventually("the node to stop", || async {
        session.status().await.is_err()
    })
    .await;
    assert_eq!(
        session.with_game(|_, tick| tick),
        9,
        "the state is the last tick applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_restarting_with_the_same_identity_keeps_having_its_inputs_applied() {
    support::init_logging();
    let base = config(FAST, 5);
    let sessions = start_session(2, &base).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate().unwrap();
    let mut durable = base.clone();
    durable.node.storage.data_dir = Some(dir.path().to_path_buf());
    durable.node.storage.durability = Durability::Durable;
    let invite = sessions[0].invite();
    let player = identity.node_id();

    let mut committed_per_run = Vec::new();
    for run in 0..2 {
        let session = Session::join(
            &invite,
            durable.clone(),
            identity.clone(),
            Ledger::default(),
        )
        .await
        .unwrap();
        let mut events = session.events();
        let mut last = 0;
        for n in 0..5u8 {
            last = session.submit_input(vec![run, n]).await.unwrap();
        }
        assert_eq!(last, 5, "each run numbers its inputs from 1");
        tokio::time::timeout(support::sessions::LIMIT, async {
            loop {
                if let Ok(SessionEvent::InputCommitted { sequence: 5, .. }) = events.recv().await {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("run {run}: the inputs were never committed"));
        committed_per_run.push(last);
        session.stop().await;
    }
    // The host applied all ten, each once: five per incarnation.
    let applied = sessions[0].with_game(|ledger, _| {
        ledger
            .applied
            .iter()
            .filter(|(who, _, _)| *who == player)
            .map(|(_, sequence, data)| (*sequence, data.clone()))
            .collect::<Vec<_>>()
    });
    let expected: Vec<(u64, Vec<u8>)> = (0..2u8)
        .flat_map(|run| (0..5u8).map(move |n| (u64::from(n) + 1, vec![run, n])))
        .collect();
    assert_eq!(applied, expected);
    for session in &sessions {
        session.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_voters_die_the_status_says_no_more_failures_are_survivable() {
    let sessions = start_session(3, &config(FAST, 5)).await;
    let host = support::sessions::host_of(&sessions).await.unwrap();
    let host_index = sessions.iter().position(|s| s.id() == host).unwrap();
    assert_eq!(
        sessions[host_index]
            .status()
            .await
            .unwrap()
            .survivable_voter_failures,
        1
    );
    let victim = (host_index + 1) % 3;
    sessions[victim].stop().await;
    eventually("the host to count the dead voter out", || async {
        sessions[host_index]
            .status()
            .await
            .is_ok_and(|status| status.survivable_voter_failures == 0)
    })
    .await;
    for session in &sessions {
        session.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_with_a_wrong_invite_fails_with_a_typed_error() {
    let sessions = start_session(1, &config(FAST, 5)).await;
    let mut forged = sessions[0].invite();
    forged.credentials = baton::transport::SessionCredentials::generate();
    let started = Instant::now();
    let joined = Session::join(
        &forged,
        config(FAST, 5),
        Identity::generate().unwrap(),
        Ledger::default(),
    )
    .await;
    match joined {
        Err(SessionError::Node(baton::runtime::NodeError::JoinRefused(reason))) => {
            eprintln!("refused after {:?}: {reason}", started.elapsed())
        }
        Err(other) => panic!("expected JoinRefused, got {other}"),
        Ok(_) => panic!("a wrong invite was accepted"),
    }
    // The poll handle hears it as Fatal.
    let handle = SessionHandle::join(
        &forged,
        config(FAST, 5),
        Identity::generate().unwrap(),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        poll_until(&handle, |event| matches!(event, Event::Fatal(_)))
    })
    .await
    .unwrap();
    assert!(
        matches!(seen.last(), Some(Event::Fatal(reason)) if reason.contains("refused")),
        "{seen:?}"
    );
    sessions[0].stop().await;
}
