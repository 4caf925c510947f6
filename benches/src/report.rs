//! The run's results: one row per measurement, each with its ratio to the raw QUIC round
//! trip of the same run and the share of a tick budget its p99 uses; printed as a table or
//! written as JSON.

use crate::migration::MigrationTrials;
use crate::session::TickLatencies;
use crate::stats::Summary;
use crate::{BenchError, HarnessConfig};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Tick rates whose budget every row is compared with, in ticks per second.
pub const BUDGET_RATES_HZ: [u32; 2] = [60, 30];

/// One measured latency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable identifier (for scripts reading the JSON).
    pub key: String,
    /// What was measured, for people.
    pub label: String,
    /// The figures, in microseconds.
    #[serde(flatten)]
    pub summary: Summary,
    /// p50 divided by the baseline's p50 (how many QUIC round trips the median costs).
    pub p50_in_rtts: f64,
    /// p99 divided by the baseline's p50 (how many median QUIC round trips the p99 costs).
    pub p99_in_rtts: f64,
    /// p99 as a fraction of a 60 Hz tick (16.7 ms).
    pub p99_share_of_60hz_tick: f64,
    /// p99 as a fraction of a 30 Hz tick (33.3 ms).
    pub p99_share_of_30hz_tick: f64,
}

/// How one fixed-rate session behaved besides its latencies.
#[derive(Debug, Clone, Serialize)]
pub struct SessionNote {
    /// Configured tick rate.
    pub hz: u32,
    /// Ticks committed per second during the measurement window.
    pub committed_rate_hz: f64,
    /// `TickOverrun` events (the previous tick had not committed when the next was due).
    pub overruns: u64,
    /// Host changes during the window.
    pub host_changes: u64,
}

/// How the host moves of one kind went, in tick periods (a healthy session shows 1.0).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationNote {
    /// How the host was moved (`leave`, `game_score`, `crash`).
    pub kind: String,
    /// Tick rate of the sessions.
    pub hz: u32,
    /// Trials run.
    pub trials: usize,
    /// Median pause players saw, in tick periods.
    pub pause_p50_ticks: f64,
    /// Longest pause players saw, in tick periods.
    pub pause_max_ticks: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the run was asked to measure, echoed so results stay interpretable.
    pub settings: HarnessConfig,
    /// Key of the row every ratio divides by.
    pub baseline_key: String,
    /// Median of the baseline, in microseconds.
    pub baseline_p50_us: f64,
    /// Every measurement, baseline first.
    pub rows: Vec<Row>,
    /// One per session tick rate.
    pub sessions: Vec<SessionNote>,
    /// One per kind of host migration.
    pub migrations: Vec<MigrationNote>,
    /// Wall time of the whole run, in seconds.
    pub elapsed_s: f64,
}

fn tick_budget_us(hz: u32) -> f64 {
    1e6 / f64::from(hz)
}

