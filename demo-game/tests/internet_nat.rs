//! Sessions across real kernel NATs. The test builds its own little Internet out of network
//! namespaces: a "public" namespace holding the rendezvous service (and coturn), one router
//! namespace per home doing masquerade with nftables, and one home namespace per player
//! behind it. Each player is a `baton-demo player` process inside its home, bound to
//! `0.0.0.0:4000`, that knows nothing but the rendezvous service's address and the invite.
//!
//! - `masquerade` keeps the source port and maps it the same way for every destination
//!   (endpoint-independent mapping): the pair must punch through and talk directly.
//! - Filtering is the kernel's conntrack: a router lets in only replies to what went out,
//!   and drops every unsolicited UDP datagram aimed at itself, so nothing gets through
//!   unless both sides punch.
//!
//! Without root, `ip` or `nft` the tests print `SKIPPED <test>: <reason>` and pass.

#[path = "../../sdk/tests/support/netns.rs"]
mod netns;

use netns::{run, Namespace};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every wait is bounded by this; on a quiet machine each step takes a few seconds.
const STEP_LIMIT: Duration = Duration::from_secs(60);
/// A moved player must get turns again well before QUIC's idle timeout (30 s) would have
/// it reconnect anyway; it takes one registration interval (5 s) and a punch.
const MOVE_LIMIT: Duration = Duration::from_secs(15);
const RENDEZVOUS: &str = "192.0.2.1:3479";
/// A second instance of the rendezvous service, which the host names after the first one.
const RENDEZVOUS_SPARE: &str = "192.0.2.3:3479";
const PLAYER_BIND: &str = "0.0.0.0:4000";
const TURN: &str = "192.0.2.2:3478";
const TURN_SECRET: &str = "baton-test-turn-secret";

/// How a home router maps its players' ports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nat {
    /// `masquerade`: one mapping per local port, whatever the destination.
    Cone,
    /// `masquerade fully-random`: a new random port for every destination (a symmetric
    /// NAT): what the rendezvous service sees is useless to anyone else.
    Symmetric,
}

/// The namespaces of one test: dropped (deleted) after every process in them.
struct Internet {
    public: Namespace,
    routers: Vec<Namespace>,
    homes: Vec<Namespace>,
}

fn nft(ns: &Namespace, dir: &Path, name: &str, script: &str) -> Result<(), String> {
    let path = dir.join(format!("{name}-{}.nft", ns.name()));
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    ns.exec("nft", &["-f", path.to_str().unwrap_or_default()])
        .map(|_| ())
}

impl Internet {
    /// The public namespace and one home (router + player namespace) per entry of `nats`,
    /// or why this machine cannot build them.
    fn build(dir: &Path, nats: &[Nat]) -> Result<Internet, String> {
        run("nft", &["--version"]).map_err(|e| format!("`nft` (nftables) unavailable ({e})"))?;
        let public = Namespace::create("bi-pub")?;
        let mut internet = Internet {
            public,
            routers: Vec::new(),
            homes: Vec::new(),
        };
        let public = &internet.public;
        public.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        // The services live on addresses of their own, as public servers do.
        public.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"])?;
        public.ip(&["addr", "add", "192.0.2.2/32", "dev", "lo"])?;
        public.ip(&["addr", "add", "192.0.2.3/32", "dev", "lo"])?;
        for (i, nat) in nats.iter().enumerate() {
            let n = i + 1;
            let router = Namespace::create(&format!("bi-r{n}"))?;
            let home = Namespace::create(&format!("bi-h{n}"))?;
            // wan: router ↔ public, 203.0.n.0/24; lan: home ↔ router, 10.0.n.0/24.
            router.ip(&[
                "link",
                "add",
                "wan",
                "type",
                "veth",
                "peer",
                "name",
                &format!("r{n}"),
                "netns",
                public.name(),
            ])?;
            router.ip(&[
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                home.name(),
            ])?;
            router.ip(&["addr", "add", &format!("203.0.{n}.2/24"), "dev", "wan"])?;
            router.ip(&["addr", "add", &format!("10.0.{n}.1/24"), "dev", "lan"])?;
            router.ip(&["link", "set", "wan", "up"])?;
            router.ip(&["link", "set", "lan", "up"])?;
            router.ip(&["route", "add", "default", "via", &format!("203.0.{n}.1")])?;
            router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
            public.ip(&[
                "addr",
                "add",
                &format!("203.0.{n}.1/24"),
                "dev",
                &format!("r{n}"),
            ])?;
            public.ip(&["link", "set", &format!("r{n}"), "up"])?;
            home.ip(&["addr", "add", &format!("10.0.{n}.2/24"), "dev", "eth0"])?;
            home.ip(&["link", "set", "eth0", "up"])?;
            home.ip(&["route", "add", "default", "via", &format!("10.0.{n}.1")])?;
            let masquerade = match nat {
                Nat::Cone => "masquerade",
                Nat::Symmetric => "masquerade fully-random",
            };
            // A kernel without nf_tables would make the NAT a silent no-op: refuse to pretend.
            router
                .exec("nft", &["list", "ruleset"])
                .map_err(|e| format!("nftables unusable in a namespace ({e})"))?;
            let rules = format!(
                "table ip home {{
                    chain post {{
                        type nat hook postrouting priority srcnat; policy accept;
                        oifname \"wan\" {masquerade}
                    }}
                    chain input {{
                        type filter hook input priority filter; policy accept;
                        iifname \"wan\" meta l4proto udp drop
                    }}
                }}\n"
            );
            if let Err(e) = nft(&router, dir, "nat", &rules) {
                panic!("the router's nftables rules were refused: {e}");
            }
            internet.routers.push(router);
            internet.homes.push(home);
        }
        Ok(internet)
    }
}

