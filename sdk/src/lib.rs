//! Baton: player-hosted game sessions with host migration.
//!
//! The players of a session form a Raft cluster over QUIC; the leader hosts the game loop,
//! every tick goes through the replicated log, and when the host quits or crashes the
//! fittest other player takes over at the last committed tick.
//!
//! # Recipe
//!
//! A game implements [`session::Game`]; one player hosts, the others join with its invite.
//!
//! ```
//! use baton::session::{Game, GameError, PlayerInput, Session, SessionConfig, TickRecord};
//! use baton::transport::Identity;
//!
//! /// Lockstep: a tick record carries the inputs and every replica re-simulates them.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl Game for Counter {
//!     fn apply(&mut self, record: &TickRecord) {
//!         self.0 += record.inputs.len() as u64;
//!     }
//!     fn tick(&self, _tick: u64, _inputs: &[PlayerInput]) -> Vec<u8> {
//!         Vec::new()
//!     }
//!     fn snapshot(&self) -> Result<Vec<u8>, GameError> {
//!         Ok(self.0.to_le_bytes().to_vec())
//!     }
//!     fn restore(&mut self, bytes: &[u8]) -> Result<(), GameError> {
//!         let bytes = <[u8; 8]>::try_from(bytes).map_err(|_| GameError("bad snapshot".into()))?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = SessionConfig::default();
//! config.node.transport.bind = "127.0.0.1:0".parse()?;
//! let host = Session::host(config.clone(), Identity::generate()?, Counter::default()).await?;
//! let player = Session::join(&host.invite(), config, Identity::generate()?, Counter::default()).await?;
//!
//! let mut events = player.events();
//! let sequence = player.submit_input(b"move north".to_vec()).await?;
//! // The input is applied exactly once, on every player, in a committed tick.
//! while let Ok(event) = events.recv().await {
//!     if let baton::session::SessionEvent::InputCommitted { sequence: s, .. } = event {
//!         if s == sequence {
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(player.with_game(|game, _tick| game.0), 1);
//! player.leave().await?;
//! host.stop().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

/// The sans-IO consensus core, re-exported.
pub use baton_core as raft;

pub mod discovery;
pub mod internet;
pub mod runtime;
pub mod session;
pub mod storage;
pub mod transport;

/// Golden files of every wire message and on-disk record (`sdk/testdata/`).
#[cfg(test)]
mod golden;
