//! Crash tests with real processes: a child process persists batches and prints each one
//! before (`BEGIN`) and after (`ACK`) `persist` returns; the parent kills it with SIGKILL at a
//! random moment, reopens the directory and checks that every acknowledged batch is there,
//! in order, and that the batch in flight is either there whole or not at all.
//!
//! The child is this test binary re-executed with `BATON_STORAGE_CRASH_CHILD` set. Default:
//! `CRASH_ITERATIONS_DEFAULT` kills; `BATON_SOAK=1` runs `CRASH_ITERATIONS_SOAK`.
//! `BATON_STORAGE_CRASH_SEED=<n>` replays one run.

mod storage_common;

use baton::raft::{Entry, HardState, Index, Term};
use baton::storage::{Durability, FileStorage, PersistBatch, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use storage_common::*;

const CHILD_ENV: &str = "BATON_STORAGE_CRASH_CHILD";
const CHILD_SEED_ENV: &str = "BATON_STORAGE_CRASH_CHILD_SEED";
const CHILD_RELAXED_ENV: &str = "BATON_STORAGE_CRASH_CHILD_RELAXED";
const CRASH_ITERATIONS_DEFAULT: u32 = 50;
const CRASH_ITERATIONS_SOAK: u32 = 500;
const CHILD_BATCHES_MAX: u32 = 3_000;
const KILL_DELAY_MS_MAX: u64 = 250;
const CRASH_SEGMENT_BYTES: u64 = 8 * 1024;

/// Entry sizes: mostly small, some empty, some of tens of KiB (several segments' worth), a
/// few of several MiB.
fn entry_len(index: Index, term: Term) -> usize {
    let hash = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let hash = hash ^ (hash >> 29);
    match hash % 200 {
        0..=4 => 0,
        5..=9 => 20_000 + (hash % 40_000) as usize,
        // Multi-MiB entries make write() slow enough for a SIGKILL to land inside it and
        // tear the record for real.
        10 => (2 << 20) + (hash % (2 << 20)) as usize,
        _ => (hash % 700) as usize,
    }
}

fn crash_entry(index: Index, term: Term) -> Entry {
    entry(index, term, entry_len(index, term))
}

/// One batch as the child announces it: entries `first..=last` at `term` (none when
/// `first == 0`), an optional snapshot (`snap_index`, `snap_term`; 0 = none) and a hard state.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BatchLine {
    first: Index,
    last: Index,
    term: Term,
    snap_index: Index,
    snap_term: Term,
    hs_term: Term,
    hs_commit: Index,
}

impl BatchLine {
    fn to_line(self) -> String {
        format!(
            "BEGIN {} {} {} {} {} {} {}",
            self.first,
            self.last,
            self.term,
            self.snap_index,
            self.snap_term,
            self.hs_term,
            self.hs_commit
        )
    }

    fn parse(line: &str) -> Option<BatchLine> {
        // libtest may print "test crash_child ... " on the same line before the child's output.
        let fields: Vec<u64> = line[line.find("BEGIN ")?..]
            .strip_prefix("BEGIN ")?
            .split(' ')
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        let [first, last, term, snap_index, snap_term, hs_term, hs_commit] =
            fields.try_into().ok()?;
        Some(BatchLine {
            first,
            last,
            term,
            snap_index,
            snap_term,
            hs_term,
            hs_commit,
        })
    }

    fn hard_state(self) -> HardState {
        HardState {
            term: self.hs_term,
            vote: Some(1),
            commit: self.hs_commit,
        }
    }
}

/// The parent's model of the store: what the acknowledged batches add up to.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    snapshot: Option<(Index, Term)>,
    /// (index, term) of the entries after the snapshot.
    log: Vec<(Index, Term)>,
    hard_state: HardState,
}

