//! The replicated part of a session, as the runtime applies it: which tick comes next and
//! the last input applied for each player. It holds no game code: every admitted record is
//! handed to the session core, which passes it to the game as an [`Event::ApplyTick`]
//! on the game's own thread.
//!
//! A runtime snapshot cannot call the game either, so it is built from the last image the
//! game made ([`Event::MakeSnapshot`], answered later) plus the records applied since:
//! compaction never waits for the game, and restoring replays those records after the
//! image. Until the game has answered once, or when its image falls further behind than
//! [`SnapshotLimits::tail_ticks_max`], the runtime is told the state cannot be
//! snapshotted and keeps its log instead.
//!
//! [`Event::ApplyTick`]: super::Event::ApplyTick
//! [`Event::MakeSnapshot`]: super::Event::MakeSnapshot

use super::{PlayerInput, TickRecord};
use crate::raft::{Index, NodeId};
use crate::runtime::wire::{decode, encode};
use crate::runtime::{Origin, StateMachine, StateMachineError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Result bytes of a tick record that was applied.
pub(crate) const TICK_APPLIED: &[u8] = &[1];
/// Result bytes of a tick record refused: another record already took its number (a
/// deposed host's late proposal), or it did not come from the leader that appended it.
pub(crate) const TICK_REFUSED: &[u8] = &[0];

/// The last input applied from one player: its incarnation and its sequence number there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputMark {
    /// The player's incarnation (a new one each time its session starts).
    pub incarnation: u64,
    /// The sequence number, from 1 within the incarnation.
    pub sequence: u64,
}

impl InputMark {
    /// Whether `input` is the next one of its player: the following sequence number of the
    /// same incarnation, or the first of a newer incarnation. Anything else is a duplicate,
    /// a gap, or a message from an incarnation that has been superseded.
    pub fn admits(&self, input: &PlayerInput) -> bool {
        (input.incarnation == self.incarnation && input.sequence == self.sequence + 1)
            || (input.incarnation > self.incarnation && input.sequence == 1)
    }
}

/// Session bookkeeping that is part of the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The last tick applied.
    pub last_tick: u64,
    /// For each player, the last input applied.
    pub inputs: BTreeMap<NodeId, InputMark>,
}

impl Progress {
    /// Applies a record that was already admitted (its inputs filtered by
    /// [`Progress::admit`]): the tick number and each player's mark advance.
    pub(crate) fn advance(&mut self, record: &TickRecord) {
        self.last_tick = record.tick;
        for input in &record.inputs {
            self.inputs.insert(
                input.player,
                InputMark {
                    incarnation: input.incarnation,
                    sequence: input.sequence,
                },
            );
        }
    }

    /// Keeps only each player's next inputs, in order: an input is applied once even if a
    /// retry put it in two records, and never before an earlier input of its player.
    pub(crate) fn admit(&self, inputs: Vec<PlayerInput>) -> Vec<PlayerInput> {
        let mut marks = self.inputs.clone();
        inputs
            .into_iter()
            .filter(|input| {
                let mark = marks.entry(input.player).or_default();
                if mark.admits(input) {
                    *mark = InputMark {
                        incarnation: input.incarnation,
                        sequence: input.sequence,
                    };
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// The mark of `player`, zero if nothing of it was applied.
    pub fn mark(&self, player: NodeId) -> InputMark {
        self.inputs.get(&player).copied().unwrap_or_default()
    }
}

/// The game's state at one tick, as the game made it, with the bookkeeping at that tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameImage {
    /// The tick the state is at.
    pub tick: u64,
    /// The bookkeeping at that tick.
    pub progress: Progress,
    /// The game's bytes.
    pub game: Vec<u8>,
}

/// A runtime snapshot of a session: the newest game image and the records after it.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotImage {
    pub(crate) base: GameImage,
    pub(crate) tail: Vec<TickRecord>,
}

/// What the session core hears from the replicated state, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// A committed tick record, with its inputs as admitted.
    Tick(TickRecord),
    /// The state was replaced by a snapshot: the game restores `base`, then applies `tail`.
    Restored {
        /// The game's image the snapshot starts from.
        base: GameImage,
        /// The records after it, in order.
        tail: Vec<TickRecord>,
    },
}

/// The session core's side of a [`SessionMachine`]: what it applied, and where the game's
/// images go. The runtime's session task holds it; so does the simulator.
pub struct MachinePort {
    /// Records and restores, in apply order.
    pub applied: mpsc::UnboundedReceiver<Applied>,
    images: ImageSlot,
}

impl MachinePort {
    /// Hands the game's newest image to the machine (from [`Action::SaveImage`]).
    ///
    /// [`Action::SaveImage`]: super::Action::SaveImage
    pub fn save_image(&self, image: super::GameImageHandoff) {
        if let Ok(mut slot) = self.images.lock() {
            *slot = Some(image.0);
        }
    }
}

/// How far the machine keeps records behind the game's last image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotLimits {
    /// Records kept after the newest image; past it the image is too old to snapshot from.
    pub(crate) tail_ticks_max: usize,
}

