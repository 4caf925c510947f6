//! Exactly-once application of tagged commands (client sessions, §6.3).
//!
//! The table lives in the replicated state: the applier keeps one, consults it before
//! applying a tagged command and records the result after, and puts it in its snapshots.
//! Because every replica applies the same commands in the same order, every replica makes
//! the same decisions, including which session to evict when the table is full.
//!
//! A client may pipeline: several commands in flight at once, which a leader change can
//! reorder (sequence 7 retried after 8 committed). So each session keeps the results of a
//! *window* of recent sequences rather than only the last one (the dissertation's §6.3
//! notes this extension). A sequence older than the window is `Stale`: its result is gone
//! and it must not be applied. A client keeps the span between its oldest unanswered
//! sequence and its newest below the window length, and then a retry is never stale.

use crate::types::ClientTag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default bound on the number of client sessions kept.
pub const CLIENT_SESSIONS_MAX_DEFAULT: usize = 4096;
/// Default number of recent results kept per client: the widest pipelining span a client
/// may use.
pub const CLIENT_WINDOW_LEN_DEFAULT: usize = 1024;

/// What to do with a tagged command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCheck<'a> {
    /// Never applied: apply it, then `record` the result.
    New,
    /// Already applied: do not apply again; this is the result it produced.
    Duplicate(&'a [u8]),
    /// Older than the client's window: it may have been applied and its result is gone;
    /// drop it.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Results of the most recent sequences applied, at most the window length of them.
    results: BTreeMap<u64, Vec<u8>>,
    /// Sequences below this fell out of the window.
    floor: u64,
    /// Value of the table's record counter when the session was last used; the smallest
    /// is evicted first (deterministic on every replica).
    last_used: u64,
}

/// Exactly-once table: for each client, the results of its recent sequences.
/// Bounded by `sessions_max` clients (least recently used evicted first: a retry from an
/// evicted client would apply again, so pick the bound so that a client idle that long has
/// given up retrying) and by `window_len` results per client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTable {
    sessions: BTreeMap<u64, Session>,
    sessions_max: usize,
    window_len: usize,
    records: u64,
}

impl Default for ClientTable {
    fn default() -> Self {
        ClientTable::with_limits(CLIENT_SESSIONS_MAX_DEFAULT, CLIENT_WINDOW_LEN_DEFAULT)
    }
}

impl ClientTable {
    /// A table keeping at most `sessions_max` clients (at least 1), with the default window.
    pub fn with_limit(sessions_max: usize) -> ClientTable {
        ClientTable::with_limits(sessions_max, CLIENT_WINDOW_LEN_DEFAULT)
    }

    /// A table keeping at most `sessions_max` clients and `window_len` results per client
    /// (each at least 1).
    pub fn with_limits(sessions_max: usize, window_len: usize) -> ClientTable {
        ClientTable {
            sessions: BTreeMap::new(),
            sessions_max: sessions_max.max(1),
            window_len: window_len.max(1),
            records: 0,
        }
    }

    /// The bound on the number of sessions.
    pub fn limit(&self) -> usize {
        self.sessions_max
    }

    /// The number of recent results kept per client.
    pub fn window_len(&self) -> usize {
        self.window_len
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
    pub fn check(&self, tag: ClientTag) -> ClientCheck<'_> {
        let Some(session) = self.sessions.get(&tag.client_id) else {
            return ClientCheck::New;
        };
        if let Some(result) = session.results.get(&tag.sequence) {
            ClientCheck::Duplicate(result)
        } else if tag.sequence < session.floor {
            ClientCheck::Stale
        } else {
            ClientCheck::New
        }
    }

    /// Records the result of a command applied as `New`.
    pub fn record(&mut self, tag: ClientTag, result: Vec<u8>) {
        self.records += 1;
        let last_used = self.records;
        if !self.sessions.contains_key(&tag.client_id) && self.sessions.len() >= self.sessions_max {
            self.evict_least_recently_used();
        }
        let session = self
            .sessions
            .entry(tag.client_id)
            .or_insert_with(|| Session {
                results: BTreeMap::new(),
                floor: 0,
                last_used,
            });
        session.last_used = last_used;
        if tag.sequence < session.floor {
            return;
        }
        session.results.insert(tag.sequence, result);
        while session.results.len() > self.window_len {
            if let Some((oldest, _)) = session.results.pop_first() {
                session.floor = session.floor.max(oldest + 1);
            }
        }
        debug_assert!(self.sessions.len() <= self.sessions_max);
        debug_assert!(self
            .sessions
            .values()
            .all(|s| s.results.len() <= self.window_len));
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
    fn s6_3_duplicate_returns_cached_result() {
        let mut table = ClientTable::default();
        assert_eq!(table.check(tag(1, 1)), ClientCheck::New);
        table.record(tag(1, 1), b"one".to_vec());
        assert_eq!(table.check(tag(1, 1)), ClientCheck::Duplicate(b"one"));
        table.record(tag(1, 2), b"two".to_vec());
        assert_eq!(table.check(tag(1, 1)), ClientCheck::Duplicate(b"one"));
        assert_eq!(table.check(tag(1, 3)), ClientCheck::New);
        assert_eq!(table.check(tag(2, 1)), ClientCheck::New);
    }

    #[test]
    fn s6_3_pipelined_commands_reordered_by_a_retry_each_apply_once() {
        let mut table = ClientTable::default();
        table.record(tag(1, 8), b"eight".to_vec());
        assert_eq!(
            table.check(tag(1, 7)),
            ClientCheck::New,
            "7 was lost in a leader change and retried after 8 committed"
        );
        table.record(tag(1, 7), b"seven".to_vec());
        assert_eq!(table.check(tag(1, 7)), ClientCheck::Duplicate(b"seven"));
        assert_eq!(table.check(tag(1, 8)), ClientCheck::Duplicate(b"eight"));
    }

    #[test]
    fn s6_3_sequences_older_than_the_window_are_stale() {
        let mut table = ClientTable::with_limits(8, 2);
        for sequence in 1..=3 {
            table.record(tag(1, sequence), vec![sequence as u8]);
        }
        assert_eq!(table.check(tag(1, 1)), ClientCheck::Stale);
        assert_eq!(table.check(tag(1, 2)), ClientCheck::Duplicate(&[2]));
        assert_eq!(table.check(tag(1, 3)), ClientCheck::Duplicate(&[3]));
        table.record(tag(1, 1), vec![9]);
        assert_eq!(
            table.check(tag(1, 1)),
            ClientCheck::Stale,
            "recording a stale one changes nothing"
        );
    }

    #[test]
    fn s6_3_table_is_bounded_and_evicts_least_recently_used() {
        let mut table = ClientTable::with_limit(2);
        table.record(tag(1, 1), vec![]);
        table.record(tag(2, 1), vec![]);
        table.record(tag(1, 2), vec![]);
        table.record(tag(3, 1), vec![]);
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.check(tag(2, 1)),
            ClientCheck::New,
            "client 2 was evicted"
        );
        assert_eq!(table.check(tag(1, 2)), ClientCheck::Duplicate(&[]));
    }
}
