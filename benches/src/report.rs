//! The run's results: every figure, absolute and as a ratio to the paced QUIC round trip
//! of the same run; printed as tables or written as JSON (the field names are the ones
//! issue 13 fixed, see `docs/benchmarks.md`).

use crate::link::{LinkFault, LinkPlay};
use crate::migration::MigrationTrials;
use crate::process::{LargeSession, SessionCosts};
use crate::saturation::Throughput;
use crate::session::{Detection, TickLatencies};
use crate::stats::{quantile, Summary};
use crate::{BenchError, HarnessConfig};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Target: tick committed on the host, p50, at most this many paced QUIC round trips.
pub const TARGET_COMMIT_OVER_PACED: f64 = 1.25;
/// Target: planned handoff pause p99, at most this many 60 Hz ticks beyond the tick period
/// (a pause of one period is no pause).
pub const TARGET_HANDOFF_EXTRA_TICKS: f64 = 1.0;
/// Target: saturation throughput at least openraft's (ratio Baton / openraft).
pub const TARGET_THROUGHPUT_RATIO: f64 = 1.0;
/// Target: each node of a 10-player 60 Hz session under this share of one core, in %.
pub const TARGET_NODE_CPU_PERCENT: f64 = 2.0;
/// Target (issue 15): crash failover p99 with the host stopped in this process, at 60 Hz, ms
/// (6 ticks).
pub const TARGET_FAILOVER_IN_PROCESS_P99_MS: f64 = 100.0;
/// Target (issue 15): crash failover p99 with the host process killed by SIGKILL, ms.
pub const TARGET_FAILOVER_PROCESS_P99_MS: f64 = 150.0;

/// p50 and p99 (and more) of one round-trip floor, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Round trips timed.
    pub samples: usize,
}

impl From<Summary> for Floor {
    fn from(s: Summary) -> Floor {
        Floor {
            p50: s.p50_us,
            p99: s.p99_us,
            p999: s.p999_us,
            max: s.max_us,
            samples: s.samples,
        }
    }
}

/// One latency distribution of the session matrix.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRow {
    /// Players in the session.
    pub players: usize,
    /// Tick rate.
    pub hz: u32,
    /// `host` (tick produced → committed on the host), `follower` (→ applied on each other
    /// player) or `sender` (input submitted → committed, as its sender hears).
    pub seen_by: &'static str,
    /// Samples.
    pub samples: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs (the largest sample below 1000 samples).
    pub p999_us: f64,
    /// Largest sample, µs.
    pub max_us: f64,
    /// p50 over the paced QUIC floor's p50.
    pub p50_over_paced: f64,
    /// p99 over the paced QUIC floor's p99.
    pub p99_over_paced: f64,
    /// p99.9 over the paced QUIC floor's p99.9.
    pub p999_over_paced: f64,
}

/// How one session of the matrix behaved besides its latencies.
#[derive(Debug, Clone, Serialize)]
pub struct SessionNote {
    /// Players.
    pub players: usize,
    /// Configured tick rate.
    pub hz: u32,
    /// Ticks committed per second during the window.
    pub committed_rate_hz: f64,
    /// `TickOverrun` events in the window.
    pub overruns: u64,
    /// Host changes in the window.
    pub host_changes: u64,
}

/// Host moves of one kind over many trials.
#[derive(Debug, Clone, Serialize)]
pub struct MoveStats {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms (the worst trial below 100 trials).
    pub p99: f64,
    /// Worst trial, ms.
    pub max: f64,
    /// Trials measured.
    pub trials: usize,
    /// Trials in which the host did not move within the limit (not in the figures).
    pub trials_failed: usize,
    /// Whether the host was a real process killed with SIGKILL (crash trials).
    pub processes: bool,
    /// Tick rate of the sessions.
    pub hz: u32,
    /// `p50` in tick periods.
    pub p50_ticks: f64,
    /// `p99` in tick periods.
    pub p99_ticks: f64,
    /// `max` in tick periods.
    pub max_ticks: f64,
    /// What `p50`/`p99`/`max` measure.
    pub measures: &'static str,
    /// The other figure of the same trials (for a handoff: the time until the new host's
    /// first tick; for a failover: the longest pause between two ticks), ms.
    pub other_p50: f64,
    /// See `other_p50`.
    pub other_p99: f64,
    /// See `other_p50`.
    pub other_max: f64,
    /// Every trial's main figure, ms (for plots).
    pub per_trial_ms: Vec<f64>,
}

