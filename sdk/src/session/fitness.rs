//! How fit a node is to host: one number from link quality, host load and the game's own
//! opinion (battery, device class, backgrounded). The core uses it to bias elections; the
//! session uses it to pick handoff targets and voters.

use crate::raft::{Fitness, NodeId};
use crate::transport::LinkStats;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Round trip at which the link score is one half: a host 50 ms from the other voters is
/// still playable for most games, but clearly worse than one on the same LAN.
pub const LINK_RTT_HALF_SCORE: Duration = Duration::from_millis(50);

/// Packet loss at which the link score is halved again: a game feels 5 % loss (resends,
/// stalls) about as much as 50 ms of extra round trip.
pub const LOSS_HALF_SCORE: f64 = 0.05;

/// Fewest packets a loss sample is taken over: a handful of keep-alives on an idle link
/// would turn one lost packet into a huge rate.
const LOSS_SAMPLE_PACKETS_MIN: u64 = 50;

/// Weight of a new loss sample in the smoothed loss (older samples decay geometrically).
const LOSS_SMOOTHING: f64 = 0.3;

/// Relative weight of each part of fitness. They need not sum to one; the result is the
/// weighted mean. Defaults favour the link (what every other player feels), then the
/// game's own score, then load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitnessWeights {
    /// Weight of the link score (median RTT to the other voters, packet loss).
    pub link: f64,
    /// Weight of the load score (tick time against the tick budget).
    pub load: f64,
    /// Weight of the game-supplied score.
    pub game: f64,
}

impl Default for FitnessWeights {
    fn default() -> Self {
        FitnessWeights {
            link: 0.5,
            load: 0.2,
            game: 0.3,
        }
    }
}

/// What a node measured about itself.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FitnessInputs {
    /// Median smoothed RTT to the other voters; `None` before anything was measured.
    pub median_rtt: Option<Duration>,
    /// Fraction of packets to the other voters QUIC declared lost, smoothed (0 = none).
    pub loss: f64,
    /// Time the last ticks took to simulate, as a fraction of the tick budget (0 = idle,
    /// 1 = the whole budget).
    pub tick_load: f64,
    /// The game's own score in `[0, 1]` (1 when the game says nothing).
    pub game_score: f64,
}

/// Link score in `[0, 1]`: 1 for an instant lossless link, halving at
/// [`LINK_RTT_HALF_SCORE`] of round trip and again at [`LOSS_HALF_SCORE`] of loss.
pub fn link_score(median_rtt: Option<Duration>, loss: f64) -> f64 {
    let rtt_score = match median_rtt {
        // Nothing measured yet (a lone founder): neutral rather than perfect, so that a
        // measured good link is preferred over an unknown one.
        None => 0.5,
        Some(rtt) => 1.0 / (1.0 + rtt.as_secs_f64() / LINK_RTT_HALF_SCORE.as_secs_f64()),
    };
    let loss = if loss.is_finite() {
        loss.clamp(0.0, 1.0)
    } else {
        0.0
    };
    rtt_score / (1.0 + loss / LOSS_HALF_SCORE)
}

/// Packet loss to the other voters, from successive readings of QUIC's per-connection
/// counters: the packets lost over the packets sent since the last sample, pooled over the
/// voters, once enough were sent to mean something, then smoothed.
#[derive(Debug, Default)]
pub struct LossMeter {
    /// Per peer: (sent, lost) at the last sample.
    baseline: BTreeMap<NodeId, (u64, u64)>,
    smoothed: f64,
}

impl LossMeter {
    /// Folds in one reading of the links to the other voters; returns the smoothed loss.
    pub fn observe(&mut self, links: impl IntoIterator<Item = (NodeId, LinkStats)>) -> f64 {
        let current: BTreeMap<NodeId, (u64, u64)> = links
            .into_iter()
            .map(|(peer, link)| (peer, (link.sent_packets, link.lost_packets)))
            .collect();
        let (mut sent, mut lost) = (0, 0);
        for (peer, (now_sent, now_lost)) in &current {
            if let Some((then_sent, then_lost)) = self.baseline.get(peer) {
                // Counters that went backwards belong to a new connection: it starts over.
                if now_sent >= then_sent && now_lost >= then_lost {
                    sent += now_sent - then_sent;
                    lost += now_lost - then_lost;
                }
            }
        }
        if sent >= LOSS_SAMPLE_PACKETS_MIN {
            let sample = (lost as f64 / sent as f64).min(1.0);
            self.smoothed += LOSS_SMOOTHING * (sample - self.smoothed);
            self.baseline = current;
        } else {
            // Too few packets for a sample: keep counting from the old baseline, but follow
            // peers that came, went or reconnected.
            self.baseline.retain(|peer, _| current.contains_key(peer));
            for (peer, counters) in current {
                let restarted = self.baseline.get(&peer).map_or(true, |(sent, lost)| {
                    counters.0 < *sent || counters.1 < *lost
                });
                if restarted {
                    self.baseline.insert(peer, counters);
                }
            }
        }
        self.smoothed
    }
}

