//! A partition made by the kernel, not by our own fault injection: five `baton-node`
//! processes inside a network namespace this test creates, each bound to its own loopback
//! address, and nftables rules in that namespace that drop every UDP datagram between the
//! leader's address and the others'. The majority must elect a new leader and keep
//! committing, the cut-off leader must step down (check-quorum) and commit nothing, and
//! after the rules are deleted it must rejoin as a follower; in the end every node applies
//! the same sequence, holding every acknowledged proposal exactly once.
//!
//! The namespace has only its own loopback, so nothing leaves it. Without root, `ip` or
//! `nft`, the test prints `SKIPPED kernel_partition: <reason>` and passes.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::netns::{run, Namespace};
use support::process::{converged_sequence, members, wait_for, NodeProcess, Start};
use support::runtime::assert_exactly_once;

const NODES: usize = 5;
/// Every wait is bounded by this; on a quiet machine each step takes well under a second.
const STEP_LIMIT: Duration = Duration::from_secs(20);
const TABLE: &str = "baton_partition";
/// Proposals per client in each phase, and how many a client keeps in flight.
const BEFORE_CUT: u64 = 300;
const DURING_CUT: u64 = 150;
const AFTER_HEAL: u64 = 100;
const CONCURRENCY: u64 = 8;

/// The namespace, with nftables checked usable inside it, or why this machine cannot run
/// the test.
fn namespace() -> Result<Namespace, String> {
    let ns = Namespace::create("baton-netpart")?;
    run("nft", &["--version"]).map_err(|e| format!("`nft` (nftables) unavailable ({e})"))?;
    // A kernel without nf_tables would make the cut a silent no-op; refuse to pretend.
    ns.exec("nft", &["list", "ruleset"])
        .map_err(|e| format!("nftables unusable in a namespace ({e})"))?;
    Ok(ns)
}

/// Runs an nft script inside the namespace; from a file so the whole cut is one
/// transaction (both directions drop from the same instant).
fn nft_script(ns: &Namespace, dir: &Path, script: &str) {
    let path = dir.join("partition.nft");
    std::fs::write(&path, script).unwrap();
    ns.exec("nft", &["-f", path.to_str().unwrap()]).unwrap();
}

fn ip_of(node: &NodeProcess) -> IpAddr {
    node.addr.parse::<SocketAddr>().unwrap().ip()
}

/// Drops UDP between `isolated` and each of `others`, in both directions. Input hook: on
/// loopback every datagram passes it at its receiver, and a drop there is silent, as a
/// lost packet is, rather than an error returned to the sender.
fn cut(ns: &Namespace, dir: &Path, isolated: IpAddr, others: &[IpAddr]) {
    let others = others
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    nft_script(
        ns,
        dir,
        &format!(
            "table inet {TABLE} {{
                chain input {{
                    type filter hook input priority 0; policy accept;
                    ip saddr {isolated} ip daddr {{ {others} }} meta l4proto udp counter drop
                    ip saddr {{ {others} }} ip daddr {isolated} meta l4proto udp counter drop
                }}
            }}\n"
        ),
    );
}

fn heal(ns: &Namespace, dir: &Path) {
    nft_script(ns, dir, &format!("delete table inet {TABLE}\n"));
}

/// Packets each rule dropped, in rule order (outgoing from the isolated node first).
fn dropped_packets(ns: &Namespace) -> Vec<u64> {
    let listing = ns.exec("nft", &["list", "table", "inet", TABLE]).unwrap();
    listing
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[0] == "packets")
        .map(|pair| pair[1].parse().unwrap())
        .collect()
}

fn role(node: &mut NodeProcess) -> String {
    node.status()["role"].clone()
}

fn done(node: &NodeProcess, label: &str) -> bool {
    node.reports.lock().unwrap().done.iter().any(|l| l == label)
}

fn acked_count(node: &NodeProcess) -> usize {
    node.reports.lock().unwrap().acked.len()
}