impl Report {
    /// An empty report for a run of `config`.
    pub fn new(config: &HarnessConfig) -> Report {
        Report {
            settings: config.clone(),
            baseline_key: String::new(),
            baseline_p50_us: f64::NAN,
            rows: Vec::new(),
            sessions: Vec::new(),
            migrations: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Adds the row every ratio divides by, and recomputes the ratios of rows already added.
    pub fn set_baseline(
        &mut self,
        key: &str,
        label: &str,
        samples: &[Duration],
    ) -> Result<(), BenchError> {
        let summary = Summary::of(samples).ok_or_else(|| BenchError::NoSamples(key.into()))?;
        self.baseline_key = key.to_string();
        self.baseline_p50_us = summary.p50_us;
        self.rows.insert(0, self.row(key, label, summary));
        let rows = std::mem::take(&mut self.rows);
        self.rows = rows
            .into_iter()
            .map(|row| self.row(&row.key, &row.label, row.summary))
            .collect();
        Ok(())
    }

    /// Adds one measurement.
    pub fn add(&mut self, key: &str, label: &str, samples: &[Duration]) -> Result<(), BenchError> {
        let summary = Summary::of(samples).ok_or_else(|| BenchError::NoSamples(key.into()))?;
        let row = self.row(key, label, summary);
        self.rows.push(row);
        Ok(())
    }

    /// Adds the three rows of one session tick rate and its note.
    pub fn add_session(&mut self, ticks: &TickLatencies) -> Result<(), BenchError> {
        let hz = ticks.hz;
        self.add(
            &format!("tick_commit_{hz}hz"),
            &format!("{hz} Hz session: tick produced -> committed on host"),
            &ticks.produced_to_host_commit,
        )?;
        self.add(
            &format!("tick_follower_apply_{hz}hz"),
            &format!("{hz} Hz session: tick produced -> applied on a follower"),
            &ticks.produced_to_follower_apply,
        )?;
        self.add(
            &format!("input_commit_{hz}hz"),
            &format!("{hz} Hz session: follower input submitted -> committed"),
            &ticks.input_to_commit,
        )?;
        self.sessions.push(SessionNote {
            hz,
            committed_rate_hz: ticks.committed_rate_hz,
            overruns: ticks.overruns,
            host_changes: ticks.host_changes,
        });
        Ok(())
    }

    /// Adds the row of one kind of host migration and its note in tick periods.
    pub fn add_migrations(&mut self, trials: &MigrationTrials) -> Result<(), BenchError> {
        let (kind, hz) = (trials.kind.key(), trials.hz);
        self.add(
            &format!("migration_{kind}_{hz}hz"),
            &format!(
                "{hz} Hz session: {}, longest tick pause",
                trials.kind.label()
            ),
            &trials.pauses,
        )?;
        let in_ticks =
            |pause: &std::time::Duration| pause.as_secs_f64() / trials.period().as_secs_f64();
        let mut ticks: Vec<f64> = trials.pauses.iter().map(in_ticks).collect();
        ticks.sort_by(f64::total_cmp);
        self.migrations.push(MigrationNote {
            kind: kind.to_string(),
            hz,
            trials: ticks.len(),
            pause_p50_ticks: ticks[(ticks.len() - 1) / 2],
            pause_max_ticks: ticks[ticks.len() - 1],
        });
        Ok(())
    }

    fn row(&self, key: &str, label: &str, summary: Summary) -> Row {
        let [fast, slow] = BUDGET_RATES_HZ;
        Row {
            key: key.to_string(),
            label: label.to_string(),
            summary,
            p50_in_rtts: summary.p50_us / self.baseline_p50_us,
            p99_in_rtts: summary.p99_us / self.baseline_p50_us,
            p99_share_of_60hz_tick: summary.p99_us / tick_budget_us(fast),
            p99_share_of_30hz_tick: summary.p99_us / tick_budget_us(slow),
        }
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        const LABEL_WIDTH: usize = 58;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<LABEL_WIDTH$} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
            "measurement", "n", "p50", "p99", "max", "p50/RTT", "p99/RTT", "p99/16.7", "p99/33.3"
        );
        let _ = writeln!(out, "{}", "-".repeat(LABEL_WIDTH + 77));
        for row in &self.rows {
            let s = &row.summary;
            let _ = writeln!(
                out,
                "{:<LABEL_WIDTH$} {:>6} {:>9} {:>9} {:>9} {:>7.1}x {:>7.1}x {:>8.1}% {:>8.1}%",
                row.label,
                s.samples,
                format_us(s.p50_us),
                format_us(s.p99_us),
                format_us(s.max_us),
                row.p50_in_rtts,
                row.p99_in_rtts,
                row.p99_share_of_60hz_tick * 100.0,
                row.p99_share_of_30hz_tick * 100.0,
            );
        }
        let _ = writeln!(
            out,
            "\nRTT = median raw QUIC round trip of this run ({}); p99/16.7 and p99/33.3 = p99 as a \
             share of a 60 Hz and a 30 Hz tick.",
            format_us(self.baseline_p50_us)
        );
        for note in &self.sessions {
            let _ = writeln!(
                out,
                "{} Hz session: {:.1} ticks/s committed, {} overruns, {} host changes.",
                note.hz, note.committed_rate_hz, note.overruns, note.host_changes
            );
        }
        for note in &self.migrations {
            let _ = writeln!(
                out,
                "{} Hz host migration by {}: pause p50 {:.2} ticks, max {:.2} ticks over {} trials \
                 (1.00 = no pause beyond the tick period).",
                note.hz, note.kind, note.pause_p50_ticks, note.pause_max_ticks, note.trials
            );
        }
        let _ = writeln!(out, "Run took {:.1} s.", self.elapsed_s);
        out
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, BenchError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Microseconds for people: `83 µs`, `1.24 ms`.
fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn ratios_divide_by_the_baseline_median_even_for_rows_added_before_it() {
        let mut report = Report::new(&HarnessConfig::default());
        report
            .add("late", "added first", &millis(&[4, 4, 4]))
            .unwrap();
        report
            .set_baseline("rtt", "baseline", &millis(&[1, 1, 2]))
            .unwrap();
        assert_eq!(report.rows[0].key, "rtt");
        let late = &report.rows[1];
        assert!((late.p50_in_rtts - 4.0).abs() < 1e-9);
        assert!((late.p99_share_of_60hz_tick - 4_000.0 / (1e6 / 60.0)).abs() < 1e-9);
        assert!(report.table().contains("added first"));
        assert!(report.to_json().unwrap().contains("\"p99_in_rtts\""));
    }

    #[test]
    fn a_measurement_without_samples_is_an_error() {
        let mut report = Report::new(&HarnessConfig::default());
        assert!(matches!(
            report.add("empty", "nothing", &[]),
            Err(BenchError::NoSamples(_))
        ));
    }
}
