//! Fitness-biased elections: the fittest caught-up voter usually takes over; safety and
//! liveness never depend on fitness.

use crate::harness::Network;
use baton_core::{Fitness, Role};

/// 5 voters with distinct fitness; node 1 leads; crash it; who wins?
fn crash_trial(seed: u64, crash_also: &[u64]) -> (u64, usize) {
    let fitness = [(1u64, 900u16), (2, 300), (3, 800), (4, 500), (5, 700)];
    let mut net = Network::with_config(&[1, 2, 3, 4, 5], &[], |c| {
        c.rng_seed = seed.wrapping_mul(1000) + c.id;
        c.fitness = Fitness(fitness.iter().find(|(id, _)| *id == c.id).unwrap().1);
    });
    net.elect(1);
    for i in 0..3 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(10);
    net.crash(1);
    for &id in crash_also {
        net.crash(id);
    }
    let ticks = net
        .run_until(500, |n| n.leader().is_some_and(|l| l != 1))
        .expect("a new leader");
    (net.leader().unwrap(), ticks)
}

#[test]
fn fitness_fittest_up_to_date_voter_wins_most_crash_trials() {
    let trials = 40;
    let results: Vec<(u64, usize)> = (0..trials).map(|seed| crash_trial(seed, &[])).collect();
    let wins = results.iter().filter(|(leader, _)| *leader == 3).count();
    let mean_ticks = results.iter().map(|(_, t)| *t).sum::<usize>() as f64 / trials as f64;
    eprintln!(
        "fittest survivor won {wins}/{trials} crash trials; mean failover {mean_ticks:.1} ticks"
    );
    assert!(
        wins * 10 >= trials as usize * 8,
        "fittest survivor (3) won {wins}/{trials}"
    );
}

#[test]
fn fitness_cluster_without_its_fittest_node_still_elects() {
    let trials = 20;
    let mut next_fittest_wins = 0;
    let mut total_ticks = 0;
    for seed in 0..trials {
        let (leader, ticks) = crash_trial(seed, &[3]);
        assert!([2, 4, 5].contains(&leader));
        assert!(ticks < 200, "elected in {ticks} ticks");
        total_ticks += ticks;
        if leader == 5 {
            next_fittest_wins += 1;
        }
    }
    eprintln!(
        "without the fittest: next fittest won {next_fittest_wins}/{trials}; mean failover {:.1} ticks",
        total_ticks as f64 / trials as f64
    );
    assert!(
        next_fittest_wins * 10 >= trials * 7,
        "the next fittest (5) won {next_fittest_wins}/{trials}"
    );
}

#[test]
fn fitness_never_decides_a_vote() {
    // The least fit node with an up-to-date log wins when it is the only one to campaign.
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.fitness = if c.id == 1 {
            Fitness::MIN
        } else {
            Fitness::MAX
        };
    });
    net.elect(1);
    assert_eq!(net.raft(1).role(), Role::Leader);
}

#[test]
fn fitness_is_reported_to_the_leader_with_match_index() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.raft(2).set_fitness(Fitness(123));
    net.raft(3).set_fitness(Fitness(2000));
    net.run(3);
    let progress = net.raft(1).progress();
    let p2 = progress.iter().find(|p| p.id == 2).unwrap();
    let p3 = progress.iter().find(|p| p.id == 3).unwrap();
    assert_eq!(p2.fitness, Fitness(123));
    assert_eq!(p3.fitness, Fitness::MAX, "clamped to 1000");
    assert_eq!(p2.match_index, net.raft(1).last_index());
    assert!(p2.recently_active && p2.is_voter && !p2.snapshot_in_flight);
    assert!(
        net.raft(2).progress().is_empty(),
        "only the leader tracks progress"
    );
}

#[test]
fn fitness_without_a_ranking_leader_biases_by_raw_fitness() {
    // Fresh cluster, no leader yet: the fittest node times out first in most seeds.
    let mut wins = 0;
    let trials = 30;
    for seed in 0..trials {
        let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
            c.rng_seed = seed * 10 + c.id;
            c.fitness = Fitness(if c.id == 2 { 1000 } else { 200 });
        });
        net.run_until(300, |n| n.leader().is_some())
            .expect("a leader");
        if net.leader() == Some(2) {
            wins += 1;
        }
    }
    eprintln!("fresh cluster: fittest won {wins}/{trials}");
    assert!(wins * 10 >= trials * 8, "fittest won {wins}/{trials}");
}
