//! Drives `baton-node` processes from tests: start, send a command, read its answer, kill.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proposal tasks of one process reported, shared with the reader thread.
#[derive(Default)]
pub struct Reports {
    pub acked: Vec<String>,
    pub failed: Vec<String>,
    pub done: Vec<String>,
}

pub struct NodeProcess {
    pub name: String,
    pub id: String,
    pub addr: String,
    pub invite: String,
    pub data_dir: PathBuf,
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    pub reports: Arc<Mutex<Reports>>,
}

pub enum Start<'a> {
    New,
    Join(&'a str),
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl NodeProcess {
    pub fn spawn(name: &str, data_dir: &Path, bind: &str, start: Start<'_>) -> NodeProcess {
        Self::spawn_binary(
            Path::new(env!("CARGO_BIN_EXE_baton-node")),
            name,
            data_dir,
            bind,
            start,
        )
    }

    /// Starts `binary`, a `baton-node` of this or another release.
    pub fn spawn_binary(
        binary: &Path,
        name: &str,
        data_dir: &Path,
        bind: &str,
        start: Start<'_>,
    ) -> NodeProcess {
        Self::launch(Command::new(binary), name, data_dir, bind, start)
    }

    /// Starts the node inside network namespace `netns`. `ip netns exec` execs the node in
    /// place rather than forking, so the child is the node itself: `kill` and `quit` reach
    /// it, and its stdin and stdout are ours.
    pub fn spawn_in_netns(
        netns: &str,
        name: &str,
        data_dir: &Path,
        bind: &str,
        start: Start<'_>,
    ) -> NodeProcess {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_baton-node")]);
        Self::launch(command, name, data_dir, bind, start)
    }

    fn launch(
        mut command: Command,
        name: &str,
        data_dir: &Path,
        bind: &str,
        start: Start<'_>,
    ) -> NodeProcess {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--bind")
            .arg(bind);
        match start {
            Start::New => command.arg("--new"),
            Start::Join(invite) => command.arg("--join").arg(invite),
        };
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .env(
                "RUST_LOG",
                std::env::var("BATON_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .expect("spawn baton-node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let reports = Arc::new(Mutex::new(Reports::default()));
        let (answer_tx, answers) = std::sync::mpsc::channel();
        let thread_reports = reports.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut reports = thread_reports.lock().unwrap();
                if let Some(value) = line.strip_prefix("acked ") {
                    reports.acked.push(value.to_string());
                } else if let Some(value) = line.strip_prefix("failed ") {
                    reports.failed.push(value.to_string());
                } else if let Some(label) = line.strip_prefix("done ") {
                    reports.done.push(label.to_string());
                } else if answer_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = NodeProcess {
            name: name.to_string(),
            id: String::new(),
            addr: String::new(),
            invite: String::new(),
            data_dir: data_dir.to_path_buf(),
            child,
            stdin,
            answers,
            reports,
        };
        let ready = process.answer();
        let words: Vec<&str> = ready.split_whitespace().collect();
        assert_eq!(
            words.first(),
            Some(&"ready"),
            "{name} did not start: {ready}"
        );
        process.id = words[1].to_string();
        process.addr = words[2].to_string();
        process.invite = words[3].to_string();
        process
    }

    pub fn answer(&mut self) -> String {
        match self.answers.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{} gave no answer within {ANSWER_TIMEOUT:?}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => panic!("{} exited", self.name),
        }
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to node");
        self.stdin.flush().expect("flush");
    }

    pub fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    pub fn status(&mut self) -> HashMap<String, String> {
        let line = self.ask("status");
        assert!(line.starts_with("status "), "{}: {line}", self.name);
        line.split_whitespace()
            .skip(1)
            .filter_map(|field| field.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn acked(&self) -> Vec<String> {
        self.reports.lock().unwrap().acked.clone()
    }

    pub fn quit(mut self) {
        self.send("quit");
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn members(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits until every other node has joined `nodes[0]`'s cluster as a learner, then has
/// `nodes[0]` promote each to voter, and waits until all of them vote.
pub fn promote_all(nodes: &mut [NodeProcess], limit: Duration) {
    let others = nodes.len() - 1;
    wait_for("every node to join as a learner", limit, || {
        members(&nodes[0].status()["learners"]).len() == others
    });
    for n in 1..nodes.len() {
        let id = nodes[n].id.clone();
        wait_for("a promotion to be accepted", limit, || {
            nodes[0].ask(&format!("promote {id}")) == "ok"
        });
    }
    wait_for("every node to vote", limit, || {
        members(&nodes[0].status()["voters"]).len() == nodes.len()
    });
}

/// Polls `condition` until it holds or `limit` passes; panics with `what` otherwise.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Waits until every node dumps the same applied sequence, and returns it.
pub fn converged_sequence(nodes: &mut [NodeProcess], limit: Duration) -> Vec<String> {
    let mut agreed = None;
    wait_for("every node to apply the same sequence", limit, || {
        let mut sequences = Vec::new();
        for node in nodes.iter_mut() {
            let path = node.data_dir.with_extension("dump");
            if !node
                .ask(&format!("dump {}", path.display()))
                .starts_with("dumped")
            {
                return false;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            sequences.push(text.lines().map(str::to_string).collect::<Vec<_>>());
        }
        if sequences.windows(2).all(|pair| pair[0] == pair[1]) {
            agreed = sequences.pop();
        }
        agreed.is_some()
    });
    agreed.unwrap_or_default()
}
