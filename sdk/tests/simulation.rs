//! Deterministic simulation of the Raft core under faults (see `docs/simulation.md`).
//!
//! * `cargo test --release -p baton --test simulation` runs `BATON_SIM_SEEDS` seeds
//!   (default 500) starting at `BATON_SIM_START` (default 0) on `BATON_SIM_THREADS`
//!   threads (default: available cores, at most 4).
//! * `BATON_SIM_SEED=S` replays one seed and prints its whole trace.
//!
//! Output goes straight to stderr, so it shows without `--nocapture`. The last line is
//! `simulation: N seeds, M steps, V violations`; any violation fails the test after
//! printing the seed and the command that replays it.

mod sim;

use sim::world::{run_seed, Options, Scenario, SeedReport, Stats};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Seeds run by default (the CI run).
const SEEDS_DEFAULT: u64 = 500;
/// Seeds of the detector scenario run by default.
const DETECTOR_SEEDS_DEFAULT: u64 = 100;
/// Threads used by default for a multi-seed run, at most.
const THREADS_MAX_DEFAULT: usize = 4;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(parsed) => Some(parsed),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

fn say(line: std::fmt::Arguments<'_>) {
    // Straight to the process's stderr: visible whether or not libtest captures output.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn replay_command(seed: u64, scenario: Scenario) -> String {
    match scenario {
        Scenario::Chaos => format!(
            "BATON_SIM_SEED={seed} cargo test --release -p baton --test simulation -- simulation_seeds"
        ),
        Scenario::Detector => format!(
            "BATON_SIM_SEED={seed} cargo test --release -p baton --test simulation -- detector_simulation_seeds"
        ),
    }
}

fn report_violation(report: &SeedReport, scenario: Scenario) {
    if let Some(violation) = &report.violation {
        say(format_args!(
            "VIOLATION seed {} at step {} ({} ms): {}: {}",
            report.seed, report.steps, report.sim_ms, violation.invariant, violation.detail
        ));
        say(format_args!(
            "  replay: {}",
            replay_command(report.seed, scenario)
        ));
    }
}

