//! Log compaction and InstallSnapshot streaming (§5 of the dissertation, chapter 5).
//!
//! The leader streams its latest snapshot in chunks of `snapshot_chunk_bytes`, with at
//! most `max_inflight_appends` chunks unacknowledged. The follower accepts chunks in
//! order only and always answers with the next offset it wants, so a lost chunk makes the
//! leader go back to that offset (go-back-N), at most once per point of progress so that
//! duplicated and reordered answers cannot multiply traffic; a silent follower is resumed
//! from its last acknowledged offset after an election timeout (from 0 if it answered with
//! less than it had confirmed, i.e. it restarted); a newer snapshot restarts the stream at
//! offset 0. The assembled snapshot is handed out in `Ready::snapshot`, and its
//! acknowledgement leaves only after that Ready is durable.

use crate::error::CompactError;
use crate::message::{AppendOutcome, MessageBody};
use crate::node::{IncomingSnapshot, RaftNode};
use crate::progress::ReplicationState;
use crate::types::{Fitness, Index, NodeId, Snapshot, SnapshotMeta};

impl RaftNode {
    pub(crate) fn compact_log(
        &mut self,
        applied_index: Index,
        data: Vec<u8>,
    ) -> Result<(), CompactError> {
        if applied_index > self.log.applied {
            return Err(CompactError::NotApplied {
                index: applied_index,
                applied: self.log.applied,
            });
        }
        if applied_index <= self.log.snapshot_index() {
            return Err(CompactError::AlreadyCompacted {
                index: applied_index,
                snapshot_index: self.log.snapshot_index(),
            });
        }
        let Some(last_term) = self.log.term(applied_index) else {
            return Err(CompactError::AlreadyCompacted {
                index: applied_index,
                snapshot_index: self.log.snapshot_index(),
            });
        };
        let meta = SnapshotMeta {
            last_index: applied_index,
            last_term,
            membership: self.membership_at(applied_index),
        };
        let snapshot = Snapshot { meta, data };
        self.log.compact_to(applied_index);
        debug_assert_eq!(self.log.snapshot_index(), applied_index);
        self.snapshot_membership = snapshot.meta.membership.clone();
        self.membership_history
            .retain(|(index, _)| *index > applied_index);
        self.snapshot = Some(snapshot.clone());
        self.out.compaction = Some(snapshot);
        // Streams of an older snapshot restart with this one (only the latest is kept).
        let streaming: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, pr)| pr.snapshot_in_flight())
            .map(|(&id, _)| id)
            .collect();
        for peer in streaming {
            self.start_snapshot_stream(peer);
        }
        Ok(())
    }

    pub(crate) fn start_snapshot_stream(&mut self, peer: NodeId) {
        let Some(index) = self.snapshot.as_ref().map(|s| s.meta.last_index) else {
            tracing::error!(
                id = self.config.id,
                peer,
                "log compacted without a snapshot to send"
            );
            return;
        };
        let Some(pr) = self.progress.get_mut(&peer) else {
            return;
        };
        tracing::debug!(id = self.config.id, peer, index, "streaming snapshot");
        pr.become_snapshot(index);
        self.send_snapshot_chunks(peer);
    }

    fn send_snapshot_chunks(&mut self, peer: NodeId) {
        let chunk_bytes = self.config.snapshot_chunk_bytes as u64;
        let max_inflight = self.config.max_inflight_appends as u64;
        let Some(snapshot) = self.snapshot.as_ref() else {
            return;
        };
        let total = snapshot.data.len() as u64;
        let meta = snapshot.meta.clone();
        let mut chunks = Vec::new();
        {
            let Some(pr) = self.progress.get_mut(&peer) else {
                return;
            };
            let ReplicationState::Snapshot(mut send) = pr.state else {
                return;
            };
            if send.index != meta.last_index {
                return;
            }
            for _ in 0..max_inflight {
                let unacked_chunks = (send.next_offset - send.acked_offset).div_ceil(chunk_bytes);
                if unacked_chunks >= max_inflight || send.final_sent {
                    break;
                }
                let end = (send.next_offset + chunk_bytes).min(total);
                chunks.push((send.next_offset, end));
                send.next_offset = end;
                send.final_sent = end == total;
            }
            pr.state = ReplicationState::Snapshot(send);
        }
        for (start, end) in chunks {
            let data = self
                .snapshot
                .as_ref()
                .map_or_else(Vec::new, |s| s.data[start as usize..end as usize].to_vec());
            let body = MessageBody::InstallSnapshot {
                meta: meta.clone(),
                offset: start,
                total_bytes: total,
                data,
            };
            self.send(peer, body);
        }
    }

    /// Resumes streams whose follower went silent.
    pub(crate) fn tick_snapshot_streams(&mut self) {
        let idle_limit = self.config.election_timeout_ticks_min;
        let mut resume = Vec::new();
        for (&peer, pr) in self.progress.iter_mut() {
            if let ReplicationState::Snapshot(mut send) = pr.state {
                send.idle_ticks += 1;
                if send.idle_ticks >= idle_limit {
                    send.idle_ticks = 0;
                    if send.follower_lost_partial {
                        send.acked_offset = 0;
                        send.follower_lost_partial = false;
                    }
                    send.rewound_at = None;
                    send.next_offset = send.acked_offset;
                    send.final_sent = false;
                    resume.push(peer);
                }
                pr.state = ReplicationState::Snapshot(send);
            }
        }
        for peer in resume {
            self.send_snapshot_chunks(peer);
        }
    }

    pub(crate) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        snapshot_index: Index,
        next_offset: u64,
        complete: bool,
        fitness: Fitness,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recently_active = true;
        pr.fitness = fitness;
        let ReplicationState::Snapshot(mut send) = pr.state else {
            return;
        };
        if snapshot_index != send.index {
            return;
        }
        if complete {
            pr.match_index = pr.match_index.max(snapshot_index);
            pr.become_probe();
            debug_assert_eq!(pr.next_index, snapshot_index + 1);
            self.maybe_commit();
            self.send_appends(from);
            return;
        }
        if next_offset < send.acked_offset {
            // Either a stale answer or a follower that restarted; only the latter needs
            // action, and the idle resume restarts the stream for it.
            send.follower_lost_partial = true;
            pr.state = ReplicationState::Snapshot(send);
            return;
        }
        send.idle_ticks = 0;
        if next_offset > send.acked_offset {
            send.acked_offset = next_offset;
            send.follower_lost_partial = false;
            if send.next_offset < next_offset {
                send.next_offset = next_offset;
            }
        } else if next_offset < send.next_offset && send.rewound_at != Some(next_offset) {
            // The follower saw a gap after its confirmed bytes: go back to them once.
            send.rewound_at = Some(next_offset);
            send.next_offset = next_offset;
            send.final_sent = false;
        }
        pr.state = ReplicationState::Snapshot(send);
        self.send_snapshot_chunks(from);
    }

    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Vec<u8>,
    ) {
        let snapshot_index = meta.last_index;
        if snapshot_index <= self.log.commit {
            // Already covered by what this node holds: tell the leader where it stands.
            self.incoming_snapshot = None;
            let outcome = AppendOutcome::Accepted {
                match_index: self.log.commit,
            };
            self.send_after_persist(
                from,
                MessageBody::AppendEntriesResponse {
                    outcome,
                    fitness: self.fitness,
                },
            );
            return;
        }
        let same = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|inc| inc.meta == meta && inc.total_bytes == total_bytes);
        if !same {
            if offset != 0 {
                self.incoming_snapshot = None;
                self.answer_chunk(from, snapshot_index, 0);
                return;
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta,
                total_bytes,
                data: Vec::new(),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return;
        };
        let received = incoming.data.len() as u64;
        if offset != received {
            self.answer_chunk(from, snapshot_index, received);
            return;
        }
        incoming.data.extend_from_slice(&data);
        let received = incoming.data.len() as u64;
        if received < incoming.total_bytes {
            self.answer_chunk(from, snapshot_index, received);
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        self.install_snapshot(
            from,
            Snapshot {
                meta: incoming.meta,
                data: incoming.data,
            },
        );
    }

    fn answer_chunk(&mut self, to: NodeId, snapshot_index: Index, next_offset: u64) {
        let body = MessageBody::InstallSnapshotResponse {
            snapshot_index,
            next_offset,
            complete: false,
            fitness: self.fitness,
        };
        self.send(to, body);
    }

    fn install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let meta = snapshot.meta.clone();
        if self.log.term(meta.last_index) == Some(meta.last_term) {
            // The log already holds the snapshot's last entry: keep it and just commit.
            self.log.commit_to(meta.last_index);
            let outcome = AppendOutcome::Accepted {
                match_index: meta.last_index,
            };
            self.send_after_persist(
                from,
                MessageBody::AppendEntriesResponse {
                    outcome,
                    fitness: self.fitness,
                },
            );
            return;
        }
        tracing::info!(
            id = self.config.id,
            index = meta.last_index,
            "installing snapshot"
        );
        self.log.restore(&snapshot);
        self.membership_history.clear();
        self.snapshot_membership = meta.membership.clone();
        self.on_membership_maybe_changed();
        self.snapshot = Some(snapshot.clone());
        self.out.snapshot = Some(snapshot);
        let body = MessageBody::InstallSnapshotResponse {
            snapshot_index: meta.last_index,
            next_offset: self.snapshot.as_ref().map_or(0, |s| s.data.len() as u64),
            complete: true,
            fitness: self.fitness,
        };
        self.send_after_persist(from, body);
    }
}
