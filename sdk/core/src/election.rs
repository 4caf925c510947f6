//! Leader election (§5.2), pre-vote (§9.6), check-quorum (§6.2) and the fitness bias of
//! election timeouts.
//!
//! Fitness bias: a follower's election timeout is
//! `base + shift + jitter`, where, while it follows a leader, `base` is its detection
//! timeout (see `detector`) and `width = base`; in election rounds, before the leader's
//! arrivals are measured, and with `adaptive_election_timeout` off, `base = min` and
//! `width = max - min`;
//! `shift = width * position >> failed_rounds` and `jitter` is uniform in
//! `[0, width - (width / 2 >> failed_rounds))`. `position` in `[0, 1]` is the follower's
//! place in the last leader's succession order (rank 0 = fittest caught-up voter, sent in
//! heartbeats), or `1 - fitness` before any leader ranked it. Ranks spread candidates
//! evenly even when their fitness values are close; the halving per failed round lets a
//! cluster whose fittest node is gone elect with plain randomized timeouts after a few
//! rounds. Votes never look at fitness (§5.4.1 only).

use crate::detector::ArrivalEstimate;
use crate::message::MessageBody;
use crate::node::{RaftNode, State};
use crate::progress::Progress;
use crate::types::{Index, NodeId, Term};
use rand::Rng;

/// Failed election rounds after which the fitness bias is gone entirely.
pub const FAILED_ROUNDS_DECAY_MAX: u32 = 16;

