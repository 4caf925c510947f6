//! Simulated clients: each issues tagged commands one at a time, retries a command with
//! the same tag until it is acknowledged, and remembers every acknowledgement so the
//! final oracle can check that none was lost.

use super::app::Applied;
use super::check::Violation;
use super::world::{Attempt, Event, World};
use baton::raft::{ClientTag, Entry, EntryPayload, NodeId, ProposeError};
use rand::Rng;

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

impl World {
    // ---------------------------------------------------------------- clients

    pub(super) fn on_client(&mut self, client: usize) -> Result<(), Violation> {
        let c = &mut self.clients[client];
        // New commands stop at the heal (only the probe starts then), so that the backlog
        // the liveness bound covers is what the fault phase left.
        let issuing = self.heal_at_ms.is_none() || client == self.probe_client;
        if c.outstanding.is_none() && c.budget > 0 && issuing {
            c.budget -= 1;
            let tag = ClientTag {
                client_id: c.id,
                sequence: c.next_sequence,
            };
            c.next_sequence += 1;
            let len = self.client_rng.random_range(1..=24);
            let mut data = Vec::with_capacity(len + 16);
            data.extend_from_slice(&tag.client_id.to_le_bytes());
            data.extend_from_slice(&tag.sequence.to_le_bytes());
            data.extend((0..len).map(|_| self.client_rng.random::<u8>()));
            c.outstanding = Some(Outstanding {
                tag,
                data,
                last_sent_ms: None,
                attempts: 0,
            });
        }
        if self.clients[client].due(self.now_ms) {
            self.client_send(client)?;
        }
        let c = &self.clients[client];
        if c.outstanding.is_some() || c.budget > 0 {
            let at = self.now_ms
                + self
                    .client_rng
                    .random_range(CLIENT_THINK_MS_MIN..=CLIENT_THINK_MS_MAX);
            self.schedule(at, Event::Client(client));
        }
        Ok(())
    }

    pub(super) fn client_send(&mut self, client: usize) -> Result<(), Violation> {
        let up = self.up_ids();
        if up.is_empty() {
            return Ok(());
        }
        let hint = self.clients[client].leader_hint.filter(|h| up.contains(h));
        let target = match hint {
            Some(h) if self.client_rng.random_bool(0.9) => h,
            _ => up[self.client_rng.random_range(0..up.len())],
        };
        let Some(outstanding) = self.clients[client].outstanding.clone() else {
            return Ok(());
        };
        let slot = self.slot(target).unwrap_or(0);
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Ok(());
        };
        match raft.propose(outstanding.data.clone(), Some(outstanding.tag)) {
            Ok(proposal) => {
                self.stats.proposals += 1;
                self.nodes[slot]
                    .attempts
                    .entry(proposal.index)
                    .or_default()
                    .push(Attempt {
                        client,
                        tag: outstanding.tag,
                        proposal,
                    });
                let c = &mut self.clients[client];
                c.leader_hint = Some(target);
                if let Some(o) = c.outstanding.as_mut() {
                    o.last_sent_ms = Some(self.now_ms);
                    o.attempts += 1;
                }
                trace!(
                    self,
                    "client {} proposes {:?} at node {target}: {:?}",
                    outstanding.tag.client_id,
                    outstanding.tag,
                    proposal
                );
                self.drain(target)
            }
            Err(error) => {
                if let ProposeError::NotLeader { leader } = error {
                    self.clients[client].leader_hint = leader;
                }
                trace!(
                    self,
                    "client {} proposes {:?} at node {target}: {error}",
                    outstanding.tag.client_id,
                    outstanding.tag
                );
                Ok(())
            }
        }
    }

    pub(super) fn resolve(
        &mut self,
        id: NodeId,
        attempt: Attempt,
        entry: &Entry,
        outcome: &Applied,
    ) -> Result<(), Violation> {
        if entry.term != attempt.proposal.term {
            trace!(
                self,
                "client {} attempt {:?} at {:?} was lost: retry",
                attempt.client,
                attempt.tag,
                attempt.proposal
            );
            if let Some(outstanding) = self.clients[attempt.client].outstanding.as_mut() {
                if outstanding.tag == attempt.tag {
                    outstanding.last_sent_ms = None;
                }
            }
            return Ok(());
        }
        let carries_tag = matches!(&entry.payload, EntryPayload::Command { tag: Some(tag), .. } if *tag == attempt.tag);
        if !carries_tag {
            return Err(Violation::new(
                "ProposalIdentity",
                format!(
                    "node {id}: proposal {:?} of {:?} committed as {:?}",
                    attempt.proposal, attempt.tag, entry.payload
                ),
            ));
        }
        let result = match outcome {
            Applied::New { result } | Applied::Duplicate { result } => result.clone(),
            Applied::Stale | Applied::NotACommand => return Ok(()),
        };
        if let Some(previous) = self.acked.get(&attempt.tag) {
            if *previous != result {
                return Err(Violation::new(
                    "DedupAppliedOnce",
                    format!(
                        "{:?} acknowledged with result {previous:?} and later {result:?}",
                        attempt.tag
                    ),
                ));
            }
        } else {
            self.acked.insert(attempt.tag, result);
            self.acked_index_max = self.acked_index_max.max(entry.index);
            self.stats.acked += 1;
        }
        let client = &mut self.clients[attempt.client];
        if client
            .outstanding
            .as_ref()
            .is_some_and(|o| o.tag == attempt.tag)
        {
            client.outstanding = None;
            trace!(
                self,
                "client {} acknowledged {:?} at {}",
                attempt.tag.client_id,
                attempt.tag,
                entry.index
            );
            if attempt.client == self.probe_client {
                self.probe_index = Some(entry.index);
                let heal_at = self.heal_at_ms.unwrap_or(0);
                self.stats.liveness_ms = self.now_ms - heal_at;
                trace!(
                    self,
                    "LIVENESS fresh proposal committed {} ms after the heal",
                    self.now_ms - heal_at
                );
            }
        }
        Ok(())
    }
}
