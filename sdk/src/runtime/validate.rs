//! Checks a [`NodeConfig`] before anything is started, so that a setting which would panic
//! or spin inside the node's task (a zero `tokio::time::interval`, a zero sleep in a retry
//! loop, an `Instant + Duration` that overflows, a message the transport can never carry)
//! is refused by `Node::start` with the field's name instead.

use super::{Bootstrap, NodeConfig, NodeError};
use crate::transport::NetAddr;
use std::time::{Duration, Instant};

/// Longest duration accepted for any interval or timeout of the runtime. Deadlines are
/// `Instant::now() + setting` (and the transfer deadline twice the election timeout), so
/// an unbounded value could overflow the clock's representation and panic in the task.
pub const CONFIG_DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Room left in a transport frame for the envelope around a Raft message's payload (frame
/// header, `Wire` and `Message` encodings, entry headers).
pub const FRAME_ENVELOPE_BYTES_MAX: usize = 4096;

fn invalid(field: &'static str, reason: impl Into<String>) -> NodeError {
    NodeError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn positive_duration(field: &'static str, value: Duration) -> Result<(), NodeError> {
    if value.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    if value > CONFIG_DURATION_MAX {
        return Err(invalid(
            field,
            format!("{value:?} is longer than the limit of {CONFIG_DURATION_MAX:?}"),
        ));
    }
    Ok(())
}

impl NodeConfig {
    /// Checks the settings `Node::start` would otherwise only trip over later, inside the
    /// node's task. The core's own settings (`raft`) are checked by the core
    /// ([`NodeError::Config`]); everything else is reported as
    /// [`NodeError::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<(), NodeError> {
        positive_duration("tick_interval", self.tick_interval)?;
        positive_duration("proposal_retry_interval", self.proposal_retry_interval)?;
        positive_duration("proposal_timeout", self.proposal_timeout)?;
        positive_duration("join_retry_interval", self.join_retry_interval)?;
        if self.snapshot_interval_entries == 0 {
            return Err(invalid(
                "snapshot_interval_entries",
                "must be at least 1 (0 would compact after every entry applied)",
            ));
        }
        // The transfer deadline is twice the election timeout, in wall-clock time.
        let transfer_wait = self
            .tick_interval
            .checked_mul(self.raft.election_timeout_ticks_max)
            .and_then(|timeout| timeout.checked_mul(2))
            .filter(|wait| {
                *wait <= CONFIG_DURATION_MAX && Instant::now().checked_add(*wait).is_some()
            });
        if transfer_wait.is_none() {
            return Err(invalid(
                "tick_interval",
                format!(
                    "{:?} times election_timeout_ticks_max ({}) is too long",
                    self.tick_interval, self.raft.election_timeout_ticks_max
                ),
            ));
        }
        let transport = &self.transport;
        positive_duration("transport.hello_timeout", transport.hello_timeout)?;
        positive_duration("transport.connect_timeout", transport.connect_timeout)?;
        positive_duration("transport.keep_alive", transport.keep_alive)?;
        let payload_max = transport
            .max_frame_bytes
            .saturating_sub(FRAME_ENVELOPE_BYTES_MAX);
        if self.raft.snapshot_chunk_bytes > payload_max {
            return Err(invalid(
                "raft.snapshot_chunk_bytes",
                format!(
                    "{} bytes do not fit a transport frame of {} bytes with its envelope; \
                     a snapshot could never be sent",
                    self.raft.snapshot_chunk_bytes, transport.max_frame_bytes
                ),
            ));
        }
        if self.raft.max_append_bytes > payload_max {
            return Err(invalid(
                "raft.max_append_bytes",
                format!(
                    "{} bytes do not fit a transport frame of {} bytes with its envelope",
                    self.raft.max_append_bytes, transport.max_frame_bytes
                ),
            ));
        }
        Ok(())
    }

    /// One session runs over one kind of network: every address it is given (the one it
    /// advertises, the ones it joins at) names a player on the application's network when
    /// the node runs over one ([`TransportConfig::app_net`](crate::transport::TransportConfig::app_net)),
    /// and an IP address otherwise. Mixing them would leave some pairs of players unable
    /// to reach each other after a host migration, so it is refused here.
    pub(crate) fn validate_networks(&self, bootstrap: &Bootstrap) -> Result<(), NodeError> {
        let app = self.transport.app_net.is_some();
        let joined = match bootstrap {
            Bootstrap::Join { addrs } => addrs.as_slice(),
            Bootstrap::NewCluster => &[],
        };
        let given = self
            .advertise_addr
            .iter()
            .map(|addr| ("advertise_addr", addr))
            .chain(joined.iter().map(|addr| ("bootstrap", addr)));
        for (field, addr) in given {
            if NetAddr::is_app(*addr) != app {
                let reason = if app {
                    format!("{addr} is an IP address, but this node runs over the application's network")
                } else {
                    format!("{addr} names a player on an application network, but this node runs over UDP")
                };
                return Err(invalid(field, reason));
            }
        }
        Ok(())
    }
}
