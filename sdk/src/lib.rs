//! Baton: player-hosted game sessions with host migration.
#![warn(missing_docs)]

/// The sans-IO consensus core, re-exported.
pub use baton_core as raft;

pub mod discovery;
pub mod runtime;
pub mod session;
pub mod storage;
pub mod transport;