impl Model {
    fn apply(&mut self, batch: BatchLine) {
        if batch.snap_index > 0 {
            let keeps = self
                .log
                .iter()
                .any(|&(index, term)| index == batch.snap_index && term == batch.snap_term)
                || (self.snapshot == Some((batch.snap_index, batch.snap_term)));
            if keeps {
                self.log.retain(|&(index, _)| index > batch.snap_index);
            } else {
                self.log.clear();
            }
            self.snapshot = Some((batch.snap_index, batch.snap_term));
        }
        if batch.first > 0 {
            self.log.retain(|&(index, _)| index < batch.first);
            self.log
                .extend((batch.first..=batch.last).map(|index| (index, batch.term)));
        }
        self.hard_state = batch.hard_state();
    }

    fn check(&self, dir: &Path) -> Result<(), String> {
        let store = FileStorage::open(dir, config(Durability::Durable, CRASH_SEGMENT_BYTES))
            .map_err(|error| error.to_string())?;
        let state = store.initial_state();
        let snapshot = state
            .snapshot
            .as_ref()
            .map(|snapshot| (snapshot.meta.last_index, snapshot.meta.last_term));
        if snapshot != self.snapshot {
            return Err(format!(
                "snapshot {snapshot:?}, expected {:?}",
                self.snapshot
            ));
        }
        if state.hard_state != self.hard_state {
            return Err(format!(
                "hard state {:?}, expected {:?}",
                state.hard_state, self.hard_state
            ));
        }
        if indexes(state) != self.log {
            return Err(format!(
                "log of {} entries ({:?}..), expected {} ({:?}..)",
                state.entries.len(),
                state.entries.first().map(|entry| (entry.index, entry.term)),
                self.log.len(),
                self.log.first()
            ));
        }
        for entry in &state.entries {
            if *entry != crash_entry(entry.index, entry.term) {
                return Err(format!("entry {} has the wrong payload", entry.index));
            }
        }
        Ok(())
    }
}

/// The last segment and its length (none yet if the first child died before creating it).
fn last_segment_len(dir: &Path) -> (std::path::PathBuf, u64) {
    let last = segment_files(dir).pop().unwrap_or_else(|| dir.join("none"));
    let len = std::fs::metadata(&last).map_or(0, |metadata| metadata.len());
    (last, len)
}

/// Truncates, zeroes or garbles part of what was written after the durable length of the
/// last segment (all of a segment started after it). Returns false when nothing was written.
fn damage_unsynced_tail(
    dir: &Path,
    durable_tail: &(std::path::PathBuf, u64),
    rng: &mut ChaCha8Rng,
) -> bool {
    let (last, len) = last_segment_len(dir);
    let durable_len = if last == durable_tail.0 {
        durable_tail.1
    } else {
        0
    };
    if len <= durable_len {
        return false;
    }
    let from = rng.random_range(durable_len..len);
    let mut bytes = std::fs::read(&last).unwrap();
    match rng.random_range(0..3) {
        0 => bytes.truncate(from as usize),
        1 => bytes[from as usize..].fill(0),
        _ => bytes[from as usize..]
            .iter_mut()
            .for_each(|byte| *byte = rng.random()),
    }
    std::fs::write(&last, bytes).unwrap();
    true
}

/// Reopens and checks against the model; counts reopens that cut the last segment short.
fn check_counting_cuts(model: &Model, dir: &Path, tails_cut: &mut u64) -> Result<(), String> {
    let (last, len_before) = last_segment_len(dir);
    let result = model.check(dir);
    if std::fs::metadata(&last).map_or(0, |metadata| metadata.len()) < len_before {
        *tails_cut += 1;
    }
    result
}