/// A child process whose stdout lines are collected as they come; killed when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &str, ns: &Namespace, program: &Path, args: &[&str]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout pipe");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !line.starts_with("turn ")
                    && !line.starts_with("submitted ")
                    && !line.starts_with("committed ")
                {
                    eprintln!("[{label}] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The first line starting with `prefix`, waiting for it.
    fn wait_line(&self, prefix: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < STEP_LIMIT,
                "{} never said `{prefix}`",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, command: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{command}");
        }
    }

    /// The fields of a fresh `status` answer.
    fn status(&mut self) -> BTreeMap<String, String> {
        let before = self.lines.lock().unwrap().len();
        self.send("status");
        let started = Instant::now();
        loop {
            let found = self.lines.lock().unwrap()[before..]
                .iter()
                .find(|l| l.starts_with("status "))
                .cloned();
            if let Some(line) = found {
                return line
                    .split_whitespace()
                    .filter_map(|field| field.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
            assert!(
                started.elapsed() < STEP_LIMIT,
                "{} gave no status",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Turn number → game hash, as this player committed them.
    fn turns(&self) -> BTreeMap<u64, String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let mut words = line.strip_prefix("turn ")?.split_whitespace();
                let turn = words.next()?.parse().ok()?;
                let _time = words.next()?;
                Some((turn, words.next()?.to_string()))
            })
            .collect()
    }

    fn last_turn(&self) -> u64 {
        self.turns().keys().next_back().copied().unwrap_or(0)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    wait_within(what, STEP_LIMIT, condition);
}

fn wait_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "timed out waiting {limit:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn demo_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_baton-demo"))
}

/// `baton-rendezvous` is the sdk's binary: beside ours in the same target directory
/// (`cargo test --workspace` builds both).
fn rendezvous_exe() -> Result<PathBuf, String> {
    let path = demo_exe().with_file_name("baton-rendezvous");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not built (run `cargo build -p baton --bin baton-rendezvous` or `cargo test --workspace`)",
            path.display()
        ))
    }
}

fn player(name: &str, home: &Namespace, dir: &Path, seed: u64, join: Option<&str>) -> Proc {
    player_with(name, home, dir, seed, join, &[])
}

/// [`player`] with more flags.
fn player_with(
    name: &str,
    home: &Namespace,
    dir: &Path,
    seed: u64,
    join: Option<&str>,
    extra: &[&str],
) -> Proc {
    let data = dir.join(name);
    let seed = seed.to_string();
    let mut args = vec![
        "player",
        "--data-dir",
        data.to_str().unwrap(),
        "--bind",
        PLAYER_BIND,
        "--seed",
        &seed,
        "--turn-ms",
        "250",
        "--think-ms",
        "30",
    ];
    // Only the host is told where the rendezvous service is: the invite names its
    // instances, in the order to use them.
    match join {
        Some(invite) => args.extend(["--join", invite]),
        None => args.extend([
            "--host",
            "--rendezvous",
            RENDEZVOUS,
            "--rendezvous",
            RENDEZVOUS_SPARE,
        ]),
    }
    args.extend(extra);
    Proc::spawn(name, home, &demo_exe(), &args)
}