impl MoveStats {
    fn of(trials: &MigrationTrials, main_is_pause: bool, processes: bool) -> Option<MoveStats> {
        let ms = |samples: &[Duration]| -> Vec<f64> {
            samples.iter().map(|d| d.as_secs_f64() * 1e3).collect()
        };
        let (main, other, measures) = if main_is_pause {
            (
                ms(&trials.pauses),
                ms(&trials.to_new_host),
                "longest interval between two ticks applied on a remaining player",
            )
        } else {
            (
                ms(&trials.to_new_host),
                ms(&trials.pauses),
                "from the host stopping (or SIGKILL) until every survivor applied the new host's first tick",
            )
        };
        let period_ms = 1e3 / f64::from(trials.hz);
        let p50 = quantile(&main, 0.5)?;
        let p99 = quantile(&main, 0.99)?;
        let max = quantile(&main, 1.0)?;
        Some(MoveStats {
            p50,
            p99,
            max,
            trials: main.len(),
            trials_failed: trials.failed,
            processes,
            hz: trials.hz,
            p50_ticks: p50 / period_ms,
            p99_ticks: p99 / period_ms,
            max_ticks: max / period_ms,
            measures,
            other_p50: quantile(&other, 0.5)?,
            other_p99: quantile(&other, 0.99)?,
            other_max: quantile(&other, 1.0)?,
            per_trial_ms: main,
        })
    }
}

/// One saturation case, both systems.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// Bytes per proposal.
    pub payload_bytes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Baton proposals per second (runtime on loopback QUIC).
    pub baton: f64,
    /// openraft proposals per second (in-process calls).
    pub openraft: f64,
    /// `baton / openraft`.
    pub ratio: f64,
    /// Baton commit latency p50, µs.
    pub baton_p50_us: f64,
    /// Baton commit latency p99, µs.
    pub baton_p99_us: f64,
    /// openraft commit latency p50, µs.
    pub openraft_p50_us: f64,
    /// openraft commit latency p99, µs.
    pub openraft_p99_us: f64,
    /// Baton p50 over openraft p50.
    pub p50_ratio: f64,
}

/// A figure for the host and for a learner (and for a voter besides the host).
#[derive(Debug, Clone, Serialize)]
pub struct PerRole {
    /// The host's process.
    pub host: f64,
    /// The median learner process.
    pub learner: f64,
    /// The median voter process other than the host.
    pub voter: f64,
}

/// A latency row of the propose-per-storage-profile table.
#[derive(Debug, Clone, Serialize)]
pub struct ProposeRow {
    /// `memory`, `relaxed` or `durable`.
    pub store: String,
    /// The figures, µs.
    #[serde(flatten)]
    pub summary: Summary,
}

/// One faulty link: a session playing over it without a crash, and crashes over it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkRow {
    /// The fault on every link.
    pub fault: LinkFault,
    /// The window without a crash (needless elections counted), if it ran.
    pub play: Option<LinkPlay>,
    /// Crash failovers over the same fault, if they ran.
    pub failover_ms: Option<MoveStats>,
    /// The same with the fixed election timeout range, if they ran.
    pub failover_fixed_ms: Option<MoveStats>,
}

impl LinkRow {
    /// The row of a window played.
    pub fn played(play: LinkPlay) -> LinkRow {
        LinkRow {
            fault: play.fault,
            play: Some(play),
            failover_ms: None,
            failover_fixed_ms: None,
        }
    }
}

