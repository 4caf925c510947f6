//! Baton's deterministic simulator: a Raft cluster of 3–7 nodes driven through
//! `baton::raft` under seeded faults, with the safety invariants checked after every
//! step and a liveness check after the faults end. See `docs/simulation.md`.

/// Writes one trace line when the run is traced (formatting costs nothing otherwise).
macro_rules! trace {
    ($world:expr, $($arg:tt)*) => {
        if $world.trace {
            $world.emit(format_args!($($arg)*));
        }
    };
}

pub mod app;
pub mod check;
pub mod client;
pub mod detector;
pub mod faults;
pub mod liveness;
pub mod log;
pub mod network;
pub mod profile;
pub mod step_checks;
pub mod world;
