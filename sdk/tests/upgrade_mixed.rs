//! A rolling upgrade with a real previous release: `baton-node` built from the commit that
//! `releases.txt` names for the newest release, next to today's `baton-node`.
//!
//! Two old nodes and one new one form a session; all three propose; the host moves from an
//! old node to the new one and back; then each old node is stopped and started again from
//! its own data directory with today's binary (the storage upgrade), one at a time, while the
//! others keep proposing. Every node ends with the same values, every acknowledged proposal
//! applied exactly once.
//!
//! The old binary is built once into `target/releases/` from a git worktree of the release
//! commit and reused while that commit stays the newest release. Building it needs the
//! project's git history (not a shallow clone) and the crates in cargo's cache.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::process::{converged_sequence, members, promote_all, wait_for, NodeProcess, Start};
use support::runtime::assert_exactly_once;

const PROGRESS_LIMIT: Duration = Duration::from_secs(60);
/// Proposals per node per phase, and how many each keeps in flight.
const PROPOSALS: u64 = 80;
const CONCURRENCY: u64 = 4;

/// The repository root (this crate is `sdk/`).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sdk/ has a parent")
        .to_path_buf()
}

/// The newest release in `releases.txt`: (crate version, commit).
fn newest_release() -> (String, String) {
    let text = std::fs::read_to_string(repository().join("releases.txt")).expect("releases.txt");
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('#'))
        .expect("releases.txt names a release");
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[0].to_string(), words[1].to_string())
}

/// `target/` of this build: today's binary lives in `target/debug/`.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_baton-node"))
        .ancestors()
        .nth(2)
        .expect("the binary is in <target>/<profile>/")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The release's `baton-node`, built from a worktree of its commit on first use.
fn release_binary(version: &str, commit: &str) -> PathBuf {
    let releases = target_dir().join("releases");
    let binary = releases.join(format!("baton-node-{version}-{commit}"));
    if binary.is_file() {
        return binary;
    }
    std::fs::create_dir_all(&releases).expect("create target/releases");
    let git = |args: &[&str]| {
        let mut command = Command::new("git");
        command.arg("-C").arg(repository()).args(args);
        command
    };
    let known = git(&["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        known,
        "release commit {commit} (releases.txt) is not in this clone's history; \
         fetch the full history (git fetch --unshallow) to run the compatibility test"
    );
    let source = releases.join(format!("src-{commit}"));
    // A run cut short leaves its worktree behind; start from a clean one.
    if source.exists() {
        let _ = git(&["worktree", "remove", "--force"])
            .arg(&source)
            .status();
        let _ = std::fs::remove_dir_all(&source);
    }
    let _ = git(&["worktree", "prune"]).status();
    run(
        git(&["worktree", "add", "--detach"])
            .arg(&source)
            .arg(commit),
        "git worktree add of the release commit",
    );
    // Its own target directory: the one of this build is locked while tests run, and the
    // release's dependencies may differ. It stays, so a later release builds incrementally.
    let release_target = releases.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .current_dir(&source)
            .env("CARGO_TARGET_DIR", &release_target)
            .args([
                "build",
                "--locked",
                "--offline",
                "-p",
                "baton",
                "--bin",
                "baton-node",
            ]),
        "building the release's baton-node (offline: if the release locks a crate that \
         today's build does not, fetch it first, e.g. `cargo fetch` in a worktree of the \
         release commit)",
    );
    let built = release_target.join("debug").join("baton-node");
    let partial = releases.join(format!("baton-node-{version}-{commit}.partial"));
    std::fs::copy(&built, &partial).expect("copy the release binary");
    std::fs::rename(&partial, &binary).expect("move the release binary into place");
    let _ = git(&["worktree", "remove", "--force"])
        .arg(&source)
        .status();
    binary
}

fn leader(nodes: &mut [NodeProcess]) -> Option<String> {
    nodes.iter_mut().find_map(|node| {
        let status = node.status();
        (status["role"] == "Leader").then(|| status["leader"].clone())
    })
}

fn index_of(nodes: &[NodeProcess], id: &str) -> usize {
    nodes
        .iter()
        .position(|node| node.id == id)
        .expect("one of ours")
}

/// Asks the current leader to hand the host to `target`, until `target` leads.
fn move_host(nodes: &mut [NodeProcess], target: usize) {
    let target_id = nodes[target].id.clone();
    wait_for(
        &format!("{} to host", nodes[target].name),
        PROGRESS_LIMIT,
        || match leader(nodes) {
            Some(id) if id == target_id => true,
            Some(id) => {
                let at = index_of(nodes, &id);
                let _ = nodes[at].ask(&format!("transfer {target_id}"));
                false
            }
            None => false,
        },
    );
}

