//! The detector scenario: failure detection under clock drift, delay spikes and a
//! partition, on a LAN or an Internet link (80 ± 40 ms, in order), with the runtime's
//! election timing. A script instead of random chaos:
//!
//! 1. quiet play (`QUIET_START_MS` to `CRASH_AT_MS`): clocks drift (each node ticks every
//!    6–20 ms for the whole run), a client proposes, and every so often one directed link
//!    holds its messages for a spike longer than the detection timeout. No term may change
//!    once every voter follows one leader (`NeedlessElection`): a follower that suspects
//!    the leader alone must fail its pre-vote;
//! 2. the leader is crashed: another voter must lead a later term within
//!    `FAILOVER_BOUND_MS` (`FailoverBound`);
//! 3. the new leader is cut off from everyone for `PARTITION_MS`, then every fault heals
//!    and the usual liveness phase demands a fresh commit within `LIVENESS_BOUND_MS`.
//!
//! The safety invariants are checked after every step throughout, as in the chaos runs.

use super::check::Violation;
use super::profile::Link;
use super::world::{Event, World};
use baton::raft::{NodeId, Term};
use rand::Rng;
use std::collections::BTreeSet;

/// Startup (first election, first measurements) before quiet play is judged.
pub const QUIET_START_MS: u64 = 3_000;
/// End of quiet play: the leader is crashed (a minute of play).
pub const CRASH_AT_MS: u64 = 63_000;
/// After the crash, another voter must lead within this time (LAN).
pub const FAILOVER_BOUND_LAN_MS: u64 = 1_000;
/// After the crash, another voter must lead within this time (Internet): the liveness
/// bound. An election there needs two round trips of up to 240 ms while a round lasts
/// 15–30 ticks, 90–180 ms at the fastest clock, so split votes and rounds that end before
/// their answers arrive can cost several rounds; the fixed range fares no better (seen:
/// 3 of 100 seeds over 3 s with it, 1 with the detector).
pub const FAILOVER_BOUND_INTERNET_MS: u64 = super::world::LIVENESS_BOUND_MS;
/// When the leader of the moment is cut off, after the crash.
pub const PARTITION_AT_MS: u64 = CRASH_AT_MS + 4_000;
/// How long it stays cut off.
pub const PARTITION_MS: u64 = 3_000;
/// Shortest pause between two delay spikes.
pub const SPIKE_INTERVAL_MS_MIN: u64 = 500;
/// Longest pause between two delay spikes.
pub const SPIKE_INTERVAL_MS_MAX: u64 = 2_500;
/// Shortest delay spike on one link.
pub const SPIKE_MS_MIN: u64 = 50;
/// Longest delay spike on one link.
pub const SPIKE_MS_MAX: u64 = 600;

/// A step of the script.
#[derive(Debug)]
pub(super) enum Step {
    Spike,
    CrashLeader,
    Partition,
}

/// What the script has seen so far.
#[derive(Debug)]
pub(super) struct Script {
    pub(super) link: Link,
    /// Term of the leader every voter followed when quiet play began.
    quiet_term: Option<Term>,
    /// The crashed leader's term and when it was crashed.
    crashed: Option<(Term, u64)>,
    /// Milliseconds from the crash until a later term had a leader.
    pub(super) failover_ms: Option<u64>,
}

impl Script {
    pub(super) fn new(link: Link) -> Script {
        Script {
            link,
            quiet_term: None,
            crashed: None,
            failover_ms: None,
        }
    }

    fn failover_bound_ms(&self) -> u64 {
        match self.link {
            Link::Lan => FAILOVER_BOUND_LAN_MS,
            Link::Internet => FAILOVER_BOUND_INTERNET_MS,
        }
    }
}

impl World {
    /// Schedules the script's steps and the heal.
    pub(super) fn start_script(&mut self) {
        let first_spike = QUIET_START_MS + self.spike_pause();
        self.schedule(first_spike, Event::Script(Step::Spike));
        self.schedule(CRASH_AT_MS, Event::Script(Step::CrashLeader));
        self.schedule(PARTITION_AT_MS, Event::Script(Step::Partition));
        self.schedule(PARTITION_AT_MS + PARTITION_MS, Event::Heal);
    }

    fn spike_pause(&mut self) -> u64 {
        self.chaos_rng
            .random_range(SPIKE_INTERVAL_MS_MIN..=SPIKE_INTERVAL_MS_MAX)
    }

