//! What the session promised, checked as it happens: the committed tick history all
//! players agree on, every input a player submitted, and every input acknowledged.
//!
//! The history is built from what every player's game applied, in every life of every
//! player, departed and crashed ones included: the first player to apply tick N fixes
//! it, and every later application of tick N anywhere must equal it. So a committed tick
//! that a migration loses (a new host producing another tick N) is caught the moment the
//! first player applies the replacement, even if only the departed host had applied it.

use super::game::{record_digest, Game, GENESIS_HASH};
use baton::raft::NodeId;
use baton::session::TickRecord;
use std::collections::{BTreeMap, HashMap, HashSet};

/// An invariant that failed, and what was seen.
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

/// An input, named as the session names it.
pub type InputId = (NodeId, u64, u64);

/// One committed tick as first applied.
#[derive(Clone, Copy, Debug)]
struct TickFact {
    digest: u64,
    hash_after: u64,
    first_by: NodeId,
}

/// One life of one player: what its game applied, in order.
#[derive(Default)]
pub struct LifeHistory {
    /// (tick, hash after it), restores included as the tick they restored to.
    pub applied: Vec<(u64, u64)>,
}

#[derive(Default)]
pub struct Oracle {
    /// Tick N at `ticks[N - 1]`.
    ticks: Vec<TickFact>,
    /// The tick that applied each input.
    input_tick: HashMap<InputId, u64>,
    /// Every input a game submitted and the session accepted, with its data.
    pub submitted: HashMap<InputId, Vec<u8>>,
    /// Every input reported committed to its player.
    pub acked: HashSet<InputId>,
    /// Every player life's history, departed and crashed ones kept.
    pub lives: BTreeMap<(NodeId, u32), LifeHistory>,
}

impl Oracle {
    /// The last committed tick any player applied.
    pub fn last_tick(&self) -> u64 {
        self.ticks.len() as u64
    }

    /// The agreed hash after `tick` (0: the genesis hash).
    pub fn hash_at(&self, tick: u64) -> Option<u64> {
        if tick == 0 {
            return Some(GENESIS_HASH);
        }
        self.ticks
            .get(usize::try_from(tick - 1).ok()?)
            .map(|f| f.hash_after)
    }

    /// The highest sequence of `player`'s incarnation that a committed tick applied.
    pub fn committed_max(&self, player: NodeId, incarnation: u64) -> Option<u64> {
        self.input_tick
            .keys()
            .filter(|(p, inc, _)| *p == player && *inc == incarnation)
            .map(|(_, _, sequence)| *sequence)
            .max()
    }

    pub fn submit(&mut self, input: InputId, data: Vec<u8>) -> Result<(), Violation> {
        if self.submitted.insert(input, data).is_some() {
            return Err(Violation::new(
                "SequenceUnique",
                format!(
                    "player {} incarnation {} was given sequence {} twice",
                    input.0, input.1, input.2
                ),
            ));
        }
        Ok(())
    }

    /// `player`'s game (in life `life`, state `before`) applies `record`; `after` is its
    /// state then.
    pub fn apply(
        &mut self,
        player: NodeId,
        life: u32,
        before: &Game,
        record: &TickRecord,
        after: &Game,
    ) -> Result<(), Violation> {
        if record.tick != before.tick + 1 {
            return Err(Violation::new(
                "TicksInOrder",
                format!(
                    "player {player} applies tick {} after tick {}: ticks are applied once each, in order, without a gap",
                    record.tick, before.tick
                ),
            ));
        }
        if let Some(detail) = before.payload_mismatch(record) {
            return Err(Violation::new(
                "TickOnAppliedState",
                format!("player {player}: {detail}"),
            ));
        }
        let digest = record_digest(record);
        let index = usize::try_from(record.tick - 1).unwrap_or(usize::MAX);
        match self.ticks.get(index) {
            Some(fact) => {
                if fact.digest != digest || fact.hash_after != after.hash {
                    return Err(Violation::new(
                        "CommittedTickAgreement",
                        format!(
                            "player {player} applies tick {} as record {digest:016x} (hash {:016x}); player {} applied it as {:016x} (hash {:016x}): a committed tick was replaced",
                            record.tick, after.hash, fact.first_by, fact.digest, fact.hash_after
                        ),
                    ));
                }
            }
            None => {
                debug_assert_eq!(index, self.ticks.len(), "the history has no gap");
                self.first_application(player, record)?;
                self.ticks.push(TickFact {
                    digest,
                    hash_after: after.hash,
                    first_by: player,
                });
            }
        }
        self.lives
            .entry((player, life))
            .or_default()
            .applied
            .push((record.tick, after.hash));
        Ok(())
    }