/// Where the session core leaves the game's newest image for the machine to pick up. The
/// lock is held only to move one value in or out, by the session's task and by the node's
/// task, never by game code.
pub(crate) type ImageSlot = Arc<Mutex<Option<GameImage>>>;

/// The state machine a session runs on its node: the session's bookkeeping, not the game.
/// Reachable through [`Session::node`](super::Session::node) for advanced control.
pub struct SessionMachine {
    progress: Progress,
    base: Option<GameImage>,
    tail: VecDeque<TickRecord>,
    limits: SnapshotLimits,
    images: ImageSlot,
    applied: mpsc::UnboundedSender<Applied>,
}

impl SessionMachine {
    /// A machine for a session with these settings, and the port its core reads.
    pub fn new(config: &super::SessionConfig) -> (SessionMachine, MachinePort) {
        let (applied_tx, applied) = mpsc::unbounded_channel();
        let images = ImageSlot::default();
        let limits = SnapshotLimits {
            tail_ticks_max: config.snapshot_tail_ticks_max(),
        };
        let machine = SessionMachine::with_parts(limits, images.clone(), applied_tx);
        (machine, MachinePort { applied, images })
    }

    fn with_parts(
        limits: SnapshotLimits,
        images: ImageSlot,
        applied: mpsc::UnboundedSender<Applied>,
    ) -> SessionMachine {
        SessionMachine {
            progress: Progress::default(),
            base: None,
            tail: VecDeque::new(),
            limits,
            images,
            applied,
        }
    }

    /// Takes the newest image the game made if the records after it are all still here.
    fn adopt_image(&mut self) {
        let Some(image) = self.images.lock().ok().and_then(|mut slot| slot.take()) else {
            return;
        };
        let newer = self
            .base
            .as_ref()
            .map_or(true, |base| image.tick > base.tick);
        let covered = image.tick == self.progress.last_tick
            || self
                .tail
                .front()
                .is_some_and(|first| first.tick <= image.tick + 1);
        if newer && covered && image.tick <= self.progress.last_tick {
            while self.tail.front().is_some_and(|r| r.tick <= image.tick) {
                self.tail.pop_front();
            }
            self.base = Some(image);
        }
    }

    fn keep(&mut self, record: TickRecord) {
        self.tail.push_back(record);
        if self.tail.len() > self.limits.tail_ticks_max {
            self.tail.pop_front();
            // The base needs every record after it; one is gone, so it cannot be used.
            if self
                .base
                .as_ref()
                .is_some_and(|base| self.tail.front().is_some_and(|r| r.tick > base.tick + 1))
            {
                self.base = None;
            }
        }
    }
}

