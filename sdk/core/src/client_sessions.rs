//! Exactly-once application of tagged commands (client sessions, §6.3).
//!
//! The table lives in the replicated state: the applier keeps one, consults it before
//! applying a tagged command and records the result after, and puts it in its snapshots.
//! Because every replica applies the same commands in the same order, every replica makes
//! the same decisions, including which session to evict when the table is full.

use crate::types::ClientTag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default bound on the number of client sessions kept.
pub const CLIENT_SESSIONS_MAX_DEFAULT: usize = 4096;

/// What to do with a tagged command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck<'a> {
    /// Never applied: apply it, then `record` the result.
    New,
    /// Already applied: do not apply again; this is the result it produced.
    Duplicate(&'a [u8]),
    /// Older than the last command applied for this client: its result is gone; drop it.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    last_sequence: u64,
    last_result: Vec<u8>,
    /// Value of the table's record counter when the session was last used; the smallest
    /// is evicted first (deterministic on every replica).
    last_used: u64,
}

/// Exactly-once table: for each client, the last sequence applied and its result.
/// Bounded by `sessions_max`: when full, the least recently used session is evicted (a
/// retry of an evicted client's last command would then apply again; pick the bound so
/// that a client idle that long has given up retrying).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSessions {
    sessions: BTreeMap<u64, Session>,
    sessions_max: usize,
    records: u64,
}

impl Default for ClientSessions {
    fn default() -> Self {
        ClientSessions::with_limit(CLIENT_SESSIONS_MAX_DEFAULT)
    }
}

impl ClientSessions {
    /// A table keeping at most `sessions_max` clients (at least 1).
    pub fn with_limit(sessions_max: usize) -> ClientSessions {
        ClientSessions {
            sessions: BTreeMap::new(),
            sessions_max: sessions_max.max(1),
            records: 0,
        }
    }

    /// The bound on the number of sessions.
    pub fn limit(&self) -> usize {
        self.sessions_max
    }

    /// Number of sessions kept.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is kept.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Classifies a tagged command.
    pub fn check(&self, tag: ClientTag) -> SessionCheck<'_> {
        match self.sessions.get(&tag.client_id) {
            None => SessionCheck::New,
            Some(session) if tag.sequence > session.last_sequence => SessionCheck::New,
            Some(session) if tag.sequence == session.last_sequence => {
                SessionCheck::Duplicate(&session.last_result)
            }
            Some(_) => SessionCheck::Stale,
        }
    }

    /// Records the result of a command applied as `New`.
    pub fn record(&mut self, tag: ClientTag, result: Vec<u8>) {
        self.records += 1;
        let last_used = self.records;
        if let Some(session) = self.sessions.get_mut(&tag.client_id) {
            if tag.sequence >= session.last_sequence {
                session.last_sequence = tag.sequence;
                session.last_result = result;
            }
            session.last_used = last_used;
            return;
        }
        if self.sessions.len() >= self.sessions_max {
            self.evict_least_recently_used();
        }
        self.sessions.insert(
            tag.client_id,
            Session {
                last_sequence: tag.sequence,
                last_result: result,
                last_used,
            },
        );
        debug_assert!(self.sessions.len() <= self.sessions_max);
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(client, session)| (session.last_used, **client))
            .map(|(client, _)| *client);
        if let Some(client) = oldest {
            self.sessions.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(client_id: u64, sequence: u64) -> ClientTag {
        ClientTag {
            client_id,
            sequence,
        }
    }

    #[test]
    fn s6_3_duplicate_returns_cached_result_and_older_is_stale() {
        let mut table = ClientSessions::default();
        assert_eq!(table.check(tag(1, 1)), SessionCheck::New);
        table.record(tag(1, 1), b"one".to_vec());
        assert_eq!(table.check(tag(1, 1)), SessionCheck::Duplicate(b"one"));
        table.record(tag(1, 2), b"two".to_vec());
        assert_eq!(table.check(tag(1, 1)), SessionCheck::Stale);
        assert_eq!(table.check(tag(1, 3)), SessionCheck::New);
        assert_eq!(table.check(tag(2, 1)), SessionCheck::New);
    }

    #[test]
    fn s6_3_table_is_bounded_and_evicts_least_recently_used() {
        let mut table = ClientSessions::with_limit(2);
        table.record(tag(1, 1), vec![]);
        table.record(tag(2, 1), vec![]);
        table.record(tag(1, 2), vec![]);
        table.record(tag(3, 1), vec![]);
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.check(tag(2, 1)),
            SessionCheck::New,
            "client 2 was evicted"
        );
        assert_eq!(table.check(tag(1, 2)), SessionCheck::Duplicate(&[]));
    }
}