/// A target and how this run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// What is compared.
    pub what: &'static str,
    /// Measured value.
    pub measured: f64,
    /// The target.
    pub target: f64,
    /// Whether the measured value meets the target.
    pub met: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the run was asked to measure.
    pub settings: HarnessConfig,
    /// Raw quinn round trip, back to back, µs.
    pub quic_rtt_us: Option<Floor>,
    /// Raw quinn round trip, one per 60 Hz tick, µs: the floor every ratio divides by.
    pub quic_rtt_paced_us: Option<Floor>,
    /// Baton's transport round trip, back to back, µs.
    pub transport_rtt_us: Option<Floor>,
    /// The session matrix.
    pub commit: Vec<CommitRow>,
    /// One per session of the matrix.
    pub sessions: Vec<SessionNote>,
    /// Planned handoff (`leave()`): the pause players saw.
    pub handoff_gap_ms: Option<MoveStats>,
    /// Fitness handoff (the host's game score drops to 0): the pause players saw.
    pub score_handoff_gap_ms: Option<MoveStats>,
    /// Crash failover: real processes killed with SIGKILL when they ran, else in-process.
    pub failover_ms: Option<MoveStats>,
    /// Crash failover with the host stopped inside this process.
    pub failover_in_process_ms: Option<MoveStats>,
    /// `failover_ms` with the fixed election timeout range (before the measured detector).
    pub failover_fixed_ms: Option<MoveStats>,
    /// `failover_in_process_ms` with the fixed election timeout range.
    pub failover_in_process_fixed_ms: Option<MoveStats>,
    /// Faulty links (issue 15): needless elections and crash failovers over each.
    pub links: Vec<LinkRow>,
    /// Saturation, Baton beside openraft.
    pub throughput_per_s: Vec<ThroughputRow>,
    /// CPU per node of the cost session, % of one core.
    pub node_cpu_percent: Option<PerRole>,
    /// Resident memory per node of the cost session, MiB.
    pub node_rss_mib: Option<PerRole>,
    /// The cost session in full (every process).
    pub session_costs: Option<SessionCosts>,
    /// The large session (host cost as the session grows).
    pub large_session: Option<LargeSession>,
    /// Propose → applied latency per storage profile (single client).
    pub propose_us: Vec<ProposeRow>,
    /// The targets of issue 13 against this run.
    pub headline: Vec<Headline>,
    /// Wall time of the whole run, in seconds.
    pub elapsed_s: f64,
    /// The distributions the plot draws (not in the JSON: the percentiles are).
    #[serde(skip)]
    pub cdfs: Vec<crate::plot::Cdf>,
}

fn micros(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e6).collect()
}

fn over(value: f64, floor: f64) -> f64 {
    if floor > 0.0 {
        value / floor
    } else {
        f64::NAN
    }
}

fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5).unwrap_or(f64::NAN)
}

impl Report {
    /// An empty report for a run of `config`.
    pub fn new(config: &HarnessConfig) -> Report {
        Report {
            settings: config.clone(),
            quic_rtt_us: None,
            quic_rtt_paced_us: None,
            transport_rtt_us: None,
            commit: Vec::new(),
            sessions: Vec::new(),
            handoff_gap_ms: None,
            score_handoff_gap_ms: None,
            failover_ms: None,
            failover_in_process_ms: None,
            failover_fixed_ms: None,
            failover_in_process_fixed_ms: None,
            links: Vec::new(),
            throughput_per_s: Vec::new(),
            node_cpu_percent: None,
            node_rss_mib: None,
            session_costs: None,
            large_session: None,
            propose_us: Vec::new(),
            headline: Vec::new(),
            elapsed_s: 0.0,
            cdfs: Vec::new(),
        }
    }

    /// Records a floor: `key` is `quic`, `quic_paced` or `transport`.
    pub fn set_floor(&mut self, key: &str, samples: &[Duration]) -> Result<(), BenchError> {
        let floor = Floor::from(
            Summary::of(samples).ok_or_else(|| BenchError::NoSamples(format!("{key} rtt")))?,
        );
        match key {
            "quic" => self.quic_rtt_us = Some(floor),
            "quic_paced" => {
                self.cdfs.push(crate::plot::Cdf::of(
                    "raw QUIC round trip, one per 60 Hz tick",
                    &micros(samples),
                ));
                self.quic_rtt_paced_us = Some(floor)
            }
            _ => self.transport_rtt_us = Some(floor),
        }
        Ok(())
    }