/// The child: appends, truncates, compacts and installs snapshots until killed.
fn run_child(dir: &Path, seed: u64, relaxed: bool) {
    let durability = if relaxed {
        Durability::Relaxed {
            fsync_interval: Duration::from_millis(3),
        }
    } else {
        Durability::Durable
    };
    let mut store = FileStorage::open(dir, config(durability, CRASH_SEGMENT_BYTES)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut term = store
        .hard_state()
        .term
        .max(store.term_at(store.last_index()).unwrap_or(0))
        .max(1);
    let mut commit = store.hard_state().commit;
    for _ in 0..CHILD_BATCHES_MAX {
        let snap = store.snapshot_index();
        let last = store.last_index();
        let mut line = BatchLine {
            first: 0,
            last: 0,
            term,
            snap_index: 0,
            snap_term: 0,
            hs_term: term,
            hs_commit: commit,
        };
        match rng.random_range(0..100) {
            0..=74 => {
                line.first = last + 1;
                line.last = last + rng.random_range(1..=8);
            }
            75..=86 if last > snap => {
                // A new leader overwrites a suffix.
                term += 1;
                line.term = term;
                line.first = rng.random_range(snap + 1..=last);
                line.last = line.first + rng.random_range(0..=4);
            }
            87..=94 if last > snap => {
                // Compaction: the snapshot matches the log, which survives after it.
                line.snap_index = rng.random_range(snap + 1..=last);
                line.snap_term = store.term_at(line.snap_index).unwrap();
            }
            95..=97 => {
                // A leader's snapshot that does not match: the log is dropped.
                term += 1;
                line.term = term;
                line.snap_index = last + rng.random_range(0..=3);
                line.snap_term = term;
                line.first = line.snap_index + 1;
                line.last = line.first + rng.random_range(0..=2);
            }
            _ => {}
        }
        commit = commit.max(line.last.min(snap + 1));
        line.hs_term = term;
        line.hs_commit = commit;
        let items: Vec<Entry> = if line.first > 0 {
            (line.first..=line.last)
                .map(|index| crash_entry(index, line.term))
                .collect()
        } else {
            Vec::new()
        };
        let snapshot_value =
            (line.snap_index > 0).then(|| snapshot(line.snap_index, line.snap_term));
        println!("{}", line.to_line());
        store
            .persist(&PersistBatch {
                hard_state: Some(line.hard_state()),
                snapshot: snapshot_value.as_ref(),
                entries: &items,
            })
            .unwrap();
        let (segment, durable_len) = store.active_segment();
        println!("ACK {} {durable_len}", segment.display());
    }
}

/// Entry point of the re-executed child; a no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seed = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    run_child(
        Path::new(&dir),
        seed,
        std::env::var(CHILD_RELAXED_ENV).is_ok(),
    );
}

