//! Failure detection that fits the link: how long a silence from a peer may last before
//! it is taken as a failure, learnt from the arrivals of that peer's messages, in ticks.
//!
//! A follower measures the gaps between the ticks at which it heard from its leader
//! (appends, heartbeats, snapshot chunks); the leader measures the same of each
//! follower's answers, which sets its heartbeat cadence. The estimate is the larger of
//!
//! - the smoothed gap plus `detection_deviations` times its smoothed deviation, as TCP's
//!   retransmission timer does with round trips (RFC 6298: gains 1/8 and 1/4), which
//!   follows a link whose jitter changes within a few samples; and
//! - the longest of the last [`ARRIVAL_GAPS_TRACKED_MAX`] gaps plus an eighth, so that a
//!   silence as long as one the link has just shown (a lost datagram's retransmission, a
//!   delay spike) is not taken for a failure while it is remembered. The smoothed
//!   deviation forgets such a gap within a few samples; a link that loses a datagram
//!   every second or two would otherwise be suspected at every loss.
//!
//! Gaps are counted in the node's own ticks, so a node whose clock runs fast or slow
//! measures its peer in the same ticks it times out in: drift needs no correction. Only
//! liveness depends on this estimate; safety never does (votes and commits do not look
//! at it), and pre-vote with check-quorum keeps one node that suspects too early from
//! changing the term while the others still hear the leader.

use std::collections::VecDeque;

/// Gaps remembered for the longest recent silence (at 60 Hz about two seconds of appends).
pub const ARRIVAL_GAPS_TRACKED_MAX: usize = 128;
/// Gaps measured before an estimate replaces the configured election timeout range.
pub const ARRIVAL_GAPS_MEASURED_MIN: u32 = 8;
/// Fixed-point scale of the smoothed gap and deviation (1/256 tick): integers keep the
/// core's arithmetic identical on every platform.
const SCALE: u64 = 256;

/// Arrival statistics of one peer's messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct ArrivalEstimate {
    /// Tick of the latest arrival.
    last_tick: Option<u64>,
    /// Smoothed gap between arrivals, in 1/256 tick.
    smoothed: u64,
    /// Smoothed absolute deviation of the gaps from `smoothed`, in 1/256 tick.
    deviation: u64,
    /// The latest gaps, oldest first, at most `ARRIVAL_GAPS_TRACKED_MAX`.
    gaps: VecDeque<u32>,
    /// Gaps measured, saturating.
    measured: u32,
}

impl ArrivalEstimate {
    /// The peer was heard from at tick `now`. Several messages within one tick are one
    /// arrival: the clock cannot tell them apart.
    pub(crate) fn heard(&mut self, now: u64) {
        let previous = self.last_tick;
        if previous.is_some_and(|last| now <= last) {
            return;
        }
        self.last_tick = Some(now);
        let Some(last) = previous else {
            return;
        };
        let gap = u32::try_from(now - last).unwrap_or(u32::MAX);
        let scaled = u64::from(gap) * SCALE;
        if self.measured == 0 {
            self.smoothed = scaled;
            self.deviation = scaled / 2;
        } else {
            self.deviation = (3 * self.deviation + self.smoothed.abs_diff(scaled)) / 4;
            self.smoothed = (7 * self.smoothed + scaled) / 8;
        }
        if self.gaps.len() == ARRIVAL_GAPS_TRACKED_MAX {
            self.gaps.pop_front();
        }
        self.gaps.push_back(gap);
        self.measured = self.measured.saturating_add(1);
    }

    /// The silence, in ticks, after which the peer is suspected, before any floor or
    /// ceiling; `None` until `ARRIVAL_GAPS_MEASURED_MIN` gaps were measured.
    pub(crate) fn suspicion_ticks(&self, deviations: u32) -> Option<u64> {
        if self.measured < ARRIVAL_GAPS_MEASURED_MIN {
            return None;
        }
        let smoothed = (self.smoothed + u64::from(deviations) * self.deviation).div_ceil(SCALE);
        let peak = u64::from(self.gaps.iter().copied().max().unwrap_or(0));
        Some(smoothed.max(peak + (peak / 8).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(gaps: &[u64]) -> ArrivalEstimate {
        let mut estimate = ArrivalEstimate::default();
        let mut now = 100;
        estimate.heard(now);
        for gap in gaps {
            now += gap;
            estimate.heard(now);
        }
        estimate
    }

    #[test]
    fn nothing_is_estimated_before_enough_gaps() {
        let estimate = measured(&[2; ARRIVAL_GAPS_MEASURED_MIN as usize - 1]);
        assert_eq!(estimate.suspicion_ticks(4), None);
        let estimate = measured(&[2; ARRIVAL_GAPS_MEASURED_MIN as usize]);
        assert!(estimate.suspicion_ticks(4).is_some());
    }

    #[test]
    fn a_steady_link_is_suspected_just_past_its_gap() {
        let estimate = measured(&[2; 64]);
        assert_eq!(estimate.suspicion_ticks(4), Some(3));
    }

    #[test]
    fn messages_within_one_tick_are_one_arrival() {
        let mut estimate = measured(&[2; 16]);
        let before = estimate.suspicion_ticks(4);
        estimate.heard(estimate.last_tick.unwrap());
        assert_eq!(estimate.measured, 16);
        assert_eq!(estimate.suspicion_ticks(4), before);
    }

    #[test]
    fn jitter_lengthens_the_estimate() {
        let steady = measured(&[3; 64]).suspicion_ticks(4).unwrap();
        let jittery: Vec<u64> = (0..64).map(|i| [1, 5, 2, 7, 3][i % 5]).collect();
        let jittery = measured(&jittery).suspicion_ticks(4).unwrap();
        assert!(jittery >= 8, "longest gap 7 plus a margin, got {jittery}");
        assert!(jittery > steady);
    }

    #[test]
    fn a_long_gap_is_remembered_for_the_window_then_forgotten() {
        let mut gaps = vec![2; 32];
        gaps.push(30);
        gaps.extend([2; 10]);
        let estimate = measured(&gaps);
        assert!(
            estimate.suspicion_ticks(4).unwrap() > 30,
            "the deviation alone has forgotten it; the window has not"
        );
        gaps.extend(vec![2; ARRIVAL_GAPS_TRACKED_MAX]);
        assert_eq!(measured(&gaps).suspicion_ticks(4), Some(3));
    }
}
