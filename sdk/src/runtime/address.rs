//! The rule for what enters the replicated address book: where peers should dial a node.
//!
//! A node announces `advertise_addr` if it has one, its bound address otherwise. A bound
//! address may be unspecified (`0.0.0.0:port`, `[::]:port`): the node listens on every
//! interface and cannot tell which of its IPs a given peer reaches it at, and no peer can
//! dial `0.0.0.0`. So whoever records the address fills what the announcement leaves open
//! from what it observes of the node's connection. The observed port is the node's listening
//! port already (a quinn endpoint sends from its one bound socket), but only up to the first
//! NAT; the announced port is the one the node vouches for, so it is kept whenever it is set.

use super::wire::as_carried;
use std::net::{IpAddr, SocketAddr};

/// The address to record for a node that `announced` an address (or nothing) and whose
/// connection was `observed` coming from an address (or was not seen). A specific announced
/// IP and port win (an advertised address may be a port forward the observer cannot know
/// of); an unspecified IP or port 0 is taken from the observation. The result is in the form
/// the log carries ([`as_carried`]), with an IPv4-mapped IPv6 address turned into IPv4 so
/// that peers bound to IPv4 only can dial it too. `None` when no dialable address follows.
pub(crate) fn dialable_addr(
    announced: Option<SocketAddr>,
    observed: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let announced = announced.map(canonical);
    let observed = observed.map(canonical);
    let ip = match announced.map(|addr| addr.ip()) {
        Some(ip) if !ip.is_unspecified() => ip,
        _ => observed?.ip(),
    };
    let port = match announced.map(|addr| addr.port()) {
        Some(port) if port != 0 => port,
        _ => observed?.port(),
    };
    let addr = SocketAddr::new(ip, port);
    (!ip.is_unspecified() && port != 0).then(|| as_carried(addr))
}

/// A socket on `[::]` sees IPv4 peers as `::ffff:a.b.c.d`; an IPv4-only peer cannot dial that
/// form, while every socket can dial the plain IPv4 one (quinn maps it for IPv6 sockets).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The addresses an invite names for a node that `announced` this address and whose machine
/// has the IPs `interfaces`. A specific announcement stands alone. An unspecified one (the
/// node listens on every interface) becomes one address per usable interface IP of the bound
/// family — both families for `[::]`, which is dual-stack — with the bound port: a joiner
/// tries them in order, so LAN and public IPs come first, IPv4 before IPv6, and loopback only
/// when nothing else exists (a remote joiner dialing its own loopback would wait out a
/// handshake timeout, or reach a different program). IPv6 link-local addresses are left out:
/// they need a scope id, which the invite does not carry.
pub(crate) fn invite_addrs(
    announced: SocketAddr,
    interfaces: impl IntoIterator<Item = IpAddr>,
) -> Vec<SocketAddr> {
    if !announced.ip().is_unspecified() {
        return vec![announced];
    }
    let dual_stack = announced.is_ipv6();
    let mut ips: Vec<IpAddr> = interfaces
        .into_iter()
        .map(|ip| ip.to_canonical())
        .filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !is_ipv6_link_local(ip))
        .filter(|ip| ip.is_ipv4() || dual_stack)
        .collect();
    ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6(), *ip));
    ips.dedup();
    if ips.iter().any(|ip| !ip.is_loopback()) {
        ips.retain(|ip| !ip.is_loopback());
    }
    if ips.is_empty() {
        ips.push(if dual_stack {
            IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])
        } else {
            IpAddr::from([127, 0, 0, 1])
        });
    }
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, announced.port()))
        .collect()
}

