//! Applies committed entries to the application in log order, exactly once per client tag,
//! and keeps the runtime's own replicated bookkeeping (client sessions, address book).

use super::wire::{decode, encode, LogCommand};
use super::{Origin, StateMachine, StateMachineError};
use crate::raft::{
    ClientCheck, ClientTable, ClientTag, Entry, EntryPayload, Index, Membership, NodeId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What a snapshot of a runtime node holds besides the application's own bytes.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotImage {
    pub(crate) sessions: ClientTable,
    pub(crate) addresses: BTreeMap<NodeId, SocketAddr>,
    pub(crate) app: Vec<u8>,
}

/// The outcome of applying one entry, for the driver to act on.
pub(crate) enum Applied {
    /// Nothing for anyone to hear about (no-op entries, untagged commands).
    Quiet,
    /// A tagged application command was applied (or recognised as a duplicate).
    Command {
        tag: ClientTag,
        result: Option<Vec<u8>>,
    },
    /// A member's address became known.
    Address { id: NodeId, addr: SocketAddr },
    /// A new configuration was committed; `forgotten` lost their address-book entries.
    Membership {
        membership: Membership,
        forgotten: Vec<NodeId>,
    },
}

pub(crate) struct Applier<S> {
    pub(crate) state_machine: S,
    sessions: ClientTable,
    pub(crate) addresses: BTreeMap<NodeId, SocketAddr>,
    pub(crate) applied_index: Index,
}

impl<S: StateMachine> Applier<S> {
    pub(crate) fn new(state_machine: S) -> Self {
        Applier {
            state_machine,
            sessions: ClientTable::default(),
            addresses: BTreeMap::new(),
            applied_index: 0,
        }
    }

    pub(crate) fn apply(&mut self, entry: &Entry) -> Applied {
        debug_assert!(
            entry.index > self.applied_index,
            "entries are applied once, in order"
        );
        self.applied_index = entry.index;
        match &entry.payload {
            EntryPayload::Noop => Applied::Quiet,
            EntryPayload::Membership(membership) => Applied::Membership {
                forgotten: self.forget_non_members(membership),
                membership: membership.clone(),
            },
            EntryPayload::Command { tag, data } => self.apply_command(entry.index, *tag, data),
        }
    }

    fn apply_command(&mut self, index: Index, tag: Option<ClientTag>, data: &[u8]) -> Applied {
        let Some(command) = decode::<LogCommand>(data) else {
            // Every replica holds the same bytes, so every replica skips them alike: the
            // replicated state stays identical even though the command is lost to the app.
            tracing::error!(index, "committed command is not a runtime command; skipped");
            return Applied::Quiet;
        };
        match command {
            LogCommand::SetAddress { id, addr } => {
                self.addresses.insert(id, addr);
                Applied::Address { id, addr }
            }
            LogCommand::App(bytes) => self.apply_app(index, tag, Origin::Leader, &bytes),
            LogCommand::Forwarded { proposer, command } => {
                self.apply_app(index, tag, Origin::Member(proposer), &command)
            }
        }
    }

    fn apply_app(
        &mut self,
        index: Index,
        tag: Option<ClientTag>,
        origin: Origin,
        bytes: &[u8],
    ) -> Applied {
        let Some(tag) = tag else {
            self.state_machine.apply(index, origin, bytes);
            return Applied::Quiet;
        };
        let result = match self.sessions.check(tag) {
            ClientCheck::New => {
                let result = self.state_machine.apply(index, origin, bytes);
                self.sessions.record(tag, result.clone());
                Some(result)
            }
            ClientCheck::Duplicate(cached) => Some(cached.to_vec()),
            ClientCheck::Stale => None,
        };
        Applied::Command { tag, result }
    }

    /// Drops the address of every node that is not a member of `membership`, so removed
    /// players are not dialed for ever. It runs on applying each configuration (and on
    /// restoring a snapshot, with the snapshot's), so every replica's book is the same.
    /// A joiner's address is recorded just before the configuration that adds it, and
    /// survives unless another configuration is applied in between; the leader then
    /// records it again when the joiner asks again.
    fn forget_non_members(&mut self, membership: &Membership) -> Vec<NodeId> {
        let forgotten: Vec<NodeId> = self
            .addresses
            .keys()
            .copied()
            .filter(|id| !membership.voters.contains(id) && !membership.learners.contains(id))
            .collect();
        for id in &forgotten {
            self.addresses.remove(id);
        }
        forgotten
    }

    pub(crate) fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let image = SnapshotImage {
            sessions: self.sessions.clone(),
            addresses: self.addresses.clone(),
            app: self.state_machine.snapshot()?,
        };
        encode(&image).map_err(|err| StateMachineError(format!("encoding snapshot: {err}")))
    }

    /// Replaces the state with a snapshot's, taken at `index` under `membership`.
    pub(crate) fn restore(
        &mut self,
        index: Index,
        membership: &Membership,
        bytes: &[u8],
    ) -> Result<(), StateMachineError> {
        let image: SnapshotImage = decode(bytes)
            .ok_or_else(|| StateMachineError("snapshot is not a runtime snapshot image".into()))?;
        self.state_machine.restore(&image.app)?;
        self.sessions = image.sessions;
        self.addresses = image.addresses;
        // A snapshot made before books were pruned may still hold removed nodes.
        self.forget_non_members(membership);
        self.applied_index = index;
        Ok(())
    }
}
