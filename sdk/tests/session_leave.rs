//! A leaving host hands over, or says why it could not, and is never left behind as a
//! voter: on a slow link, and when the voter it would pick has just died.

mod support;

use baton::session::{LeaveOutcome, Session, TickMode};
use baton::transport::FaultController;
use std::time::Duration;
use support::game::Ledger;
use support::sessions::{
    config, eventually_among, host_of, index_of, play_on_and_agree_with_departed, start_session,
};

const FAST: TickMode = TickMode::FixedRate { hz: 60 };

/// Leaves the current host and checks it handed over to someone still playing and is
/// gone from the configuration the others hold.
async fn leave_host(sessions: &mut Vec<Session<Ledger>>, departed: &mut Vec<Session<Ledger>>) {
    let host = host_of(sessions).await.expect("a host");
    let leaver = sessions.remove(index_of(sessions, host));
    let outcome = leaver.leave().await.expect("the leave finishes");
    let LeaveOutcome::HandedOver { to } = outcome else {
        panic!("the host left without handing over: {outcome:?}");
    };
    assert!(
        sessions.iter().any(|session| session.id() == to),
        "handed over to a player still in the game"
    );
    eventually_among(
        sessions,
        "the leaver to be out of the configuration",
        || async {
            let Ok(status) = sessions[0].status().await else {
                return false;
            };
            let membership = status.node.membership;
            !membership.voters.contains(&host) && !membership.learners.contains(&host)
        },
    )
    .await;
    departed.push(leaver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_hosts_hand_over_on_a_link_with_25_ms_of_latency_each_way() {
    let faults = FaultController::new(25);
    faults.set_delay(Duration::from_millis(20), Duration::from_millis(30));
    let mut config = config(FAST, 5);
    config.node.transport.faults = Some(faults);
    let mut sessions = start_session(5, &config).await;
    let mut departed = Vec::new();
    for _ in 0..3 {
        leave_host(&mut sessions, &mut departed).await;
    }
    let live: Vec<_> = sessions.iter().collect();
    let departed: Vec<_> = departed.iter().collect();
    play_on_and_agree_with_departed(&live, &departed, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_leaving_right_after_a_voter_died_hands_over_to_a_live_one() {
    let mut sessions = start_session(4, &config(FAST, 5)).await;
    let host = host_of(&sessions).await.unwrap();
    let host_index = index_of(&sessions, host);
    // The fittest-looking voter dies just before the host leaves: its progress still
    // reads as active, so the host may well try it first.
    let victim = (host_index + 1) % sessions.len();
    let dead = sessions.remove(victim);
    dead.stop().await;
    let mut departed = vec![dead];
    leave_host(&mut sessions, &mut departed).await;
    let live: Vec<_> = sessions.iter().collect();
    let departed: Vec<_> = departed.iter().collect();
    play_on_and_agree_with_departed(&live, &departed, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_player_leaving_says_the_session_ended() {
    let sessions = start_session(1, &config(FAST, 5)).await;
    assert_eq!(
        sessions[0].leave().await.expect("the leave finishes"),
        LeaveOutcome::SessionEnded
    );
}
