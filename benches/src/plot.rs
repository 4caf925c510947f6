//! The picture of a run (`--plot PATH.svg`): the distribution (CDF) of tick produced →
//! committed on the host for every session of the matrix, with the paced QUIC floor on the
//! same axes; below it, the host-move trials sorted, so the median and the worst trial
//! read off the curve.

use crate::report::Report;
use crate::BenchError;
use plotters::prelude::*;
use std::path::Path;

/// Points kept per CDF curve: a curve of 100 000 samples would make a megabyte of SVG and
/// look the same.
pub const CDF_POINTS_MAX: usize = 400;

/// One empirical distribution, ready to draw: (value, fraction of samples at or below it).
#[derive(Debug, Clone, Default)]
pub struct Cdf {
    /// Legend text.
    pub label: String,
    /// Increasing values with their cumulative fractions, at most [`CDF_POINTS_MAX`].
    pub points: Vec<(f64, f64)>,
}

impl Cdf {
    /// The CDF of `values` (any order), thinned to at most [`CDF_POINTS_MAX`] points; the
    /// last point (the maximum) is always kept.
    pub fn of(label: impl Into<String>, values: &[f64]) -> Cdf {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let stride = n.div_ceil(CDF_POINTS_MAX).max(1);
        let mut points: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| i % stride == stride - 1 || *i + 1 == n)
            .map(|(i, v)| (*v, (i + 1) as f64 / n as f64))
            .collect();
        points.dedup_by(|a, b| a.1 == b.1);
        Cdf {
            label: label.into(),
            points,
        }
    }
}

fn plot_error(err: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(err.to_string())
}

/// Draws `report`'s distributions into an SVG file at `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (1200, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(640);
    draw_latencies(report, &top)?;
    draw_moves(report, &bottom)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_latencies(report: &Report, area: &Area<'_>) -> Result<(), BenchError> {
    let curves: Vec<&Cdf> = report
        .cdfs
        .iter()
        .filter(|cdf| !cdf.points.is_empty())
        .collect();
    let (lo, hi) = curves
        .iter()
        .flat_map(|cdf| cdf.points.iter().map(|(v, _)| *v))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if curves.is_empty() || lo <= 0.0 || hi <= lo {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Tick produced -> committed on the host (CDF), paced raw QUIC round trip for scale",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..1.0)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("latency, µs (log scale)")
        .x_labels(12)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("fraction of samples at or below")
        .draw()
        .map_err(plot_error)?;
    for (i, cdf) in curves.iter().enumerate() {
        let floor = cdf.label.starts_with("raw QUIC");
        let color = if floor {
            BLACK.to_rgba()
        } else {
            Palette99::pick(i).to_rgba()
        };
        let style = if floor {
            color.stroke_width(4)
        } else {
            color.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(cdf.points.iter().copied(), style))
            .map_err(plot_error)?
            .label(cdf.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn draw_moves(report: &Report, area: &Area<'_>) -> Result<(), BenchError> {
    let series: Vec<(String, &[f64])> = [
        ("planned handoff (leave): pause", &report.handoff_gap_ms),
        ("fitness handoff: pause", &report.score_handoff_gap_ms),
        (
            "crash failover, in-process stop",
            &report.failover_in_process_ms,
        ),
        ("crash failover, SIGKILL", &report.failover_ms),
    ]
    .into_iter()
    .filter_map(|(label, stats)| {
        let stats = stats.as_ref()?;
        // The headline failover is the in-process one when no process ran: drawn once.
        if label.contains("SIGKILL") && !stats.processes {
            return None;
        }
        Some((
            format!("{label} ({} trials, {} Hz)", stats.trials, stats.hz),
            stats.per_trial_ms.as_slice(),
        ))
    })
    .collect();
    let hi = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0f64, f64::max);
    if series.is_empty() || hi <= 0.0 {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Host moves: each trial's figure, trials sorted (ms)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, 0.0..hi * 1.1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("fraction of trials")
        .y_desc("ms")
        .draw()
        .map_err(plot_error)?;
    for (i, (label, values)) in series.iter().enumerate() {
        let cdf = Cdf::of(label.clone(), values);
        let color = Palette99::pick(i + 3).to_rgba();
        let points: Vec<(f64, f64)> = cdf.points.iter().map(|(v, f)| (*f, *v)).collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdf_is_thinned_keeps_its_maximum_and_ends_at_one() {
        let values: Vec<f64> = (1..=10_000).rev().map(f64::from).collect();
        let cdf = Cdf::of("x", &values);
        assert!(cdf.points.len() <= CDF_POINTS_MAX);
        assert_eq!(cdf.points.last(), Some(&(10_000.0, 1.0)));
        assert!(cdf.points.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(Cdf::of("empty", &[]).points.is_empty());
    }
}