fn is_ipv6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::{dialable_addr, invite_addrs};
    use std::net::{IpAddr, SocketAddr};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP literal")
    }

    #[test]
    fn an_invite_names_a_specific_announcement_alone() {
        let announced = addr("203.0.113.7:7000");
        assert_eq!(
            invite_addrs(announced, [ip("192.168.1.5")]),
            vec![announced]
        );
    }

    #[test]
    fn an_invite_from_an_ipv4_wildcard_names_every_usable_ipv4_interface_lan_first() {
        let interfaces = [
            ip("127.0.0.1"),
            ip("fe80::1"),
            ip("2001:db8::5"),
            ip("10.0.0.9"),
            ip("192.168.1.5"),
            ip("10.0.0.9"),
        ];
        assert_eq!(
            invite_addrs(addr("0.0.0.0:7000"), interfaces),
            vec![addr("10.0.0.9:7000"), addr("192.168.1.5:7000")],
            "no loopback beside real interfaces, no IPv6 on an IPv4 socket, no duplicates"
        );
    }

    #[test]
    fn an_invite_from_a_dual_stack_wildcard_names_both_families_ipv4_first() {
        let interfaces = [
            ip("2001:db8::5"),
            ip("fe80::1"),
            ip("192.168.1.5"),
            ip("::1"),
        ];
        assert_eq!(
            invite_addrs(addr("[::]:7000"), interfaces),
            vec![addr("192.168.1.5:7000"), addr("[2001:db8::5]:7000")],
            "link-local left out: the invite cannot carry its scope id"
        );
    }

    #[test]
    fn an_invite_from_a_machine_with_only_loopback_names_loopback() {
        assert_eq!(
            invite_addrs(addr("0.0.0.0:7000"), [ip("127.0.0.1"), ip("::1")]),
            vec![addr("127.0.0.1:7000")]
        );
        assert_eq!(
            invite_addrs(addr("0.0.0.0:7000"), []),
            vec![addr("127.0.0.1:7000")],
            "no interface list at all still gives a dialable address"
        );
        assert_eq!(
            invite_addrs(addr("[::]:7000"), []),
            vec![addr("[::1]:7000")]
        );
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address literal")
    }

    #[test]
    fn a_specific_announcement_is_kept_whatever_was_observed() {
        let announced = addr("203.0.113.7:7000");
        assert_eq!(dialable_addr(Some(announced), None), Some(announced));
        assert_eq!(
            dialable_addr(Some(announced), Some(addr("192.168.1.20:40000"))),
            Some(announced),
            "an advertised address may be a port forward the observer cannot see"
        );
    }

    #[test]
    fn an_unspecified_ipv4_announcement_takes_the_observed_ip_and_keeps_its_port() {
        assert_eq!(
            dialable_addr(Some(addr("0.0.0.0:7000")), Some(addr("192.168.1.20:7000"))),
            Some(addr("192.168.1.20:7000"))
        );
        assert_eq!(
            dialable_addr(Some(addr("0.0.0.0:7000")), Some(addr("198.51.100.4:61000"))),
            Some(addr("198.51.100.4:7000")),
            "a NAT may rewrite the source port; the node's own port is the one it listens on"
        );
    }

    #[test]
    fn an_unspecified_ipv6_announcement_takes_the_observed_ip() {
        assert_eq!(
            dialable_addr(Some(addr("[::]:7000")), Some(addr("[2001:db8::5]:7000"))),
            Some(addr("[2001:db8::5]:7000"))
        );
        assert_eq!(
            dialable_addr(Some(addr("[::]:7000")), Some(addr("127.0.0.1:7000"))),
            Some(addr("127.0.0.1:7000"))
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_recorded_as_ipv4() {
        assert_eq!(
            dialable_addr(
                Some(addr("0.0.0.0:7000")),
                Some(addr("[::ffff:10.0.0.8]:7000"))
            ),
            Some(addr("10.0.0.8:7000"))
        );
        assert_eq!(
            dialable_addr(Some(addr("[::ffff:10.0.0.8]:7000")), None),
            Some(addr("10.0.0.8:7000"))
        );
        assert_eq!(
            dialable_addr(Some(addr("[::ffff:0.0.0.0]:7000")), None),
            None,
            "a mapped unspecified address is still unspecified"
        );
    }

    #[test]
    fn an_unspecified_announcement_without_an_observation_gives_nothing() {
        assert_eq!(dialable_addr(Some(addr("0.0.0.0:7000")), None), None);
        assert_eq!(dialable_addr(Some(addr("[::]:7000")), None), None);
        assert_eq!(dialable_addr(None, None), None);
    }

    #[test]
    fn a_missing_port_is_taken_from_the_observation() {
        assert_eq!(
            dialable_addr(
                Some(addr("192.168.1.20:0")),
                Some(addr("192.168.1.20:7000"))
            ),
            Some(addr("192.168.1.20:7000"))
        );
        assert_eq!(
            dialable_addr(Some(addr("0.0.0.0:0")), Some(addr("192.168.1.20:7000"))),
            Some(addr("192.168.1.20:7000"))
        );
        assert_eq!(dialable_addr(Some(addr("192.168.1.20:0")), None), None);
    }

    #[test]
    fn without_an_announcement_the_observation_is_the_address() {
        assert_eq!(
            dialable_addr(None, Some(addr("192.168.1.20:7000"))),
            Some(addr("192.168.1.20:7000"))
        );
        assert_eq!(
            dialable_addr(None, Some(addr("0.0.0.0:7000"))),
            None,
            "an observation is never unspecified, but nothing undialable is recorded"
        );
    }

    #[test]
    fn the_result_is_in_the_form_the_log_carries() {
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().expect("an IPv6 literal"),
            7000,
            5,
            3,
        ));
        assert_eq!(
            dialable_addr(Some(scoped), None),
            Some(addr("[fe80::1]:7000")),
            "flow label and scope id are local to the announcing host"
        );
        assert_eq!(
            dialable_addr(Some(addr("[::]:7000")), Some(scoped)),
            Some(addr("[fe80::1]:7000"))
        );
    }
}