/// Runs the seeds `start..start + count` on `threads` threads; returns the reports of the
/// failing seeds (sorted) and the totals.
fn run_many(
    start: u64,
    count: u64,
    threads: usize,
    options: Options,
) -> (Vec<SeedReport>, u64, Stats) {
    let next = AtomicU64::new(start);
    let end = start + count;
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new((0u64, Stats::default()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let report = run_seed(seed, options);
                {
                    let mut totals = totals.lock().unwrap();
                    totals.0 += report.steps;
                    totals.1.add(&report.stats);
                }
                if report.violation.is_some() {
                    report_violation(&report, options.scenario);
                    failures.lock().unwrap().push(report);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|r| r.seed);
    let (steps, stats) = totals.into_inner().unwrap();
    (failures, steps, stats)
}

#[test]
fn simulation_seeds() {
    run_scenario(Scenario::Chaos, SEEDS_DEFAULT);
}

/// The failure detector's script (`sim/detector.rs`): drift, delay spikes, a crash and a
/// partition on a LAN or an Internet link; no needless election, a bounded failover, the
/// usual safety invariants and liveness after the heal.
#[test]
fn detector_simulation_seeds() {
    run_scenario(Scenario::Detector, DETECTOR_SEEDS_DEFAULT);
}

fn run_scenario(scenario: Scenario, seeds_default: u64) {
    let started = Instant::now();
    let white_box = env_u64("BATON_SIM_WHITE_BOX") != Some(0);
    let fixed_election_timeout = env_u64("BATON_SIM_FIXED_TIMEOUT") == Some(1);
    if let Some(seed) = env_u64("BATON_SIM_SEED") {
        let report = run_seed(
            seed,
            Options {
                trace: true,
                white_box,
                scenario,
                fixed_election_timeout,
            },
        );
        report_violation(&report, scenario);
        say(format_args!(
            "seed {seed}: {} steps, {} ms simulated; {}",
            report.steps, report.sim_ms, report.stats
        ));
        let violations = u64::from(report.violation.is_some());
        say(format_args!(
            "simulation: 1 seeds, {} steps, {violations} violations",
            report.steps
        ));
        assert_eq!(violations, 0, "seed {seed} broke an invariant; see above");
        return;
    }
    let count = env_u64("BATON_SIM_SEEDS").unwrap_or(seeds_default);
    let start = env_u64("BATON_SIM_START").unwrap_or(0);
    let threads = env_u64("BATON_SIM_THREADS").map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(THREADS_MAX_DEFAULT)
        },
        |t| usize::try_from(t).unwrap_or(1),
    );
    let options = Options {
        trace: false,
        white_box,
        scenario,
        fixed_election_timeout,
    };
    let (failures, steps, stats) = run_many(start, count, threads, options);
    say(format_args!(
        "{scenario:?} seeds {start}..{}: {:.1} s wall on {threads} threads; {stats}",
        start + count,
        started.elapsed().as_secs_f64()
    ));
    if !failures.is_empty() {
        let seeds: Vec<u64> = failures.iter().map(|r| r.seed).collect();
        say(format_args!("failing seeds: {seeds:?}"));
    }
    say(format_args!(
        "simulation: {count} seeds, {steps} steps, {} violations",
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "{} seeds broke an invariant; see above",
        failures.len()
    );
}

/// Runs one seed that once failed and must not fail again.
fn regression(seed: u64) {
    let report = run_seed(
        seed,
        Options {
            trace: false,
            white_box: true,
            scenario: Scenario::Chaos,
            fixed_election_timeout: false,
        },
    );
    report_violation(&report, Scenario::Chaos);
    assert!(
        report.violation.is_none(),
        "seed {seed} regressed; replay: {}",
        replay_command(seed, Scenario::Chaos)
    );
}

/// The simulated disk follows the Ready contract (the harness must be right before it
/// can judge the core).
#[test]
fn storage_model_follows_the_ready_contract() {
    use baton::raft::{Entry, EntryPayload, Membership, PersistedState, Snapshot, SnapshotMeta};
    use sim::log::{append, compact, holds, install_snapshot, last_index, term_at};
    let entry = |index, term| Entry {
        index,
        term,
        payload: EntryPayload::Noop,
    };
    let mut state = PersistedState::bootstrap(Membership::default());
    assert!(append(&mut state, &[entry(2, 1), entry(3, 1), entry(4, 1)])
        .unwrap()
        .is_empty());
    let removed = append(&mut state, &[entry(3, 2)]).unwrap();
    assert_eq!(removed, vec![entry(3, 1), entry(4, 1)]);
    assert_eq!(last_index(&state), 3);
    assert!(
        append(&mut state, &[entry(5, 2)]).is_err(),
        "a gap is refused"
    );
    let at = |last_index, last_term| Snapshot {
        meta: SnapshotMeta {
            last_index,
            last_term,
            membership: Membership::default(),
        },
        data: Vec::new(),
    };
    compact(&mut state, &at(2, 1)).unwrap();
    assert_eq!(term_at(&state, 2), Some(1));
    assert!(
        holds(&state, 1, 7),
        "compacted entries are covered by the snapshot"
    );
    assert!(
        compact(&mut state, &at(3, 9)).is_err(),
        "a compaction must match the log"
    );
    assert!(
        append(&mut state, &[entry(2, 1)]).is_err(),
        "entries may not overlap the snapshot"
    );
    let removed = install_snapshot(&mut state, &at(10, 3)).unwrap();
    assert_eq!(removed, vec![entry(3, 2)]);
    assert_eq!(last_index(&state), 10);
    assert!(
        install_snapshot(&mut state, &at(9, 3)).is_err(),
        "an older snapshot is refused"
    );
}

// ---------------------------------------------------------------------------------------
// Regression seeds: every seed that ever failed, named after what it found.

/// A duplicated or stale `InstallSnapshotResponse` rewound the leader's chunk stream and
/// re-sent a whole window of chunks; every duplicated or out-of-order chunk made the
/// follower answer again, so messages multiplied until 5 000 were in flight within one
/// simulated millisecond (`BoundedTraffic`). Seed 8: 19 % duplication, reordering,
/// 64-byte chunks, no loss. Fixed by going back at most once per point of progress and
/// ignoring answers below the confirmed offset.
#[test]
fn regression_seed_8_snapshot_stream_amplifies_traffic() {
    regression(8);
}
