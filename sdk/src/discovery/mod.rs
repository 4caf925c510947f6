//! Finding a session's nodes: static peer lists, invite codes, and mDNS on a LAN.
//!
//! Discovery only produces *addresses*. Whoever answers at an address still has to pass the
//! transport's join handshake, so a spoofed mDNS answer can waste a dial but never gets a
//! node into the session.
//!
//! # mDNS
//!
//! Service type [`SERVICE_TYPE`] (`_baton._udp.local.`), one instance per node named
//! `n<node id hex>`, port = the node's QUIC port. TXT properties:
//!
//! | key   | value                                   |
//! |-------|-----------------------------------------|
//! | `sid` | session id, 32 lowercase hex digits     |
//! | `pv`  | protocol version, `major.minor`         |
//! | `id`  | node id, 16 lowercase hex digits        |
//!
//! The session secret is never advertised. Browsing keeps only instances whose `sid` matches
//! and whose major protocol version is ours.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::raft::NodeId;
use crate::transport::{Invite, SessionId, PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// The DNS-SD service type of Baton sessions.
pub const SERVICE_TYPE: &str = "_baton._udp.local.";
/// Most distinct nodes one browse collects.
pub const DISCOVERED_PEERS_MAX: usize = 256;
/// Most entries accepted in a static peer list.
pub const STATIC_PEERS_MAX: usize = 64;

const TXT_SESSION_ID: &str = "sid";
const TXT_PROTOCOL_VERSION: &str = "pv";
const TXT_NODE_ID: &str = "id";

/// Discovery failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The mDNS daemon failed.
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// A static peer list entry is not `ip:port`.
    #[error("invalid peer address {entry:?}: expected ip:port")]
    BadPeerAddress {
        /// The entry.
        entry: String,
    },
    /// A static peer list with too many entries.
    #[error("peer list has more than {STATIC_PEERS_MAX} entries")]
    TooManyPeers,
}

/// Which interfaces mDNS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MdnsScope {
    /// Every non-loopback interface (a real LAN). The default.
    #[default]
    Lan,
    /// IPv4 loopback only: for tests inside a network namespace; never touches a real
    /// interface.
    LoopbackOnly,
}

/// A node found by browsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredPeer {
    /// The node id it advertises (a claim: the transport verifies it on connect).
    pub node_id: NodeId,
    /// Addresses at which it advertises its QUIC port.
    pub addrs: Vec<SocketAddr>,
    /// Its protocol minor version.
    pub protocol_minor: u16,
}

/// An mDNS responder/browser. Advertisements live as long as their [`Advertisement`] guard.
#[derive(Clone)]
pub struct Mdns {
    daemon: ServiceDaemon,
}

impl std::fmt::Debug for Mdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mdns").finish_non_exhaustive()
    }
}

/// Keeps a service advertised; unregisters it when dropped.
#[derive(Debug)]
pub struct Advertisement {
    mdns: Mdns,
    fullname: String,
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        // Best effort: the daemon may already be shutting down.
        let _ = self.mdns.daemon.unregister(&self.fullname);
    }
}