/// The invite a `ready <id> <addr> <invite>` line carries, and the address.
fn ready(line: &str) -> (String, String, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1].to_string(),
        words[2].to_string(),
        words[3].to_string(),
    )
}

/// The tests of this file take turns: their namespaces share names (`<prefix>-<pid>`), and
/// a 2-core machine runs one little Internet at a time well, not two.
static NAMESPACES: Mutex<()> = Mutex::new(());

/// Builds the namespaces or says why the test is skipped; the guard keeps the other tests
/// of this file waiting (bind it before the namespaces, so it drops after them).
fn setup(
    test: &str,
    dir: &Path,
    nats: &[Nat],
) -> Option<(MutexGuard<'static, ()>, Internet, PathBuf)> {
    let serial = NAMESPACES.lock().unwrap_or_else(|p| p.into_inner());
    let rendezvous = match rendezvous_exe() {
        Ok(path) => path,
        Err(reason) => {
            println!("SKIPPED {test}: {reason}");
            return None;
        }
    };
    match Internet::build(dir, nats) {
        Ok(internet) => Some((serial, internet, rendezvous)),
        Err(reason) => {
            println!("SKIPPED {test}: {reason}");
            None
        }
    }
}

/// coturn in the public namespace, as a studio runs it beside the rendezvous service:
/// short-lived credentials only (`use-auth-secret`), UDP only.
fn coturn(internet: &Internet, dir: &Path) -> Result<Proc, String> {
    run("turnserver", &["--version"])
        .or_else(|_| run("sh", &["-c", "command -v turnserver"]))
        .map_err(|e| format!("coturn's `turnserver` unavailable ({e})"))?;
    let pid = dir.join("turnserver.pid");
    let secret = format!("--static-auth-secret={TURN_SECRET}");
    let pidfile = format!("--pidfile={}", pid.display());
    let proc = Proc::spawn(
        "coturn",
        &internet.public,
        Path::new("turnserver"),
        &[
            "-n",
            "--listening-ip=192.0.2.2",
            "--relay-ip=192.0.2.2",
            "--listening-port=3478",
            "--min-port=49152",
            "--max-port=49252",
            "--use-auth-secret",
            &secret,
            "--realm=baton",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-tcp-relay",
            "--log-file=stdout",
            "--simple-log",
            &pidfile,
        ],
    );
    Ok(proc)
}

fn link_paths(status: &BTreeMap<String, String>) -> Vec<String> {
    status["links"]
        .split(',')
        .filter(|l| *l != "-")
        .map(|l| l.split(':').nth(1).unwrap_or_default().to_string())
        .collect()
}

/// Three players behind their NATs, joined through the rendezvous service, playing, all
/// three voters with a direct link to each other. Returns them (host first) and their ids.
fn three_players_joined(test: &str, internet: &Internet, dir: &Path) -> (Vec<Proc>, Vec<String>) {
    three_players_joined_with(test, internet, dir, &[])
}

