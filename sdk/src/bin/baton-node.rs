//! A Baton node as a process, driven line by line on stdin — for the multi-process tests
//! and for poking at a cluster by hand. Its replicated state is the ordered list of values
//! proposed to it.
//!
//! ```text
//! baton-node --data-dir DIR --bind 127.0.0.1:0 --new            # found a cluster
//! baton-node --data-dir DIR --bind 127.0.0.1:0 --join <invite>  # join (or restart from DIR)
//! ```
//! `--advertise IP:PORT` sets the address announced to the cluster (`NodeConfig::advertise_addr`).
//! Commands: `status`, `propose <label> <count> <concurrency>`, `promote <id-hex>`,
//! `transfer <id-hex>`, `dump <path>`, `quit`. Answers are single lines on stdout.

use baton::raft::{Fitness, Index, MembershipChange, NodeId};
use baton::runtime::{
    Bootstrap, Node, NodeConfig, Origin, StateMachine, StateMachineError, StorageSettings,
};
use baton::storage::Durability;
use baton::transport::{Identity, Invite, SessionCredentials};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Semaphore;

#[derive(Default)]
struct ValueList {
    values: Vec<String>,
}

impl StateMachine for ValueList {
    fn apply(&mut self, _index: Index, _origin: Origin, command: &[u8]) -> Vec<u8> {
        self.values
            .push(String::from_utf8_lossy(command).into_owned());
        (self.values.len() as u64).to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        Ok(self.values.join("\n").into_bytes())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let text =
            std::str::from_utf8(snapshot).map_err(|err| StateMachineError(err.to_string()))?;
        self.values = if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(str::to_owned).collect()
        };
        Ok(())
    }
}

/// A Baton node as a process, driven by line commands on stdin (see the file's docs).
#[derive(Debug, clap::Parser)]
#[command(name = "baton-node", version)]
struct Args {
    /// Where the node keeps its identity and (unless --memory) its durable log.
    #[arg(long)]
    data_dir: PathBuf,
    /// QUIC bind address.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Address announced to the cluster, if not the bind address.
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Found a new cluster.
    #[arg(long, conflicts_with = "join", required_unless_present = "join")]
    new: bool,
    /// Join the cluster of this invite code (or restart from --data-dir).
    #[arg(long, value_name = "INVITE")]
    join: Option<Invite>,
    /// Keep the log in memory only (no durability).
    #[arg(long)]
    memory: bool,
}

impl Args {
    fn durability(&self) -> Durability {
        if self.memory {
            Durability::Memory
        } else {
            Durability::Durable
        }
    }
}

fn parse_id(text: &str) -> Result<NodeId, String> {
    u64::from_str_radix(text, 16).map_err(|err| format!("bad node id {text}: {err}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run().await {
        println!("error {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = <Args as clap::Parser>::parse();
    std::fs::create_dir_all(&args.data_dir).map_err(|err| err.to_string())?;
    let identity = Identity::load_or_generate(&args.data_dir.join("identity"))
        .map_err(|err| err.to_string())?;
    let (credentials, bootstrap) = match &args.join {
        Some(invite) => (
            invite.credentials.clone(),
            Bootstrap::Join {
                addrs: invite.addrs.clone(),
            },
        ),
        None => (SessionCredentials::generate(), Bootstrap::NewCluster),
    };
    let mut config = NodeConfig::default();
    config.transport.bind = args.bind;
    config.advertise_addr = args.advertise;
    let durability = args.durability();
    let storage_dir = (durability != Durability::Memory).then(|| args.data_dir.join("raft"));
    config.storage = StorageSettings {
        data_dir: storage_dir,
        durability,
    };
    let node = Node::start(
        config,
        identity,
        credentials,
        ValueList::default(),
        bootstrap,
    )
    .await
    .map_err(|err| err.to_string())?;
    println!(
        "ready {:016x} {} {}",
        node.id(),
        node.local_addr(),
        node.invite()
    );

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["status"] => match node.status().await {
                Ok(status) => {
                    let ids = |set: &std::collections::BTreeSet<NodeId>| {
                        set.iter()
                            .map(|id| format!("{id:016x}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    println!(
                        "status role={:?} term={} leader={} commit={} applied={} voters={} learners={}",
                        status.role,
                        status.term,
                        status.leader.map(|id| format!("{id:016x}")).unwrap_or_else(|| "-".into()),
                        status.commit_index,
                        status.applied_index,
                        ids(&status.membership.voters),
                        ids(&status.membership.learners)
                    )
                }
                Err(err) => println!("error {err}"),
            },
            ["propose", label, count, concurrency] => {
                let count: u64 = count.parse().map_err(|_| "bad count")?;
                let concurrency: usize = concurrency.parse().map_err(|_| "bad concurrency")?;
                tokio::spawn(propose_many(
                    node.clone(),
                    label.to_string(),
                    count,
                    concurrency,
                ));
            }
            ["promote", id] => {
                let outcome = node
                    .change_membership(MembershipChange::PromoteLearner(parse_id(id)?), None)
                    .await;
                println!(
                    "{}",
                    outcome
                        .map(|()| "ok".to_string())
                        .unwrap_or_else(|err| format!("error {err}"))
                );
            }
            ["transfer", id] => {
                let outcome = node.transfer_leadership(parse_id(id)?).await;
                println!(
                    "{}",
                    outcome
                        .map(|()| "ok".to_string())
                        .unwrap_or_else(|err| format!("error {err}"))
                );
            }
            ["fitness", value] => {
                let fitness: u16 = value.parse().map_err(|_| "bad fitness")?;
                let _ = node.set_fitness(Fitness(fitness)).await;
                println!("ok");
            }
            ["dump", path] => {
                let values = node.read(|list: &ValueList| list.values.clone()).await;
                match values {
                    Ok(values) => match std::fs::write(path, values.join("\n")) {
                        Ok(()) => println!("dumped {}", values.len()),
                        Err(err) => println!("error {err}"),
                    },
                    Err(err) => println!("error {err}"),
                }
            }
            ["quit"] => break,
            _ => println!("error unknown command: {line}"),
        }
    }
    node.shutdown().await.map_err(|err| err.to_string())?;
    println!("bye");
    Ok(())
}

/// Proposes `label-0 .. label-{count-1}` with at most `concurrency` in flight and reports
/// each acknowledgement, so a test can hold the cluster to every promise it made.
async fn propose_many(node: Node<ValueList>, label: String, count: u64, concurrency: usize) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for i in 0..count {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let node = node.clone();
        let value = format!("{label}-{i}");
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match node.propose(value.clone().into_bytes()).await {
                Ok(_) => println!("acked {value}"),
                Err(err) => println!("failed {value} {err}"),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    println!("done {label}");
}
