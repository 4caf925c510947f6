//! mDNS discovery for real, inside a network namespace this test creates (so nothing is ever
//! multicast on the machine's real interfaces).
//!
//! The test re-executes its own binary inside the namespace with `ip netns exec`, selecting
//! itself with `--exact` and marking the child with an environment variable; the child runs the
//! actual advertise/browse code. Without root or without `ip netns`, it prints why and skips.

mod support;

use std::process::Command;
use std::time::Duration;

use baton::discovery::{Bootstrap, Mdns, MdnsScope};
use baton::transport::{SessionCredentials, SessionId};
use support::netns::Namespace;

const CHILD_ENV: &str = "BATON_MDNS_NETNS_CHILD";
const TEST_NAME: &str = "mdns_finds_a_session_inside_a_network_namespace";
const BROWSE_WINDOW: Duration = Duration::from_secs(3);

#[test]
fn mdns_finds_a_session_inside_a_network_namespace() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let ns = match Namespace::create("baton-mdns") {
        Ok(ns) => ns,
        Err(reason) => {
            println!("SKIPPED {TEST_NAME}: {reason}");
            return;
        }
    };
    ns.ip(&["link", "set", "lo", "multicast", "on"]).unwrap();
    ns.ip(&["route", "add", "224.0.0.0/4", "dev", "lo"])
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            exe,
            "--exact",
            TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "--- child output ---\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "discovery inside the namespace failed"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child must have run the test itself"
    );
}

/// Runs inside the namespace: two sessions advertised, browsing finds exactly ours.
fn child() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ours = SessionCredentials::generate();
        let other = SessionCredentials::generate();
        let responder = Mdns::new(MdnsScope::LoopbackOnly).unwrap();
        let _a = responder.advertise(ours.session_id, 7101, 0xa1).unwrap();
        let _b = responder.advertise(ours.session_id, 7102, 0xb2).unwrap();
        let _c = responder.advertise(other.session_id, 7103, 0xc3).unwrap();

        let browser = Mdns::new(MdnsScope::LoopbackOnly).unwrap();
        let peers = browser
            .browse_peers(ours.session_id, BROWSE_WINDOW)
            .await
            .unwrap();
        println!("found {peers:?}");
        let ids: Vec<_> = peers.iter().map(|p| p.node_id).collect();
        assert_eq!(ids, vec![0xa1, 0xb2], "exactly our session's nodes");
        for peer in &peers {
            assert!(peer.addrs.iter().all(|a| a.ip().is_loopback()));
        }
        let ports: Vec<_> = peers
            .iter()
            .flat_map(|p| p.addrs.iter().map(|a| a.port()))
            .collect();
        assert!(ports.contains(&7101) && ports.contains(&7102) && !ports.contains(&7103));

        // The same through the bootstrap front door.
        let addrs = Bootstrap::Mdns {
            session_id: ours.session_id,
            window: BROWSE_WINDOW,
            scope: MdnsScope::LoopbackOnly,
        }
        .addrs()
        .await
        .unwrap();
        assert!(addrs.iter().any(|a| a.port() == 7101));

        // Nobody advertises this session: nothing found.
        let nobody = browser
            .browse(SessionId([0; 16]), Duration::from_millis(500))
            .await
            .unwrap();
        assert!(nobody.is_empty());
        browser.shutdown();
        responder.shutdown();
    });
}
