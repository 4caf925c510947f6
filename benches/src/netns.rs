//! Two network namespaces joined by one veth pair, made by the harness for itself (root
//! only), so the bytes one process sends can be read from the kernel: the host of the
//! large session runs alone in one namespace, and the veth's transmit counter there is
//! exactly what it sent. Nothing touches the machine's own interfaces; both namespaces
//! (and with them the veth pair) are deleted when the pair is dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// The host side's address (a /30 that exists only between the two namespaces).
pub const HOST_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1));
/// The crowd side's address.
pub const CROWD_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 213, 0, 2));

/// The pair of namespaces; deleted on drop.
pub struct NamespacePair {
    /// Namespace of the measured process.
    pub host: String,
    /// Namespace of every other process.
    pub crowd: String,
    /// The veth end inside `host`.
    pub host_link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| format!("ip: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NamespacePair {
    /// Creates both namespaces and the link, or says why this machine cannot.
    pub fn create() -> Result<NamespacePair, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("counting a process's bytes needs root (network namespaces)".into());
        }
        let pid = std::process::id();
        let pair = NamespacePair {
            host: format!("bbench-h-{pid}"),
            crowd: format!("bbench-c-{pid}"),
            // Interface names are at most 15 bytes.
            host_link: format!("bbh{}", pid % 1_000_000),
        };
        let crowd_link = format!("bbc{}", pid % 1_000_000);
        ip(&["netns", "add", &pair.host])?;
        // From here on, a failure drops `pair`, which deletes what exists.
        ip(&["netns", "add", &pair.crowd])?;
        ip(&[
            "link",
            "add",
            &pair.host_link,
            "netns",
            &pair.host,
            "type",
            "veth",
            "peer",
            "name",
            &crowd_link,
            "netns",
            &pair.crowd,
        ])?;
        for (ns, link, addr) in [
            (&pair.host, &pair.host_link, HOST_ADDR),
            (&pair.crowd, &crowd_link, CROWD_ADDR),
        ] {
            let cidr = format!("{addr}/30");
            ip(&["-n", ns, "addr", "add", &cidr, "dev", link])?;
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for NamespacePair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and so the pair.
        let _ = ip(&["netns", "delete", &self.host]);
        let _ = ip(&["netns", "delete", &self.crowd]);
    }
}

/// Bytes sent so far on interface `link`, as `/proc/PID/net/dev` of a process inside the
/// namespace shows it.
pub fn transmitted_bytes(pid: u32, link: &str) -> std::io::Result<u64> {
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
    parse_tx_bytes(&dev, link).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {link} in /proc/{pid}/net/dev"),
        )
    })
}

fn parse_tx_bytes(dev: &str, link: &str) -> Option<u64> {
    let line = dev
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{link}:")))?;
    let (_, counters) = line.split_once(':')?;
    // Eight receive counters, then transmit bytes.
    counters.split_whitespace().nth(8)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_bytes_are_the_ninth_counter_of_the_link() {
        let dev = "Inter-|   Receive  |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\nbbh12:  5 1 0 0 0 0 0 0 777 3 0 0 0 0 0 0\n";
        assert_eq!(parse_tx_bytes(dev, "bbh12"), Some(777));
        assert_eq!(parse_tx_bytes(dev, "lo"), Some(20));
        assert_eq!(parse_tx_bytes(dev, "eth0"), None);
    }
}
