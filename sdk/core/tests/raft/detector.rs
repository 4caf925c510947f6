//! Failure detection that fits the link: followers judge the leader's silence against the
//! measured arrival of its messages; the leader's heartbeat cadence follows its followers'
//! answers. Only liveness depends on it: pre-vote and check-quorum still protect the term.

use crate::harness::Network;
use baton_core::{Fitness, Role, ARRIVAL_GAPS_TRACKED_MAX};

/// Ticks of steady traffic before a crash: enough gaps for the estimate to apply.
const WARM_TICKS: usize = 60;

/// Ticks from crashing a warmed-up leader until another node leads.
fn failover_ticks(seed: u64, adaptive: bool) -> usize {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.rng_seed = seed * 100 + c.id;
        c.adaptive_election_timeout = adaptive;
    });
    net.elect(1);
    net.run(WARM_TICKS);
    net.crash(1);
    net.run_until(200, |n| n.leader().is_some_and(|l| l != 1))
        .expect("a new leader")
}

#[test]
fn detector_crash_on_a_steady_link_is_noticed_within_a_few_heartbeats() {
    let trials = 20;
    let adaptive: Vec<usize> = (0..trials).map(|s| failover_ticks(s, true)).collect();
    let fixed: Vec<usize> = (0..trials).map(|s| failover_ticks(s, false)).collect();
    eprintln!("failover ticks, measured timeout: {adaptive:?}; fixed [10, 20): {fixed:?}");
    // The floor is 4 ticks and the fittest draws from [4, 6): one pre-vote and one vote
    // round are delivered within the tick that fires.
    assert!(
        adaptive.iter().all(|&t| t <= 6),
        "measured timeout: {adaptive:?}"
    );
    assert!(fixed.iter().all(|&t| t >= 10), "fixed range: {fixed:?}");
}

#[test]
fn detector_estimate_and_cadence_settle_on_a_steady_link() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    assert_eq!(
        net.raft(2).detection_timeout_ticks(),
        None,
        "nothing measured yet"
    );
    assert_eq!(
        net.raft(1).heartbeat_interval_ticks(),
        2,
        "the configured interval until answers are measured"
    );
    net.run(WARM_TICKS);
    // Heartbeats every 2 ticks: the estimate (3) is below the floor.
    assert_eq!(net.raft(2).detection_timeout_ticks(), Some(4));
    let timeout = net.raft(2).election_timeout_ticks();
    assert!((4..12).contains(&timeout), "drawn {timeout}");
    assert_eq!(net.raft(1).heartbeat_interval_ticks(), 2, "half the floor");
    assert_eq!(
        net.raft(1).detection_timeout_ticks(),
        None,
        "a leader suspects no one"
    );
}

#[test]
fn detector_leader_heartbeats_at_half_the_measured_timeout_not_the_configured_interval() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.election_timeout_ticks_min = 30;
        c.election_timeout_ticks_max = 60;
        c.heartbeat_interval_ticks = 12;
    });
    net.elect(1);
    net.run(200);
    let first = net.raft(1).heartbeat_interval_ticks();
    assert!(
        (6..12).contains(&first),
        "answers every 12 ticks allow about 13 of silence; heartbeats at half: {first}"
    );
    // Each step down waits for the longer gaps to leave the window: 12 → 6 → 3 → 2.
    net.run(3 * ARRIVAL_GAPS_TRACKED_MAX * 8);
    assert_eq!(net.raft(1).heartbeat_interval_ticks(), 2);
    assert_eq!(net.raft(2).detection_timeout_ticks(), Some(4));
    net.crash(1);
    let ticks = net
        .run_until(200, |n| n.leader().is_some_and(|l| l != 1))
        .unwrap();
    assert!(
        ticks <= 6,
        "a 12-tick heartbeat would need at least 13: took {ticks}"
    );
}

#[test]
fn detector_learners_are_heartbeaten_at_the_configured_interval_only() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |c| c.heartbeat_interval_ticks = 6);
    net.elect(1);
    net.run(ARRIVAL_GAPS_TRACKED_MAX * 12);
    assert_eq!(net.raft(1).heartbeat_interval_ticks(), 2);
    let before = heartbeats_to(&net, 4);
    let voter_before = heartbeats_to(&net, 2);
    net.run(120);
    let learner = heartbeats_to(&net, 4) - before;
    let voter = heartbeats_to(&net, 2) - voter_before;
    assert_eq!(voter, 60, "a voter: every 2 ticks");
    assert!(
        (17..=20).contains(&learner),
        "a learner: every 6 ticks or a little more, got {learner}"
    );
}

fn heartbeats_to(net: &Network, id: u64) -> usize {
    net.delivered_to
        .get(&(id, "Heartbeat"))
        .copied()
        .unwrap_or(0)
}

#[test]
fn detector_one_late_leader_costs_no_term_and_is_remembered() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.run(WARM_TICKS);
    let term = net.raft(1).term();
    // The link from the leader to node 2 stalls for 12 ticks, three times its timeout.
    net.cut_link(1, 2);
    net.run(12);
    assert!(
        matches!(net.raft(2).role(), Role::PreCandidate | Role::Follower),
        "node 2 suspected the leader: {:?}",
        net.raft(2).role()
    );
    net.heal();
    // Twenty heartbeats later the smoothed deviation has forgotten the stall.
    net.run(40);
    assert_eq!(net.leader(), Some(1), "node 3 kept hearing the leader");
    assert_eq!(net.raft(1).term(), term, "pre-vote kept the term");
    assert_eq!(net.raft(2).term(), term);
    let remembered = net.raft(2).detection_timeout_ticks().unwrap();
    assert!(
        remembered > 12,
        "the stall is now part of what node 2 expects of this link: {remembered}"
    );
    // Forgotten once the window has moved past it.
    net.run(2 * ARRIVAL_GAPS_TRACKED_MAX + 10);
    assert_eq!(net.raft(2).detection_timeout_ticks(), Some(4));
}

#[test]
fn detector_keeps_the_fitness_bias_the_fittest_survivor_wins() {
    let fitness = [(1u64, 900u16), (2, 300), (3, 800), (4, 500), (5, 700)];
    let trials = 40;
    let mut wins = 0;
    let mut total_ticks = 0;
    for seed in 0..trials {
        let mut net = Network::with_config(&[1, 2, 3, 4, 5], &[], |c| {
            c.rng_seed = seed * 1000 + c.id;
            c.fitness = Fitness(fitness.iter().find(|(id, _)| *id == c.id).unwrap().1);
        });
        net.elect(1);
        net.run(WARM_TICKS);
        assert!(net.raft(3).detection_timeout_ticks().is_some());
        net.crash(1);
        let ticks = net
            .run_until(200, |n| n.leader().is_some_and(|l| l != 1))
            .unwrap();
        total_ticks += ticks;
        wins += usize::from(net.leader() == Some(3));
    }
    eprintln!(
        "measured timeout: fittest survivor won {wins}/{trials}; mean failover {:.1} ticks",
        total_ticks as f64 / trials as f64
    );
    assert!(
        wins * 10 >= trials as usize * 8,
        "fittest won {wins}/{trials}"
    );
}

#[test]
fn detector_off_keeps_the_fixed_range_and_cadence() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.adaptive_election_timeout = false);
    net.elect(1);
    net.run(WARM_TICKS);
    assert_eq!(net.raft(2).detection_timeout_ticks(), None);
    assert_eq!(net.raft(1).heartbeat_interval_ticks(), 2);
    let timeout = net.raft(2).election_timeout_ticks();
    assert!((10..30).contains(&timeout), "drawn {timeout}");
}
