//! Test support: fault injection below QUIC, without root.
//!
//! [`FaultController`] is a cloneable handle to a seeded fault model; give the same controller
//! to several transports (`TransportConfig::faults`) and change it at run time. Each transport
//! then wraps its UDP socket in a socket that consults the controller for every datagram:
//!
//! - on send: partition table (`from → to` blocked?), drop with `drop_rate`, duplicate with
//!   `duplicate_rate`, delay uniformly in `[delay_min, delay_max]`, and with `reorder_rate` hold
//!   a datagram back by an extra `delay_max + REORDER_EXTRA_DELAY` so later ones overtake it;
//! - on receive: partition table only (so a node whose peer does not share the controller is
//!   still cut off).
//!
//! Random choices come from one ChaCha RNG seeded by [`FaultController::new`]; with a shared
//! controller the sequence of decisions depends on the interleaving of sends, so a seed bounds
//! the fault pattern's statistics rather than replaying it packet for packet.
//! Delayed datagrams are sent from spawned tokio tasks, at most `DELAYED_DATAGRAMS_MAX` at once
//! (more are dropped, which QUIC treats as loss).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most delayed datagrams in flight per socket; beyond it new delayed datagrams are dropped.
pub const DELAYED_DATAGRAMS_MAX: usize = 4096;
/// Extra hold-back applied to a reordered datagram, on top of the maximum delay.
pub const REORDER_EXTRA_DELAY: Duration = Duration::from_millis(5);

/// Counters of what the fault model did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Datagrams offered for sending.
    pub sent: u64,
    /// Dropped at random.
    pub dropped: u64,
    /// Dropped by the partition table (send or receive side).
    pub blocked: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams sent late.
    pub delayed: u64,
}

struct FaultState {
    rng: ChaCha8Rng,
    drop_rate: f64,
    duplicate_rate: f64,
    reorder_rate: f64,
    delay_min: Duration,
    delay_max: Duration,
    /// Delays keep each path's order (see [`FaultController::set_jitter`]).
    in_order: bool,
    /// Per path (from, to): when its latest delayed datagram leaves.
    path_release: HashMap<(SocketAddr, SocketAddr), Instant>,
    blocked_links: HashSet<(SocketAddr, SocketAddr)>,
    isolated: HashSet<SocketAddr>,
    stats: FaultStats,
}

impl FaultState {
    fn is_blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.blocked_links.contains(&(from, to))
    }

    fn sample_delay(&mut self) -> Duration {
        if self.delay_max <= self.delay_min {
            return self.delay_min;
        }
        let span = (self.delay_max - self.delay_min).as_nanos() as u64;
        self.delay_min + Duration::from_nanos(self.rng.random_range(0..=span))
    }

    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    /// `delay`, lengthened so the datagram leaves after the path's previous one.
    fn keep_path_order(&mut self, from: SocketAddr, to: SocketAddr, delay: Duration) -> Duration {
        let now = Instant::now();
        let release = self
            .path_release
            .get(&(from, to))
            .map_or(now + delay, |last| (*last).max(now + delay));
        self.path_release.insert((from, to), release);
        release - now
    }
}

/// Cloneable run-time control of injected network faults. Test support.
#[derive(Clone)]
pub struct FaultController {
    state: Arc<Mutex<FaultState>>,
}

impl fmt::Debug for FaultController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("FaultController")
            .field("drop_rate", &s.drop_rate)
            .field("duplicate_rate", &s.duplicate_rate)
            .field("reorder_rate", &s.reorder_rate)
            .field("delay", &(s.delay_min, s.delay_max))
            .field("blocked_links", &s.blocked_links.len())
            .field("isolated", &s.isolated.len())
            .finish()
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// What to do with one outgoing datagram.
enum SendPlan {
    Discard,
    Deliver { delays: [Option<Duration>; 2] },
}

