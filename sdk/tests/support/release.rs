//! The newest release's binaries, built from the project's own history: the commit that
//! `releases.txt` names, checked out in a git worktree and built once into
//! `<target>/releases/`, then reused while that commit stays the newest release.
//!
//! Shared by the compatibility tests of `baton` (`upgrade_mixed`, the release's `baton-node`)
//! and of `baton-demo` (`upgrade_game`, the release's game player). Building needs the full
//! git history (not a shallow clone) and the release's crates in cargo's cache: nothing is
//! downloaded.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: both including crates (`sdk/`, `demo-game/`) sit one level below it.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate has a parent directory")
        .to_path_buf()
}

/// A release named in `releases.txt`.
#[derive(Debug, Clone)]
pub struct Release {
    /// Its crate version, e.g. `0.2.0`.
    pub version: String,
    /// The commit of main that is the release.
    pub commit: String,
}

/// The newest (last) release in `releases.txt`.
pub fn newest_release() -> Release {
    let text = std::fs::read_to_string(repository().join("releases.txt")).expect("releases.txt");
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('#'))
        .expect("releases.txt names a release");
    let words: Vec<&str> = line.split_whitespace().collect();
    Release {
        version: words[0].to_string(),
        commit: words[1].to_string(),
    }
}

/// `<target>` of this build, from one of its binaries (`<target>/<profile>/<binary>`).
pub fn target_of(binary: &Path) -> PathBuf {
    binary
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

/// The release's binary `bin` of package `package`, built from a worktree of its commit into
/// `<target>/releases/` on first use.
pub fn release_binary(release: &Release, target: &Path, package: &str, bin: &str) -> PathBuf {
    let Release { version, commit } = release;
    let releases = target.join("releases");
    let binary = releases.join(format!("{bin}-{version}-{commit}"));
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
    // release's dependencies may differ. It stays, so the release's other binaries and a
    // later release build incrementally.
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
                package,
                "--bin",
                bin,
            ]),
        &format!(
            "building the release's {bin} (offline: if the release locks a crate that \
             today's build does not, fetch it first, e.g. `cargo fetch` in a worktree of the \
             release commit)"
        ),
    );
    let built = release_target.join("debug").join(bin);
    let partial = releases.join(format!("{bin}-{version}-{commit}.partial"));
    std::fs::copy(&built, &partial).expect("copy the release binary");
    std::fs::rename(&partial, &binary).expect("move the release binary into place");
    let _ = git(&["worktree", "remove", "--force"])
        .arg(&source)
        .status();
    binary
}