/// Every node proposes `PROPOSALS` values labelled `<phase>-<node>`.
fn propose_from_all(nodes: &mut [NodeProcess], phase: &str) -> Vec<String> {
    nodes
        .iter_mut()
        .map(|node| {
            let label = format!("{phase}{}", node.name);
            node.send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
            label
        })
        .collect()
}

fn wait_done(nodes: &[NodeProcess], labels: &[String]) {
    wait_for(
        "every proposer of the phase to finish",
        PROGRESS_LIMIT,
        || {
            labels.iter().all(|label| {
                nodes
                    .iter()
                    .any(|node| node.reports.lock().unwrap().done.contains(label))
            })
        },
    );
}

#[test]
fn a_session_of_old_and_new_releases_moves_its_host_and_upgrades_in_place() {
    let (version, commit) = newest_release();
    let old = release_binary(&version, &commit);
    let new = PathBuf::from(env!("CARGO_BIN_EXE_baton-node"));
    let dir = tempfile::tempdir().unwrap();
    let spawn = |binary: &Path, name: &str, start: Start<'_>| {
        NodeProcess::spawn_binary(binary, name, &dir.path().join(name), "127.0.0.1:0", start)
    };

    // Two players on the release, one on today's code.
    let mut nodes = vec![spawn(&old, "old0", Start::New)];
    let invite = nodes[0].invite.clone();
    nodes.push(spawn(&old, "old1", Start::Join(&invite)));
    nodes.push(spawn(&new, "new2", Start::Join(&invite)));
    promote_all(&mut nodes, PROGRESS_LIMIT);

    let mut phases = Vec::new();
    phases.push(propose_from_all(&mut nodes, "mixed"));
    // The host moves from an old player to the new one while the values flow, and back.
    move_host(&mut nodes, 2);
    wait_done(&nodes, phases.last().unwrap());
    phases.push(propose_from_all(&mut nodes, "hosted-new"));
    move_host(&mut nodes, 0);
    wait_done(&nodes, phases.last().unwrap());

    // Each old player upgrades in place, one at a time, while everyone else proposes.
    let mut acked_by_replaced = Vec::new();
    for upgraded in [1, 0] {
        let others: Vec<usize> = (0..3).filter(|n| *n != upgraded).collect();
        let labels: Vec<String> = others
            .iter()
            .map(|&n| {
                let label = format!("during-{upgraded}-{}", nodes[n].name);
                nodes[n].send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
                label
            })
            .collect();
        let (name, id, addr) = (
            nodes[upgraded].name.clone(),
            nodes[upgraded].id.clone(),
            nodes[upgraded].addr.clone(),
        );
        acked_by_replaced.extend(nodes[upgraded].acked());
        nodes.remove(upgraded).quit();
        let restarted = NodeProcess::spawn_binary(
            &new,
            &name,
            &dir.path().join(&name),
            &addr,
            Start::Join(&invite),
        );
        assert_eq!(
            restarted.id, id,
            "{name} kept its identity across the upgrade"
        );
        nodes.insert(upgraded, restarted);
        wait_done(&nodes, &labels);
        phases.push(labels);
        let label = format!("upgraded-{name}");
        nodes[upgraded].send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
        wait_done(&nodes, std::slice::from_ref(&label));
        phases.push(vec![label]);
    }
    wait_for("three voters, all on today's code", PROGRESS_LIMIT, || {
        members(&nodes[0].status()["voters"]).len() == 3
    });

    let acknowledged: BTreeSet<String> = nodes
        .iter()
        .flat_map(|node| node.acked())
        .chain(acked_by_replaced)
        .collect();
    let sequence = converged_sequence(&mut nodes, PROGRESS_LIMIT);
    let acknowledged: Vec<String> = acknowledged.into_iter().collect();
    assert_exactly_once(&sequence, &acknowledged);
    // Nobody proposing was ever stopped, so every proposal of every phase was acknowledged.
    let proposed = phases.iter().map(Vec::len).sum::<usize>() as u64 * PROPOSALS;
    let failed: Vec<String> = nodes
        .iter()
        .flat_map(|node| node.reports.lock().unwrap().failed.clone())
        .collect();
    assert_eq!(
        acknowledged.len() as u64,
        proposed,
        "proposals not acknowledged; failures reported: {failed:?}"
    );
    for node in nodes {
        node.quit();
    }
}