/// [`three_players_joined`], the third player started with more flags.
fn three_players_joined_with(
    test: &str,
    internet: &Internet,
    dir: &Path,
    third_extra: &[&str],
) -> (Vec<Proc>, Vec<String>) {
    let started = Instant::now();
    let mut host = player("host", &internet.homes[0], dir, 1, None);
    let (host_id, host_addr, invite) = ready(&host.wait_line("ready "));
    // The invite names the host's public address (its router's), not its private one.
    assert_eq!(
        host_addr, "203.0.1.2:4000",
        "the host announces its NAT's mapping"
    );
    let mut second = player("second", &internet.homes[1], dir, 2, Some(&invite));
    let (second_id, ..) = ready(&second.wait_line("ready "));
    let mut third = player_with(
        "third",
        &internet.homes[2],
        dir,
        3,
        Some(&invite),
        third_extra,
    );
    let (third_id, ..) = ready(&third.wait_line("ready "));
    eprintln!("{test}: three players ready after {:?}", started.elapsed());

    // Everyone plays, over direct links to everyone else.
    wait_for("turns on every player", || {
        [&host, &second, &third].iter().all(|p| p.last_turn() >= 8)
    });
    // ...and all three vote, so that two of them are a majority.
    wait_for("a full mesh of direct links between three voters", || {
        [&mut host, &mut second, &mut third].into_iter().all(|p| {
            let status = p.status();
            let paths = link_paths(&status);
            paths.len() == 2
                && paths.iter().all(|path| path == "direct")
                && status["voters"].split(',').count() == 3
        })
    });
    let status = second.status();
    assert_eq!(status["host"], host_id);
    assert_eq!(status["public"], "203.0.2.2:4000");
    eprintln!("{test}: links of the second player: {}", status["links"]);
    (
        vec![host, second, third],
        vec![host_id, second_id, third_id],
    )
}

/// Every turn committed by all of `players` hashes the same on each; returns how many
/// turns that is.
fn assert_equal_turns(players: &[&Proc]) -> usize {
    let turns: Vec<BTreeMap<u64, String>> = players.iter().map(|p| p.turns()).collect();
    let common: Vec<u64> = turns[0]
        .keys()
        .filter(|t| turns.iter().all(|other| other.contains_key(t)))
        .copied()
        .collect();
    for turn in &common {
        for (player, other) in players.iter().zip(&turns).skip(1) {
            assert_eq!(
                turns[0][turn], other[turn],
                "turn {turn} differs between {} and {}",
                players[0].name, player.name
            );
        }
    }
    common.len()
}

#[test]
fn three_players_behind_cone_nats_punch_through_and_survive_a_host_kill() {
    let test = "three_players_behind_cone_nats_punch_through_and_survive_a_host_kill";
    let dir = tempfile::tempdir().unwrap();
    let Some((_serial, internet, rendezvous_exe)) = setup(test, dir.path(), &[Nat::Cone; 3]) else {
        return;
    };
    let started = Instant::now();
    let rendezvous = Proc::spawn(
        "rendezvous",
        &internet.public,
        &rendezvous_exe,
        &["--bind", RENDEZVOUS, "--stats-interval-s", "1"],
    );
    rendezvous.wait_line("ready ");
    let (mut players, ids) = three_players_joined(test, &internet, dir.path());
    let [second_id, third_id] = [&ids[1], &ids[2]];

    // The host dies without a word; the two survivors, each behind its own NAT, elect one
    // of them and play on.
    let killed_at_turn = players[0].last_turn();
    players[0].kill();
    eprintln!("{test}: SIGKILLed the host at turn {killed_at_turn}");
    wait_for("a new host among the survivors", || {
        let host = players[1].status()["host"].clone();
        host == *second_id || host == *third_id
    });
    let target = killed_at_turn + 10;
    wait_for("ten more turns on both survivors", || {
        players[1].last_turn() >= target && players[2].last_turn() >= target
    });

    // Equal state: every turn both survivors committed hashes the same on both, and the
    // turns the dead host committed were not rewritten.
    let common = assert_equal_turns(&[&players[1], &players[2]]);
    assert!(common >= 10, "only {common} common turns");
    assert_equal_turns(&[&players[1], &players[0]]);
    let stats = rendezvous.wait_line("stats ");
    eprintln!(
        "{test}: rendezvous {stats}; whole test {:?}",
        started.elapsed()
    );
    drop(players);
    drop(rendezvous);
    drop(internet);
}

/// A home router gets a new public IP (as when a phone leaves Wi-Fi for mobile data, or an
/// ISP renumbers a line): the kernel forgets the NAT mappings through the old one, so every
/// path to the player behind it dies at once, unnoticed by QUIC.
fn renumber_router(router: &Namespace, from: &str, to: &str, gateway: &str) {
    // Keep the subnet's route (and so the default route) when the old address goes.
    router
        .exec(
            "sysctl",
            &["-qw", "net.ipv4.conf.wan.promote_secondaries=1"],
        )
        .unwrap();
    router.ip(&["addr", "add", to, "dev", "wan"]).unwrap();
    router.ip(&["addr", "del", from, "dev", "wan"]).unwrap();
    router
        .ip(&["route", "replace", "default", "via", gateway])
        .unwrap();
}