    /// The inputs of a tick applied for the first time anywhere: each applied once, and
    /// each one its player really submitted, with its data.
    fn first_application(&mut self, player: NodeId, record: &TickRecord) -> Result<(), Violation> {
        for input in &record.inputs {
            let id = (input.player, input.incarnation, input.sequence);
            match self.submitted.get(&id) {
                Some(data) if *data == input.data => {}
                Some(_) => {
                    return Err(Violation::new(
                        "InputAuthentic",
                        format!(
                            "tick {} (first applied by {player}) carries input {id:?} with other data than its player submitted",
                            record.tick
                        ),
                    ))
                }
                None => {
                    return Err(Violation::new(
                        "InputAuthentic",
                        format!(
                            "tick {} (first applied by {player}) credits input {id:?} to player {}, who never submitted it",
                            record.tick, input.player
                        ),
                    ))
                }
            }
            if let Some(earlier) = self.input_tick.insert(id, record.tick) {
                return Err(Violation::new(
                    "InputAppliedOnce",
                    format!(
                        "input {id:?} is applied in tick {earlier} and again in tick {}",
                        record.tick
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `player`'s game (state `before`) restores a snapshot holding `restored`.
    pub fn restore(
        &mut self,
        player: NodeId,
        life: u32,
        before: &Game,
        tick: u64,
        restored: &Game,
    ) -> Result<(), Violation> {
        if restored.tick != tick {
            return Err(Violation::new(
                "RestoreMatchesHistory",
                format!(
                    "player {player} is told to restore tick {tick} from an image of tick {}",
                    restored.tick
                ),
            ));
        }
        if tick < before.tick {
            return Err(Violation::new(
                "TicksInOrder",
                format!(
                    "player {player} restores tick {tick} after applying tick {}: ticks after it would apply twice",
                    before.tick
                ),
            ));
        }
        if self.hash_at(tick) != Some(restored.hash) {
            return Err(Violation::new(
                "RestoreMatchesHistory",
                format!(
                    "player {player} restores tick {tick} with hash {:016x}; the committed history has {:?}",
                    restored.hash,
                    self.hash_at(tick)
                ),
            ));
        }
        self.lives
            .entry((player, life))
            .or_default()
            .applied
            .push((tick, restored.hash));
        Ok(())
    }

    /// `player` (incarnation `incarnation`) hears its input `sequence` committed at `tick`.
    pub fn ack(
        &mut self,
        player: NodeId,
        incarnation: u64,
        sequence: u64,
        tick: u64,
    ) -> Result<(), Violation> {
        let id = (player, incarnation, sequence);
        if !self.submitted.contains_key(&id) {
            return Err(Violation::new(
                "AckedInputApplied",
                format!("player {player} hears input {id:?} committed, which it never submitted"),
            ));
        }
        match self.input_tick.get(&id) {
            Some(at) if *at <= tick => {}
            Some(at) => {
                return Err(Violation::new(
                    "AckedInputApplied",
                    format!("input {id:?} is reported committed in tick {tick} but was applied in tick {at}"),
                ))
            }
            None => {
                return Err(Violation::new(
                    "AckedInputApplied",
                    format!(
                        "input {id:?} is reported committed in tick {tick}, but no committed tick up to {} holds it",
                        self.last_tick()
                    ),
                ))
            }
        }
        if !self.acked.insert(id) {
            return Err(Violation::new(
                "AckedOnce",
                format!("input {id:?} is reported committed twice"),
            ));
        }
        Ok(())
    }

    /// End of a run: every life's history, departed hosts' included, is part of the one
    /// committed history.
    pub fn check_lives(&self) -> Result<(), Violation> {
        for ((player, life), history) in &self.lives {
            for (tick, hash) in &history.applied {
                if self.hash_at(*tick) != Some(*hash) {
                    return Err(Violation::new(
                        "NoCommittedTickLost",
                        format!("player {player} (life {life}) applied tick {tick} as {hash:016x}, not in the final history"),
                    ));
                }
            }
        }
        Ok(())
    }
}
