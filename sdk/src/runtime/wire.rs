//! What nodes say to each other above the transport, and what the runtime itself writes
//! into the replicated log next to the application's commands.

use crate::raft::{ClientTag, Message, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One message between two runtimes. The transport authenticates the sender, so `from`
/// fields are never trusted from the payload: the runtime checks Raft messages against the
/// authenticated peer id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// Consensus traffic for the core.
    Raft(Message),
    /// A follower hands a client proposal to the leader. Fire-and-forget: the proposer
    /// learns the outcome when it applies the entry carrying its tag, and retries with the
    /// same tag otherwise, so a proposal forwarded twice still applies once.
    Forward {
        /// Exactly-once tag of the proposal.
        tag: ClientTag,
        /// Encoded [`LogCommand`].
        command: Vec<u8>,
    },
    /// A node that holds the session secret (the transport checked it) asks to join as a
    /// learner, reachable at `addr`.
    JoinRequest {
        /// Where the joiner listens.
        addr: SocketAddr,
    },
    /// Bytes for the layer above the runtime (the game session): player inputs and the
    /// like, which must reach the host fast and need not be in the log themselves.
    Session(Vec<u8>),
    /// Answer to a request that only the leader can serve.
    Redirect {
        /// The leader as the answering node knows it.
        leader: NodeId,
        /// Where that leader listens, if known.
        addr: Option<SocketAddr>,
    },
}

/// What the runtime puts in the data of a log command. Application commands are wrapped so
/// the runtime can replicate its own bookkeeping (the address book) through the same log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogCommand {
    /// Opaque application command, applied by the [`StateMachine`](super::StateMachine).
    App(Vec<u8>),
    /// Where a member listens, so that whoever leads next can reach it.
    SetAddress {
        /// The member.
        id: NodeId,
        /// Its QUIC listening address.
        addr: SocketAddr,
    },
}

fn codec_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes any serde value with the runtime's bincode configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, codec_config())
}

/// Decodes any serde value with the runtime's bincode configuration.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, codec_config())
        .ok()
        .map(|(value, _)| value)
}
