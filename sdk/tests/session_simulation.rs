//! Deterministic simulation of the session layer (see `docs/simulation.md`, "The session
//! simulator"): players running the real `SessionCore` and `SessionMachine` over Raft
//! nodes, with a model game, under seeded crashes, handoffs, joins, leaves, forgeries and
//! network faults.
//!
//! * `cargo test --release -p baton --test session_simulation` runs
//!   `BATON_SESSION_SIM_SEEDS` seeds (default 1000) from `BATON_SESSION_SIM_START`
//!   (default 0) on `BATON_SIM_THREADS` threads (default: available cores, at most 4).
//! * `BATON_SESSION_SIM_SEED=S` replays one seed and prints its whole trace.
//!
//! The last line is `session simulation: N seeds, M steps, V violations`; a violation
//! prints the seed, the invariant and the command that replays it, and fails the test.

mod session_sim;

use session_sim::world::{run_seed, Options, SeedReport, Stats};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Seeds run by default (the CI run).
const SEEDS_DEFAULT: u64 = 1000;
/// Seeds of the CI range that fail for a reason not yet fixed, each named in
/// `docs/simulation.md` ("Open findings"). The CI run skips them and says so; the ignored
/// test `known_open_seeds` replays them (`cargo test ... -- --ignored known_open_seeds`).
/// Remove a seed once its cause is fixed.
const KNOWN_OPEN_SEEDS: &[u64] = &[768];
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

/// The run's options: `BATON_SESSION_SIM_FRESH_REJOIN=1` lets departed players come
/// back with an empty store (see `Options::fresh_rejoin`); `BATON_SESSION_SIM_FIXED=1`
/// detects a lost host after the fixed election range (`Options::fixed_detection`).
fn options(trace: bool) -> Options {
    Options {
        trace,
        fresh_rejoin: env_u64("BATON_SESSION_SIM_FRESH_REJOIN") == Some(1),
        fixed_detection: env_u64("BATON_SESSION_SIM_FIXED") == Some(1),
    }
}

fn replay_command(seed: u64) -> String {
    let options = options(false);
    let fresh = if options.fresh_rejoin {
        "BATON_SESSION_SIM_FRESH_REJOIN=1 "
    } else {
        ""
    };
    let fixed = if options.fixed_detection {
        "BATON_SESSION_SIM_FIXED=1 "
    } else {
        ""
    };
    format!(
        "{fresh}{fixed}BATON_SESSION_SIM_SEED={seed} cargo test --release -p baton --test session_simulation -- session_simulation_seeds"
    )
}

fn report_violation(report: &SeedReport) {
    if let Some(violation) = &report.violation {
        say(format_args!(
            "VIOLATION seed {} at step {} ({} ms): {}: {}",
            report.seed, report.steps, report.sim_ms, violation.invariant, violation.detail
        ));
        say(format_args!("  replay: {}", replay_command(report.seed)));
    }
}

fn run_many(start: u64, count: u64, threads: usize) -> (Vec<SeedReport>, u64, Stats) {
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
                if KNOWN_OPEN_SEEDS.contains(&seed) {
                    continue;
                }
                let report = run_seed(seed, options(false));
                {
                    let mut totals = totals.lock().unwrap();
                    totals.0 += report.steps;
                    totals.1.add(&report.stats);
                }
                if report.violation.is_some() {
                    report_violation(&report);
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
fn session_simulation_seeds() {
    let started = Instant::now();
    if let Some(seed) = env_u64("BATON_SESSION_SIM_SEED") {
        let report = run_seed(seed, options(true));
        report_violation(&report);
        say(format_args!(
            "seed {seed}: {} steps, {} ms simulated; {}",
            report.steps, report.sim_ms, report.stats
        ));
        let violations = u64::from(report.violation.is_some());
        say(format_args!(
            "session simulation: 1 seeds, {} steps, {violations} violations",
            report.steps
        ));
        assert_eq!(violations, 0, "seed {seed} broke an invariant; see above");
        return;
    }
    let count = env_u64("BATON_SESSION_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let start = env_u64("BATON_SESSION_SIM_START").unwrap_or(0);
    let threads = env_u64("BATON_SIM_THREADS").map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(THREADS_MAX_DEFAULT)
        },
        |t| usize::try_from(t).unwrap_or(1),
    );
    let (failures, steps, stats) = run_many(start, count, threads);
    let skipped: Vec<u64> = KNOWN_OPEN_SEEDS
        .iter()
        .copied()
        .filter(|seed| (start..start + count).contains(seed))
        .collect();
    if !skipped.is_empty() {
        say(format_args!(
            "skipped known open seeds {skipped:?} (docs/simulation.md, \"Open findings\")"
        ));
    }
    say(format_args!(
        "seeds {start}..{}: {:.1} s wall on {threads} threads; {stats}",
        start + count,
        started.elapsed().as_secs_f64()
    ));
    if !failures.is_empty() {
        let seeds: Vec<u64> = failures.iter().map(|r| r.seed).collect();
        say(format_args!("failing seeds: {seeds:?}"));
    }
    say(format_args!(
        "session simulation: {count} seeds, {steps} steps, {} violations",
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "{} seeds broke an invariant; see above",
        failures.len()
    );
}

/// A seed replays exactly: the same steps, the same simulated time, the same outcome.
#[test]
fn a_seed_replays_exactly() {
    let first = run_seed(3, options(false));
    let second = run_seed(3, options(false));
    assert_eq!(first.steps, second.steps);
    assert_eq!(first.sim_ms, second.sim_ms);
    assert_eq!(first.stats.ticks, second.stats.ticks);
    assert_eq!(
        first.violation.map(|v| v.detail),
        second.violation.map(|v| v.detail)
    );
}

/// The seeds listed in `KNOWN_OPEN_SEEDS` still fail; when one passes, its cause is
/// fixed and it should leave the list.
#[test]
#[ignore = "known open findings; see docs/simulation.md"]
fn known_open_seeds() {
    for seed in KNOWN_OPEN_SEEDS {
        let report = run_seed(*seed, options(false));
        report_violation(&report);
        assert!(
            report.violation.is_some(),
            "seed {seed} passes now: take it off KNOWN_OPEN_SEEDS"
        );
    }
}
