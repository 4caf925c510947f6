//! The leader's view of each follower's log (like raft-rs `tracker/progress.rs`):
//! probe one append at a time until the match point is found, then pipeline a bounded
//! window of appends, or stream a snapshot when the follower is behind the compacted log.

use crate::detector::ArrivalEstimate;
use crate::types::{Fitness, Index};
use std::collections::VecDeque;

/// Streaming state of a snapshot towards one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotSend {
    /// `last_index` of the snapshot being streamed.
    pub(crate) index: Index,
    /// Next byte offset to send.
    pub(crate) next_offset: u64,
    /// Bytes the follower confirmed.
    pub(crate) acked_offset: u64,
    /// Ticks since the follower last answered; resumes from `acked_offset` when too long.
    pub(crate) idle_ticks: u32,
    /// The chunk ending at the snapshot's end was sent (and not rewound since).
    pub(crate) final_sent: bool,
    /// The `acked_offset` at which the stream last went back: one go-back per point of
    /// progress, so duplicated or reordered answers cannot multiply the chunks in flight.
    pub(crate) rewound_at: Option<u64>,
    /// The follower answered with less than it had confirmed: it lost its partial
    /// snapshot (a restart). Acted on only at the idle resume, for the same reason.
    pub(crate) follower_lost_partial: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
    /// Looking for the match point: one append in flight.
    Probe { sent: bool },
    /// Match point known: up to `max_inflight_appends` appends in flight.
    Replicate,
    /// Behind the compacted log: a snapshot is being streamed.
    Snapshot(SnapshotSend),
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: Index,
    pub(crate) next_index: Index,
    pub(crate) state: ReplicationState,
    /// Last index of each append in flight, oldest first (Replicate only).
    pub(crate) inflight: VecDeque<Index>,
    /// Heard from in the current check-quorum round (§6.2); cleared when a round starts.
    pub(crate) recently_active: bool,
    /// Heard from in the round before the current one. Only reported, never counted by
    /// check-quorum: it keeps the reported flag from reading false in the gap between a
    /// round starting and the follower's next answer.
    pub(crate) active_previous_round: bool,
    pub(crate) fitness: Fitness,
    /// Tick (leader clock) at which the heartbeat round last acknowledged was sent.
    pub(crate) last_ack_sent_tick: Option<u64>,
    /// Arrivals of this follower's answers: sets the leader's heartbeat cadence.
    pub(crate) answers: ArrivalEstimate,
}

impl Progress {
    pub(crate) fn new(next_index: Index) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe { sent: false },
            inflight: VecDeque::new(),
            recently_active: true,
            active_previous_round: false,
            fitness: Fitness::default(),
            last_ack_sent_tick: None,
            answers: ArrivalEstimate::default(),
        }
    }

    pub(crate) fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ReplicationState::Probe { sent } => sent,
            ReplicationState::Replicate => self.inflight.len() >= max_inflight,
            ReplicationState::Snapshot(_) => true,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        if let ReplicationState::Snapshot(send) = self.state {
            self.next_index = self.match_index.max(send.index) + 1;
        } else {
            self.next_index = self.match_index + 1;
        }
        self.state = ReplicationState::Probe { sent: false };
        self.inflight.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.match_index + 1;
        self.inflight.clear();
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ReplicationState::Snapshot(SnapshotSend {
            index: snapshot_index,
            next_offset: 0,
            acked_offset: 0,
            idle_ticks: 0,
            final_sent: false,
            rewound_at: None,
            follower_lost_partial: false,
        });
        self.inflight.clear();
    }

    /// Records an acknowledged match; false if it says nothing new.
    pub(crate) fn maybe_update(&mut self, match_index: Index) -> bool {
        let updated = match_index > self.match_index;
        if updated {
            self.match_index = match_index;
        }
        if self.next_index <= match_index {
            self.next_index = match_index + 1;
        }
        while self
            .inflight
            .front()
            .is_some_and(|&last| last <= match_index)
        {
            self.inflight.pop_front();
        }
        if let ReplicationState::Probe { .. } = self.state {
            self.state = ReplicationState::Probe { sent: false };
        }
        debug_assert!(self.next_index > self.match_index);
        updated
    }

    /// Notes an append sent with entries up to `last` (or none).
    pub(crate) fn sent_append(&mut self, last: Option<Index>) {
        match self.state {
            ReplicationState::Replicate => {
                if let Some(last) = last {
                    self.next_index = last + 1;
                    self.inflight.push_back(last);
                }
            }
            ReplicationState::Probe { .. } => self.state = ReplicationState::Probe { sent: true },
            ReplicationState::Snapshot(_) => {}
        }
    }

    /// Whether the follower answered in this check-quorum round or the previous one: what
    /// the leader reports, a flag that does not flicker when a round starts.
    pub(crate) fn reported_active(&self) -> bool {
        self.recently_active || self.active_previous_round
    }

    /// A new check-quorum round starts: this round's answers become the previous round's.
    pub(crate) fn start_activity_round(&mut self) {
        self.active_previous_round = self.recently_active;
        self.recently_active = false;
    }

    pub(crate) fn snapshot_in_flight(&self) -> bool {
        matches!(self.state, ReplicationState::Snapshot(_))
    }
}
