//! The runtime side of a session: a tokio task that owns the node and drives one
//! [`SessionCore`], and the [`SessionHandle`] a game pumps from its own thread.
//!
//! Threads: the node's task runs Raft, storage and the transport; this task feeds the
//! core what the node reports and carries out the core's actions; the game calls the
//! handle from whatever thread it likes (one, in every engine). They share the core
//! behind one lock that is held for a single call, never across I/O or game code, so a
//! slow frame in the game delays its own answers and nothing else.

use super::core::{Action, CallError, Event, Outcome, SessionCore, SessionView};
use super::replica::{MachinePort, SessionMachine, TICK_APPLIED};
use super::{SessionConfig, SessionError};
use crate::raft::NodeId;
use crate::runtime::{Bootstrap, Node, NodeError, NodeEvent, NodeStatus};
use crate::transport::{Identity, Invite, SessionCredentials};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, Notify};
use tracing::Instrument;

/// The state the handle and the task share.
struct Shared {
    core: Mutex<SessionCore>,
    /// Signalled when events were queued for the game (for [`SessionHandle::wait_event`]).
    queued: Condvar,
    /// Wakes the task after the game called into the core, so actions run at once.
    wake: Notify,
    /// Wakes async waiters (the Rust adapter's `submit_input`) after events were queued.
    queued_async: Notify,
    node: OnceLock<Node<SessionMachine>>,
    id: NodeId,
}

impl Shared {
    /// Locks the core. A panic while it was held (there is no game code under it) leaves
    /// it as consistent as the call that panicked; the task turns the panic into `Fatal`.
    fn core(&self) -> MutexGuard<'_, SessionCore> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn after_call(&self) {
        self.wake.notify_one();
    }

    fn announce(&self) {
        self.queued.notify_all();
        self.queued_async.notify_waiters();
    }
}

/// A poll-based handle on one player's session: what the C ABI wraps, and what the async
/// [`Session`](super::Session) adapter is built on. Every method is non-blocking except
/// [`wait_event`](Self::wait_event), and may be called from any thread.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &format_args!("{:016x}", self.shared.id))
            .finish()
    }
}

