//! Open sessions on a LAN, over mDNS: `baton-demo host --lan` advertises its session with
//! its invite code, and `baton-demo lan` / `baton-demo join --lan` list what they hear.
//!
//! This is the demo's own service type, not `baton::discovery`'s: that one finds the nodes
//! of a session whose invite you already have, and never advertises the secret. An *open*
//! demo session does the opposite on purpose — anyone on the LAN may join it, so the invite
//! is in the TXT record. Only ever done when the user asks with `--lan`.

use crate::DemoError;
use baton::transport::Invite;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The DNS-SD service type of open demo sessions.
pub const SERVICE_TYPE: &str = "_baton-demo._udp.local.";
/// How long a LAN listing listens.
pub const BROWSE_WINDOW: Duration = Duration::from_secs(3);
/// Most sessions one listing collects.
pub const LAN_SESSIONS_MAX: usize = 64;
/// Characters of the invite per TXT property: a TXT string holds at most 255 bytes, key
/// included, and an invite with many addresses is longer than that.
const INVITE_CHUNK_CHARS: usize = 200;
/// Most TXT chunks an invite is split into (an invite code is well under 1000 chars).
const INVITE_CHUNKS_MAX: usize = 8;

/// An open session heard on the LAN.
#[derive(Debug, Clone)]
pub struct LanSession {
    /// Who advertised it (the founding player's node id, hex).
    pub host: String,
    /// Its invite code.
    pub invite: Invite,
}

/// Keeps an open session advertised while it lives.
pub struct LanAdvertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Drop for LanAdvertisement {
    fn drop(&mut self) {
        // Best effort: say goodbye so listings drop us at once rather than on expiry.
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

fn lan_error(err: mdns_sd::Error) -> DemoError {
    DemoError::Lan(err.to_string())
}

/// Advertises the session of `invite`, founded by `node_id`, on every LAN interface.
pub fn advertise(invite: &Invite, node_id: u64, port: u16) -> Result<LanAdvertisement, DemoError> {
    let daemon = ServiceDaemon::new().map_err(lan_error)?;
    let code = invite.to_string();
    let chunks: Vec<(String, String)> = code
        .as_bytes()
        .chunks(INVITE_CHUNK_CHARS)
        .enumerate()
        .map(|(index, chunk)| {
            (
                format!("i{index}"),
                String::from_utf8_lossy(chunk).into_owned(),
            )
        })
        .collect();
    let mut properties: Vec<(&str, &str)> = chunks
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let host_id = format!("{node_id:016x}");
    properties.push(("host", host_id.as_str()));
    let instance = format!("territory-{host_id}");
    let hostname = format!("baton-demo-{host_id}.local.");
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &instance,
        &hostname,
        "",
        port,
        &properties[..],
    )
    .map_err(lan_error)?
    .enable_addr_auto();
    let fullname = info.get_fullname().to_string();
    daemon.register(info).map_err(lan_error)?;
    tracing::info!(%instance, "open session advertised on the LAN");
    Ok(LanAdvertisement { daemon, fullname })
}

/// Listens for `window` and returns the open sessions heard, one per founder.
pub fn browse(window: Duration) -> Result<Vec<LanSession>, DemoError> {
    let daemon = ServiceDaemon::new().map_err(lan_error)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(lan_error)?;
    let deadline = Instant::now() + window;
    let mut found = BTreeMap::new();
    while found.len() < LAN_SESSIONS_MAX {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(info)) => {
                if let Some(session) = parse(&info) {
                    found.insert(session.host.clone(), session);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

fn parse(info: &ServiceInfo) -> Option<LanSession> {
    let host = info.get_property_val_str("host")?.to_string();
    let chunks: Vec<&str> = (0..INVITE_CHUNKS_MAX)
        .map_while(|index| info.get_property_val_str(&format!("i{index}")))
        .collect();
    join_invite(&chunks).map(|invite| LanSession { host, invite })
}

/// Rebuilds an invite from its TXT chunks; `None` unless it parses (anyone on the LAN can
/// advertise anything, and the join handshake still checks the secret).
fn join_invite(chunks: &[&str]) -> Option<Invite> {
    Invite::from_str(&chunks.concat()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton::transport::SessionCredentials;

    #[test]
    fn a_long_invite_survives_being_split_into_txt_chunks() {
        let invite = Invite {
            credentials: SessionCredentials::generate(),
            addrs: (1..=8)
                .map(|i| format!("192.168.1.{i}:4000").parse().expect("address"))
                .collect(),
            rendezvous: vec!["192.0.2.1:3479".parse().expect("address")],
        };
        let code = invite.to_string();
        let chunks: Vec<&str> = code
            .as_bytes()
            .chunks(INVITE_CHUNK_CHARS)
            .map(|chunk| std::str::from_utf8(chunk).expect("ascii"))
            .collect();
        assert!(chunks.len() <= INVITE_CHUNKS_MAX);
        assert!(chunks.iter().all(|chunk| chunk.len() + 3 <= 255));
        let back = join_invite(&chunks).expect("parses");
        assert_eq!(back.to_string(), code);
        assert!(join_invite(&["baton1-nonsense"]).is_none());
    }
}
