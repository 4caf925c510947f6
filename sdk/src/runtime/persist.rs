//! The persistence thread: makes each Ready durable in order, off the async task, so that a
//! slow disk delays only the acknowledgements that depend on it — never the leader's
//! heartbeats or the tick timer.

use crate::raft::{Entry, HardState, Message, Snapshot};
use crate::storage::{PersistBatch, Storage, StorageError};
use tokio::sync::mpsc;

/// One Ready's worth of persistence, with the messages that may leave only after it.
pub(crate) struct PersistJob {
    pub(crate) ready_number: u64,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) persisted_messages: Vec<Message>,
}

/// Reported back to the driver once a job is durable (or failed).
pub(crate) struct PersistDone {
    pub(crate) ready_number: u64,
    pub(crate) persisted_messages: Vec<Message>,
    pub(crate) result: Result<(), StorageError>,
}

/// Starts the thread. It ends when the job sender is dropped, after finishing every job
/// already queued, so a graceful shutdown flushes everything that was handed over.
pub(crate) fn spawn_persister(
    mut storage: Box<dyn Storage>,
    node_label: String,
) -> std::io::Result<(
    std::sync::mpsc::Sender<PersistJob>,
    mpsc::UnboundedReceiver<PersistDone>,
    std::thread::JoinHandle<()>,
)> {
    let (job_tx, job_rx) = std::sync::mpsc::channel::<PersistJob>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let handle = std::thread::Builder::new()
        .name(format!("baton-persist-{node_label}"))
        .spawn(move || {
            while let Ok(job) = job_rx.recv() {
                let batch = PersistBatch {
                    hard_state: job.hard_state,
                    snapshot: job.snapshot.as_ref(),
                    entries: &job.entries,
                };
                let result = storage.persist(&batch);
                let failed = result.is_err();
                let done = PersistDone {
                    ready_number: job.ready_number,
                    persisted_messages: job.persisted_messages,
                    result,
                };
                if done_tx.send(done).is_err() || failed {
                    // After a failed write nothing later may be made durable: the order of the
                    // log on disk would no longer match what the core believes.
                    break;
                }
            }
        })?;
    Ok((job_tx, done_rx, handle))
}