    /// Adds the three rows of one session of the matrix (the paced floor must be set).
    pub fn add_session(&mut self, ticks: &TickLatencies) -> Result<(), BenchError> {
        let floor = self
            .quic_rtt_paced_us
            .clone()
            .ok_or(BenchError::Protocol("the paced floor is measured first"))?;
        for (seen_by, samples) in [
            ("host", &ticks.produced_to_host_commit),
            ("follower", &ticks.produced_to_follower_apply),
            ("sender", &ticks.input_to_commit),
        ] {
            let s = Summary::of(samples).ok_or_else(|| {
                BenchError::NoSamples(format!("{}p {} Hz {seen_by}", ticks.players, ticks.hz))
            })?;
            self.commit.push(CommitRow {
                players: ticks.players,
                hz: ticks.hz,
                seen_by,
                samples: s.samples,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
                p999_us: s.p999_us,
                max_us: s.max_us,
                p50_over_paced: over(s.p50_us, floor.p50),
                p99_over_paced: over(s.p99_us, floor.p99),
                p999_over_paced: over(s.p999_us, floor.p999),
            });
        }
        self.cdfs.push(crate::plot::Cdf::of(
            format!("{} players, {} Hz", ticks.players, ticks.hz),
            &micros(&ticks.produced_to_host_commit),
        ));
        self.sessions.push(SessionNote {
            players: ticks.players,
            hz: ticks.hz,
            committed_rate_hz: ticks.committed_rate_hz,
            overruns: ticks.overruns,
            host_changes: ticks.host_changes,
        });
        Ok(())
    }

    /// Records one kind of host move; crashes go to the fields of their `detection`.
    pub fn add_moves(
        &mut self,
        trials: &MigrationTrials,
        processes: bool,
        detection: Detection,
    ) -> Result<(), BenchError> {
        use crate::migration::MigrationKind;
        let missing = || BenchError::NoSamples(format!("migration {}", trials.kind.key()));
        match trials.kind {
            MigrationKind::Leave => {
                self.handoff_gap_ms = Some(MoveStats::of(trials, true, false).ok_or_else(missing)?)
            }
            MigrationKind::GameScore => {
                self.score_handoff_gap_ms =
                    Some(MoveStats::of(trials, true, false).ok_or_else(missing)?)
            }
            MigrationKind::Crash if detection == Detection::Fixed => {
                let stats = MoveStats::of(trials, false, processes).ok_or_else(missing)?;
                if processes {
                    self.failover_fixed_ms = Some(stats);
                } else {
                    self.failover_in_process_fixed_ms = Some(stats);
                }
            }
            MigrationKind::Crash => {
                let stats = MoveStats::of(trials, false, processes).ok_or_else(missing)?;
                if processes {
                    self.failover_ms = Some(stats);
                } else {
                    // The process trials, when they run, are the headline failover; the
                    // in-process ones stay beside them.
                    if !matches!(&self.failover_ms, Some(f) if f.processes) {
                        self.failover_ms = Some(stats.clone());
                    }
                    self.failover_in_process_ms = Some(stats);
                }
            }
        }
        Ok(())
    }

    /// Records the crash failovers over a faulty link.
    pub fn add_link_crashes(
        &mut self,
        fault: LinkFault,
        detection: Detection,
        trials: &MigrationTrials,
    ) -> Result<(), BenchError> {
        let stats = MoveStats::of(trials, false, false)
            .ok_or_else(|| BenchError::NoSamples(format!("link crash {fault:?}")))?;
        let row = match self.links.iter().position(|row| row.fault == fault) {
            Some(at) => &mut self.links[at],
            None => {
                self.links.push(LinkRow {
                    fault,
                    play: None,
                    failover_ms: None,
                    failover_fixed_ms: None,
                });
                let last = self.links.len() - 1;
                &mut self.links[last]
            }
        };
        match detection {
            Detection::Fixed => row.failover_fixed_ms = Some(stats),
            Detection::Measured => row.failover_ms = Some(stats),
        }
        Ok(())
    }

    /// Records one saturation case.
    pub fn add_throughput(
        &mut self,
        payload_bytes: usize,
        clients: usize,
        baton: &Throughput,
        openraft: &Throughput,
    ) {
        self.throughput_per_s.push(ThroughputRow {
            payload_bytes,
            clients,
            baton: baton.per_s,
            openraft: openraft.per_s,
            ratio: over(baton.per_s, openraft.per_s),
            baton_p50_us: baton.latency.p50_us,
            baton_p99_us: baton.latency.p99_us,
            openraft_p50_us: openraft.latency.p50_us,
            openraft_p99_us: openraft.latency.p99_us,
            p50_ratio: over(baton.latency.p50_us, openraft.latency.p50_us),
        });
    }

