//! What can go wrong in the demo, as one error type the binary turns into an exit code.

use baton::session::{GameError, SessionError};
use std::time::Duration;

/// A demo failure.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file, pipe or terminal operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The Baton session failed.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// A game state could not be encoded or decoded.
    #[error("game state: {0}")]
    Game(#[from] GameError),
    /// A player process said something the demo does not understand, or failed.
    #[error("player {seat}: {reason}")]
    Player {
        /// Seat letter of the player.
        seat: char,
        /// What it said or did.
        reason: String,
    },
    /// A step of the match did not happen in time.
    #[error("timed out after {limit:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        limit: Duration,
    },
    /// An invite code did not parse.
    #[error("invite: {0}")]
    Invite(#[from] baton::transport::InviteError),
    /// LAN discovery failed.
    #[error("LAN discovery: {0}")]
    Lan(String),
    /// Options that cannot work together.
    #[error("{0}")]
    Usage(String),
}

impl DemoError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
        let what = what.into();
        move |source| DemoError::Io { what, source }
    }
}
