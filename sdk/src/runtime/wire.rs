//! What nodes say to each other above the transport, and what the runtime itself writes
//! into the replicated log next to the application's commands.
//!
//! A [`Wire`] travels as the payload of a transport message frame
//! ([`encode_payload`](crate::transport::frame::encode_payload)); a [`LogCommand`] (and the
//! session layer's messages and tick records) is encoded with `encode` here. Both are
//! bincode 2 `standard`. A `SocketAddr` travels as `(ip, port)` only: an IPv6 address's
//! flow label and scope id are local to the sender's host (an interface index means
//! nothing on another machine) and arrive as 0; `as_carried` gives the address as peers
//! (and the replicated address book) will see it. The property tests in `wire/tests.rs` pin
//! this, and check that every message type round-trips exactly through these paths.

use crate::raft::{ClientTag, Message, NodeId};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, SocketAddrV6};

/// One message between two runtimes. The transport authenticates the sender, so `from`
/// fields are never trusted from the payload: the runtime checks Raft messages against the
/// authenticated peer id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// Consensus traffic for the core.
    Raft(Message),
    /// A member hands an application proposal to the leader. Fire-and-forget: the proposer
    /// learns the outcome when it applies the entry carrying its tag, and retries with the
    /// same tag otherwise, so a proposal forwarded twice still applies once.
    ///
    /// The leader accepts it only from a current member (voter or learner), appends it as
    /// [`LogCommand::Forwarded`] naming the authenticated sender, and tags it with
    /// `ClientTag { client_id: bind_client_id(sender, tag.client_id), sequence }`: a
    /// member can neither write the runtime's own commands nor land in another node's
    /// exactly-once window.
    Forward {
        /// The proposer's own client id (unbound) and the proposal's sequence number.
        tag: ClientTag,
        /// The application's command bytes, as handed to `Node::propose`.
        command: Vec<u8>,
    },
    /// A node that holds the session secret (the transport checked it) asks to join as a
    /// learner, reachable at `addr`.
    JoinRequest {
        /// Where the joiner says it listens: its advertised address, or its bound one, whose
        /// IP may be unspecified; the leader then records the IP it sees the request come from.
        addr: SocketAddr,
    },
    /// Bytes for the layer above the runtime (the game session): player inputs and the
    /// like, which must reach the host fast and need not be in the log themselves.
    Player(Vec<u8>),
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
        /// Where peers dial it: a specific IP and a non-zero port.
        addr: SocketAddr,
    },
    /// An application command a member forwarded to the leader, applied with
    /// [`Origin::Member`](super::Origin::Member)`(proposer)`. Last in the enum: bincode
    /// numbers variants by position, so earlier variants keep their encoding.
    Forwarded {
        /// The member that sent it, as the transport authenticated it to the leader.
        proposer: NodeId,
        /// Opaque application command.
        command: Vec<u8>,
    },
}

/// Domain separation for [`bind_client_id`].
const CLIENT_ID_BINDING_DOMAIN: &[u8] = b"baton-client-id-v1";

/// The client id under which a proposal of `sender` enters the exactly-once table: the
/// first 8 bytes (big-endian) of SHA-256 over a domain label, the sender's node id and the
/// client id it claims. Two senders never share a window unless SHA-256 collides on 64
/// bits, so a member claiming another's client id gets a window of its own. Every node
/// tags its own proposals with `bind_client_id(own id, own client id)`, whether it
/// proposes them as leader or forwards them.
pub fn bind_client_id(sender: NodeId, claimed: u64) -> u64 {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(CLIENT_ID_BINDING_DOMAIN);
    context.update(&sender.to_be_bytes());
    context.update(&claimed.to_be_bytes());
    let digest = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// `addr` as it reads back after crossing the wire: an IPv6 flow label and scope id are
/// not carried. Compare a local address with one from the log or a peer in this form.
pub(crate) fn as_carried(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
    }
}

fn codec_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes any serde value with the runtime's bincode configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, codec_config())
}

/// Decodes a serde value from the front of `bytes`, and says how many bytes it took, so a
/// later protocol minor's appended fields can be read after it.
pub(crate) fn decode_prefix<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, codec_config()).ok()
}

/// Decodes any serde value with the runtime's bincode configuration.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, codec_config())
        .ok()
        .map(|(value, _)| value)
}

#[cfg(test)]
mod tests;