fn spawn_and_kill(dir: &Path, seed: u64, relaxed: bool, kill_after: Duration) -> Vec<String> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if relaxed {
        command.env(CHILD_RELAXED_ENV, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    std::thread::sleep(kill_after);
    let _ = child.kill(); // SIGKILL; the child may already have finished its batches.
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    // A clean exit is fine (it ran out of batches); any other death than our kill is a failure.
    assert!(
        status.success() || status.code().is_none(),
        "child failed: {status:?}\n{}",
        lines.join("\n")
    );
    lines
}

#[test]
fn acknowledged_batches_survive_sigkill_at_random_moments() {
    let soak = std::env::var("BATON_SOAK").is_ok_and(|value| value == "1");
    let iterations = if soak {
        CRASH_ITERATIONS_SOAK
    } else {
        CRASH_ITERATIONS_DEFAULT
    };
    let seed: u64 = std::env::var("BATON_STORAGE_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0xBA70_0001);
    println!("storage crash test: seed {seed}, {iterations} iterations (replay: BATON_STORAGE_CRASH_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let (mut acknowledged, mut lost_in_flight, mut tails_cut, mut power_cuts) =
        (0u64, 0u64, 0u64, 0u64);
    // The last segment and the length of it known durable (fsynced before the last ACK, or
    // by the parent's own reopen, which fsyncs the active segment).
    let mut durable_tail = (dir.path().join("none"), 0u64);
    for iteration in 0..iterations {
        let relaxed = iteration % 4 == 3;
        let kill_after = Duration::from_millis(rng.random_range(1..=KILL_DELAY_MS_MAX));
        let child_seed = rng.random();
        let lines = spawn_and_kill(dir.path(), child_seed, relaxed, kill_after);
        let mut in_flight = None;
        for line in &lines {
            if let Some(batch) = BatchLine::parse(line) {
                assert!(in_flight.is_none(), "BEGIN without ACK before {line}");
                in_flight = Some(batch);
            } else if let Some(position) = line.find("ACK ") {
                model.apply(in_flight.take().expect("ACK without BEGIN"));
                acknowledged += 1;
                let (path, len) = line[position + 4..]
                    .rsplit_once(' ')
                    .expect("ACK <segment> <length>");
                durable_tail = (path.into(), len.parse().expect("segment length"));
            }
        }
        // Power cut: what the batch in flight wrote may never have been fsynced, so any of it
        // may be missing or garbage. Recovery must cut it off and keep every acknowledged
        // batch. Only for batches without a snapshot: the kill may have come after the fsync
        // (before the ACK), and a snapshot batch then already deleted what it replaced.
        let plain_batch_in_flight = in_flight.is_some_and(|batch| batch.snap_index == 0);
        if !relaxed
            && plain_batch_in_flight
            && rng.random_bool(0.5)
            && damage_unsynced_tail(dir.path(), &durable_tail, &mut rng)
        {
            power_cuts += 1;
            let context = format!("iteration {iteration} (seed {seed}, power cut after kill)");
            check_counting_cuts(&model, dir.path(), &mut tails_cut)
                .unwrap_or_else(|error| panic!("{context}: {error}"));
            in_flight = None;
        }
        let context = format!(
            "iteration {iteration} (seed {seed}, relaxed {relaxed}, kill after {kill_after:?})"
        );
        match check_counting_cuts(&model, dir.path(), &mut tails_cut) {
            Ok(()) => {
                if in_flight.is_some() {
                    lost_in_flight += 1;
                }
            }
            Err(without) => {
                // The batch in flight may have become durable before the kill: then it is there whole.
                let batch = in_flight.unwrap_or_else(|| panic!("{context}: {without}"));
                model.apply(batch);
                if let Err(with) = check_counting_cuts(&model, dir.path(), &mut tails_cut) {
                    panic!("{context}: neither without the batch in flight ({without}) nor with it ({with}): {batch:?}");
                }
            }
        }
        durable_tail = last_segment_len(dir.path());
    }
    println!(
        "storage crash test: {acknowledged} acknowledged batches checked, {lost_in_flight} in-flight batches lost whole, {tails_cut} torn tails cut, {power_cuts} simulated power cuts"
    );
    assert!(
        acknowledged > u64::from(iterations),
        "children acknowledged too little to test anything"
    );
}

const LOCK_CHILD_ENV: &str = "BATON_STORAGE_LOCK_CHILD";
/// How long the lock-holding child waits to be killed before it gives up by itself.
const LOCK_CHILD_LIFETIME_MAX: Duration = Duration::from_secs(30);

/// Entry point of the re-executed lock-holding child; a no-op in a normal test run.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD_ENV) else {
        return;
    };
    let _store = FileStorage::open(
        Path::new(&dir),
        config(Durability::Durable, CRASH_SEGMENT_BYTES),
    )
    .unwrap();
    println!("OPENED");
    std::thread::sleep(LOCK_CHILD_LIFETIME_MAX);
}

#[test]
fn another_process_is_refused_until_it_dies_by_sigkill() {
    use baton::storage::StorageError;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(LOCK_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.unwrap().ends_with("OPENED")),
        "the child never opened the store"
    );
    match FileStorage::open(dir.path(), config(Durability::Durable, CRASH_SEGMENT_BYTES)) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
        other => {
            panic!("expected Locked while the other process holds the directory, got {other:?}")
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel drops the flock with the process: no stale lock after a crash.
    assert!(
        FileStorage::open(dir.path(), config(Durability::Durable, CRASH_SEGMENT_BYTES)).is_ok()
    );
}