impl FaultController {
    /// A controller with no faults, whose random choices derive from `seed`.
    pub fn new(seed: u64) -> FaultController {
        FaultController {
            state: Arc::new(Mutex::new(FaultState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                drop_rate: 0.0,
                duplicate_rate: 0.0,
                reorder_rate: 0.0,
                delay_min: Duration::ZERO,
                delay_max: Duration::ZERO,
                in_order: false,
                path_release: HashMap::new(),
                blocked_links: HashSet::new(),
                isolated: HashSet::new(),
                stats: FaultStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Probability in [0, 1] that a datagram is dropped.
    pub fn set_drop_rate(&self, rate: f64) {
        self.lock().drop_rate = clamp_rate(rate);
    }

    /// Probability in [0, 1] that a datagram is sent twice.
    pub fn set_duplicate_rate(&self, rate: f64) {
        self.lock().duplicate_rate = clamp_rate(rate);
    }

    /// Probability in [0, 1] that a datagram is held back so later ones overtake it.
    pub fn set_reorder_rate(&self, rate: f64) {
        self.lock().reorder_rate = clamp_rate(rate);
    }

    /// Every datagram is delayed by a uniform random time in `[min, max]`, independently,
    /// so datagrams overtake each other whenever the span exceeds their spacing.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        let mut s = self.lock();
        s.delay_min = min;
        s.delay_max = max.max(min);
        s.in_order = false;
    }

    /// Every datagram is delayed by a uniform random time in `[min, max]`, but leaves no
    /// earlier than the datagram sent before it on the same path (to within the timer's
    /// millisecond): queueing jitter as on a real path, which seldom reorders. With
    /// [`set_delay`](Self::set_delay) instead, a span wider than the datagrams' spacing
    /// reorders most of them, and QUIC takes that for loss.
    pub fn set_jitter(&self, min: Duration, max: Duration) {
        self.set_delay(min, max);
        self.lock().in_order = true;
    }

    /// Blocks traffic between `a` and `b` in both directions.
    pub fn partition(&self, a: SocketAddr, b: SocketAddr) {
        let mut s = self.lock();
        s.blocked_links.insert((a, b));
        s.blocked_links.insert((b, a));
    }

    /// Blocks traffic from `from` to `to` only (asymmetric partition).
    pub fn block(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().blocked_links.insert((from, to));
    }

    /// Blocks all traffic to and from `addr`.
    pub fn isolate(&self, addr: SocketAddr) {
        self.lock().isolated.insert(addr);
    }

    /// Removes every partition, block and isolation (rates and delays stay).
    pub fn heal(&self) {
        let mut s = self.lock();
        s.blocked_links.clear();
        s.isolated.clear();
    }

    /// Heals and sets every rate and delay back to zero.
    pub fn reset(&self) {
        self.heal();
        let mut s = self.lock();
        s.drop_rate = 0.0;
        s.duplicate_rate = 0.0;
        s.reorder_rate = 0.0;
        s.delay_min = Duration::ZERO;
        s.delay_max = Duration::ZERO;
        s.in_order = false;
        s.path_release.clear();
    }

    /// What the model has done so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    fn plan_send(&self, from: SocketAddr, to: SocketAddr) -> SendPlan {
        let mut s = self.lock();
        s.stats.sent += 1;
        if s.is_blocked(from, to) {
            s.stats.blocked += 1;
            return SendPlan::Discard;
        }
        let drop_rate = s.drop_rate;
        if s.chance(drop_rate) {
            s.stats.dropped += 1;
            return SendPlan::Discard;
        }
        let duplicate_rate = s.duplicate_rate;
        let copies = if s.chance(duplicate_rate) { 2 } else { 1 };
        let mut delays = [None, None];
        for slot in delays.iter_mut().take(copies) {
            let mut delay = s.sample_delay();
            let reorder_rate = s.reorder_rate;
            if s.chance(reorder_rate) {
                delay += s.delay_max + REORDER_EXTRA_DELAY;
            }
            if s.in_order {
                delay = s.keep_path_order(from, to, delay);
            }
            *slot = Some(delay);
        }
        if copies == 2 {
            s.stats.duplicated += 1;
        }
        SendPlan::Deliver { delays }
    }

    fn admit_receive(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let mut s = self.lock();
        if s.is_blocked(from, to) {
            s.stats.blocked += 1;
            return false;
        }
        true
    }

    fn count_delayed(&self) {
        self.lock().stats.delayed += 1;
    }
}

/// A UDP socket that applies a [`FaultController`]'s faults to the socket it wraps.
pub(crate) struct FaultySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    controller: FaultController,
    local: SocketAddr,
    runtime: tokio::runtime::Handle,
    delayed_in_flight: Arc<AtomicUsize>,
}

impl fmt::Debug for FaultySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultySocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl FaultySocket {
    pub(crate) fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        controller: FaultController,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<FaultySocket> {
        let local = inner.local_addr()?;
        Ok(FaultySocket {
            inner,
            controller,
            local,
            runtime,
            delayed_in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn send_later(&self, transmit: &Transmit, delay: Duration) {
        if self.delayed_in_flight.fetch_add(1, Ordering::AcqRel) >= DELAYED_DATAGRAMS_MAX {
            self.delayed_in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        self.controller.count_delayed();
        let inner = self.inner.clone();
        let in_flight = self.delayed_in_flight.clone();
        let destination = transmit.destination;
        let ecn = transmit.ecn;
        let src_ip = transmit.src_ip;
        let segment_size = transmit.segment_size;
        let contents = transmit.contents.to_vec();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let later = Transmit {
                destination,
                ecn,
                contents: &contents,
                segment_size,
                src_ip,
            };
            // A late datagram that finds the socket busy is lost, like any datagram.
            let _ = inner.try_send(&later);
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.controller.plan_send(self.local, transmit.destination) {
            SendPlan::Discard => Ok(()),
            SendPlan::Deliver { delays } => {
                let mut result = Ok(());
                for (copy, delay) in delays.iter().enumerate() {
                    match delay {
                        Some(d) if d.is_zero() => {
                            let sent = self.inner.try_send(transmit);
                            // Only the first copy's readiness matters to quinn.
                            if copy == 0 {
                                result = sent;
                            }
                        }
                        Some(d) => self.send_later(transmit, *d),
                        None => {}
                    }
                }
                result
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let received = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let kept = keep_received(bufs, meta, received, |_, meta| {
                self.controller.admit_receive(meta.addr, self.local)
            });
            if kept > 0 || received == 0 {
                return Poll::Ready(Ok(kept));
            }
            // Everything in this batch was partitioned away: poll again so the caller is
            // either handed data or registered for wake-up.
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        // One datagram per transmit, so every datagram gets its own fault decision.
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Keeps the first `received` datagrams of a batch that `keep` accepts (it may rewrite
/// them in place), moved to the front in order; returns how many. Shared by the sockets
/// that wrap another one and filter what it receives.
pub(crate) fn keep_received(
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    received: usize,
    mut keep: impl FnMut(&mut IoSliceMut<'_>, &mut RecvMeta) -> bool,
) -> usize {
    let mut kept = 0;
    for i in 0..received {
        if !keep(&mut bufs[i], &mut meta[i]) {
            continue;
        }
        if kept != i {
            let len = meta[i].len;
            let (low, high) = bufs.split_at_mut(i);
            low[kept][..len].copy_from_slice(&high[0][..len]);
            meta[kept] = meta[i];
        }
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn partitions_are_directional_and_heal() {
        let c = FaultController::new(1);
        c.block(addr(1), addr(2));
        assert!(matches!(c.plan_send(addr(1), addr(2)), SendPlan::Discard));
        assert!(matches!(
            c.plan_send(addr(2), addr(1)),
            SendPlan::Deliver { .. }
        ));
        c.heal();
        assert!(matches!(
            c.plan_send(addr(1), addr(2)),
            SendPlan::Deliver { .. }
        ));
        c.isolate(addr(3));
        assert!(!c.admit_receive(addr(3), addr(1)));
        assert!(matches!(c.plan_send(addr(1), addr(3)), SendPlan::Discard));
    }

    #[test]
    fn drop_rate_is_roughly_honoured_and_seeded() {
        let rounds = 10_000;
        let count_drops = |seed| {
            let c = FaultController::new(seed);
            c.set_drop_rate(0.3);
            (0..rounds)
                .filter(|_| matches!(c.plan_send(addr(1), addr(2)), SendPlan::Discard))
                .count()
        };
        let drops = count_drops(7);
        assert_eq!(drops, count_drops(7), "same seed, same decisions");
        assert!(
            (2_500..3_500).contains(&drops),
            "dropped {drops} of {rounds}"
        );
    }

    #[test]
    fn delays_stay_in_range_and_duplicates_happen() {
        let c = FaultController::new(3);
        c.set_delay(Duration::from_millis(2), Duration::from_millis(4));
        c.set_duplicate_rate(1.0);
        match c.plan_send(addr(1), addr(2)) {
            SendPlan::Deliver {
                delays: [Some(a), Some(b)],
            } => {
                for d in [a, b] {
                    assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(4));
                }
            }
            _ => panic!("expected two delayed copies"),
        }
    }
}
