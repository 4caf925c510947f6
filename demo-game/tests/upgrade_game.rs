//! A rolling upgrade of a game session: Territory players of the newest release (the
//! `baton-demo` of the commit `releases.txt` names, built from the project's history) and of
//! today's code in one match, the host killed so that it moves across releases, once from an
//! old host to a new one and once from a new host to an old one.
//!
//! The node-level test (`sdk/tests/upgrade_mixed.rs`) covers planned transfers and upgrades
//! in place; this one covers what only a game session sends: player messages (today's carry
//! the sender's life, which the release does not know), tick records and session snapshots
//! as the release and today's code write and read them. Each match must lose no committed
//! turn, apply every input once, and end with equal state hashes on every survivor.

#[path = "../../sdk/tests/support/release.rs"]
mod release;

use baton_demo::orchestrator::{self, Display, MatchArgs, MatchReport};
use release::{newest_release, release_binary, target_of};
use std::path::{Path, PathBuf};

/// Plays one 3-player match with the host killed once; `old` says which processes run the
/// release (process 0 founds the session and hosts first).
fn mixed_match(new: &Path, old: &Path, releases: [bool; 3], seed: u64) -> MatchReport {
    let player_exe: Vec<PathBuf> = releases
        .iter()
        .map(|&is_old| if is_old { old } else { new }.to_path_buf())
        .collect();
    let args = MatchArgs {
        players: 3,
        turns: 30,
        kill_at: Some(10),
        kills: 1,
        seed,
        think_ms: 20,
        turn_ms: 150,
        plain: true,
        player_exe,
    };
    let report = orchestrator::run(new, &args, Display::Quiet).expect("the match is played");
    for line in orchestrator::report_lines(&report) {
        eprintln!("{line}");
    }
    report
}

/// Whether the process behind seat `letter` ran the release.
fn on_release(report: &MatchReport, releases: [bool; 3], letter: char) -> bool {
    let player = report
        .player_reports
        .iter()
        .find(|player| player.letter == letter)
        .expect("every seat has a player");
    releases[player.process]
}

fn check(report: &MatchReport, releases: [bool; 3], from_old: bool) {
    assert_eq!(report.committed_turns_lost, 0, "{report:?}");
    assert!(report.inputs_applied_once, "{report:?}");
    assert!(report.hashes_equal, "{report:?}");
    assert!(report.passed(), "{report:?}");
    let [kill] = report.kills.as_slice() else {
        panic!("one kill: {report:?}");
    };
    assert_eq!(on_release(report, releases, kill.victim), from_old);
    assert_eq!(on_release(report, releases, kill.successor), !from_old);
    let survivors: Vec<_> = report
        .player_reports
        .iter()
        .filter(|player| !player.killed)
        .collect();
    assert_eq!(survivors.len(), 2);
    let hashes: Vec<_> = survivors.iter().map(|player| player.final_hash).collect();
    assert!(
        hashes[0].is_some() && hashes[0] == hashes[1],
        "survivors end equal: {hashes:?}"
    );
}

#[test]
fn a_game_session_of_two_releases_moves_its_host_across_them() {
    let new = PathBuf::from(env!("CARGO_BIN_EXE_baton-demo"));
    let old = release_binary(
        &newest_release(),
        &target_of(&new),
        "baton-demo",
        "baton-demo",
    );
    // An old host among new players: only a new player can take over.
    let old_host = [true, false, false];
    check(&mixed_match(&new, &old, old_host, 11), old_host, true);
    // A new host among old players: only an old player can take over.
    let new_host = [false, true, true];
    check(&mixed_match(&new, &old, new_host, 12), new_host, false);
}
