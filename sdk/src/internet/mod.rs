//! Play across the Internet: players behind home NATs find each other through a rendezvous
//! service, punch through their NATs with QUIC itself, or relay over UDP through a TURN
//! server when they cannot (see `docs/internet-play.md`).
//!
//! # Shape
//!
//! - [`socket`]: the node's one UDP socket, shared by quinn and the services, sorting what
//!   arrives by source address and first byte (RFC 9443) and wrapping relayed traffic in
//!   TURN ChannelData.
//! - [`rendezvous`]: the rendezvous protocol and the service's soft state (the
//!   `baton-rendezvous` binary runs it).
//! - [`stun`]: the STUN/TURN client subset (Binding, Allocate, Refresh, ChannelBind).
//! - the agent (internal): registers the node, learns its reflexive address, checks how its
//!   NAT maps against the TURN server, allocates a relay when it must, and hands the
//!   transport the candidates to punch toward.
//!
//! A node plays over the Internet when its [`TransportConfig::internet`] is set:
//!
//! ```no_run
//! use baton::internet::InternetConfig;
//! use baton::transport::TransportConfig;
//!
//! let mut transport = TransportConfig::default();
//! transport.bind = "0.0.0.0:0".parse().unwrap();
//! transport.internet = Some(InternetConfig::new("192.0.2.1:3479".parse().unwrap()));
//! ```
//!
//! [`TransportConfig::internet`]: crate::transport::TransportConfig::internet

mod agent;
pub mod rendezvous;
pub mod socket;
pub mod stun;

use std::net::SocketAddr;
use std::time::Duration;

use crate::transport::{Invite, TransportConfig, INVITE_RENDEZVOUS_MAX};

pub use agent::InternetStatus;
pub(crate) use agent::{Agent, NetworkSignal, Punch, Request, PUNCH_QUEUE_MAX};
pub use socket::{PathCounters, PathKind};

/// How a node reaches the Internet services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetConfig {
    /// The rendezvous service instance to register on (UDP).
    pub rendezvous: SocketAddr,
    /// Other instances of the rendezvous service, tried in order when the one in use stops
    /// answering (at most [`INVITE_RENDEZVOUS_MAX`] instances in all are kept). The invite
    /// names them all, so joiners move the same way.
    pub fallbacks: Vec<SocketAddr>,
    /// How often the node refreshes its registration (also keeps its NAT mapping toward the
    /// service alive). Default 5 s, well inside the service's 30 s expiry.
    pub register_interval: Duration,
    /// How long starting the node waits for the first answer of the service before going on
    /// without a public address. Default 3 s.
    pub first_registration_timeout: Duration,
}

impl InternetConfig {
    /// Defaults for the rendezvous service at `rendezvous`.
    pub fn new(rendezvous: SocketAddr) -> InternetConfig {
        InternetConfig {
            rendezvous,
            fallbacks: Vec::new(),
            register_interval: Duration::from_secs(5),
            first_registration_timeout: Duration::from_secs(3),
        }
    }

    /// Defaults for these instances of the rendezvous service, tried in this order; `None`
    /// for none.
    pub fn of_instances(instances: &[SocketAddr]) -> Option<InternetConfig> {
        let (first, fallbacks) = instances.split_first()?;
        Some(InternetConfig {
            fallbacks: fallbacks.to_vec(),
            ..InternetConfig::new(*first)
        })
    }

    /// Every instance, in the order they are tried, without repeats.
    pub fn instances(&self) -> Vec<SocketAddr> {
        let mut instances = vec![self.rendezvous];
        for addr in &self.fallbacks {
            if !instances.contains(addr) && instances.len() < INVITE_RENDEZVOUS_MAX {
                instances.push(*addr);
            }
        }
        instances
    }

    /// What a player joining with `invite` uses: the configuration's own, which overrides,
    /// else the rendezvous service the invite names (none on the application's own
    /// network, which has no IP addresses to punch).
    pub(crate) fn for_joiner(
        transport: &TransportConfig,
        invite: &Invite,
    ) -> Option<InternetConfig> {
        match (&transport.internet, &transport.app_net) {
            (Some(configured), _) => Some(configured.clone()),
            (None, Some(_)) => None,
            (None, None) => InternetConfig::of_instances(&invite.rendezvous),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::SessionCredentials;

    #[test]
    fn a_joiner_takes_the_invites_rendezvous_unless_configured_with_one() {
        let named: SocketAddr = "192.0.2.1:3479".parse().unwrap();
        let spare: SocketAddr = "192.0.2.3:3479".parse().unwrap();
        let invite = Invite {
            credentials: SessionCredentials::generate(),
            addrs: Vec::new(),
            rendezvous: vec![named, spare],
        };
        let mut transport = TransportConfig::default();
        let joiner = InternetConfig::for_joiner(&transport, &invite).unwrap();
        assert_eq!(joiner.instances(), [named, spare]);
        let own = InternetConfig::new("198.51.100.7:3479".parse().unwrap());
        transport.internet = Some(own.clone());
        assert_eq!(InternetConfig::for_joiner(&transport, &invite), Some(own));
        let lan = Invite {
            rendezvous: Vec::new(),
            ..invite
        };
        transport.internet = None;
        assert_eq!(InternetConfig::for_joiner(&transport, &lan), None);
    }
}
