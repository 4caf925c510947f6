//! Session handles: slots with generation counters, so a freed or stale handle is an
//! error and never a dangling pointer (the scheme of Valve's GameNetworkingSockets
//! handles and of every engine's entity ids).

use crate::error::Error;
use crate::types::{baton_input, baton_session};
use baton_sdk::session::{Event, SessionHandle};
use baton_sdk::transport::AppNet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// One live session and the events of its last poll, which the caller's event structs
/// point into.
pub(crate) struct Entry {
    pub(crate) session: SessionHandle,
    /// The application's network the session runs over, if it does.
    pub(crate) net: Option<AppNet>,
    polled: Mutex<Polled>,
}

/// Storage behind the pointers handed out by the last `baton_poll`.
#[derive(Default)]
pub(crate) struct Polled {
    pub(crate) events: Vec<Event>,
    pub(crate) inputs: Vec<Vec<baton_input>>,
}

// SAFETY: the raw pointers inside `inputs` point into the heap buffers of `events`,
// which this struct owns and never mutates while they are handed out; they are only
// dereferenced by the C caller. Moving the struct between threads moves no buffer.
unsafe impl Send for Polled {}

impl Entry {
    pub(crate) fn new(session: SessionHandle, net: Option<AppNet>) -> Entry {
        Entry {
            session,
            net,
            polled: Mutex::new(Polled::default()),
        }
    }

    /// The last poll's storage, for the next poll to replace.
    pub(crate) fn polled(&self) -> MutexGuard<'_, Polled> {
        lock(&self.polled)
    }
}

struct Slot {
    generation: u32,
    entry: Option<Arc<Entry>>,
}

fn slots() -> MutexGuard<'static, Vec<Slot>> {
    static SLOTS: OnceLock<Mutex<Vec<Slot>>> = OnceLock::new();
    lock(SLOTS.get_or_init(|| Mutex::new(Vec::new())))
}

/// A poisoned lock only means another call panicked (and was caught); the data behind
/// these locks stays consistent at every await-free step, so it is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn encode(index: usize, generation: u32) -> baton_session {
    ((generation as u64) << 32) | (index as u64 + 1)
}

fn decode(handle: baton_session) -> Option<(usize, u32)> {
    let index = (handle & 0xffff_ffff).checked_sub(1)?;
    Some((usize::try_from(index).ok()?, (handle >> 32) as u32))
}

/// Stores a session and issues its handle.
pub(crate) fn insert(entry: Entry) -> baton_session {
    let entry = Arc::new(entry);
    let mut slots = slots();
    if let Some(index) = slots.iter().position(|slot| slot.entry.is_none()) {
        let slot = &mut slots[index];
        slot.entry = Some(entry);
        return encode(index, slot.generation);
    }
    slots.push(Slot {
        generation: 1,
        entry: Some(entry),
    });
    encode(slots.len() - 1, 1)
}

/// The session a handle names, if it is live. The table's lock is released before the
/// caller uses the entry, so a slow call never blocks other sessions.
pub(crate) fn get(handle: baton_session) -> Result<Arc<Entry>, Error> {
    let (index, generation) = decode(handle).ok_or(Error::Handle(handle))?;
    let slots = slots();
    match slots.get(index) {
        Some(Slot {
            generation: live,
            entry: Some(entry),
        }) if *live == generation => Ok(entry.clone()),
        _ => Err(Error::Handle(handle)),
    }
}

/// Takes a session out of the table; its handle (and every copy of it) is stale from
/// now on. Calls already under way on other threads finish on their own reference.
pub(crate) fn remove(handle: baton_session) -> Result<Arc<Entry>, Error> {
    let (index, generation) = decode(handle).ok_or(Error::Handle(handle))?;
    let mut slots = slots();
    match slots.get_mut(index) {
        Some(slot) if slot.generation == generation && slot.entry.is_some() => {
            // Generation 0 is skipped so that a wrapped counter never issues handle
            // values a zeroed struct could hold.
            slot.generation = slot.generation.checked_add(1).unwrap_or(1);
            slot.entry.take().ok_or(Error::Handle(handle))
        }
        _ => Err(Error::Handle(handle)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_zero_is_never_valid() {
        assert_eq!(decode(encode(0, 1)), Some((0, 1)));
        assert_eq!(decode(encode(41, 7)), Some((41, 7)));
        assert_eq!(decode(0), None);
        assert_eq!(decode(7 << 32), None);
    }
}
