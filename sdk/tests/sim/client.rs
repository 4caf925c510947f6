//! Simulated clients: each issues tagged commands one at a time, retries a command with
//! the same tag until it is acknowledged, and remembers every acknowledgement so the
//! final oracle can check that none was lost.

use baton::raft::{ClientTag, NodeId};

/// A client gives up waiting for an answer and retries after this long.
pub const CLIENT_RETRY_MS: u64 = 300;
/// Pause of a client between two actions.
pub const CLIENT_THINK_MS_MIN: u64 = 10;
/// Upper bound (inclusive) of that pause.
pub const CLIENT_THINK_MS_MAX: u64 = 150;

/// The command a client is waiting on.
#[derive(Clone, Debug)]
pub struct Outstanding {
    pub tag: ClientTag,
    pub data: Vec<u8>,
    /// When the latest attempt went out (None: send as soon as possible).
    pub last_sent_ms: Option<u64>,
    pub attempts: u32,
}

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    /// Sequence number of the next new command.
    pub next_sequence: u64,
    /// New commands this client may still issue.
    pub budget: u32,
    pub outstanding: Option<Outstanding>,
    /// Where the client believes the leader is.
    pub leader_hint: Option<NodeId>,
}

impl Client {
    pub fn new(id: u64, budget: u32) -> Client {
        Client {
            id,
            next_sequence: 1,
            budget,
            outstanding: None,
            leader_hint: None,
        }
    }

    /// Whether the client should (re)send its outstanding command now.
    pub fn due(&self, now_ms: u64) -> bool {
        match &self.outstanding {
            Some(o) => o
                .last_sent_ms
                .map_or(true, |sent| now_ms >= sent + CLIENT_RETRY_MS),
            None => false,
        }
    }
}
