//! Append throughput and latency of each storage profile, one entry per persist (the cost
//! of one tick record) and 64 entries per persist (group commit).
//!
//! Run: `cargo bench -p baton --bench storage`. Besides criterion's report, prints one line
//! per case with appends/s and p50/p99 latency of a single persist, measured over every
//! iteration criterion ran. Machine noise: the box is shared; compare runs on one machine.

use baton::raft::{Entry, EntryPayload, Snapshot, SnapshotMeta};
use baton::storage::{
    Durability, FileStorage, FileStorageConfig, MemoryStorage, PersistBatch, Storage,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

const ENTRY_SIZES_BYTES: [usize; 2] = [64, 4096];
const GROUP_COMMIT_ENTRIES: usize = 64;
/// The log is compacted (untimed) every this many entries, so memory and disk stay bounded
/// as in a real session, whose runtime compacts the same way.
const COMPACT_EVERY_ENTRIES: u64 = 16_384;
/// Latency samples kept per case (a bound on memory; criterion runs far fewer in practice).
const LATENCY_SAMPLES_MAX: usize = 2_000_000;

fn profiles() -> [(&'static str, Durability); 3] {
    [
        ("durable", Durability::Durable),
        (
            "relaxed_10ms",
            Durability::Relaxed {
                fsync_interval: Duration::from_millis(10),
            },
        ),
        ("memory", Durability::Memory),
    ]
}

struct Bench {
    store: Box<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    next_index: u64,
}

impl Bench {
    fn new(durability: Durability) -> Bench {
        if durability == Durability::Memory {
            return Bench {
                store: Box::new(MemoryStorage::new()),
                _dir: None,
                next_index: 1,
            };
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = FileStorageConfig {
            durability,
            ..FileStorageConfig::default()
        };
        let store = FileStorage::open(dir.path(), config).expect("open store");
        Bench {
            store: Box::new(store),
            _dir: Some(dir),
            next_index: 1,
        }
    }

    fn persist(&mut self, entries: &mut [Entry]) -> Duration {
        for entry in entries.iter_mut() {
            entry.index = self.next_index;
            self.next_index += 1;
        }
        let started = Instant::now();
        self.store
            .persist(&PersistBatch {
                hard_state: None,
                snapshot: None,
                entries,
            })
            .expect("persist");
        let took = started.elapsed();
        if self.next_index % COMPACT_EVERY_ENTRIES < entries.len() as u64 {
            let last_index = self.next_index - 1;
            let compaction = Snapshot {
                meta: SnapshotMeta {
                    last_index,
                    last_term: 1,
                    ..SnapshotMeta::default()
                },
                data: vec![1; 64],
            };
            self.store
                .persist(&PersistBatch {
                    hard_state: None,
                    snapshot: Some(&compaction),
                    entries: &[],
                })
                .expect("compact");
        }
        took
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn report(name: &str, entries_per_persist: usize, mut latencies: Vec<Duration>) {
    if latencies.is_empty() {
        return; // filtered out on the command line
    }
    latencies.sort_unstable();
    let total: Duration = latencies.iter().sum();
    let persists_per_second = latencies.len() as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "SUMMARY {name}: {:.0} entries/s ({:.0} persists/s), persist latency p50 {:.1} us, p99 {:.1} us, over {} persists",
        persists_per_second * entries_per_persist as f64,
        persists_per_second,
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.len()
    );
}

fn bench_case(c: &mut Criterion, group_name: &str, entries_per_persist: usize) {
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for (profile, durability) in profiles() {
        for size in ENTRY_SIZES_BYTES {
            group.throughput(Throughput::Elements(entries_per_persist as u64));
            let mut bench = Bench::new(durability);
            let template = Entry {
                index: 0,
                term: 1,
                payload: EntryPayload::Command {
                    tag: None,
                    data: vec![0xA5; size],
                },
            };
            let mut entries = vec![template; entries_per_persist];
            let mut latencies = Vec::new();
            group.bench_function(BenchmarkId::new(profile, format!("{size}B")), |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let took = bench.persist(&mut entries);
                        total += took;
                        if latencies.len() < LATENCY_SAMPLES_MAX {
                            latencies.push(took);
                        }
                    }
                    total
                })
            });
            report(
                &format!("{group_name}/{profile}/{size}B"),
                entries_per_persist,
                latencies,
            );
        }
    }
    group.finish();
}

fn single_entry_appends(c: &mut Criterion) {
    bench_case(c, "append_1_entry_per_persist", 1);
}

fn group_commit_appends(c: &mut Criterion) {
    bench_case(c, "append_64_entries_per_persist", GROUP_COMMIT_ENTRIES);
}

criterion_group!(benches, single_entry_appends, group_commit_appends);
criterion_main!(benches);
