//! How fit a node is to host: one number from link quality, host load and the game's own
//! opinion (battery, device class, backgrounded). The core uses it to bias elections; the
//! session uses it to pick handoff targets and voters.

use crate::raft::Fitness;
use std::time::Duration;

/// Round trip at which the link score is one half: a host 50 ms from the other voters is
/// still playable for most games, but clearly worse than one on the same LAN.
pub const LINK_RTT_HALF_SCORE: Duration = Duration::from_millis(50);

/// Relative weight of each part of fitness. They need not sum to one; the result is the
/// weighted mean. Defaults favour the link (what every other player feels), then the
/// game's own score, then load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitnessWeights {
    /// Weight of the link score (median RTT to the other voters).
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
    /// Time the last ticks took to simulate, as a fraction of the tick budget (0 = idle,
    /// 1 = the whole budget).
    pub tick_load: f64,
    /// The game's own score in `[0, 1]` (1 when the game says nothing).
    pub game_score: f64,
}

/// Link score in `[0, 1]`: 1 for an instant link, halving at [`LINK_RTT_HALF_SCORE`].
pub fn link_score(median_rtt: Option<Duration>) -> f64 {
    match median_rtt {
        // Nothing measured yet (a lone founder): neutral rather than perfect, so that a
        // measured good link is preferred over an unknown one.
        None => 0.5,
        Some(rtt) => 1.0 / (1.0 + rtt.as_secs_f64() / LINK_RTT_HALF_SCORE.as_secs_f64()),
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
        (finite(link_score(inputs.median_rtt)), weights.link.max(0.0)),
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
}