/// Longest a stopping session waits for its node to shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl SessionHandle {
    /// Founds a session hosted by this player, on `runtime`. Returns at once; the first
    /// event is [`Event::Started`] or [`Event::Fatal`].
    pub fn host(
        config: SessionConfig,
        identity: Identity,
        runtime: &tokio::runtime::Handle,
    ) -> Result<SessionHandle, SessionError> {
        Self::start(
            config,
            identity,
            SessionCredentials::generate(),
            Bootstrap::NewCluster,
            runtime,
        )
    }

    /// Joins the session an invite names (or restarts from this player's storage).
    /// Returns at once; a refused invite arrives as [`Event::Fatal`]. An invite that names a
    /// rendezvous service makes the player play over the Internet through it, unless
    /// `config.node.transport.internet` names one already.
    pub fn join(
        invite: &Invite,
        mut config: SessionConfig,
        identity: Identity,
        runtime: &tokio::runtime::Handle,
    ) -> Result<SessionHandle, SessionError> {
        config.node.transport.internet =
            crate::internet::InternetConfig::for_joiner(&config.node.transport, invite);
        let bootstrap = Bootstrap::Join {
            addrs: invite.addrs.clone(),
        };
        Self::start(
            config,
            identity,
            invite.credentials.clone(),
            bootstrap,
            runtime,
        )
    }

    fn start(
        config: SessionConfig,
        identity: Identity,
        credentials: SessionCredentials,
        bootstrap: Bootstrap,
        runtime: &tokio::runtime::Handle,
    ) -> Result<SessionHandle, SessionError> {
        config.validate()?;
        let id = identity.node_id();
        let incarnation = config.incarnation.unwrap_or_else(wall_clock_micros);
        let core = SessionCore::new(config.clone(), id, incarnation, Instant::now());
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            queued: Condvar::new(),
            wake: Notify::new(),
            queued_async: Notify::new(),
            node: OnceLock::new(),
            id,
        });
        let span = tracing::info_span!("session", id = %format_args!("{id:016x}"));
        let task = Task {
            shared: shared.clone(),
            config,
        };
        let watched = shared.clone();
        let running = runtime.spawn(task.run(identity, credentials, bootstrap).instrument(span));
        // A panic in the task must not end the session silently: the game hears `Fatal`,
        // and the node is stopped.
        runtime.spawn(async move {
            if let Err(err) = running.await {
                let reason = if err.is_panic() {
                    "the session task panicked".to_string()
                } else {
                    "the session task was cancelled".to_string()
                };
                tracing::error!(reason, "session stopped");
                watched.core().handle_fatal(reason);
                watched.announce();
                if let Some(node) = watched.node.get() {
                    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, node.shutdown()).await;
                }
            }
        });
        Ok(SessionHandle { shared })
    }

    /// This player's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The next event, if one is waiting. Never blocks.
    pub fn poll_event(&self) -> Option<Event> {
        self.shared.core().poll_event()
    }

    /// The next event, waiting up to `timeout` for one (for a thread that has nothing
    /// else to do; a game loop calls [`poll_event`](Self::poll_event) each frame instead).
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        self.wait_for(timeout, SessionCore::poll_event)
    }

    /// Blocks until an event is waiting or `timeout` passed, without taking it; returns
    /// whether one is waiting. For threads with nothing else to do (tools, tests, a
    /// binding's blocking helper), never for a game's frame.
    pub fn wait_queued(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |core| (core.events_queued() > 0).then_some(()))
            .is_some()
    }

    /// Waits, up to `timeout`, for `check` to find something in the core; it runs again
    /// each time events are queued.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&mut SessionCore) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut core = self.shared.core();
        loop {
            if let Some(found) = check(&mut core) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            core = self
                .shared
                .queued
                .wait_timeout(core, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Waits (async) until events were queued or `timeout` passed.
    pub(crate) async fn events_queued(&self, timeout: Duration) {
        let notified = self.shared.queued_async.notified();
        if self.shared.core().events_queued() > 0 {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    fn call<T>(&self, call: impl FnOnce(&mut SessionCore, Instant) -> T) -> T {
        let result = call(&mut self.shared.core(), Instant::now());
        self.shared.after_call();
        result
    }

    /// Sends an input (copied) to the host; returns its sequence number, or
    /// [`CallError::WouldBlock`] while the window of inputs in flight is full.
    pub fn submit_input(&self, data: &[u8]) -> Result<u64, CallError> {
        self.call(|core, now| core.submit_input(data, now))
    }

    /// Answers [`Event::RunTick`] for `tick`.
    pub fn commit_tick(&self, tick: u64, payload: Vec<u8>) -> Result<(), CallError> {
        self.call(|core, now| core.commit_tick(tick, payload, now))
    }

    /// Answers [`Event::MakeSnapshot`] for `tick`.
    pub fn answer_snapshot(&self, tick: u64, snapshot: Vec<u8>) -> Result<(), CallError> {
        self.call(|core, _| core.answer_snapshot(tick, snapshot))
    }

    /// Sets the game's own fitness score in `[0, 1]`.
    pub fn set_game_score(&self, score: f64) {
        self.call(|core, _| core.set_game_score(score))
    }

    /// Starts a graceful leave; [`Event::Left`] (or `Fatal`) says how it ended.
    pub fn leave(&self) -> Result<(), CallError> {
        self.call(|core, now| core.leave(now))
    }

    /// Asks the session to stop at once, without waiting for it (callable from any
    /// thread, inside a runtime or not).
    pub fn stop_soon(&self) {
        self.shared
            .core()
            .handle_fatal("stopped by the game".into());
        self.shared.announce();
        self.shared.after_call();
    }

    /// Stops this player at once, without handing over (the others elect a new host).
    pub async fn stop(&self) {
        self.stop_soon();
        if let Some(node) = self.shared.node.get() {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, node.shutdown()).await;
        }
    }

    /// The node underneath, once started.
    pub fn node(&self) -> Option<&Node<SessionMachine>> {
        self.shared.node.get()
    }

    /// The device's network changed (the OS or platform said so): see
    /// [`Node::network_changed`]. Returns whether there was anything to do (false before
    /// the session started, on a LAN, or over the application's network).
    pub fn network_changed(&self) -> bool {
        self.shared.node.get().is_some_and(Node::network_changed)
    }

    /// An invite other players can join with, once started.
    pub fn invite(&self) -> Option<Invite> {
        self.shared.node.get().map(Node::invite)
    }

    /// The last tick the session has seen applied (the game may not have polled it yet).
    pub fn last_tick(&self) -> u64 {
        self.shared.core().last_tick()
    }

    /// Whether the session has stopped (its last event is `Left` or `Fatal`).
    pub fn is_stopped(&self) -> bool {
        self.shared.core().is_stopped()
    }

    /// Inputs submitted and not yet committed.
    pub fn inputs_pending(&self) -> usize {
        self.shared.core().inputs_pending()
    }

    /// What this player knows of its session right now (never blocks on the node).
    pub fn view(&self) -> SessionView {
        self.shared.core().view()
    }
}

/// Microseconds since the Unix epoch: a restarted player's incarnation is greater than
/// the one before, as long as its clock does not run backwards between the two.
fn wall_clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(1)
}

/// What the task hears back from the node about actions it started.
enum Report {
    Outcome(Outcome),
    Status(Result<Box<NodeStatus>, String>),
    /// A joiner's entry into the configuration, refused, or not yet after a while.
    Joined(Result<(), NodeError>),
}

/// How long a joiner waits to be in the configuration before it warns the game (it keeps
/// trying; a refusal ends it at once).
const JOIN_WARNING_AFTER: Duration = Duration::from_secs(30);

struct Task {
    shared: Arc<Shared>,
    config: SessionConfig,
}

impl Task {
    async fn run(self, identity: Identity, credentials: SessionCredentials, bootstrap: Bootstrap) {
        let (machine, mut port) = SessionMachine::new(&self.config);
        let joining = matches!(bootstrap, Bootstrap::Join { .. });
        let node = match Node::start(
            self.config.node.clone(),
            identity,
            credentials,
            machine,
            bootstrap,
        )
        .await
        {
            Ok(node) => node,
            Err(err) => {
                self.shared
                    .core()
                    .handle_fatal(format!("the session could not start: {err}"));
                self.shared.announce();
                return;
            }
        };
        let _ = self.shared.node.set(node.clone());
        let mut node_events = node.events();
        let Some(mut messages) = node.take_player_messages() else {
            self.shared
                .core()
                .handle_fatal("player messages already taken".into());
            self.shared.announce();
            return;
        };
        self.shared.core().handle_started();
        tracing::info!(joining, "session started");
        let (reports_tx, mut reports) = mpsc::unbounded_channel();
        if joining {
            let node = node.clone();
            let reports = reports_tx.clone();
            tokio::spawn(async move {
                let joined = node.joined(JOIN_WARNING_AFTER).await;
                let _ = reports.send(Report::Joined(joined));
            });
        }
        // The node started before this task subscribed: events it sent in between (a
        // founder becomes leader at once) are read from its status instead.
        self.resync(&node).await;
        loop {
            if self.carry_out(&node, &port, &reports_tx).await {
                break;
            }
            let deadline = self.shared.core().poll_timeout();
            let Some(deadline) = deadline else { break };
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                // Applied records first: an outcome (a barrier) must never overtake the
                // records applied before it.
                biased;
                Some(record) = port.applied.recv() => {
                    self.shared.core().handle_applied(record, Instant::now());
                }
                event = node_events.recv() => match event {
                    Ok(event) => self.on_node_event(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "session fell behind the node's events; resynchronising");
                        self.resync(&node).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.shared.core().handle_fatal("the node stopped".into());
                    }
                },
                Some((from, bytes)) = messages.recv() => {
                    self.shared.core().handle_message(from, &bytes, Instant::now());
                }
                Some(report) = reports.recv() => {
                    let now = Instant::now();
                    let mut core = self.shared.core();
                    match report {
                        Report::Outcome(outcome) => core.handle_outcome(outcome, now),
                        Report::Status(Ok(status)) => core.handle_status(&status, now),
                        Report::Status(Err(err)) => {
                            tracing::debug!(%err, "status unavailable");
                            core.handle_status_unavailable();
                        }
                        Report::Joined(Ok(())) => tracing::info!("joined the session"),
                        Report::Joined(Err(NodeError::JoinRefused(reason))) => {
                            core.handle_fatal(format!("the session refused to let us join: {reason}"));
                        }
                        Report::Joined(Err(err)) => core.handle_warning(format!(
                            "not in the session yet ({err}); still trying"
                        )),
                    }
                }
                _ = self.shared.wake.notified() => {}
                _ = sleep => self.shared.core().handle_timeout(Instant::now()),
            }
        }
        self.shared.announce();
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, node.shutdown()).await;
        tracing::debug!("session task ended");
    }

    /// Reads role and membership from the node's status, for events this task missed.
    /// The membership is the committed one, as the events carry: the core tells a leaver
    /// it is removed once it is out of that set, and an appended removal can still be
    /// overwritten by the next host.
    async fn resync(&self, node: &Node<SessionMachine>) {
        if let Ok(status) = node.status().await {
            let now = Instant::now();
            let mut core = self.shared.core();
            core.handle_membership(status.committed_membership.clone(), now);
            core.handle_role(status.role, status.leader, now);
        }
    }

    fn on_node_event(&self, event: NodeEvent) {
        let now = Instant::now();
        let mut core = self.shared.core();
        match event {
            NodeEvent::RoleChanged { role, leader, .. } => core.handle_role(role, leader, now),
            NodeEvent::MembershipChanged(membership) => core.handle_membership(membership, now),
            NodeEvent::Joined => {}
            NodeEvent::JoinRefused(reason) => core.handle_fatal(reason),
            NodeEvent::Fatal(reason) => core.handle_fatal(reason),
        }
    }

    /// Runs every action the core asked for; true once the session is over.
    async fn carry_out(
        &self,
        node: &Node<SessionMachine>,
        port: &MachinePort,
        reports: &mpsc::UnboundedSender<Report>,
    ) -> bool {
        let mut stop = false;
        loop {
            let (action, queued) = {
                let mut core = self.shared.core();
                (core.poll_action(), core.events_queued())
            };
            if queued > 0 {
                self.shared.announce();
            }
            let Some(action) = action else { break };
            match action {
                Action::Propose { tick, record } => {
                    let node = node.clone();
                    let reports = reports.clone();
                    tokio::spawn(async move {
                        let result = node
                            .propose(record)
                            .await
                            .map(|result| result == TICK_APPLIED)
                            .map_err(|err| err.to_string());
                        let _ =
                            reports.send(Report::Outcome(Outcome::TickProposed { tick, result }));
                    });
                }
                Action::Send { to, bytes } => {
                    let _ = node.send_player_message(to, bytes).await;
                }
                Action::Barrier => {
                    let node = node.clone();
                    let reports = reports.clone();
                    tokio::spawn(async move {
                        let result = node.read(|_| ()).await.map_err(|err| err.to_string());
                        let _ = reports.send(Report::Outcome(Outcome::Barrier(result)));
                    });
                }
                Action::ChangeMembership(change) => {
                    let node = node.clone();
                    let reports = reports.clone();
                    tokio::spawn(async move {
                        let result = node
                            .change_membership(change, None)
                            .await
                            .map_err(|err| err.to_string());
                        let _ = reports.send(Report::Outcome(Outcome::Policy(result)));
                    });
                }
                Action::Transfer { target } => {
                    let node = node.clone();
                    let reports = reports.clone();
                    tokio::spawn(async move {
                        let result = node
                            .transfer_leadership(target)
                            .await
                            .map_err(|err| err.to_string());
                        let _ = reports.send(Report::Outcome(Outcome::Policy(result)));
                    });
                }
                Action::QueryStatus => {
                    let node = node.clone();
                    let reports = reports.clone();
                    tokio::spawn(async move {
                        let status = node
                            .status()
                            .await
                            .map(Box::new)
                            .map_err(|err| err.to_string());
                        let _ = reports.send(Report::Status(status));
                    });
                }
                Action::SetFitness(fitness) => {
                    let _ = node.set_fitness(fitness).await;
                }
                Action::StopRejoining => {
                    let _ = node.stop_rejoining().await;
                }
                Action::SaveImage(image) => port.save_image(image),
                Action::Stop => stop = true,
            }
        }
        stop || self.shared.core().is_stopped()
    }
}