impl RaftNode {
    /// Draws a new randomized election timeout, biased by fitness (see module docs).
    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_election_timeout = self.draw_election_timeout();
    }

    fn draw_election_timeout(&mut self) -> u32 {
        // Only a follower of a live leader judges silence by what it measured. Once it
        // suspects the leader, each election round waits the fixed range: a round waits
        // for a vote's round trip, and the gaps between a leader's messages say nothing
        // about the latency of a link, only about its jitter (a link of 100 ms and no
        // jitter has a small detection timeout and needs rounds longer than 200 ms).
        let following = self.state == State::Follower && self.leader.is_some();
        let detection = self.detection_timeout().filter(|_| following);
        let (min, width) = match detection {
            Some(detection) => (detection, u64::from(detection)),
            None => {
                let min = self.config.election_timeout_ticks_min;
                (min, u64::from(self.config.election_timeout_ticks_max - min))
            }
        };
        let position_permille = match self.successor_rank {
            Some(rank) => {
                let last_rank = self.membership.voters.len().saturating_sub(2).max(1) as u64;
                u64::from(rank).min(last_rank) * 1000 / last_rank
            }
            None => 1000 - u64::from(self.fitness.0.min(1000)),
        };
        let decay = self.failed_rounds.min(FAILED_ROUNDS_DECAY_MAX);
        let shift = (width * position_permille / 1000) >> decay;
        let jitter_width = (width - ((width / 2) >> decay)).max(1);
        let jitter = self.rng.random_range(0..jitter_width);
        let timeout = u64::from(min) + shift + jitter;
        debug_assert!(timeout >= u64::from(min) && timeout < u64::from(min) + 2 * width.max(1));
        timeout as u32
    }

    /// §4.2.3 / §6.2: a leader was heard from within the shortest silence after which
    /// this node would suspect it itself: its detection timeout, or the minimum election
    /// timeout while unmeasured. A voter whose own detector has fired grants a pre-vote,
    /// so the others need not wait out a fixed minimum after a crash; one whose detector
    /// has not stays loyal, so a node that suspects early cannot depose a live leader.
    /// With lease reads the minimum stays the floor: the leader's lease counts on it.
    pub(crate) fn in_lease(&self) -> bool {
        let min = self.config.election_timeout_ticks_min;
        let lease = match self.detection_timeout() {
            Some(detection) if self.config.lease_reads => detection.max(min),
            Some(detection) => detection,
            None => min,
        };
        self.config.check_quorum && self.leader.is_some() && self.election_elapsed < lease
    }

    /// The follower's detection timeout: see [`RaftNode::detection_timeout_ticks`].
    pub(crate) fn detection_timeout(&self) -> Option<u32> {
        let (_, arrivals) = self.leader_arrivals.as_ref()?;
        self.bounded_detection(arrivals)
    }

    /// An estimate within the configured floor and ceiling; `None` with the adaptive
    /// timeout off or while unmeasured.
    fn bounded_detection(&self, arrivals: &ArrivalEstimate) -> Option<u32> {
        if !self.config.adaptive_election_timeout {
            return None;
        }
        let floor = self.config.detection_timeout_ticks_floor;
        let ceiling = self.config.detection_timeout_ticks_ceiling;
        let ticks = arrivals.suspicion_ticks(self.config.detection_deviations)?;
        Some(ticks.clamp(u64::from(floor), u64::from(ceiling)) as u32)
    }

    /// A leader heartbeats every half of the shortest detection timeout it measures on
    /// its voters' answers (the same link both ways), within `[1, heartbeat_interval_ticks]`:
    /// a follower then hears at least two heartbeats within its own timeout, so one late
    /// heartbeat never decides. On a quiet link this settles at half the floor whatever the
    /// configured interval; on a jittery one it rises to the configured interval, as more
    /// heartbeats would not shorten a timeout the jitter sets. Appends count as much as
    /// heartbeats on the follower's side, so at a high tick rate they carry the detection.
    pub(crate) fn heartbeat_interval(&self) -> u32 {
        let ceiling = self.config.heartbeat_interval_ticks;
        self.progress
            .iter()
            .filter(|(id, _)| self.membership.voters.contains(id))
            .filter_map(|(_, pr)| self.bounded_detection(&pr.answers))
            .min()
            .map_or(ceiling, |detection| (detection / 2).clamp(1, ceiling))
    }

    /// The leader heard an answer from `from`.
    pub(crate) fn heard_answer(&mut self, from: NodeId) {
        let now = self.clock_ticks;
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.answers.heard(now);
        }
    }

    /// A follower heard from `leader`: a new link starts its measurements afresh.
    pub(crate) fn heard_leader(&mut self, leader: NodeId) {
        let now = self.clock_ticks;
        match &mut self.leader_arrivals {
            Some((id, arrivals)) if *id == leader => arrivals.heard(now),
            _ => {
                let mut arrivals = ArrivalEstimate::default();
                arrivals.heard(now);
                self.leader_arrivals = Some((leader, arrivals));
            }
        }
    }

    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed < self.randomized_election_timeout {
            return;
        }
        self.failed_rounds = (self.failed_rounds + 1).min(FAILED_ROUNDS_DECAY_MAX);
        if self.leader.is_some() {
            self.set_leader(None);
        }
        if self.may_campaign() {
            tracing::debug!(id = self.config.id, term = self.term, "election timeout");
            self.start_election(false);
        } else {
            self.reset_election_timer();
        }
    }

    /// §6.2 check-quorum: a leader that has not heard from a quorum within an election
    /// timeout steps down, so a partitioned leader stops serving.
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.learner_heartbeat_elapsed = self.learner_heartbeat_elapsed.saturating_add(1);
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.config.election_timeout_ticks_min {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                tracing::info!(
                    id = self.config.id,
                    term = self.term,
                    "check-quorum failed; stepping down"
                );
                self.become_follower(self.term, None);
                return;
            }
            for pr in self.progress.values_mut() {
                pr.start_activity_round();
            }
        }
        self.tick_transfer();
        if self.state != State::Leader {
            return;
        }
        self.tick_snapshot_streams();
        if self.heartbeat_elapsed >= self.heartbeat_interval() {
            self.heartbeat_elapsed = 0;
            // Learners never campaign, so they need no faster heartbeat than configured.
            let learners = self.learner_heartbeat_elapsed >= self.config.heartbeat_interval_ticks;
            self.broadcast_heartbeat(learners);
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let active = self
            .membership
            .voters
            .iter()
            .filter(|&&v| {
                v == self.config.id || self.progress.get(&v).is_some_and(|pr| pr.recently_active)
            })
            .count();
        active >= self.quorum()
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.fail_forwarded_reads();
            self.leader = leader;
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        debug_assert!(term >= self.term, "terms only grow");
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.lease_forbidden = false;
        }
        if self.state == State::Leader {
            self.fail_leader_reads();
            self.progress.clear();
            self.transfer = None;
        }
        self.state = State::Follower;
        self.self_election = None;
        self.votes.clear();
        self.set_leader(leader);
        self.reset_election_timer();
    }

    pub(crate) fn start_election(&mut self, leader_transfer: bool) {
        if self.config.pre_vote && !leader_transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(leader_transfer);
        }
    }

    fn become_pre_candidate(&mut self) {
        debug_assert!(self.may_campaign());
        self.state = State::PreCandidate;
        self.set_leader(None);
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_timer();
        if self.granted_votes() >= self.quorum() {
            self.become_candidate(false);
            return;
        }
        // A pre-vote changes no durable state: the requests may leave at once.
        let body = self.vote_request(true, false);
        for voter in self.other_voters() {
            self.send_in_term(voter, self.term + 1, body.clone());
        }
    }

    fn become_candidate(&mut self, leader_transfer: bool) {
        debug_assert!(self.may_campaign());
        self.term += 1;
        self.vote = Some(self.config.id);
        self.lease_forbidden = false;
        self.state = State::Candidate;
        self.set_leader(None);
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_timer();
        tracing::debug!(
            id = self.config.id,
            term = self.term,
            leader_transfer,
            "campaigning"
        );
        if self.granted_votes() >= self.quorum() {
            self.self_election = Some((self.term, None));
            return;
        }
        // The new term and the self-vote must be durable before anyone counts on them.
        let body = self.vote_request(false, leader_transfer);
        for voter in self.other_voters() {
            self.send_after_persist(voter, body.clone());
        }
    }

    pub(crate) fn become_leader(&mut self) {
        debug_assert_eq!(self.state, State::Candidate);
        tracing::info!(id = self.config.id, term = self.term, "became leader");
        self.state = State::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.failed_rounds = 0;
        self.successor_rank = None;
        self.heartbeat_elapsed = 0;
        self.learner_heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.transfer = None;
        let next = self.log.last_index() + 1;
        self.progress = self
            .members_except_self()
            .into_iter()
            .map(|id| (id, Progress::new(next)))
            .collect();
        // §5.4.2 / §6.4: commit an entry of this term, which also commits everything before.
        self.append_noop();
    }

    fn vote_request(&self, pre_vote: bool, leader_transfer: bool) -> MessageBody {
        MessageBody::RequestVote {
            pre_vote,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leader_transfer,
        }
    }

    /// Whether this node may start an election: it is a voter of its latest configuration,
    /// or that configuration is not committed yet and it was a voter of the previous one.
    /// The second case lets a leader that demoted or removed itself, then lost its quorum
    /// before the change committed, finish the change (§4.2.2: a leader may manage a
    /// configuration it is not part of); otherwise the only up-to-date log could belong
    /// to a node that can neither campaign nor be outvoted.
    pub(crate) fn may_campaign(&self) -> bool {
        if self.is_voter() {
            return true;
        }
        let pending = self.pending_membership_index();
        pending > self.log.commit
            && self
                .membership_at(pending.saturating_sub(1))
                .voters
                .contains(&self.config.id)
    }

    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        self.membership
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.config.id)
            .collect()
    }

    pub(crate) fn members_except_self(&self) -> Vec<NodeId> {
        self.membership
            .voters
            .iter()
            .chain(self.membership.learners.iter())
            .copied()
            .filter(|&v| v != self.config.id)
            .collect()
    }

    fn granted_votes(&self) -> usize {
        self.votes
            .iter()
            .filter(|(id, granted)| **granted && self.membership.voters.contains(id))
            .count()
    }

    fn rejected_votes(&self) -> usize {
        self.votes
            .iter()
            .filter(|(id, granted)| !**granted && self.membership.voters.contains(id))
            .count()
    }

    /// §5.2, §5.4.1, §9.6: grant when the candidate's log is at least as up to date and
    /// this node has not voted for someone else in the term.
    ///
    /// The answer does not consult this node's own configuration (§4.1: servers process
    /// RPCs without consulting their configurations): candidates only ask, and only count,
    /// the voters of *their* latest configuration, so a learner is asked only by a candidate
    /// that knows it was promoted, and must answer or the cluster can stall until the
    /// promotion reaches it. Except with `refuse_votes_without_configuration`: a node
    /// that knows no configuration yet (a joiner's empty store) then grants nothing.
    pub(crate) fn handle_request_vote(
        &mut self,
        from: NodeId,
        msg_term: Term,
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
    ) {
        let free_to_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && msg_term > self.term);
        let knows_configuration =
            !self.membership.voters.is_empty() || !self.membership.learners.is_empty();
        let may_vote = knows_configuration || !self.config.refuse_votes_without_configuration;
        let grant =
            free_to_vote && may_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        let body = MessageBody::RequestVoteResponse {
            pre_vote,
            granted: grant,
        };
        if pre_vote {
            let term = if grant { msg_term } else { self.term };
            self.send_in_term(from, term, body);
            return;
        }
        if grant {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        self.send_after_persist(from, body);
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        from: NodeId,
        msg_term: Term,
        pre_vote: bool,
        granted: bool,
    ) {
        let expected = match (pre_vote, self.state) {
            (true, State::PreCandidate) => msg_term == self.term + 1 || !granted,
            (false, State::Candidate) => msg_term == self.term,
            _ => false,
        };
        if !expected || !self.membership.voters.contains(&from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        if self.granted_votes() >= self.quorum() {
            if pre_vote {
                self.become_candidate(false);
            } else {
                self.become_leader();
            }
        } else if self.rejected_votes() >= self.quorum() {
            self.become_follower(self.term, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Fitness, Membership, PersistedState, RaftNode};

    fn node(fitness: u16) -> RaftNode {
        let mut config = Config::new(1, 9);
        config.fitness = Fitness(fitness);
        let membership = Membership {
            voters: (1..=5).collect(),
            learners: Default::default(),
        };
        RaftNode::new(config, PersistedState::bootstrap(membership)).unwrap()
    }

    fn draws(node: &mut RaftNode) -> (u32, u32) {
        let mut low = u32::MAX;
        let mut high = 0;
        for _ in 0..500 {
            let timeout = node.draw_election_timeout();
            low = low.min(timeout);
            high = high.max(timeout);
        }
        (low, high)
    }

    #[test]
    fn fitness_rank_zero_draws_from_the_first_half_of_the_range() {
        let mut n = node(500);
        n.successor_rank = Some(0);
        assert_eq!(draws(&mut n), (10, 14));
    }

    #[test]
    fn fitness_last_rank_is_shifted_by_the_whole_width() {
        let mut n = node(500);
        n.successor_rank = Some(3);
        assert_eq!(draws(&mut n), (20, 24));
    }

    #[test]
    fn fitness_bias_decays_with_failed_rounds_to_plain_randomized_timeouts() {
        let mut n = node(500);
        n.successor_rank = Some(3);
        n.failed_rounds = 1;
        assert_eq!(draws(&mut n), (15, 22), "half the shift, wider jitter");
        n.failed_rounds = super::FAILED_ROUNDS_DECAY_MAX;
        assert_eq!(
            draws(&mut n),
            (10, 19),
            "no bias left: the plain [min, max) range"
        );
    }

    #[test]
    fn fitness_without_rank_uses_raw_fitness() {
        let mut best = node(1000);
        assert_eq!(draws(&mut best), (10, 14));
        let mut worst = node(0);
        assert_eq!(draws(&mut worst), (20, 24));
    }
}
