//! Runs the whole harness with tiny counts (player processes included) and checks that the
//! JSON holds every field issue 13 names, with finite, positive, ordered figures. Speed is
//! never asserted: the machine is shared.

use baton_bench::progress::Progress;
use baton_bench::{run, HarnessConfig};
use serde_json::Value;
use std::path::PathBuf;

fn number(json: &Value, path: &[&str]) -> f64 {
    let mut at = json;
    for key in path {
        at = &at[*key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{}: not a number: {at}", path.join(".")))
}

fn positive(json: &Value, path: &[&str]) -> f64 {
    let value = number(json, path);
    assert!(
        value.is_finite() && value > 0.0,
        "{}: {value}",
        path.join(".")
    );
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_run_fills_every_field_of_the_json_with_sane_values() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = HarnessConfig {
        data_dir: Some(data_dir.path().to_path_buf()),
        player_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_baton-bench-player"))),
        ..HarnessConfig::smoke()
    };
    let report = run(&config, &Progress::hidden()).await.unwrap();
    let json: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();

    for floor in ["quic_rtt_us", "quic_rtt_paced_us", "transport_rtt_us"] {
        let p50 = positive(&json, &[floor, "p50"]);
        let p99 = positive(&json, &[floor, "p99"]);
        assert!(p50 <= p99, "{floor}: p50 {p50} > p99 {p99}");
    }

    let commit = json["commit"].as_array().unwrap();
    let sessions = config.player_counts.len() * config.tick_rates_hz.len();
    assert_eq!(
        commit.len(),
        sessions * 3,
        "host, follower, sender per session"
    );
    for row in commit {
        assert!(["host", "follower", "sender"].contains(&row["seen_by"].as_str().unwrap()));
        assert!(config
            .player_counts
            .contains(&(row["players"].as_u64().unwrap() as usize)));
        let (p50, p99, p999) = (
            positive(row, &["p50_us"]),
            positive(row, &["p99_us"]),
            positive(row, &["p999_us"]),
        );
        assert!(p50 <= p99 && p99 <= p999, "{row}");
        positive(row, &["p50_over_paced"]);
    }

    // Every crash trial runs before (the fixed election range) and after (the measured
    // detector) in the same run, so the two are comparable.
    assert!(config.crash_fixed_too);
    for moves in [
        "handoff_gap_ms",
        "failover_ms",
        "failover_in_process_ms",
        "failover_fixed_ms",
        "failover_in_process_fixed_ms",
    ] {
        let (p50, p99, max) = (
            positive(&json, &[moves, "p50"]),
            positive(&json, &[moves, "p99"]),
            positive(&json, &[moves, "max"]),
        );
        assert!(p50 <= p99 && p99 <= max, "{moves}");
        assert!(json[moves]["trials"].as_u64().unwrap() >= 1);
        // A pause or a failover spans at least most of a tick; anything shorter was not
        // measured across the move.
        assert!(positive(&json, &[moves, "p50_ticks"]) > 0.5, "{moves}");
    }
    assert_eq!(json["failover_ms"]["processes"], Value::Bool(true));
    assert_eq!(
        json["failover_ms"]["trials"].as_u64().unwrap() as usize,
        config.process_crash_trials
    );

    let throughput = json["throughput_per_s"].as_array().unwrap();
    assert_eq!(
        throughput.len(),
        config.saturation_payloads.len() * config.saturation_clients.len()
    );
    for row in throughput {
        positive(row, &["baton"]);
        positive(row, &["openraft"]);
        positive(row, &["payload_bytes"]);
        positive(row, &["clients"]);
    }

    for role in ["host", "learner"] {
        let cpu = positive(&json, &["node_cpu_percent", role]);
        assert!(
            cpu < 400.0,
            "{role}: {cpu} % of a core on a 2-core machine?"
        );
        let rss = positive(&json, &["node_rss_mib", role]);
        assert!(rss < 4096.0, "{role}: {rss} MiB");
    }
    positive(&json, &["large_session", "host_cpu_percent"]);
    positive(&json, &["large_session", "host_packets_per_tick"]);
    positive(&json, &["large_session", "committed_rate_hz"]);

    let links = json["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "a delayed link and a lossy link");
    for row in links {
        assert!(row["play"]["term_changes"].as_u64().is_some(), "{row}");
        for moves in ["failover_ms", "failover_fixed_ms"] {
            assert_eq!(
                row[moves]["trials"].as_u64().unwrap() as usize,
                config.link_crash_trials,
                "{row}"
            );
            assert!(positive(row, &[moves, "p50"]) > 0.0);
        }
    }

    assert_eq!(json["propose_us"].as_array().unwrap().len(), 3);
    // Four of issue 13, two failovers and one needless-election count per link.
    assert_eq!(
        json["headline"].as_array().unwrap().len(),
        4 + 2 + links.len()
    );
    assert!(report.table().contains("Targets"));

    let svg = data_dir.path().join("plot.svg");
    baton_bench::plot::write_svg(&report, &svg).unwrap();
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("polyline"));
}
