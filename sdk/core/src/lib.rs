//! Sans-IO Raft consensus core of Baton.
#![warn(missing_docs)]

pub mod types;
pub use types::*;