impl Mdns {
    /// Starts an mDNS daemon on the interfaces of `scope`.
    pub fn new(scope: MdnsScope) -> Result<Mdns, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        match scope {
            MdnsScope::Lan => {}
            MdnsScope::LoopbackOnly => {
                daemon.disable_interface(IfKind::All)?;
                daemon.enable_interface(IfKind::LoopbackV4)?;
            }
        }
        Ok(Mdns { daemon })
    }

    /// Advertises this node of `session_id` at `port` (the transport's UDP port).
    pub fn advertise(
        &self,
        session_id: SessionId,
        port: u16,
        node_id: NodeId,
    ) -> Result<Advertisement, DiscoveryError> {
        let instance = format!("n{node_id:016x}");
        let host = format!("baton-{node_id:016x}.local.");
        let session = session_id.to_string();
        let version = format!("{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}");
        let node = format!("{node_id:016x}");
        let properties = [
            (TXT_SESSION_ID, session.as_str()),
            (TXT_PROTOCOL_VERSION, version.as_str()),
            (TXT_NODE_ID, node.as_str()),
        ];
        let info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &properties[..])?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info)?;
        tracing::info!(%session_id, port, node = %node, "advertising over mDNS");
        Ok(Advertisement {
            mdns: self.clone(),
            fullname,
        })
    }

    /// Browses for `window` and returns the nodes of `session_id` that speak our major version.
    pub async fn browse_peers(
        &self,
        session_id: SessionId,
        window: Duration,
    ) -> Result<Vec<DiscoveredPeer>, DiscoveryError> {
        let events = self.daemon.browse(SERVICE_TYPE)?;
        let deadline = tokio::time::Instant::now() + window;
        let mut found: BTreeMap<NodeId, DiscoveredPeer> = BTreeMap::new();
        // Bounded by the deadline and by DISCOVERED_PEERS_MAX.
        while found.len() < DISCOVERED_PEERS_MAX {
            let event = match tokio::time::timeout_at(deadline, events.recv_async()).await {
                Ok(Ok(event)) => event,
                Ok(Err(_)) | Err(_) => break,
            };
            if let ServiceEvent::ServiceResolved(info) = event {
                if let Some(peer) = peer_of_session(&info, session_id) {
                    let entry = found.entry(peer.node_id).or_insert_with(|| DiscoveredPeer {
                        addrs: Vec::new(),
                        ..peer.clone()
                    });
                    for addr in peer.addrs {
                        if !entry.addrs.contains(&addr) {
                            entry.addrs.push(addr);
                        }
                    }
                }
            }
        }
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        Ok(found.into_values().collect())
    }

    /// Browses for `window` and returns every address of every node of `session_id`.
    pub async fn browse(
        &self,
        session_id: SessionId,
        window: Duration,
    ) -> Result<Vec<SocketAddr>, DiscoveryError> {
        let peers = self.browse_peers(session_id, window).await?;
        Ok(peers.into_iter().flat_map(|p| p.addrs).collect())
    }

    /// Stops the daemon (advertisements end with it).
    pub fn shutdown(&self) {
        let _ = self.daemon.shutdown();
    }
}

/// The fields of a resolved instance that Baton cares about, as plain values.
struct Advertised<'a> {
    session_id: Option<&'a str>,
    protocol_version: Option<&'a str>,
    node_id: Option<&'a str>,
    ips: Vec<IpAddr>,
    port: u16,
}

fn peer_of_session(info: &ServiceInfo, session_id: SessionId) -> Option<DiscoveredPeer> {
    parse_advertised(
        &Advertised {
            session_id: info.get_property_val_str(TXT_SESSION_ID),
            protocol_version: info.get_property_val_str(TXT_PROTOCOL_VERSION),
            node_id: info.get_property_val_str(TXT_NODE_ID),
            ips: info.get_addresses().iter().copied().collect(),
            port: info.get_port(),
        },
        session_id,
    )
}

fn parse_advertised(ad: &Advertised<'_>, session_id: SessionId) -> Option<DiscoveredPeer> {
    let advertised_session: SessionId = ad.session_id?.parse().ok()?;
    if advertised_session != session_id {
        return None;
    }
    let (major, minor) = ad.protocol_version?.split_once('.')?;
    if major.parse::<u16>().ok()? != PROTOCOL_MAJOR {
        tracing::debug!(version = ?ad.protocol_version, "ignoring node of another major version");
        return None;
    }
    let node_id = ad.node_id.filter(|s| s.len() == 16)?;
    let node_id = NodeId::from_str_radix(node_id, 16).ok()?;
    if ad.port == 0 || ad.ips.is_empty() {
        return None;
    }
    let mut addrs: Vec<SocketAddr> = ad
        .ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, ad.port))
        .collect();
    addrs.sort();
    Some(DiscoveredPeer {
        node_id,
        addrs,
        protocol_minor: minor.parse().ok()?,
    })
}

/// Advertises on the LAN with a daemon of its own (see [`Mdns::advertise`]).
pub fn advertise(
    session_id: SessionId,
    port: u16,
    node_id: NodeId,
) -> Result<Advertisement, DiscoveryError> {
    Mdns::new(MdnsScope::Lan)?.advertise(session_id, port, node_id)
}

