//! Baton's session simulator: every player runs the real `SessionCore` and
//! `SessionMachine` over a `baton::raft` node, with a model game, under seeded faults.
//! The session's promises are checked after every step and a liveness phase follows
//! the faults. See `docs/simulation.md` ("The session simulator").

/// Writes one trace line when the run is traced (formatting costs nothing otherwise).
macro_rules! trace {
    ($world:expr, $($arg:tt)*) => {
        if $world.trace {
            $world.emit(format_args!($($arg)*));
        }
    };
}

pub mod game;
// The Raft simulator's network and storage model, shared as they are: one seeded
// network decides the fate of Raft and player messages alike.
#[path = "../sim/log.rs"]
#[allow(dead_code)]
pub mod log;
#[path = "../sim/network.rs"]
#[allow(dead_code)]
pub mod network;
pub mod oracle;
pub mod profile;
pub mod world;
