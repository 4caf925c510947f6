//! The scripted match as a test, run the way a user runs it: the `baton-demo` binary with
//! flags, stdout a pipe (so plain progress lines). Five bot processes, the host killed with
//! SIGKILL, then the new host killed too; the last line must say nothing was lost, and the
//! exit status must agree with it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole match may take in a debug build on a loaded 2-core machine.
const MATCH_LIMIT: Duration = Duration::from_secs(240);

fn fields(line: &str) -> BTreeMap<String, String> {
    line.strip_prefix("demo: ")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn killing_the_host_twice_loses_no_committed_turn() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton-demo"))
        .args([
            "--players",
            "5",
            "--turns",
            "30",
            "--kill-at",
            "10",
            "--kills",
            "2",
        ])
        .args(["--seed", "7", "--think-ms", "20", "--turn-ms", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start baton-demo");
    // Read on a thread so a full pipe can never stall the demo while we wait for it.
    let mut pipe = child.stdout.take().expect("stdout pipe");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for baton-demo") {
            break status;
        }
        if started.elapsed() > MATCH_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let partial = reader.join().unwrap_or_default();
            panic!("the demo did not finish within {MATCH_LIMIT:?}; it said:\n{partial}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = reader.join().expect("the reader thread");
    eprintln!("{stdout}");
    assert!(status.success(), "baton-demo failed: {status}");

    let last = stdout.lines().last().expect("some output");
    let line = fields(last);
    assert!(last.starts_with("demo: "), "last line: {last}");
    let keys: Vec<&str> = line.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "committed_turns_lost",
            "failover_ms",
            "hashes_equal",
            "inputs_applied_once",
            "migrations",
            "players",
            "turns"
        ]
    );
    assert_eq!(line["players"], "5");
    assert_eq!(line["turns"], "30");
    assert!(line["migrations"].parse::<u32>().expect("a count") >= 2);
    assert_eq!(line["committed_turns_lost"], "0");
    assert_eq!(line["inputs_applied_once"], "true");
    assert_eq!(line["hashes_equal"], "true");
    let failover_ms: u64 = line["failover_ms"].parse().expect("milliseconds");
    assert!(
        failover_ms > 0 && failover_ms < 30_000,
        "failover {failover_ms} ms"
    );
    assert_eq!(
        stdout.matches("SIGKILL host").count(),
        2,
        "each kill is shown as it happens"
    );
    assert_eq!(stdout.matches("took over from").count(), 2);
}

#[test]
fn options_no_match_can_survive_are_refused_with_a_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_baton-demo"))
        .args(["--players", "2", "--kills", "1"])
        .output()
        .expect("run baton-demo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("survive at most 0"), "stderr: {stderr}");

    let help = Command::new(env!("CARGO_BIN_EXE_baton-demo"))
        .arg("--help")
        .output()
        .expect("run baton-demo --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--players",
        "--turns",
        "--kill-at",
        "--kills",
        "--seed",
        "--think-ms",
        "--turn-ms",
        "--plain",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