#[test]
fn a_leader_cut_off_by_nftables_steps_down_and_rejoins() {
    let started = Instant::now();
    let ns = match namespace() {
        Ok(ns) => ns,
        Err(reason) => {
            println!("SKIPPED kernel_partition: {reason}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = |n: usize| dir.path().join(format!("n{n}"));
    let bind = |n: usize| format!("127.0.0.{}:0", n + 1);

    let mut nodes = vec![NodeProcess::spawn_in_netns(
        ns.name(),
        "n0",
        &data_dir(0),
        &bind(0),
        Start::New,
    )];
    let invite = nodes[0].invite.clone();
    for n in 1..NODES {
        nodes.push(NodeProcess::spawn_in_netns(
            ns.name(),
            &format!("n{n}"),
            &data_dir(n),
            &bind(n),
            Start::Join(&invite),
        ));
    }
    for (n, node) in nodes.iter().enumerate() {
        assert_eq!(
            ip_of(node).to_string(),
            format!("127.0.0.{}", n + 1),
            "{} must own its address, or the rules would cut the wrong node",
            node.name
        );
    }

    wait_for("the others to join as learners", STEP_LIMIT, || {
        members(&nodes[0].status()["learners"]).len() == NODES - 1
    });
    for n in 1..NODES {
        let id = nodes[n].id.clone();
        wait_for("a promotion to be accepted", STEP_LIMIT, || {
            nodes[0].ask(&format!("promote {id}")) == "ok"
        });
    }
    wait_for("every node to see five voters", STEP_LIMIT, || {
        nodes
            .iter_mut()
            .all(|node| members(&node.status()["voters"]).len() == NODES)
    });

    // Every node proposes, so the cut hits proposals in flight on both sides of it.
    for node in nodes.iter_mut() {
        let label = format!("before-{}", node.name);
        node.send(&format!("propose {label} {BEFORE_CUT} {CONCURRENCY}"));
    }
    wait_for("the first acknowledgements", STEP_LIMIT, || {
        nodes.iter().map(acked_count).sum::<usize>() >= 100
    });

    let mut old = None;
    wait_for("a leader to cut off", STEP_LIMIT, || {
        old = nodes.iter_mut().position(|node| role(node) == "Leader");
        old.is_some()
    });
    let old = old.unwrap();
    let old_id = nodes[old].id.clone();
    let old_term: u64 = nodes[old].status()["term"].parse().unwrap();
    let majority: Vec<usize> = (0..NODES).filter(|n| *n != old).collect();
    let majority_ips: Vec<IpAddr> = majority.iter().map(|n| ip_of(&nodes[*n])).collect();
    cut(&ns, dir.path(), ip_of(&nodes[old]), &majority_ips);
    let cut_at = Instant::now();
    println!(
        "cut {} ({}) off at term {old_term}",
        nodes[old].name, nodes[old].addr
    );

    let mut new_leader = String::new();
    wait_for("the majority to elect a new leader", STEP_LIMIT, || {
        majority.iter().any(|n| {
            let status = nodes[*n].status();
            if status["role"] == "Leader" && status["term"].parse::<u64>().unwrap() > old_term {
                new_leader = status["leader"].clone();
                true
            } else {
                false
            }
        })
    });
    assert_ne!(new_leader, old_id);
    wait_for("the cut-off leader to step down", STEP_LIMIT, || {
        role(&mut nodes[old]) != "Leader"
    });
    println!(
        "new leader {new_leader} after {:?}; old leader stepped down",
        cut_at.elapsed()
    );
    // With no quorum it can commit nothing: hold it to what it had when it stepped down.
    let isolated_commit = nodes[old].status()["commit"].clone();

    for n in &majority {
        let label = format!("during-{}", nodes[*n].name);
        nodes[*n].send(&format!("propose {label} {DURING_CUT} {CONCURRENCY}"));
    }
    wait_for("the majority to commit while cut", STEP_LIMIT, || {
        majority
            .iter()
            .all(|n| done(&nodes[*n], &format!("during-{}", nodes[*n].name)))
    });
    for n in &majority {
        let reports = nodes[*n].reports.lock().unwrap();
        let prefix = format!("during-{}-", nodes[*n].name);
        let failed: Vec<_> = reports
            .failed
            .iter()
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert!(failed.is_empty(), "majority proposals failed: {failed:?}");
    }
    let isolated = nodes[old].status();
    assert_ne!(isolated["role"], "Leader", "a minority regained leadership");
    assert_eq!(
        isolated["commit"], isolated_commit,
        "the cut-off node committed without a quorum"
    );
    let dropped = dropped_packets(&ns);
    println!("kernel dropped {dropped:?} packets (from, to) the cut-off node");
    assert!(
        dropped.len() == 2 && dropped.iter().all(|count| *count > 0),
        "the rules must have dropped traffic both ways: {dropped:?}"
    );

    println!(
        "cut for {:?}; the cut-off node is {} at term {}, commit still {isolated_commit}",
        cut_at.elapsed(),
        isolated["role"],
        isolated["term"]
    );
    heal(&ns, dir.path());
    let healed_at = Instant::now();
    wait_for("the old leader to rejoin as a follower", STEP_LIMIT, || {
        let status = nodes[old].status();
        status["role"] == "Follower"
            && status["leader"] != "-"
            && status["leader"] != old_id
            && status["term"].parse::<u64>().unwrap() > old_term
    });
    println!(
        "old leader following again {:?} after heal",
        healed_at.elapsed()
    );
    let label = format!("after-{}", nodes[old].name);
    nodes[old].send(&format!("propose {label} {AFTER_HEAL} {CONCURRENCY}"));

    wait_for("every client to finish", STEP_LIMIT, || {
        nodes.iter().enumerate().all(|(n, node)| {
            done(node, &format!("before-{}", node.name))
                && (n == old || done(node, &format!("during-{}", node.name)))
                && (n != old || done(node, &format!("after-{}", node.name)))
        })
    });

    let acknowledged: BTreeSet<String> = nodes.iter().flat_map(|node| node.acked()).collect();
    let sequence = converged_sequence(&mut nodes, STEP_LIMIT);
    let acknowledged: Vec<String> = acknowledged.into_iter().collect();
    assert_exactly_once(&sequence, &acknowledged);
    let prefix = format!("{label}-");
    let after = nodes[old]
        .acked()
        .iter()
        .filter(|v| v.starts_with(&prefix))
        .count();
    assert_eq!(
        after as u64, AFTER_HEAL,
        "the rejoined node's proposals must commit"
    );
    let failed: usize = nodes
        .iter()
        .map(|node| node.reports.lock().unwrap().failed.len())
        .sum();
    println!(
        "{} applied, {} acknowledged, {failed} failed (timed out while cut); {:?} in all",
        sequence.len(),
        acknowledged.len(),
        started.elapsed()
    );
    for node in nodes {
        node.quit();
    }
}
