//! The replicated part of a session: the game's state plus the session's bookkeeping
//! (last committed tick, last input applied per player). Every node applies the same tick
//! records, so every node holds the same game state at every committed tick.

use super::{Game, GameError, PlayerInput, TickRecord};
use crate::raft::{Index, NodeId};
use crate::runtime::wire::{decode, encode};
use crate::runtime::{StateMachine, StateMachineError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Result bytes of a tick record that was applied.
pub(crate) const TICK_APPLIED: &[u8] = &[1];
/// Result bytes of a tick record refused because another record already took its number
/// (a deposed host's late proposal, or a retry of one that already committed).
pub(crate) const TICK_REFUSED: &[u8] = &[0];

/// What the session task hears after each committed tick.
#[derive(Debug, Clone)]
pub(crate) struct CommittedTick {
    pub(crate) tick: u64,
    pub(crate) inputs: Vec<(NodeId, u64)>,
}

/// Session bookkeeping that is part of the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) last_tick: u64,
    pub(crate) last_input: BTreeMap<NodeId, u64>,
}

/// The game and its bookkeeping, shared between the runtime (which applies records) and
/// the session task (which, on the host, asks the game for the next record).
pub(crate) struct Replica<G> {
    pub(crate) game: G,
    pub(crate) progress: Progress,
}

#[derive(Serialize, Deserialize)]
struct ReplicaImage {
    progress: Progress,
    game: Vec<u8>,
}

pub(crate) type SharedReplica<G> = Arc<Mutex<Replica<G>>>;

/// Locks the replica. A panic inside game code poisons the lock; the state is still the
/// last consistent one the runtime applied, so it is used rather than propagating the panic.
pub(crate) fn lock<G>(replica: &SharedReplica<G>) -> MutexGuard<'_, Replica<G>> {
    replica
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The state machine a session runs on its node: the game plus the session's bookkeeping.
/// Only reachable through [`Session::node`](super::Session::node) for advanced control.
pub struct GameMachine<G> {
    pub(crate) replica: SharedReplica<G>,
    pub(crate) committed: mpsc::UnboundedSender<CommittedTick>,
}

impl<G: Game> GameMachine<G> {
    /// Keeps only each player's next inputs in sequence, so an input is applied once even
    /// if a retry put it in two records, and never before an earlier input of its player.
    fn admit_inputs(progress: &mut Progress, inputs: Vec<PlayerInput>) -> Vec<PlayerInput> {
        inputs
            .into_iter()
            .filter(|input| {
                let last = progress.last_input.entry(input.player).or_insert(0);
                if input.sequence == *last + 1 {
                    *last = input.sequence;
                    true
                } else {
                    false
                }
            })
            .collect()
    }
}

impl<G: Game> StateMachine for GameMachine<G> {
    fn apply(&mut self, index: Index, _origin: crate::runtime::Origin, command: &[u8]) -> Vec<u8> {
        let Some(record) = decode::<TickRecord>(command) else {
            tracing::error!(
                index,
                "committed command is not a tick record; skipped on every replica"
            );
            return TICK_REFUSED.to_vec();
        };
        let mut replica = lock(&self.replica);
        if record.tick != replica.progress.last_tick + 1 {
            tracing::debug!(
                tick = record.tick,
                last = replica.progress.last_tick,
                "tick record refused"
            );
            return TICK_REFUSED.to_vec();
        }
        let inputs = Self::admit_inputs(&mut replica.progress, record.inputs);
        let record = TickRecord {
            tick: record.tick,
            inputs,
            payload: record.payload,
        };
        replica.game.apply(&record);
        replica.progress.last_tick = record.tick;
        drop(replica);
        let inputs = record
            .inputs
            .iter()
            .map(|input| (input.player, input.sequence))
            .collect();
        let _ = self.committed.send(CommittedTick {
            tick: record.tick,
            inputs,
        });
        TICK_APPLIED.to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let replica = lock(&self.replica);
        let game = replica
            .game
            .snapshot()
            .map_err(|GameError(reason)| StateMachineError(reason))?;
        let image = ReplicaImage {
            progress: replica.progress.clone(),
            game,
        };
        encode(&image)
            .map_err(|err| StateMachineError(format!("encoding the session snapshot: {err}")))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let image: ReplicaImage =
            decode(snapshot).ok_or_else(|| StateMachineError("not a session snapshot".into()))?;
        let mut replica = lock(&self.replica);
        replica
            .game
            .restore(&image.game)
            .map_err(|GameError(reason)| StateMachineError(reason))?;
        replica.progress = image.progress;
        Ok(())
    }
}
