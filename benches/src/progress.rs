//! Progress of a run: a bar (indicatif) when stderr is a terminal, plain `tracing` lines
//! otherwise (CI logs, pipes), nothing at all for library callers that ask for none.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the steps of a run and shows them.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether plain lines are logged at each stage (no terminal, but wanted).
    plain: bool,
    total: u64,
    done: AtomicU64,
    /// Steps counted on another thread go to the run's own `Progress` through this.
    forward: Option<tokio::sync::mpsc::UnboundedSender<()>>,
}

impl Progress {
    /// Shows nothing (the smoke test, library callers).
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            plain: false,
            total: 0,
            done: AtomicU64::new(0),
            forward: None,
        }
    }

    /// Shows nothing itself; every step is sent to `steps` (a measurement on a blocking
    /// thread reports to the run's bar this way).
    pub fn forwarding(steps: tokio::sync::mpsc::UnboundedSender<()>) -> Progress {
        Progress {
            forward: Some(steps),
            ..Progress::hidden()
        }
    }

    /// A bar of `total` steps on a terminal; plain lines on anything else.
    pub fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The template is a constant: it parses, or the bar falls back to the default.
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            plain: bar.is_none(),
            bar,
            total,
            done: AtomicU64::new(0),
            forward: None,
        }
    }

    /// A new stage of the run begins (`what` is shown next to the bar, or logged).
    pub fn stage(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        } else if self.plain {
            tracing::info!(
                step = self.done.load(Ordering::Relaxed),
                of = self.total,
                "{what}"
            );
        }
    }

    /// One step of the current stage is done.
    pub fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if let Some(forward) = &self.forward {
            // The receiver is gone only once the run stopped listening: nothing to show.
            let _ = forward.send(());
        }
    }

    /// Clears the bar so the table prints on a clean terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
