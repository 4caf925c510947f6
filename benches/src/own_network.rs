//! Tick latency over the application's own network, beside direct QUIC in the same run:
//! the cost of carrying QUIC through a platform's datagram calls (`AppNet`) instead of a
//! UDP socket, with the platform itself adding nothing (an in-process forwarder with no
//! loss and no delay), so the difference is Baton's own.

use crate::session::{measure_ticks, measure_ticks_with, session_config, TickLatencies};
use crate::BenchError;
use baton::transport::{AppNet, NetAddr, NetConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Voters of the compared sessions (every player votes at these sizes).
const VOTERS: usize = 5;

/// An in-process platform: each player's outgoing datagrams are handed to the player they
/// name as soon as the player's network offers them.
struct Platform {
    nets: Vec<AppNet>,
    forwarders: Vec<JoinHandle<()>>,
}

impl Platform {
    fn new(players: usize, datagram_bytes_max: usize) -> Result<Platform, BenchError> {
        let mut nets = Vec::with_capacity(players);
        for player in 0..players {
            let addr = NetAddr::new(format!("bench-{player}").as_bytes())
                .map_err(|_| BenchError::Config("a bench player address is invalid"))?;
            nets.push(
                AppNet::new(NetConfig::new(addr, datagram_bytes_max))
                    .map_err(|_| BenchError::Config("the platform's datagram size is invalid"))?,
            );
        }
        let directory: Arc<Mutex<HashMap<NetAddr, AppNet>>> = Arc::new(Mutex::new(
            nets.iter()
                .map(|net| (net.local().clone(), net.clone()))
                .collect(),
        ));
        let forwarders = nets
            .iter()
            .map(|net| {
                let (net, directory) = (net.clone(), directory.clone());
                tokio::spawn(async move {
                    loop {
                        let datagram = net.next_outgoing().await;
                        let to = directory
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .get(&datagram.peer)
                            .cloned();
                        if let Some(to) = to {
                            // A full queue is the platform's loss, as on a real one.
                            let _ = to.push_incoming(net.local(), &datagram.bytes);
                        }
                    }
                })
            })
            .collect();
        Ok(Platform { nets, forwarders })
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
    }
}

/// The same session measured over direct QUIC on loopback, then over the in-process
/// platform with datagrams of `datagram_bytes_max` (below 1200, QUIC travels in
/// fragments).
pub async fn compare(
    players: usize,
    hz: u32,
    ticks: u64,
    datagram_bytes_max: usize,
) -> Result<(TickLatencies, TickLatencies), BenchError> {
    let direct = measure_ticks(players, hz, ticks).await?;
    let platform = Platform::new(players, datagram_bytes_max)?;
    let over_platform = measure_ticks_with(players, hz, ticks, |player| {
        let mut config = session_config(hz, VOTERS);
        config.node.transport.app_net = Some(platform.nets[player].clone());
        config
    })
    .await?;
    Ok((direct, over_platform))
}