/// After players moved: `more` turns on everyone, then direct links again, the founder
/// hosting all along and nobody else ever taking over, and equal hashes on every common
/// turn; returns how many turns the three have in common.
fn played_on_without_a_host_migration(players: &mut [Proc], ids: &[String], more: u64) -> usize {
    let target = players[0].last_turn() + more;
    wait_for("more turns on every player", || {
        players.iter().all(|p| p.last_turn() >= target)
    });
    for player in players.iter_mut() {
        let status = player.status();
        assert_eq!(status["host"], ids[0], "{} sees another host", player.name);
        assert_eq!(link_paths(&status), ["direct", "direct"], "{}", player.name);
    }
    for player in &players[1..] {
        let lines = player.lines.lock().unwrap();
        assert!(
            !lines.iter().any(|l| l.starts_with("became-host ")),
            "{} became host: the move caused a host migration",
            player.name
        );
    }
    assert_equal_turns(&[&players[0], &players[1], &players[2]])
}

/// The session's rendezvous instance dies and everyone moves to the next one the invite
/// names; then two players' public addresses change, which only that instance can tell the
/// others about.
#[test]
fn the_rendezvous_instance_dies_then_players_change_address_mid_game_and_play_on_without_a_host_migration(
) {
    let test = "the_rendezvous_instance_dies_then_players_change_address_mid_game_and_play_on_without_a_host_migration";
    let dir = tempfile::tempdir().unwrap();
    let Some((_serial, internet, rendezvous_exe)) = setup(test, dir.path(), &[Nat::Cone; 3]) else {
        return;
    };
    let started = Instant::now();
    let mut rendezvous = Proc::spawn(
        "rendezvous",
        &internet.public,
        &rendezvous_exe,
        &["--bind", RENDEZVOUS],
    );
    rendezvous.wait_line("ready ");
    let spare = Proc::spawn(
        "spare",
        &internet.public,
        &rendezvous_exe,
        &["--bind", RENDEZVOUS_SPARE],
    );
    spare.wait_line("ready ");
    let (mut players, ids) = three_players_joined(test, &internet, dir.path());

    // The instance dies; the joiners know the spare one only from the invite.
    for player in &mut players {
        assert_eq!(player.status()["rendezvous"], RENDEZVOUS);
    }
    rendezvous.kill();
    let killed_at = Instant::now();
    wait_for("every player registered on the spare instance", || {
        players.iter_mut().all(|p| {
            let status = p.status();
            status["rendezvous"] == RENDEZVOUS_SPARE
        })
    });
    eprintln!(
        "{test}: all on the spare rendezvous instance {:?} after the first died",
        killed_at.elapsed()
    );
    // Of each pair only the connection the lower id dialed is kept, and QUIC lets only a
    // connection's client move: the follower with the lower id moves first (its links to
    // the other follower migrate), the other one next (its link from the first must be
    // punched anew).
    let id_of = |i: usize| u64::from_str_radix(&ids[i], 16).unwrap();
    let mut followers = [1, 2];
    followers.sort_by_key(|&i| id_of(i));
    for i in followers {
        let n = i + 1;
        let (old, new) = (format!("203.0.{n}.2"), format!("203.0.{n}.3"));
        assert_eq!(players[i].status()["public"], format!("{old}:4000"));
        let moved_at_turn = players[i].last_turn();
        let moved_at = Instant::now();
        renumber_router(
            &internet.routers[i],
            &format!("{old}/24"),
            &format!("{new}/24"),
            &format!("203.0.{n}.1"),
        );
        let name = players[i].name.clone();
        eprintln!("{test}: {name}'s router moved to {new} at turn {moved_at_turn}");
        wait_for("the moved player registered at its new address", || {
            players[i].status()["public"] == format!("{new}:4000")
        });
        let registered = moved_at.elapsed();
        // Turns reach the moved player again only over a path to its new address, and
        // soon: waiting out QUIC's idle timeout (30 s) would bring one back too.
        let target = players[0].last_turn() + 3;
        wait_within("turns on the moved player again", MOVE_LIMIT, || {
            players[i].last_turn() >= target
        });
        eprintln!(
            "{test}: {name} registered its new address {registered:?} and got turns again {:?} after the move",
            moved_at.elapsed()
        );
    }
    let common = played_on_without_a_host_migration(&mut players, &ids, 10);
    assert!(common >= 20, "only {common} turns common to all three");
    eprintln!("{test}: whole test {:?}", started.elapsed());
    drop(players);
    drop(spare);
    drop(rendezvous);
    drop(internet);
}