/// Browses the LAN with a daemon of its own (see [`Mdns::browse`]).
pub async fn browse(
    session_id: SessionId,
    window: Duration,
) -> Result<Vec<SocketAddr>, DiscoveryError> {
    let mdns = Mdns::new(MdnsScope::Lan)?;
    let found = mdns.browse(session_id, window).await;
    mdns.shutdown();
    found
}

/// Parses a static peer list: `ip:port` entries separated by commas or whitespace
/// (IPv6 as `[::1]:7000`). Host names are not resolved, on purpose: no DNS at run time.
pub fn parse_peer_list(text: &str) -> Result<Vec<SocketAddr>, DiscoveryError> {
    let mut out = Vec::new();
    for entry in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if entry.is_empty() {
            continue;
        }
        if out.len() == STATIC_PEERS_MAX {
            return Err(DiscoveryError::TooManyPeers);
        }
        let addr = entry.parse().map_err(|_| DiscoveryError::BadPeerAddress {
            entry: entry.to_string(),
        })?;
        out.push(addr);
    }
    Ok(out)
}

/// Where a joining node finds its first peers.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// A fixed list of addresses.
    Static(Vec<SocketAddr>),
    /// The addresses carried by an invite code.
    Invite(Invite),
    /// Browse mDNS for the session for a while.
    Mdns {
        /// The session to look for.
        session_id: SessionId,
        /// How long to browse.
        window: Duration,
        /// Interfaces to browse on.
        scope: MdnsScope,
    },
}

impl Bootstrap {
    /// The candidate addresses to dial (each still has to pass the join handshake).
    pub async fn addrs(&self) -> Result<Vec<SocketAddr>, DiscoveryError> {
        match self {
            Bootstrap::Static(addrs) => Ok(addrs.clone()),
            Bootstrap::Invite(invite) => Ok(invite.addrs.clone()),
            Bootstrap::Mdns {
                session_id,
                window,
                scope,
            } => {
                let mdns = Mdns::new(*scope)?;
                let found = mdns.browse(*session_id, *window).await;
                mdns.shutdown();
                found
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(byte: u8) -> SessionId {
        SessionId([byte; 16])
    }

    fn ad<'a>(session: &'a str, version: &'a str, node: &'a str) -> Advertised<'a> {
        Advertised {
            session_id: Some(session),
            protocol_version: Some(version),
            node_id: Some(node),
            ips: vec!["127.0.0.1".parse().unwrap()],
            port: 7000,
        }
    }

    #[test]
    fn only_our_session_and_major_are_kept() {
        let ours = sid(1).to_string();
        let theirs = sid(2).to_string();
        let node = "00000000000000ab";
        let v = format!("{PROTOCOL_MAJOR}.3");
        let peer = parse_advertised(&ad(&ours, &v, node), sid(1)).unwrap();
        assert_eq!(peer.node_id, 0xab);
        assert_eq!(peer.addrs, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(peer.protocol_minor, 3);
        assert!(parse_advertised(&ad(&theirs, &v, node), sid(1)).is_none());
        let next_major = format!("{}.0", PROTOCOL_MAJOR + 1);
        assert!(parse_advertised(&ad(&ours, &next_major, node), sid(1)).is_none());
    }

    #[test]
    fn malformed_advertisements_are_ignored() {
        let ours = sid(1).to_string();
        for (session, version, node) in [
            ("zz", "1.0", "00000000000000ab"),
            (ours.as_str(), "one", "00000000000000ab"),
            (ours.as_str(), "1.0", "ab"),
            (ours.as_str(), "1.0", "not hex at all!!"),
        ] {
            assert!(parse_advertised(&ad(session, version, node), sid(1)).is_none());
        }
    }

    #[test]
    fn static_peer_lists_parse() {
        let list = parse_peer_list("127.0.0.1:7000, [::1]:7001\n127.0.0.2:7002").unwrap();
        assert_eq!(list.len(), 3);
        assert!(matches!(
            parse_peer_list("localhost:7000"),
            Err(DiscoveryError::BadPeerAddress { .. })
        ));
    }
}