    pub(super) fn on_script(&mut self, step: Step) -> Result<(), Violation> {
        match step {
            Step::Spike => {
                let up = self.up_ids();
                let (Some(from), Some(to)) = (self.pick(&up), self.pick(&up)) else {
                    return Ok(());
                };
                if from != to {
                    let length = self.chaos_rng.random_range(SPIKE_MS_MIN..=SPIKE_MS_MAX);
                    self.network.weather.spike = Some((from, to, self.now_ms + length));
                    trace!(self, "FAULT delay spike {from} -> {to} for {length} ms");
                }
                let next = self.now_ms + self.spike_pause();
                if next < CRASH_AT_MS {
                    self.schedule(next, Event::Script(Step::Spike));
                }
            }
            Step::CrashLeader => {
                if self.script_quiet_term().is_none() {
                    return Err(Violation::new(
                        "Liveness",
                        format!(
                            "no leader followed by every voter in {} ms of quiet play ({})",
                            CRASH_AT_MS - QUIET_START_MS,
                            self.describe_nodes()
                        ),
                    ));
                }
                let Some(leader) = self.current_leader() else {
                    return Err(Violation::new("Liveness", "no leader to crash".into()));
                };
                let term = self.term_of(leader).unwrap_or(0);
                self.crash(leader);
                if let Some(script) = self.script.as_mut() {
                    script.crashed = Some((term, self.now_ms));
                }
                trace!(self, "FAULT the leader {leader} of term {term} is crashed");
            }
            Step::Partition => {
                if let Some(leader) = self.current_leader() {
                    let all = self.all_ids();
                    self.network.partition(&BTreeSet::from([leader]), &all);
                    self.stats.partitions += 1;
                    trace!(self, "FAULT the leader {leader} is cut off");
                }
            }
        }
        Ok(())
    }

    fn script_quiet_term(&self) -> Option<Term> {
        self.script.as_ref().and_then(|s| s.quiet_term)
    }

    fn term_of(&self, id: NodeId) -> Option<Term> {
        let slot = self.slot(id)?;
        self.nodes[slot].raft.as_ref().map(|r| r.term())
    }

    /// The script's checks, after every step: no needless election in quiet play, a
    /// failover within its bound after the crash.
    pub(super) fn check_script(&mut self) -> Result<(), Violation> {
        let Some(script) = self.script.as_ref() else {
            return Ok(());
        };
        let (quiet_term, crashed, bound) = (
            script.quiet_term,
            script.crashed,
            script.failover_bound_ms(),
        );
        let now = self.now_ms;
        let highest_term = self
            .up_ids()
            .iter()
            .filter_map(|id| self.term_of(*id))
            .max()
            .unwrap_or(0);
        if let Some((crashed_term, at)) = crashed {
            let replaced = self
                .current_leader()
                .and_then(|leader| self.term_of(leader))
                .is_some_and(|term| term > crashed_term);
            if script.failover_ms.is_none() {
                if replaced {
                    let taken = now - at;
                    if let Some(script) = self.script.as_mut() {
                        script.failover_ms = Some(taken);
                    }
                    trace!(self, "CHECK failover took {taken} ms");
                } else if now > at + bound {
                    return Err(Violation::new(
                        "FailoverBound",
                        format!(
                            "no leader of a later term than {crashed_term} within {bound} ms of its leader's crash ({})",
                            self.describe_nodes()
                        ),
                    ));
                }
            }
            return Ok(());
        }
        match quiet_term {
            Some(term) if highest_term > term => Err(Violation::new(
                "NeedlessElection",
                format!(
                    "term {term} became {highest_term} in quiet play: no crash, only drift, jitter and delay spikes ({})",
                    self.describe_nodes()
                ),
            )),
            Some(_) => Ok(()),
            None if now >= QUIET_START_MS => {
                if let Some(term) = self.followed_by_all() {
                    if let Some(script) = self.script.as_mut() {
                        script.quiet_term = Some(term);
                    }
                    trace!(self, "CHECK quiet play starts in term {term}");
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The term of a leader every running voter follows, if there is one.
    fn followed_by_all(&self) -> Option<Term> {
        let leader = self.current_leader()?;
        let term = self.term_of(leader)?;
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .all(|r| r.term() == term && r.leader_id() == Some(leader))
            .then_some(term)
    }
}
