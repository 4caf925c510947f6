//! Shared helpers of the integration tests.

pub mod game;
pub mod netns;
pub mod process;
pub mod release;
pub mod runtime;
pub mod sessions;

/// Logs to the test's captured output, filtered by `RUST_LOG` (nothing by default).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