/// The host's "no flapping" rule: it hands over only after some caught-up voter has been
/// fitter than it by the margin for the whole hold time, without a break, and then to the
/// fittest voter of that moment. The hold is not tied to one challenger: two nearly equal
/// voters that trade first place between rounds (the usual case, on RTT noise alone) must not
/// restart it forever.
#[derive(Debug, Default)]
pub struct HandoffHold {
    outmatched_since: Option<Instant>,
}

impl HandoffHold {
    /// One policy round: `best` is the fittest caught-up voter (if any) and its fitness,
    /// `own` the host's. Returns the voter to hand over to once the hold is complete.
    pub fn observe(
        &mut self,
        best: Option<(NodeId, Fitness)>,
        own: Fitness,
        margin: u16,
        hold: Duration,
        now: Instant,
    ) -> Option<NodeId> {
        let outmatched = best.filter(|(_, fitness)| fitness.0 >= own.0.saturating_add(margin));
        let Some((target, _)) = outmatched else {
            self.outmatched_since = None;
            return None;
        };
        let since = *self.outmatched_since.get_or_insert(now);
        if now.duration_since(since) >= hold {
            self.outmatched_since = None;
            return Some(target);
        }
        None
    }
}

/// Combines the inputs into one fitness.
pub fn combine(inputs: &FitnessInputs, weights: &FitnessWeights) -> Fitness {
    let finite = |value: f64| {
        if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let parts = [
        (
            finite(link_score(inputs.median_rtt, inputs.loss)),
            weights.link.max(0.0),
        ),
        (1.0 - finite(inputs.tick_load), weights.load.max(0.0)),
        (finite(inputs.game_score), weights.game.max(0.0)),
    ];
    let total_weight: f64 = parts.iter().map(|(_, weight)| weight).sum();
    if total_weight <= 0.0 {
        return Fitness::default();
    }
    let score = parts
        .iter()
        .map(|(score, weight)| score * weight)
        .sum::<f64>()
        / total_weight;
    Fitness::from_fraction(score)
}

/// Median of the round trips, `None` for an empty list.
pub fn median(mut rtts: Vec<Duration>) -> Option<Duration> {
    if rtts.is_empty() {
        return None;
    }
    rtts.sort();
    Some(rtts[rtts.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faster_link_is_fitter_all_else_equal() {
        let weights = FitnessWeights::default();
        let near = FitnessInputs {
            median_rtt: Some(Duration::from_millis(1)),
            loss: 0.0,
            tick_load: 0.1,
            game_score: 1.0,
        };
        let far = FitnessInputs {
            median_rtt: Some(Duration::from_millis(120)),
            ..near
        };
        assert!(combine(&near, &weights) > combine(&far, &weights));
    }

    #[test]
    fn the_game_score_can_veto_a_host() {
        let weights = FitnessWeights::default();
        let healthy = FitnessInputs {
            median_rtt: Some(Duration::from_millis(5)),
            loss: 0.0,
            tick_load: 0.2,
            game_score: 1.0,
        };
        let backgrounded = FitnessInputs {
            game_score: 0.0,
            ..healthy
        };
        let gap = combine(&healthy, &weights).0 - combine(&backgrounded, &weights).0;
        assert!(
            gap >= 250,
            "a backgrounded device must lose a clear margin, lost {gap}"
        );
    }

    #[test]
    fn nonsense_inputs_give_a_valid_fitness() {
        let inputs = FitnessInputs {
            median_rtt: None,
            loss: f64::NAN,
            tick_load: f64::NAN,
            game_score: 7.0,
        };
        let fitness = combine(
            &inputs,
            &FitnessWeights {
                link: -1.0,
                load: 0.0,
                game: 0.0,
            },
        );
        assert!(fitness <= Fitness::MAX);
        assert_eq!(
            combine(
                &inputs,
                &FitnessWeights {
                    link: 0.0,
                    load: 0.0,
                    game: 0.0
                }
            ),
            Fitness::default()
        );
    }

    #[test]
    fn median_takes_the_middle() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(9), ms(1), ms(5)]), Some(ms(5)));
        assert_eq!(median(Vec::new()), None);
    }

    fn link(sent: u64, lost: u64) -> LinkStats {
        LinkStats {
            rtt: Duration::from_millis(1),
            sent_packets: sent,
            lost_packets: lost,
            path: crate::internet::PathKind::Direct,
        }
    }

    #[test]
    fn a_lossy_link_is_less_fit_than_a_clean_one_at_the_same_round_trip() {
        let weights = FitnessWeights::default();
        let clean = FitnessInputs {
            median_rtt: Some(Duration::from_millis(5)),
            loss: 0.0,
            tick_load: 0.1,
            game_score: 1.0,
        };
        let lossy = FitnessInputs {
            loss: LOSS_HALF_SCORE,
            ..clean
        };
        let rtt = clean.median_rtt;
        assert!((link_score(rtt, LOSS_HALF_SCORE) * 2.0 - link_score(rtt, 0.0)).abs() < 1e-9);
        assert!(combine(&clean, &weights).0 > combine(&lossy, &weights).0 + 100);
    }

    #[test]
    fn loss_is_measured_between_readings_pooled_over_voters_and_smoothed() {
        let mut meter = LossMeter::default();
        assert_eq!(
            meter.observe([(1, link(1_000, 10)), (2, link(500, 0))]),
            0.0
        );
        // 200 sent, 20 lost since the last reading: a 10 % sample, smoothed in.
        let loss = meter.observe([(1, link(1_100, 30)), (2, link(600, 0))]);
        assert!((loss - LOSS_SMOOTHING * 0.1).abs() < 1e-9, "{loss}");
        // A steady 20 % pulls the smoothed loss towards 20 %.
        let mut last = loss;
        for round in 2..30u64 {
            last = meter.observe([(1, link(1_000 + 100 * round, 10 + 20 * round))]);
        }
        assert!(
            (last - 0.2).abs() < 0.01,
            "100 sent, 20 lost per round: {last}"
        );
    }

    #[test]
    fn too_few_packets_make_no_sample_and_a_reconnect_starts_over() {
        let mut meter = LossMeter::default();
        meter.observe([(1, link(100, 0))]);
        // Three keep-alives, one lost: not a sample, and not forgotten either.
        assert_eq!(meter.observe([(1, link(103, 1))]), 0.0);
        // The connection was replaced: its counters restart below the baseline.
        assert_eq!(meter.observe([(1, link(10, 0))]), 0.0);
        let loss = meter.observe([(1, link(110, 0))]);
        assert_eq!(loss, 0.0, "100 clean packets on the new connection");
        let loss = meter.observe([(1, link(210, 50))]);
        assert!((loss - LOSS_SMOOTHING * 0.5).abs() < 1e-9, "{loss}");
    }

    #[test]
    fn the_hold_survives_challengers_trading_first_place_and_breaks_on_a_dip() {
        let (margin, hold) = (150, Duration::from_millis(500));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let own = Fitness(600);
        let mut rule = HandoffHold::default();
        // Two voters, both well ahead, alternate as the fittest every round.
        for (round, best) in [(0, 1), (100, 2), (200, 1), (300, 2), (400, 1)] {
            let fitness = Fitness(900 + best as u16);
            assert_eq!(
                rule.observe(Some((best, fitness)), own, margin, hold, at(round)),
                None
            );
        }
        assert_eq!(
            rule.observe(Some((2, Fitness(902))), own, margin, hold, at(500)),
            Some(2),
            "after the hold, to whoever is fittest then"
        );
        // Once within the margin, the clock starts over.
        let mut rule = HandoffHold::default();
        assert_eq!(
            rule.observe(Some((1, Fitness(900))), own, margin, hold, at(0)),
            None
        );
        assert_eq!(
            rule.observe(Some((1, Fitness(700))), own, margin, hold, at(300)),
            None
        );
        assert_eq!(
            rule.observe(Some((1, Fitness(900))), own, margin, hold, at(400)),
            None
        );
        assert_eq!(
            rule.observe(Some((1, Fitness(900))), own, margin, hold, at(800)),
            None
        );
        assert_eq!(
            rule.observe(Some((1, Fitness(900))), own, margin, hold, at(900)),
            Some(1)
        );
        assert_eq!(rule.observe(None, own, margin, hold, at(1000)), None);
    }
}
