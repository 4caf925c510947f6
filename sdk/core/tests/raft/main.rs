//! Scenario tests of the Raft core, named after the dissertation's sections
//! (Ongaro 2014) and the public bug reports they guard against.

mod harness;

mod codec;
mod detector;
mod election;
mod fitness;
mod membership;
mod paper;
mod reads;
mod replication;
mod snapshot;
mod soak;
mod transfer;
mod validation;
