//! Latency summaries: percentiles by nearest rank over every sample (no histogram
//! bucketing, so p99 of a few hundred samples is one of the measured values).

use serde::Serialize;
use std::time::Duration;

/// Summary of one set of latency samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples were measured.
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// 99.9th percentile (nearest rank): the largest sample when there are fewer than 1000.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut micros: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        micros.sort_by(f64::total_cmp);
        let total: f64 = micros.iter().sum();
        Some(Summary {
            samples: micros.len(),
            p50_us: nearest_rank(&micros, 0.50),
            p99_us: nearest_rank(&micros, 0.99),
            p999_us: nearest_rank(&micros, 0.999),
            max_us: micros[micros.len() - 1],
            mean_us: total / micros.len() as f64,
        })
    }
}

/// The `quantile` (0..=1) of `samples` by nearest rank, in the samples' own unit; `None`
/// when there are none. For figures that are not durations (pauses in ticks, rates).
pub fn quantile(samples: &[f64], quantile: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(nearest_rank(&sorted, quantile))
}

/// The smallest sample at or above fraction `quantile` of the sorted, non-empty `sorted`.
fn nearest_rank(sorted: &[f64], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_all_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.p50_us.round(), 50.0);
        assert_eq!(summary.p99_us.round(), 99.0);
        assert_eq!(summary.p999_us.round(), 100.0);
        assert_eq!(summary.max_us.round(), 100.0);
        assert!((summary.mean_us - 50.5).abs() < 1e-6);
    }

    #[test]
    fn one_sample_is_every_percentile_and_none_is_no_summary() {
        let summary = Summary::of(&[Duration::from_millis(2)]).unwrap();
        assert_eq!(summary.p50_us, summary.p99_us);
        assert_eq!(summary.p99_us, summary.max_us);
        assert!(Summary::of(&[]).is_none());
    }
}