/// A player's router gets a new public IP and the player's game says so (as a phone's
/// connectivity callback does). Its registrations are 60 s apart, so only the immediate
/// registration that the call brings can tell the others its new address before QUIC's
/// 30 s idle timeout would break the links and the wait below.
#[test]
fn a_player_whose_game_reports_a_network_change_is_reached_again_without_waiting_to_register() {
    let test =
        "a_player_whose_game_reports_a_network_change_is_reached_again_without_waiting_to_register";
    let dir = tempfile::tempdir().unwrap();
    let Some((_serial, internet, rendezvous_exe)) = setup(test, dir.path(), &[Nat::Cone; 3]) else {
        return;
    };
    let rendezvous = Proc::spawn(
        "rendezvous",
        &internet.public,
        &rendezvous_exe,
        &["--bind", RENDEZVOUS],
    );
    rendezvous.wait_line("ready ");
    let slow_registration = ["--rendezvous", RENDEZVOUS, "--register-ms", "60000"];
    let (mut players, ids) =
        three_players_joined_with(test, &internet, dir.path(), &slow_registration);
    assert_eq!(players[2].status()["public"], "203.0.3.2:4000");
    let moved_at = Instant::now();
    renumber_router(
        &internet.routers[2],
        "203.0.3.2/24",
        "203.0.3.3/24",
        "203.0.3.1",
    );
    let before = players[2].lines.lock().unwrap().len();
    players[2].send("network-changed");
    wait_for("the answer to network-changed", || {
        players[2].lines.lock().unwrap()[before..]
            .iter()
            .any(|line| line == "network-changed true")
    });
    wait_within(
        "the moved player registered at its new address",
        MOVE_LIMIT,
        || players[2].status()["public"] == "203.0.3.3:4000",
    );
    let registered = moved_at.elapsed();
    let target = players[0].last_turn() + 3;
    wait_within("turns on the moved player again", MOVE_LIMIT, || {
        players[2].last_turn() >= target
    });
    eprintln!(
        "{test}: registered its new address {registered:?} and got turns again {:?} after the move",
        moved_at.elapsed()
    );
    played_on_without_a_host_migration(&mut players, &ids, 5);
    drop(players);
    drop(rendezvous);
    drop(internet);
}

#[test]
fn a_player_behind_a_symmetric_nat_plays_through_the_turn_relay_and_again_after_its_address_changes(
) {
    relayed_session(
        "a_player_behind_a_symmetric_nat_plays_through_the_turn_relay_and_again_after_its_address_changes",
        Nat::Cone,
        Move::RelayedPlayer,
    );
}

/// Both players behind symmetric NATs: each talks to the other's relayed address through
/// its own allocation, so every datagram crosses coturn twice (relay to relay).
#[test]
fn two_players_behind_symmetric_nats_play_relay_to_relay() {
    relayed_session(
        "two_players_behind_symmetric_nats_play_relay_to_relay",
        Nat::Symmetric,
        Move::Nobody,
    );
}

/// Whose router gets a new public IP once the relayed session plays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    Nobody,
    /// The player behind the symmetric NAT: coturn ties its allocation to its old
    /// mapping, so it must allocate again and announce the new relayed address.
    RelayedPlayer,
}