    /// Records the cost session.
    pub fn set_costs(&mut self, costs: SessionCosts) {
        let pick = |role: &str, figure: fn(&crate::process::NodeCost) -> f64| {
            let values: Vec<f64> = costs
                .nodes
                .iter()
                .filter(|node| node.role == role)
                .map(figure)
                .collect();
            median(&values)
        };
        self.node_cpu_percent = Some(PerRole {
            host: pick("leader", |n| n.cpu_percent),
            learner: pick("learner", |n| n.cpu_percent),
            voter: pick("voter", |n| n.cpu_percent),
        });
        self.node_rss_mib = Some(PerRole {
            host: pick("leader", |n| n.rss_mib),
            learner: pick("learner", |n| n.rss_mib),
            voter: pick("voter", |n| n.rss_mib),
        });
        self.session_costs = Some(costs);
    }

    /// Compares the run with the targets of issue 13.
    pub fn judge(&mut self) {
        let mut headline = Vec::new();
        if let Some(row) = self
            .commit
            .iter()
            .filter(|row| row.seen_by == "host")
            .max_by(|a, b| a.p50_over_paced.total_cmp(&b.p50_over_paced))
        {
            headline.push(Headline {
                what: "tick committed on host, p50 / paced QUIC p50 (worst session of the matrix)",
                measured: row.p50_over_paced,
                target: TARGET_COMMIT_OVER_PACED,
                met: row.p50_over_paced <= TARGET_COMMIT_OVER_PACED,
            });
        }
        if let Some(handoff) = &self.handoff_gap_ms {
            // The pause includes the tick period itself; what the handoff adds is beyond it.
            let extra_ticks_60 = (handoff.p99 - 1e3 / f64::from(handoff.hz)) / (1e3 / 60.0);
            headline.push(Headline {
                what: "planned handoff pause p99 beyond the tick period, in 60 Hz ticks",
                measured: extra_ticks_60,
                target: TARGET_HANDOFF_EXTRA_TICKS,
                met: extra_ticks_60 <= TARGET_HANDOFF_EXTRA_TICKS,
            });
        }
        if let Some(row) = self
            .throughput_per_s
            .iter()
            .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
        {
            headline.push(Headline {
                what: "saturation proposals/s, Baton / openraft (worst case)",
                measured: row.ratio,
                target: TARGET_THROUGHPUT_RATIO,
                met: row.ratio >= TARGET_THROUGHPUT_RATIO,
            });
        }
        if let Some(cpu) = &self.node_cpu_percent {
            let worst = [cpu.host, cpu.learner, cpu.voter]
                .into_iter()
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            headline.push(Headline {
                what: "10-player 60 Hz session, busiest node's CPU, % of one core",
                measured: worst,
                target: TARGET_NODE_CPU_PERCENT,
                met: worst < TARGET_NODE_CPU_PERCENT,
            });
        }
        for (what, stats, target) in [
            (
                "crash failover p99, host stopped in-process, 60 Hz loopback, ms",
                &self.failover_in_process_ms,
                TARGET_FAILOVER_IN_PROCESS_P99_MS,
            ),
            (
                "crash failover p99, host process SIGKILLed, 60 Hz loopback, ms",
                &self.failover_ms,
                TARGET_FAILOVER_PROCESS_P99_MS,
            ),
        ] {
            if let Some(stats) = stats
                .as_ref()
                .filter(|s| s.processes == what.contains("SIGKILL"))
            {
                headline.push(Headline {
                    what,
                    measured: stats.p99,
                    target,
                    met: stats.p99 <= target,
                });
            }
        }
        for row in &self.links {
            if let Some(play) = &row.play {
                headline.push(Headline {
                    what: match row.fault {
                        LinkFault::Delay => "needless elections (term changes), 80 ± 40 ms link",
                        LinkFault::Loss => "needless elections (term changes), 2 % loss link",
                    },
                    measured: play.term_changes as f64,
                    target: 0.0,
                    met: play.term_changes == 0,
                });
            }
        }
        self.headline = headline;
    }

