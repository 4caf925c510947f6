//! Shared helpers of the integration tests.

pub mod game;
pub mod process;
pub mod sessions;
