//! The safety invariants, named after etcd's `tla/etcdraft.tla` and the Raft paper
//! (Figure 3), plus the contract checks of the Ready API and the client oracle.
//!
//! Everything here is cheap enough to run after every simulated step: each check looks
//! only at what the step changed (new log entries, a commit index that moved, a node that
//! became leader), and the global maps make the pairwise properties O(1) per entry.

use super::log::{entry_at, holds, payload_digest, snapshot_index};
use baton::raft::{Entry, Index, NodeId, PersistedState, Term};
use std::collections::{BTreeMap, HashMap};

/// A broken invariant: its name and what was seen.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail }
    }
}

/// What the cluster knows about one committed index.
#[derive(Clone, Copy, Debug)]
struct Committed {
    term: Term,
    digest: u64,
    /// Term of the node that first saw it committed: the entry was committed in this term
    /// or an earlier one, so every leader of a later term must hold it.
    observed_term: Term,
}

/// Global knowledge gathered from every node, against which each step is checked.
#[derive(Default)]
pub struct Checker {
    /// ElectionSafety: the leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// LogMatching: (index, term) fixes the payload and the previous entry's term; by
    /// induction two logs that share an (index, term) share the whole prefix.
    entries: HashMap<(Index, Term), (u64, Term)>,
    /// Committed entries by index (slot 0 unused).
    committed: Vec<Option<Committed>>,
    /// StateMachineSafety at the application level: the state digest after each index.
    state_hashes: HashMap<Index, u64>,
}

impl Checker {
    /// ElectionSafety: at most one leader per term.
    pub fn observe_leader(&mut self, term: Term, id: NodeId) -> Result<(), Violation> {
        match self.leaders.insert(term, id) {
            Some(previous) if previous != id => Err(Violation::new(
                "ElectionSafety",
                format!("nodes {previous} and {id} were both leader in term {term}"),
            )),
            _ => Ok(()),
        }
    }

    /// LogMatching for entries just written to a node's log (`log` is after the write).
    pub fn observe_entries(
        &mut self,
        node: NodeId,
        log: &PersistedState,
        written: &[Entry],
    ) -> Result<(), Violation> {
        for entry in written {
            let previous_term = if entry.index == 1 {
                0
            } else {
                super::log::term_at(log, entry.index - 1).unwrap_or(u64::MAX)
            };
            let digest = payload_digest(&entry.payload);
            let seen = *self
                .entries
                .entry((entry.index, entry.term))
                .or_insert((digest, previous_term));
            if seen != (digest, previous_term) {
                return Err(Violation::new(
                    "LogMatching",
                    format!(
                        "node {node} holds ({}, term {}) with payload {:016x} after term {}, \
                         elsewhere it is payload {:016x} after term {}",
                        entry.index, entry.term, digest, previous_term, seen.0, seen.1
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records that the entry at `index` of `log` is committed, as seen by `node` in
    /// `observed_term`. Returns whether this index was not known committed before.
    pub fn observe_commit(
        &mut self,
        node: NodeId,
        log: &PersistedState,
        index: Index,
        observed_term: Term,
    ) -> Result<bool, Violation> {
        if index <= snapshot_index(log) {
            return Ok(false);
        }
        let Some(entry) = entry_at(log, index) else {
            return Err(Violation::new(
                "CommitWithinLog",
                format!(
                    "node {node} commits {index} but its log ends at {}",
                    super::log::last_index(log)
                ),
            ));
        };
        self.record_committed(
            node,
            index,
            entry.term,
            payload_digest(&entry.payload),
            observed_term,
        )
    }

    /// Records one committed (applied) entry; a different entry at a known index breaks
    /// StateMachineSafety.
    pub fn record_committed(
        &mut self,
        node: NodeId,
        index: Index,
        term: Term,
        digest: u64,
        observed_term: Term,
    ) -> Result<bool, Violation> {
        let slot = usize::try_from(index).unwrap_or(usize::MAX);
        if self.committed.len() <= slot {
            self.committed.resize(slot + 1, None);
        }
        match self.committed[slot] {
            Some(known) if known.term != term || known.digest != digest => Err(Violation::new(
                "StateMachineSafety",
                format!(
                    "node {node} has entry (term {term}, payload {digest:016x}) committed at {index}, \
                     elsewhere it is (term {}, payload {:016x})",
                    known.term, known.digest
                ),
            )),
            Some(_) => Ok(false),
            None => {
                self.committed[slot] = Some(Committed { term, digest, observed_term });
                Ok(true)
            }
        }
    }

    /// The term of the committed entry at `index`, if known.
    pub fn committed_term(&self, index: Index) -> Option<Term> {
        let slot = usize::try_from(index).ok()?;
        self.committed.get(slot).copied().flatten().map(|c| c.term)
    }

    /// LeaderCompleteness (§5.4): a leader of `term` holds every entry committed in an
    /// earlier term. Checked when a node becomes leader; LeaderAppendOnly and the check on
    /// every new commit keep it true afterwards.
    pub fn check_leader_completeness(
        &self,
        node: NodeId,
        term: Term,
        log: &PersistedState,
    ) -> Result<(), Violation> {
        for (slot, record) in self.committed.iter().enumerate() {
            let Some(record) = record else { continue };
            let index = slot as Index;
            if record.observed_term < term && !holds(log, index, record.term) {
                return Err(Violation::new(
                    "LeaderCompleteness",
                    format!(
                        "node {node} leads term {term} without entry {index} (term {}) committed by term {}",
                        record.term, record.observed_term
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The same for one newly committed entry against one current leader.
    pub fn check_leader_holds(
        &self,
        node: NodeId,
        term: Term,
        log: &PersistedState,
        index: Index,
    ) -> Result<(), Violation> {
        let slot = usize::try_from(index).unwrap_or(usize::MAX);
        let Some(Some(record)) = self.committed.get(slot) else {
            return Ok(());
        };
        if record.observed_term < term && !holds(log, index, record.term) {
            return Err(Violation::new(
                "LeaderCompleteness",
                format!(
                    "node {node} leads term {term} without entry {index} (term {}) committed by term {}",
                    record.term, record.observed_term
                ),
            ));
        }
        Ok(())
    }

    /// NoCommittedEntryLost: an entry removed from a log (truncated, discarded by a
    /// snapshot) must not be a committed one that the log no longer holds.
    pub fn check_removed(
        &self,
        node: NodeId,
        what: &str,
        removed: &[Entry],
        log_after: &PersistedState,
    ) -> Result<(), Violation> {
        for entry in removed {
            if self.committed_term(entry.index) == Some(entry.term)
                && !holds(log_after, entry.index, entry.term)
            {
                return Err(Violation::new(
                    "NoCommittedEntryLost",
                    format!(
                        "node {node} {what} removed committed entry {} (term {})",
                        entry.index, entry.term
                    ),
                ));
            }
        }
        Ok(())
    }

    /// StateMachineSafety at the application level: every replica has the same state
    /// after applying the same index.
    pub fn observe_state_hash(
        &mut self,
        node: NodeId,
        index: Index,
        hash: u64,
    ) -> Result<(), Violation> {
        let known = *self.state_hashes.entry(index).or_insert(hash);
        if known != hash {
            return Err(Violation::new(
                "StateMachineSafety",
                format!("node {node} state after {index} is {hash:016x}, elsewhere {known:016x}"),
            ));
        }
        Ok(())
    }
}