    /// The report as tables for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Floors (loopback, µs)");
        let _ = writeln!(
            out,
            "  {:<42} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "", "n", "p50", "p99", "p99.9", "max"
        );
        for (label, floor) in [
            ("raw QUIC round trip, back to back", &self.quic_rtt_us),
            (
                "raw QUIC round trip, one per 60 Hz tick",
                &self.quic_rtt_paced_us,
            ),
            ("Baton transport round trip", &self.transport_rtt_us),
        ] {
            if let Some(f) = floor {
                let _ = writeln!(
                    out,
                    "  {label:<42} {:>6} {:>9} {:>9} {:>9} {:>9}",
                    f.samples,
                    us(f.p50),
                    us(f.p99),
                    us(f.p999),
                    us(f.max)
                );
            }
        }
        let _ = writeln!(
            out,
            "\nSession matrix (xP = ratio to the paced QUIC floor's same percentile)"
        );
        let _ = writeln!(
            out,
            "  {:>3} {:>4} {:<9} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}",
            "pl", "Hz", "seen by", "n", "p50", "p99", "p99.9", "max", "p50xP", "p99xP", "p999xP"
        );
        for row in &self.commit {
            let _ = writeln!(
                out,
                "  {:>3} {:>4} {:<9} {:>6} {:>9} {:>9} {:>9} {:>9} {:>6.2}x {:>6.2}x {:>6.2}x",
                row.players,
                row.hz,
                row.seen_by,
                row.samples,
                us(row.p50_us),
                us(row.p99_us),
                us(row.p999_us),
                us(row.max_us),
                row.p50_over_paced,
                row.p99_over_paced,
                row.p999_over_paced
            );
        }
        for note in &self.sessions {
            if note.overruns > 0 || note.host_changes > 0 {
                let _ = writeln!(
                    out,
                    "  note: {}p {} Hz: {:.1} ticks/s, {} overruns, {} host changes",
                    note.players, note.hz, note.committed_rate_hz, note.overruns, note.host_changes
                );
            }
        }
        let _ = writeln!(out, "\nHost moves");
        for (label, stats) in [
            ("planned handoff (leave), pause", &self.handoff_gap_ms),
            (
                "fitness handoff (score 0), pause",
                &self.score_handoff_gap_ms,
            ),
            ("crash failover, headline", &self.failover_ms),
            (
                "crash failover, in-process stop",
                &self.failover_in_process_ms,
            ),
            ("crash failover, headline, FIXED", &self.failover_fixed_ms),
            (
                "crash failover, in-process, FIXED",
                &self.failover_in_process_fixed_ms,
            ),
        ] {
            if let Some(s) = stats {
                let _ = writeln!(
                    out,
                    "  {label:<34} {:>3} trials ({} failed) @{} Hz{}: p50 {:.1} ms ({:.2} ticks), p99 {:.1} ms ({:.2}), max {:.1} ms ({:.2}); other figure p50 {:.1} / p99 {:.1} / max {:.1} ms",
                    s.trials,
                    s.trials_failed,
                    s.hz,
                    if s.processes { ", SIGKILL" } else { "" },
                    s.p50,
                    s.p50_ticks,
                    s.p99,
                    s.p99_ticks,
                    s.max,
                    s.max_ticks,
                    s.other_p50,
                    s.other_p99,
                    s.other_max
                );
            }
        }
        for row in &self.links {
            let _ = writeln!(out, "\nFaulty link: {}", row.fault.label());
            if let Some(play) = &row.play {
                let _ = writeln!(
                    out,
                    "  {} players at {} Hz for {:.0} s: {} term changes (needless elections), {} host changes, {:.1} ticks/s applied; followers' detection timeouts {:?} ms",
                    play.players,
                    play.hz,
                    play.window_s,
                    play.term_changes,
                    play.host_changes,
                    play.applied_rate_hz,
                    play.detection_timeout_ms
                );
            }
            for (label, stats) in [
                ("measured", &row.failover_ms),
                ("FIXED", &row.failover_fixed_ms),
            ] {
                if let Some(s) = stats {
                    let _ = writeln!(
                        out,
                        "  crash failover, {label:<8} {:>3} trials ({} failed) @{} Hz: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; pause p50 {:.1} / p99 {:.1} ms",
                        s.trials, s.trials_failed, s.hz, s.p50, s.p99, s.max, s.other_p50, s.other_p99
                    );
                }
            }
        }
        if !self.throughput_per_s.is_empty() {
            let _ = writeln!(out, "\nSaturation, proposals/s (commit latency p50 / p99)");
            for row in &self.throughput_per_s {
                let _ = writeln!(
                    out,
                    "  {:>5} B {:>5} clients: Baton {:>9.0} ({} / {})  openraft {:>9.0} ({} / {})  ratio {:.2}",
                    row.payload_bytes,
                    row.clients,
                    row.baton,
                    us(row.baton_p50_us),
                    us(row.baton_p99_us),
                    row.openraft,
                    us(row.openraft_p50_us),
                    us(row.openraft_p99_us),
                    row.ratio
                );
            }
        }
        if let (Some(cpu), Some(rss), Some(costs)) = (
            &self.node_cpu_percent,
            &self.node_rss_mib,
            &self.session_costs,
        ) {
            let _ = writeln!(
                out,
                "\nNode cost, {}-player {} Hz session over {:.0} s ({:.1} ticks/s): host {:.2} % CPU {:.1} MiB; voter {:.2} % {:.1} MiB; learner {:.2} % {:.1} MiB",
                costs.players,
                costs.hz,
                costs.window_s,
                costs.committed_rate_hz,
                cpu.host,
                rss.host,
                cpu.voter,
                rss.voter,
                cpu.learner,
                rss.learner
            );
        }
        if let Some(large) = &self.large_session {
            let _ = writeln!(
                out,
                "{}-player {} Hz session ({} voters): {:.1} ticks/s, host {:.1} % CPU, {:.1} MiB, {:.1} packets sent per tick{}; all other players together {:.1} % CPU",
                large.players,
                large.hz,
                large.voters,
                large.committed_rate_hz,
                large.host_cpu_percent,
                large.host_rss_mib,
                large.host_packets_per_tick,
                match (large.host_bytes_per_tick, &large.bytes_not_counted) {
                    (Some(b), _) => format!(", {b:.0} bytes sent per tick"),
                    (None, Some(why)) => format!(" (bytes not counted: {why})"),
                    (None, None) => String::new(),
                },
                large.others_cpu_percent
            );
        }
        if !self.propose_us.is_empty() {
            let _ = writeln!(out, "\nSingle-client propose -> applied, per store");
            for row in &self.propose_us {
                let _ = writeln!(
                    out,
                    "  {:<8} n {:>5}  p50 {:>9}  p99 {:>9}  max {:>9}",
                    row.store,
                    row.summary.samples,
                    us(row.summary.p50_us),
                    us(row.summary.p99_us),
                    us(row.summary.max_us)
                );
            }
        }
        if !self.headline.is_empty() {
            let _ = writeln!(out, "\nTargets");
            for h in &self.headline {
                let _ = writeln!(
                    out,
                    "  [{}] {}: {:.2} (target {:.2})",
                    if h.met { "met" } else { "MISSED" },
                    h.what,
                    h.measured,
                    h.target
                );
            }
        }
        let _ = writeln!(out, "\nRun took {:.1} s.", self.elapsed_s);
        out
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, BenchError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Microseconds for people: `83 µs`, `1.24 ms`.
fn us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::MigrationKind;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn commit_rows_divide_by_the_paced_floor_of_the_same_percentile() {
        let mut report = Report::new(&HarnessConfig::default());
        let ticks = TickLatencies {
            players: 3,
            hz: 60,
            produced_to_host_commit: millis(&[2, 2, 2]),
            produced_to_follower_apply: millis(&[3]),
            input_to_commit: millis(&[10]),
            ..TickLatencies::default()
        };
        assert!(report.add_session(&ticks).is_err(), "floor first");
        report.set_floor("quic_paced", &millis(&[1, 1, 1])).unwrap();
        report.add_session(&ticks).unwrap();
        assert_eq!(report.commit.len(), 3);
        assert!((report.commit[0].p50_over_paced - 2.0).abs() < 1e-9);
        assert_eq!(report.commit[2].seen_by, "sender");
        assert!(report.table().contains("sender"));
    }

    #[test]
    fn moves_are_in_ms_and_ticks_and_the_handoff_target_counts_beyond_one_period() {
        let mut report = Report::new(&HarnessConfig::default());
        let trials = MigrationTrials {
            kind: MigrationKind::Leave,
            hz: 60,
            pauses: millis(&[17, 17, 20]),
            to_new_host: millis(&[5, 6, 7]),
            failed: 0,
        };
        report
            .add_moves(&trials, false, Detection::Measured)
            .unwrap();
        let handoff = report.handoff_gap_ms.as_ref().unwrap();
        assert_eq!(handoff.trials, 3);
        assert!((handoff.max - 20.0).abs() < 1e-9);
        assert!((handoff.max_ticks - 1.2).abs() < 1e-9);
        report.judge();
        let target = &report.headline[0];
        assert!(target.met, "{target:?}");
        assert!(target.measured < 0.3);
    }
}
