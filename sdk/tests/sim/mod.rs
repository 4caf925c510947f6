//! Baton's deterministic simulator: a Raft cluster of 3–7 nodes driven through
//! `baton::raft` under seeded faults, with the safety invariants checked after every
//! step and a liveness check after the faults end. See `docs/simulation.md`.

pub mod app;
pub mod check;
pub mod client;
pub mod log;
pub mod network;
pub mod profile;
pub mod world;