impl StateMachine for SessionMachine {
    fn apply(&mut self, index: Index, origin: Origin, command: &[u8]) -> Vec<u8> {
        self.adopt_image();
        if origin != Origin::Leader {
            // Only the host makes tick records, and it appends its own: a record forwarded
            // by anyone else (a forger, or a deposed host retrying) is refused everywhere.
            tracing::warn!(
                index,
                ?origin,
                "tick record not appended by its proposer; refused"
            );
            return TICK_REFUSED.to_vec();
        }
        let Some(record) = decode::<TickRecord>(command) else {
            tracing::error!(index, "committed command is not a tick record; skipped");
            return TICK_REFUSED.to_vec();
        };
        if record.tick != self.progress.last_tick + 1 {
            tracing::debug!(
                tick = record.tick,
                last = self.progress.last_tick,
                "tick record refused"
            );
            return TICK_REFUSED.to_vec();
        }
        let record = TickRecord {
            inputs: self.progress.admit(record.inputs),
            ..record
        };
        self.progress.advance(&record);
        self.keep(record.clone());
        let _ = self.applied.send(Applied::Tick(record));
        TICK_APPLIED.to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let Some(base) = &self.base else {
            return Err(StateMachineError(
                "the game has not made a recent enough snapshot yet".into(),
            ));
        };
        let image = SnapshotImage {
            base: base.clone(),
            tail: self.tail.iter().cloned().collect(),
        };
        encode(&image)
            .map_err(|err| StateMachineError(format!("encoding the session snapshot: {err}")))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let image: SnapshotImage =
            decode(snapshot).ok_or_else(|| StateMachineError("not a session snapshot".into()))?;
        let mut progress = image.base.progress.clone();
        if progress.last_tick != image.base.tick {
            return Err(StateMachineError(
                "session snapshot: base tick mismatch".into(),
            ));
        }
        for record in &image.tail {
            if record.tick != progress.last_tick + 1 {
                return Err(StateMachineError(
                    "session snapshot: gap in its records".into(),
                ));
            }
            progress.advance(record);
        }
        self.progress = progress;
        self.base = Some(image.base.clone());
        self.tail = image.tail.iter().cloned().collect();
        let _ = self.applied.send(Applied::Restored {
            base: image.base,
            tail: image.tail,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(player: NodeId, incarnation: u64, sequence: u64) -> PlayerInput {
        PlayerInput {
            player,
            incarnation,
            sequence,
            data: vec![],
        }
    }

    fn record(tick: u64, inputs: Vec<PlayerInput>) -> Vec<u8> {
        encode(&TickRecord {
            tick,
            inputs,
            payload: vec![],
        })
        .unwrap()
    }

    #[test]
    fn marks_admit_the_next_input_or_the_first_of_a_newer_incarnation() {
        let mark = InputMark {
            incarnation: 5,
            sequence: 3,
        };
        assert!(mark.admits(&input(1, 5, 4)));
        assert!(!mark.admits(&input(1, 5, 3)), "a duplicate");
        assert!(!mark.admits(&input(1, 5, 5)), "a gap");
        assert!(mark.admits(&input(1, 6, 1)), "a restart");
        assert!(!mark.admits(&input(1, 6, 2)), "a restart starts at 1");
        assert!(!mark.admits(&input(1, 4, 1)), "a superseded incarnation");
    }

    #[test]
    fn a_tick_record_forwarded_by_a_member_is_refused() {
        let (mut machine, mut port) = SessionMachine::new(&super::super::SessionConfig::default());
        let forged = record(1, vec![input(7, 1, 1)]);
        assert_eq!(machine.apply(1, Origin::Member(9), &forged), TICK_REFUSED);
        assert!(port.applied.try_recv().is_err(), "nothing reaches the game");
        assert_eq!(machine.apply(2, Origin::Leader, &forged), TICK_APPLIED);
        assert!(matches!(port.applied.try_recv(), Ok(Applied::Tick(r)) if r.tick == 1));
    }

    #[test]
    fn a_snapshot_is_the_games_image_plus_the_records_after_it() {
        let config = super::super::SessionConfig::default();
        let (mut machine, port) = SessionMachine::new(&config);
        assert!(machine.snapshot().is_err(), "no image from the game yet");
        port.save_image(super::super::GameImageHandoff(GameImage {
            tick: 0,
            progress: Progress::default(),
            game: b"start".to_vec(),
        }));
        for tick in 1..=3 {
            machine.apply(tick, Origin::Leader, &record(tick, vec![input(7, 1, tick)]));
        }
        let bytes = machine.snapshot().expect("a snapshot");
        let (mut other, mut other_port) = SessionMachine::new(&config);
        other.restore(&bytes).expect("restores");
        match other_port.applied.try_recv() {
            Ok(Applied::Restored { base, tail }) => {
                assert_eq!(base.game, b"start");
                assert_eq!(tail.iter().map(|r| r.tick).collect::<Vec<_>>(), [1, 2, 3]);
            }
            other => panic!("expected a restore, got {other:?}"),
        }
        assert_eq!(other.progress, machine.progress);
    }
}
