//! The demo match as a test: five player processes, the host killed with SIGKILL after a
//! few turns; the survivors elect a new host, play on, and agree on every turn's state.

use baton_demo::orchestrator::{run, DemoOptions};

#[test]
fn killing_the_host_process_loses_no_committed_turn() {
    let options = DemoOptions {
        exe: env!("CARGO_BIN_EXE_baton-demo").into(),
        players: 5,
        turns_before_kill: 10,
        turns_after_kill: 10,
        turn_ms: 100,
    };
    let report = run(&options).expect("the match survives its host");
    assert_ne!(report.killed_host, report.new_host);
    assert_eq!(report.players_agreeing, 4);
    assert!(report.compared_turn >= report.last_turn_before_kill + 10);
    eprintln!("failover after SIGKILL of the host: {:?}", report.failover);
}