/// A host behind `host_nat` and a player behind a symmetric NAT, coturn and the
/// rendezvous service (handing out TURN credentials) on the public side: the player
/// relays, the link is relayed from both sides, and the session plays on (across the
/// move of `moving`, if any).
fn relayed_session(test: &str, host_nat: Nat, moving: Move) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_serial, internet, rendezvous_exe)) =
        setup(test, dir.path(), &[host_nat, Nat::Symmetric])
    else {
        return;
    };
    let turn = match coturn(&internet, dir.path()) {
        Ok(turn) => turn,
        Err(reason) => {
            println!("SKIPPED {test}: {reason}");
            return;
        }
    };
    let started = Instant::now();
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, TURN_SECRET).unwrap();
    let rendezvous = Proc::spawn(
        "rendezvous",
        &internet.public,
        &rendezvous_exe,
        &[
            "--bind",
            RENDEZVOUS,
            "--turn-server",
            TURN,
            "--turn-secret-file",
            secret_file.to_str().unwrap(),
            "--stats-interval-s",
            "1",
        ],
    );
    rendezvous.wait_line("ready ");
    // coturn says nothing machine-readable when it is ready; its STUN answering is what
    // the players need, and their first requests are retransmitted until it does.

    let mut host = player("host", &internet.homes[0], dir.path(), 1, None);
    let (host_id, host_addr, invite) = ready(&host.wait_line("ready "));
    match host_nat {
        Nat::Cone => assert_eq!(
            host_addr, "203.0.1.2:4000",
            "behind a cone NAT the host needs no relay"
        ),
        Nat::Symmetric => assert!(
            host_addr.starts_with("192.0.2.2:"),
            "behind a symmetric NAT the host announces its relayed address, not {host_addr}"
        ),
    }
    let mut relayed = player("relayed", &internet.homes[1], dir.path(), 2, Some(&invite));
    let (_, relayed_addr, _) = ready(&relayed.wait_line("ready "));
    assert!(
        relayed_addr.starts_with("192.0.2.2:"),
        "behind the symmetric NAT the player announces its relayed address, not {relayed_addr}"
    );
    eprintln!("{test}: both players ready after {:?}", started.elapsed());

    wait_for("turns on both players", || {
        host.last_turn() >= 10 && relayed.last_turn() >= 10
    });
    wait_for("a relayed link seen from both sides", || {
        link_paths(&host.status()) == ["relayed"] && link_paths(&relayed.status()) == ["relayed"]
    });
    let status = relayed.status();
    assert_eq!(status["host"], host_id);
    eprintln!(
        "{test}: links host {} / relayed {}",
        host.status()["links"],
        status["links"]
    );
    // The session plays on through the relay, with equal state on both sides.
    let target = relayed.last_turn() + 10;
    wait_for("ten more turns through the relay", || {
        host.last_turn() >= target && relayed.last_turn() >= target
    });
    if moving == Move::RelayedPlayer {
        let before = relayed.status()["public"].clone();
        let moved_at = Instant::now();
        renumber_router(
            &internet.routers[1],
            "203.0.2.2/24",
            "203.0.2.3/24",
            "203.0.2.1",
        );
        // Its next registration (within register_interval, 5 s) shows the move.
        wait_within("a new relayed address", MOVE_LIMIT, || {
            let public = relayed.status()["public"].clone();
            public != before && public.starts_with("192.0.2.2:")
        });
        let reallocated = moved_at.elapsed();
        let target = host.last_turn() + 3;
        wait_within("turns on the moved player again", MOVE_LIMIT, || {
            relayed.last_turn() >= target
        });
        eprintln!(
            "{test}: relayed again at {} {reallocated:?} after the move, turns again after {:?}",
            relayed.status()["public"],
            moved_at.elapsed()
        );
        let target = relayed.last_turn() + 10;
        wait_for("ten more turns through the new relay", || {
            host.last_turn() >= target && relayed.last_turn() >= target
        });
        // Two voters: while the relayed one was cut off the host heard no quorum and may
        // have stepped down, and either may host now; both must name the same one.
        let (seen_by_host, seen_by_relayed) = (
            host.status()["host"].clone(),
            relayed.status()["host"].clone(),
        );
        assert_eq!(seen_by_host, seen_by_relayed, "one host for both");
        assert_ne!(
            seen_by_host, "-",
            "a host after the move (first one: {host_id})"
        );
        assert_eq!(link_paths(&relayed.status()), ["relayed"]);
    }
    let common = assert_equal_turns(&[&host, &relayed]);
    assert!(common >= 10, "only {common} common turns");
    eprintln!("{test}: whole test {:?}", started.elapsed());
    drop(relayed);
    drop(host);
    drop(rendezvous);
    drop(turn);
    drop(internet);
}
