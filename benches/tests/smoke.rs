//! Runs the whole harness with tiny counts and checks that every row it promises is there
//! with finite, positive figures. Speed is never asserted: the machine is shared.

use baton_bench::{run, HarnessConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_run_measures_every_row_with_finite_positive_figures() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = HarnessConfig {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..HarnessConfig::smoke()
    };
    let report = run(&config).await.unwrap();

    let keys: Vec<&str> = report.rows.iter().map(|row| row.key.as_str()).collect();
    let mut expected = vec![
        "quic_rtt".to_string(),
        "quic_rtt_paced".to_string(),
        "transport_rtt".to_string(),
    ];
    for hz in &config.tick_rates_hz {
        expected.push(format!("tick_commit_{hz}hz"));
        expected.push(format!("tick_follower_apply_{hz}hz"));
        expected.push(format!("input_commit_{hz}hz"));
    }
    for kind in ["leave", "game_score", "crash"] {
        expected.push(format!("migration_{kind}_{}hz", config.migration_hz));
    }
    for store in ["memory", "relaxed", "durable"] {
        expected.push(format!("propose_{store}"));
    }
    assert_eq!(keys, expected, "rows in order");
    assert_eq!(report.baseline_key, "quic_rtt");

    for row in &report.rows {
        let s = &row.summary;
        assert!(s.samples > 0, "{}: no samples", row.key);
        for (what, value) in [
            ("p50", s.p50_us),
            ("p99", s.p99_us),
            ("max", s.max_us),
            ("mean", s.mean_us),
            ("p50 in RTTs", row.p50_in_rtts),
            ("p99 in RTTs", row.p99_in_rtts),
            ("share of a 60 Hz tick", row.p99_share_of_60hz_tick),
            ("share of a 30 Hz tick", row.p99_share_of_30hz_tick),
        ] {
            assert!(
                value.is_finite() && value > 0.0,
                "{}: {what} = {value}",
                row.key
            );
        }
        assert!(
            s.p50_us <= s.p99_us && s.p99_us <= s.max_us,
            "{}: percentiles out of order",
            row.key
        );
    }
    for key in ["quic_rtt", "transport_rtt"] {
        let row = report.rows.iter().find(|row| row.key == key).unwrap();
        assert_eq!(
            row.summary.samples, config.rtt_samples,
            "{key}: every round trip timed"
        );
    }
    for row in report
        .rows
        .iter()
        .filter(|row| row.key.starts_with("propose_"))
    {
        assert_eq!(
            row.summary.samples, config.proposals,
            "{}: every proposal timed",
            row.key
        );
    }
    assert_eq!(report.sessions.len(), config.tick_rates_hz.len());
    for note in &report.sessions {
        let hz = note.hz;
        let commits = report
            .rows
            .iter()
            .find(|row| row.key == format!("tick_commit_{hz}hz"))
            .unwrap();
        // A host change inside the window (a fitness handoff on a loaded machine) may leave
        // a tick timed by nobody; without one, every tick is timed.
        if note.host_changes == 0 {
            assert_eq!(
                commits.summary.samples as u64, config.ticks_per_rate,
                "{hz} Hz: every tick of the window timed"
            );
        }
    }
    assert!(report
        .sessions
        .iter()
        .all(|note| note.committed_rate_hz > 0.0));

    assert_eq!(report.migrations.len(), 3);
    for note in &report.migrations {
        assert_eq!(note.trials, config.migration_trials, "{}", note.kind);
        // A pause is at least the gap between two ticks; anything shorter was not measured
        // across the move.
        assert!(
            note.pause_p50_ticks.is_finite() && note.pause_p50_ticks > 0.5,
            "{}: {} ticks",
            note.kind,
            note.pause_p50_ticks
        );
    }

    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), report.rows.len());
}
