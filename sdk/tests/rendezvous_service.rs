//! The `baton-rendezvous` binary under bad input, on loopback only: garbage datagrams,
//! registrations forged for another session's id, oversized candidate lists, and a flood of
//! registrations from 190 source addresses (127.0.0.10–199, all loopback). A legitimate
//! player on its own address must be answered throughout, the forger must learn nothing of
//! the victim's members, and the service's resident memory must stay bounded.

use baton::internet::rendezvous::{
    self, Candidate, CandidateKind, Refusal, ToClient, ToServer, CANDIDATES_MAX,
};
use baton::transport::SessionCredentials;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Sessions the service under test may hold (small, so the flood reaches the cap).
const SESSIONS_MAX: usize = 1000;
/// Registrations each flooding address sends.
const FLOOD_PER_SOURCE: usize = 100;

fn register(credentials: &SessionCredentials, node: u64, candidates: Vec<Candidate>) -> Vec<u8> {
    rendezvous::encode(&ToServer::Register {
        session: credentials.session_id.0,
        key: credentials.secret.rendezvous_key().0,
        node,
        candidates,
    })
    .expect("fits a datagram")
}

/// Every answer that arrives within `wait`.
fn answers(socket: &UdpSocket, wait: Duration) -> Vec<ToClient> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(len) = socket.recv(&mut buf) {
        out.push(rendezvous::decode(&buf[..len]).expect("the service sends valid messages"));
    }
    out
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc")
}

#[test]
fn bad_input_leaves_the_others_served_and_memory_bounded() {
    let mut service = Command::new(env!("CARGO_BIN_EXE_baton-rendezvous"))
        .args(["--bind", "127.0.0.1:0", "--stats-interval-s", "1"])
        .args(["--sessions-max", &SESSIONS_MAX.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start baton-rendezvous");
    let mut lines = BufReader::new(service.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = said.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let addr: SocketAddr = ready.strip_prefix("ready ").unwrap().parse().unwrap();

    // A session with one member, as a player registers it.
    let victim = SessionCredentials::generate();
    let member = UdpSocket::bind("127.0.0.2:0").unwrap();
    member.connect(addr).unwrap();
    member.send(&register(&victim, 1, vec![])).unwrap();
    assert!(matches!(
        answers(&member, Duration::from_millis(500))[..],
        [ToClient::Registered { .. }]
    ));
    let rss_before = rss_kib(service.id());

    // A forger knows the id but not the key: refused, and told of nobody.
    let forger = UdpSocket::bind("127.0.0.3:0").unwrap();
    forger.connect(addr).unwrap();
    let other = SessionCredentials::generate();
    let forged = rendezvous::encode(&ToServer::Register {
        session: victim.session_id.0,
        key: other.secret.rendezvous_key().0,
        node: 2,
        candidates: vec![],
    })
    .unwrap();
    forger.send(&forged).unwrap();
    let told = answers(&forger, Duration::from_millis(500));
    assert_eq!(
        told,
        [ToClient::Refused {
            session: victim.session_id.0,
            reason: Refusal::BadKey
        }]
    );
    // Oversized candidate lists and garbage.
    let many = (0..=CANDIDATES_MAX as u16)
        .map(|port| Candidate {
            addr: SocketAddr::from(([127, 0, 0, 3], 1000 + port)),
            kind: CandidateKind::Host,
        })
        .collect();
    forger.send(&register(&other, 3, many)).unwrap();
    assert!(matches!(
        answers(&forger, Duration::from_millis(500))[..],
        [ToClient::Refused {
            reason: Refusal::TooManyCandidates,
            ..
        }]
    ));
    for size in [0usize, 1, 2, 3, 20, 600, 1199, 1200, 1201, 4000] {
        let garbage: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        forger.send(&garbage).unwrap();
    }

    // The flood: many sources, each many new sessions.
    let flooders: Vec<UdpSocket> = (10..200u8)
        .map(|last| {
            let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
            socket.connect(addr).unwrap();
            socket
        })
        .collect();
    let mut member_tries = Vec::new();
    for round in 0..FLOOD_PER_SOURCE {
        for (n, socket) in flooders.iter().enumerate() {
            let _ = socket.send(&register(
                &SessionCredentials::generate(),
                (n * FLOOD_PER_SOURCE + round) as u64,
                vec![],
            ));
        }
        // The legitimate member keeps refreshing, and keeps being answered. Its datagram
        // may be lost in the flood (the kernel's receive buffer overflows, as on any
        // server), so it resends as the agent does, every 300 ms.
        if round % 25 == 0 {
            let mut tries = 0;
            let got = loop {
                tries += 1;
                member.send(&register(&victim, 1, vec![])).unwrap();
                let got = answers(&member, Duration::from_millis(300));
                if got.iter().any(|a| matches!(a, ToClient::Registered { .. })) || tries == 10 {
                    break got;
                }
            };
            assert!(
                got.iter().any(|a| matches!(a, ToClient::Registered { .. })),
                "round {round}: the member was not answered in {tries} tries during the flood"
            );
            member_tries.push(tries);
            assert!(
                got.iter()
                    .all(|a| !matches!(a, ToClient::Peer { node: 2 | 3, .. })),
                "a refused registrant reached the victim's member"
            );
        }
    }
    // A stats line comes every second: the last one says what the tables hold after it.
    std::thread::sleep(Duration::from_millis(1500));
    let rss_after = rss_kib(service.id());
    let stats = said
        .lock()
        .unwrap()
        .iter()
        .rfind(|l| l.starts_with("stats "))
        .cloned()
        .expect("a stats line");
    let _ = service.kill();
    let _ = service.wait();
    eprintln!(
        "rendezvous under flood: RSS {rss_before} KiB before, {rss_after} KiB after; \
         member answered after {member_tries:?} tries; {stats}"
    );
    let sessions: usize = stats
        .split_whitespace()
        .find_map(|f| f.strip_prefix("sessions="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(sessions <= SESSIONS_MAX, "{stats}");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
