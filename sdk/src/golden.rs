//! Golden files: every message that crosses the wire and every record that reaches the disk,
//! encoded once at a protocol / storage version and committed under `sdk/testdata/`.
//!
//! - `testdata/protocol/<major>.<minor>/`: frames, hello, join proof, invite code, every
//!   [`Wire`] and Raft message, log commands, session messages, tick records, snapshot images.
//! - `testdata/storage/<wal magic>-<snapshot magic>/`: WAL records, the snapshot file, a data
//!   directory written by [`FileStorage`], an identity key file.
//!
//! The directory of today's versions must hold exactly the samples below, byte for byte,
//! and every file must decode and re-encode to itself. Directories of older minors of the
//! same major (and older storage formats) must still decode: that is the compatibility
//! promise of `docs/protocol.md`. A version listed in `releases.txt` is frozen: changing
//! what it encodes means a new version (a new directory), never rewritten files.
//!
//! Regenerate on purpose: `BATON_GOLDEN=write cargo test -p baton --lib golden`. The writer
//! refuses to change or add files in a released version's directory.

use crate::internet::rendezvous::{
    self, Candidate, CandidateKind, Refusal, ToClient, ToServer, TurnGrant, RENDEZVOUS_VERSION,
};
use crate::raft::{
    AppendOutcome, ClientTable, ClientTag, ConflictHint, Entry, EntryPayload, Fitness, HardState,
    Membership, Message, MessageBody, PersistedState, Snapshot, SnapshotMeta,
};
use crate::runtime::applier::SnapshotImage as RuntimeImage;
use crate::runtime::wire::{decode, encode};
use crate::runtime::{LogCommand, Wire};
use crate::session::replica::SnapshotImage as SessionImage;
use crate::session::{
    decode_player, encode_player, GameImage, InputMark, PlayerInput, PlayerMessage, Progress,
    TickRecord,
};
use crate::storage::file::SEGMENT_MAGIC;
use crate::storage::record::{decode_record, encode_record, Checkpoint, Commit, RecordRef};
use crate::storage::record::{SnapshotMarker, WalRecord};
use crate::storage::snapshot_file::{decode_snapshot, encode_snapshot, MAGIC as SNAPSHOT_MAGIC};
use crate::storage::{
    Durability, FileStorage, FileStorageConfig, PersistBatch, Storage, StorageError,
};
use crate::transport::frame::{
    decode_frame, decode_payload, encode_frame, encode_frame_with_version, encode_payload,
    ErrorFrame, FrameKind, Hello, FRAME_BYTES_LIMIT,
};
use crate::transport::handshake::{compute_proof, Role};
use crate::transport::{
    Identity, Invite, SessionCredentials, SessionId, SessionSecret, PROTOCOL_MAJOR, PROTOCOL_MINOR,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the golden files live.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The release record at the repository root.
fn releases_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../releases.txt")
}

/// One line of `releases.txt`: `<crate version> <commit> <protocol> <wal magic> <snapshot magic>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Release {
    version: String,
    protocol: String,
    storage: String,
    /// The rendezvous protocol version; releases before the rendezvous service have none.
    rendezvous: Option<String>,
}

fn releases() -> Vec<Release> {
    let text =
        std::fs::read_to_string(releases_file()).expect("releases.txt at the repository root");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                (5..=6).contains(&words.len()),
                "releases.txt: bad line {line:?}"
            );
            Release {
                version: words[0].to_string(),
                protocol: words[2].to_string(),
                storage: storage_dir_name(words[3].as_bytes(), words[4].as_bytes()),
                rendezvous: words.get(5).map(|word| word.to_string()),
            }
        })
        .collect()
}

fn protocol_version() -> String {
    format!("{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}")
}

/// `wl1-sn1` for the magics `BATONWL1` and `BATONSN1`.
fn storage_dir_name(wal_magic: &[u8], snapshot_magic: &[u8]) -> String {
    let tail = |magic: &[u8]| String::from_utf8_lossy(&magic[5..]).to_lowercase();
    format!("{}-{}", tail(wal_magic), tail(snapshot_magic))
}

fn storage_version() -> String {
    storage_dir_name(SEGMENT_MAGIC, SNAPSHOT_MAGIC)
}

// ---------------------------------------------------------------------------------------
// Sample values. Fixed, and chosen so that every field is non-default where it can be: a
// field that always encodes as 0 would not show a reordering.

const A: u64 = 0x0a0a_0a0a_0a0a_0a0a;
const B: u64 = 0x0b0b_0b0b_0b0b_0b0b;
const C: u64 = 0x0c0c_0c0c_0c0c_0c0c;

fn credentials() -> SessionCredentials {
    SessionCredentials {
        session_id: SessionId([0x5e; 16]),
        secret: SessionSecret([0x5c; 32]),
    }
}

fn v4() -> SocketAddr {
    "192.0.2.7:40123".parse().expect("literal")
}

fn v6() -> SocketAddr {
    "[2001:db8::7]:40124".parse().expect("literal")
}

fn membership() -> Membership {
    Membership {
        voters: BTreeSet::from([A, B]),
        learners: BTreeSet::from([C]),
    }
}

fn tick_record() -> TickRecord {
    TickRecord {
        tick: 42,
        inputs: vec![
            PlayerInput {
                player: A,
                incarnation: 3,
                sequence: 17,
                data: b"left".to_vec(),
            },
            PlayerInput {
                player: B,
                incarnation: 1,
                sequence: 300,
                data: vec![0xff, 0, 0x80],
            },
        ],
        payload: b"state-delta".to_vec(),
    }
}

fn game_image() -> GameImage {
    GameImage {
        tick: 41,
        progress: Progress {
            last_tick: 41,
            inputs: BTreeMap::from([
                (
                    A,
                    InputMark {
                        incarnation: 3,
                        sequence: 16,
                    },
                ),
                (
                    B,
                    InputMark {
                        incarnation: 1,
                        sequence: 299,
                    },
                ),
            ]),
        },
        game: b"game-state".to_vec(),
    }
}

fn session_snapshot() -> Vec<u8> {
    encode(&SessionImage {
        base: game_image(),
        tail: vec![tick_record()],
    })
    .expect("encodes")
}

fn runtime_snapshot() -> Vec<u8> {
    let mut sessions = ClientTable::with_limits(64, 8);
    sessions.record(
        ClientTag {
            client_id: A,
            sequence: 9,
        },
        vec![1],
    );
    encode(&RuntimeImage {
        sessions,
        addresses: BTreeMap::from([(A, v4()), (B, v6())]),
        app: session_snapshot(),
    })
    .expect("encodes")
}

fn snapshot() -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_index: 2,
            last_term: 5,
            membership: membership(),
        },
        data: runtime_snapshot(),
    }
}

fn log_commands() -> Vec<(&'static str, LogCommand)> {
    let name = |command: &LogCommand| match command {
        LogCommand::App(_) => "app",
        LogCommand::SetAddress { .. } => "set-address",
        LogCommand::Forwarded { .. } => "forwarded",
    };
    [
        LogCommand::App(encode(&tick_record()).expect("encodes")),
        LogCommand::SetAddress { id: B, addr: v6() },
        LogCommand::Forwarded {
            proposer: C,
            command: b"forwarded-input".to_vec(),
        },
    ]
    .into_iter()
    .map(|command| (name(&command), command))
    .collect()
}

/// One entry of each payload kind, numbered from 1.
fn entries() -> Vec<(&'static str, Entry)> {
    let name = |payload: &EntryPayload| match payload {
        EntryPayload::Noop => "noop",
        EntryPayload::Command { .. } => "command",
        EntryPayload::Membership(_) => "membership",
    };
    let command =
        encode(&LogCommand::App(encode(&tick_record()).expect("encodes"))).expect("encodes");
    [
        EntryPayload::Noop,
        EntryPayload::Command {
            tag: Some(ClientTag {
                client_id: B,
                sequence: 12,
            }),
            data: command,
        },
        EntryPayload::Membership(membership()),
    ]
    .into_iter()
    .zip(1..)
    .map(|(payload, index)| {
        (
            name(&payload),
            Entry {
                term: 5,
                index,
                payload,
            },
        )
    })
    .collect()
}

fn raft_bodies() -> Vec<(&'static str, MessageBody)> {
    // Exhaustive on purpose: a new message kind does not compile until it has a sample.
    let name = |body: &MessageBody| match body {
        MessageBody::RequestVote { .. } => "request-vote",
        MessageBody::RequestVoteResponse { .. } => "request-vote-response",
        MessageBody::AppendEntries { .. } => "append-entries",
        MessageBody::AppendEntriesResponse {
            outcome: AppendOutcome::Accepted { .. },
            ..
        } => "append-entries-response-accepted",
        MessageBody::AppendEntriesResponse {
            outcome: AppendOutcome::Rejected { .. },
            ..
        } => "append-entries-response-rejected",
        MessageBody::Heartbeat { .. } => "heartbeat",
        MessageBody::HeartbeatResponse { .. } => "heartbeat-response",
        MessageBody::InstallSnapshot { .. } => "install-snapshot",
        MessageBody::InstallSnapshotResponse { .. } => "install-snapshot-response",
        MessageBody::TimeoutNow => "timeout-now",
        MessageBody::ReadIndexRequest { .. } => "read-index-request",
        MessageBody::ReadIndexResponse { .. } => "read-index-response",
    };
    [
        MessageBody::RequestVote {
            pre_vote: true,
            last_log_index: 77,
            last_log_term: 4,
            leader_transfer: true,
        },
        MessageBody::RequestVoteResponse {
            pre_vote: true,
            granted: true,
        },
        MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: entries().into_iter().map(|(_, entry)| entry).collect(),
            leader_commit: 2,
        },
        MessageBody::AppendEntriesResponse {
            outcome: AppendOutcome::Accepted { match_index: 3 },
            fitness: Fitness(812),
        },
        MessageBody::AppendEntriesResponse {
            outcome: AppendOutcome::Rejected {
                prev_log_index: 9,
                hint: ConflictHint {
                    index: 6,
                    term: Some(3),
                },
            },
            fitness: Fitness(17),
        },
        MessageBody::Heartbeat {
            leader_commit: 3,
            read_context: 88,
            successor_rank: Some(1),
        },
        MessageBody::HeartbeatResponse {
            read_context: 88,
            fitness: Fitness(1000),
        },
        MessageBody::InstallSnapshot {
            meta: snapshot().meta,
            offset: 0,
            total_bytes: snapshot().data.len() as u64,
            data: snapshot().data,
        },
        MessageBody::InstallSnapshotResponse {
            snapshot_index: 2,
            next_offset: 4096,
            complete: true,
            fitness: Fitness(640),
        },
        MessageBody::TimeoutNow,
        MessageBody::ReadIndexRequest { request_id: 5150 },
        MessageBody::ReadIndexResponse {
            request_id: 5150,
            index: Some(3),
        },
    ]
    .into_iter()
    .map(|body| (name(&body), body))
    .collect()
}

fn raft_message(body: MessageBody) -> Message {
    Message {
        from: A,
        to: B,
        term: 5,
        body,
    }
}

fn wires() -> Vec<(String, Wire)> {
    let name = |wire: &Wire| match wire {
        Wire::Raft(_) => "raft",
        Wire::Forward { .. } => "forward",
        Wire::JoinRequest {
            addr: SocketAddr::V4(_),
        } => "join-request-v4",
        Wire::JoinRequest {
            addr: SocketAddr::V6(_),
        } => "join-request-v6",
        Wire::Player(_) => "player",
        Wire::Redirect { addr: Some(_), .. } => "redirect",
        Wire::Redirect { addr: None, .. } => "redirect-unknown",
    };
    let mut out: Vec<(String, Wire)> = raft_bodies()
        .into_iter()
        .map(|(body, message)| (format!("raft-{body}"), Wire::Raft(raft_message(message))))
        .collect();
    let player = encode_player(&PlayerMessage::Leave, LIFE).expect("encodes");
    for wire in [
        Wire::Forward {
            tag: ClientTag {
                client_id: 31,
                sequence: 4,
            },
            command: b"forwarded-input".to_vec(),
        },
        Wire::JoinRequest { addr: v4() },
        Wire::JoinRequest { addr: v6() },
        Wire::Player(player),
        Wire::Redirect {
            leader: C,
            addr: Some(v4()),
        },
        Wire::Redirect {
            leader: C,
            addr: None,
        },
    ] {
        out.push((name(&wire).to_string(), wire));
    }
    out
}

/// The sender's life appended to every player message (protocol 1.1).
const LIFE: u64 = 0x0006_2a1c_55e0_4b31;

fn player_messages() -> Vec<(&'static str, PlayerMessage)> {
    let name = |message: &PlayerMessage| match message {
        PlayerMessage::Inputs { .. } => "inputs",
        PlayerMessage::Leave => "leave",
        PlayerMessage::Removed => "removed",
    };
    [
        PlayerMessage::Inputs {
            incarnation: 3,
            inputs: vec![(17, b"left".to_vec()), (18, b"jump".to_vec())],
        },
        PlayerMessage::Leave,
        PlayerMessage::Removed,
    ]
    .into_iter()
    .map(|message| (name(&message), message))
    .collect()
}

fn hello() -> Hello {
    Hello {
        session_id: credentials().session_id.0,
        incarnation: 0x1122_3344_5566_7788,
        role: Role::Acceptor as u8,
        proof: join_proof(),
    }
}

/// The join proof over fixed transcript inputs: pins the transcript's layout and domain.
fn join_proof() -> [u8; 32] {
    compute_proof(
        &credentials(),
        Role::Acceptor,
        0x1122_3344_5566_7788,
        &[0x11; 32],
        &[0x22; 32],
    )
}

fn invite() -> Invite {
    Invite {
        credentials: credentials(),
        addrs: vec![v4(), v6()],
        rendezvous: Vec::new(),
    }
}

fn error_frame() -> ErrorFrame {
    ErrorFrame {
        code: 3,
        message: "protocol major version 2 is not supported (this node speaks 1)".into(),
    }
}

fn payload<T: Serialize>(value: &T) -> Vec<u8> {
    encode_payload(value).expect("encodes")
}

/// Every protocol sample of today's version: file name and bytes.
fn protocol_samples() -> Vec<(String, Vec<u8>)> {
    let heartbeat = Wire::Raft(raft_message(MessageBody::Heartbeat {
        leader_commit: 3,
        read_context: 0,
        successor_rank: None,
    }));
    let mut out = vec![
        (
            "frame.hello.bin".to_string(),
            encode_frame(FrameKind::Hello as u8, &payload(&hello())),
        ),
        (
            "frame.message.bin".to_string(),
            encode_frame(FrameKind::Message as u8, &payload(&heartbeat)),
        ),
        (
            "frame.error.bin".to_string(),
            encode_frame(FrameKind::Error as u8, &payload(&error_frame())),
        ),
        ("join-proof.bin".to_string(), join_proof().to_vec()),
        ("invite.txt".to_string(), invite().to_string().into_bytes()),
    ];
    for (name, wire) in wires() {
        out.push((format!("wire.{name}.bin"), payload(&wire)));
    }
    for (name, command) in log_commands() {
        out.push((format!("log-command.{name}.bin"), encoded(&command)));
    }
    for (name, message) in player_messages() {
        let bytes = encode_player(&message, LIFE).expect("encodes");
        out.push((format!("player-message.{name}.bin"), bytes));
    }
    out.push(("tick-record.bin".to_string(), encoded(&tick_record())));
    out.push(("game-image.bin".to_string(), encoded(&game_image())));
    out.push(("session-snapshot.bin".to_string(), session_snapshot()));
    out.push(("runtime-snapshot.bin".to_string(), runtime_snapshot()));
    out
}

/// One candidate of each kind.
fn rendezvous_candidates() -> Vec<Candidate> {
    // Exhaustive on purpose: a new kind does not compile until it is listed here.
    let listed = |kind: CandidateKind| match kind {
        CandidateKind::Host | CandidateKind::Reflexive | CandidateKind::Relayed => kind,
    };
    [
        CandidateKind::Host,
        CandidateKind::Reflexive,
        CandidateKind::Relayed,
    ]
    .map(listed)
    .into_iter()
    .zip([v4(), v6(), "198.51.100.9:3478".parse().expect("literal")])
    .map(|(kind, addr)| Candidate { addr, kind })
    .collect()
}

/// Every rendezvous sample of today's version: file name and bytes.
fn rendezvous_samples() -> Vec<(String, Vec<u8>)> {
    let session = credentials().session_id.0;
    let to_server = |message: &ToServer| match message {
        ToServer::Register { .. } => "register",
    };
    let to_client = |message: &ToClient| match message {
        ToClient::Registered { turn: Some(_), .. } => "registered".to_string(),
        ToClient::Registered { turn: None, .. } => "registered-no-turn".to_string(),
        ToClient::Peer { .. } => "peer".to_string(),
        ToClient::Refused { reason, .. } => format!(
            "refused-{}",
            match reason {
                Refusal::BadKey => "bad-key",
                Refusal::TooManyCandidates => "too-many-candidates",
                Refusal::SessionFull => "session-full",
                Refusal::Overloaded => "overloaded",
            }
        ),
    };
    fn datagram<T: Serialize>(message: &T) -> Vec<u8> {
        rendezvous::encode(message).expect("fits a datagram")
    }
    let mut out = Vec::new();
    let register = ToServer::Register {
        session,
        key: credentials().secret.rendezvous_key().0,
        node: A,
        candidates: rendezvous_candidates(),
    };
    out.push((
        format!("to-server.{}.bin", to_server(&register)),
        datagram(&register),
    ));
    let mut to_clients = vec![
        ToClient::Registered {
            session,
            observed: v4(),
            ttl_ms: 30_000,
            turn: Some(TurnGrant {
                server: "198.51.100.9:3478".parse().expect("literal"),
                username: "1700000000:baton".into(),
                password: "c2VjcmV0LXBhc3N3b3Jk".into(),
            }),
        },
        ToClient::Registered {
            session,
            observed: v6(),
            ttl_ms: 30_000,
            turn: None,
        },
        ToClient::Peer {
            session,
            node: B,
            candidates: rendezvous_candidates(),
        },
    ];
    for reason in [
        Refusal::BadKey,
        Refusal::TooManyCandidates,
        Refusal::SessionFull,
        Refusal::Overloaded,
    ] {
        to_clients.push(ToClient::Refused { session, reason });
    }
    for message in &to_clients {
        out.push((
            format!("to-client.{}.bin", to_client(message)),
            datagram(message),
        ));
    }
    out
}

fn reencode_rendezvous(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    fn again<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let message: T = rendezvous::decode(bytes).map_err(|e| e.to_string())?;
        rendezvous::encode(&message).ok_or_else(|| "does not fit a datagram".to_string())
    }
    match name.split('.').next().unwrap_or_default() {
        "to-server" => again::<ToServer>(bytes),
        "to-client" => again::<ToClient>(bytes),
        other => Err(format!("no decoder for files of kind {other:?}")),
    }
}

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    encode(value).expect("encodes")
}

fn record(record: RecordRef<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(record, &mut out);
    out
}

fn hard_state() -> HardState {
    HardState {
        term: 5,
        vote: Some(B),
        commit: 2,
    }
}

/// Every storage sample of today's format: file name and bytes (the data directory and the
/// identity are written by [`write_data_dir`] and checked by [`check_data_dir`]).
fn storage_samples() -> Vec<(String, Vec<u8>)> {
    let checkpoint = Checkpoint {
        segment_seq: 3,
        next_index: 120,
        snapshot_index: 100,
        snapshot_term: 4,
        hard_state: hard_state(),
    };
    let mut out = vec![(
        "wal.checkpoint.bin".to_string(),
        record(RecordRef::Checkpoint(&checkpoint)),
    )];
    for (name, entry) in entries() {
        out.push((
            format!("wal.entry-{name}.bin"),
            record(RecordRef::Entry(&entry)),
        ));
    }
    out.extend([
        (
            "wal.hard-state.bin".to_string(),
            record(RecordRef::HardState(&hard_state())),
        ),
        (
            "wal.hard-state-no-vote.bin".to_string(),
            record(RecordRef::HardState(&HardState {
                term: 6,
                vote: None,
                commit: 3,
            })),
        ),
        (
            "wal.snapshot-marker.bin".to_string(),
            record(RecordRef::SnapshotMarker(&SnapshotMarker {
                last_index: 2,
                last_term: 5,
                log_kept: true,
            })),
        ),
        (
            "wal.commit.bin".to_string(),
            record(RecordRef::Commit(&Commit {
                batch: 7,
                synced_through: 4242,
            })),
        ),
        (
            "snapshot-file.bin".to_string(),
            encode_snapshot(&snapshot()),
        ),
    ]);
    out
}

// ---------------------------------------------------------------------------------------
// Decoding what a file holds, as a receiver (or a store) of today's code does, and encoding
// it again. A file that decodes to a value whose encoding differs has been misread.

fn reencode_with<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let value: T = decode(bytes).ok_or("does not decode")?;
    encode(&value).map_err(|err| err.to_string())
}

fn reencode_payload<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let value: T = decode_payload(bytes).map_err(|err| err.to_string())?;
    encode_payload(&value).map_err(|err| err.to_string())
}

/// A protocol file decoded by today's code and encoded again. The kind is the file name up
/// to its first dot.
///
/// When a later minor appends a field to a payload, its decoder takes the sender's minor
/// (from the frame header): add that case here, matching on `minor`, so the older files keep
/// decoding the way a receiver decodes an older peer.
fn reencode_protocol(name: &str, minor: u16, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let kind = name.split('.').next().unwrap_or_default();
    match kind {
        "frame" => {
            let (frame, used) =
                decode_frame(bytes, FRAME_BYTES_LIMIT).map_err(|e| e.to_string())?;
            if used != bytes.len() {
                return Err(format!("{} bytes after the frame", bytes.len() - used));
            }
            let body = match FrameKind::from_u8(frame.header.kind) {
                Some(FrameKind::Hello) => reencode_payload::<Hello>(&frame.payload)?,
                Some(FrameKind::Message) => reencode_payload::<Wire>(&frame.payload)?,
                Some(FrameKind::Error) => reencode_payload::<ErrorFrame>(&frame.payload)?,
                None => return Err(format!("unknown frame kind {}", frame.header.kind)),
            };
            Ok(encode_frame_with_version(
                frame.header.major,
                frame.header.minor,
                frame.header.kind,
                &body,
            ))
        }
        // The transcript is not decodable: recomputing it from the fixed inputs is the check.
        "join-proof" => Ok(join_proof().to_vec()),
        "invite" => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            let invite: Invite = text
                .parse()
                .map_err(|e: crate::transport::InviteError| e.to_string())?;
            Ok(invite.to_string().into_bytes())
        }
        "wire" => reencode_payload::<Wire>(bytes),
        "log-command" => reencode_with::<LogCommand>(bytes),
        // 1.0 sent the message alone; 1.1 appends the sender's life.
        "player-message" if minor == 0 => reencode_with::<PlayerMessage>(bytes),
        "player-message" => match decode_player(bytes) {
            Some((message, Some(life))) => encode_player(&message, life).map_err(|e| e.to_string()),
            Some((_, None)) => Err("no life after the message".into()),
            None => Err("does not decode".into()),
        },
        "tick-record" => reencode_with::<TickRecord>(bytes),
        "game-image" => reencode_with::<GameImage>(bytes),
        "session-snapshot" => reencode_with::<SessionImage>(bytes),
        "runtime-snapshot" => {
            let image: RuntimeImage = decode(bytes).ok_or("does not decode")?;
            reencode_with::<SessionImage>(&image.app)?;
            encode(&image).map_err(|err| err.to_string())
        }
        other => Err(format!("no decoder for files of kind {other:?}")),
    }
}

fn reencode_storage(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let kind = name.split('.').next().unwrap_or_default();
    match kind {
        "wal" => {
            let (decoded, used) = decode_record(bytes).map_err(|e| e.to_string())?;
            if used != bytes.len() {
                return Err(format!("{} bytes after the record", bytes.len() - used));
            }
            Ok(record(match &decoded {
                WalRecord::Checkpoint(body) => RecordRef::Checkpoint(body),
                WalRecord::Entry(body) => RecordRef::Entry(body),
                WalRecord::HardState(body) => RecordRef::HardState(body),
                WalRecord::SnapshotMarker(body) => RecordRef::SnapshotMarker(body),
                WalRecord::Commit(body) => RecordRef::Commit(body),
            }))
        }
        "snapshot-file" => {
            let snapshot =
                decode_snapshot(bytes).map_err(|(at, why)| format!("byte {at}: {why}"))?;
            reencode_with::<RuntimeImage>(&snapshot.data)?;
            Ok(encode_snapshot(&snapshot))
        }
        other => Err(format!("no decoder for files of kind {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------
// A data directory as FileStorage writes it: entries, a hard state, a snapshot that keeps
// the log, more entries. Deterministic in the durable profile.

const DATA_DIR: &str = "data-dir";
const DATA_DIR_STATE: &str = "data-dir.state.txt";
const IDENTITY_KEY: &str = "identity.key";
const IDENTITY_NODE_ID: &str = "identity.node-id.txt";

fn storage_config() -> FileStorageConfig {
    FileStorageConfig {
        durability: Durability::Durable,
        segment_bytes: crate::storage::file::SEGMENT_BYTES_MIN,
    }
}

fn write_data_dir(dir: &Path) {
    let mut store = FileStorage::open(dir, storage_config()).expect("opens");
    let entries: Vec<Entry> = entries().into_iter().map(|(_, entry)| entry).collect();
    store
        .persist(&PersistBatch {
            hard_state: Some(hard_state()),
            snapshot: None,
            entries: &entries,
        })
        .expect("persists");
    store
        .persist(&PersistBatch {
            hard_state: None,
            snapshot: Some(&snapshot()),
            entries: &[],
        })
        .expect("persists");
    let more: Vec<Entry> = (4..=40)
        .map(|index| Entry {
            term: 6,
            index,
            payload: EntryPayload::Command {
                tag: None,
                data: encoded(&LogCommand::App(format!("value-{index}").into_bytes())),
            },
        })
        .collect();
    store
        .persist(&PersistBatch {
            hard_state: Some(HardState {
                term: 6,
                vote: Some(A),
                commit: 40,
            }),
            snapshot: None,
            entries: &more,
        })
        .expect("persists");
    // The previous batch filled the first segment: this one starts the second.
    store
        .persist(&PersistBatch {
            hard_state: Some(HardState {
                term: 6,
                vote: Some(A),
                commit: 42,
            }),
            snapshot: None,
            entries: &[Entry {
                term: 6,
                index: 41,
                payload: EntryPayload::Command {
                    tag: Some(ClientTag {
                        client_id: C,
                        sequence: 1,
                    }),
                    data: encoded(&LogCommand::SetAddress { id: C, addr: v4() }),
                },
            }],
        })
        .expect("persists");
}

/// The data directory's files (the lock file aside), by name.
fn data_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for item in std::fs::read_dir(dir).expect("data directory") {
        let path = item.expect("directory entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name != "LOCK" {
            files.insert(name, std::fs::read(&path).expect("readable"));
        }
    }
    files
}

fn state_text(state: &PersistedState) -> String {
    format!("{state:?}\n")
}

/// Opens a copy of a golden data directory (opening may repair, so never the original)
/// and checks that it recovers the recorded state, or is refused as another format.
fn check_data_dir(version_dir: &Path) -> Result<(), String> {
    let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
    for (name, bytes) in data_dir_files(&version_dir.join(DATA_DIR)) {
        std::fs::write(copy.path().join(name), bytes).map_err(|e| e.to_string())?;
    }
    let expected = std::fs::read_to_string(version_dir.join(DATA_DIR_STATE))
        .map_err(|e| format!("{DATA_DIR_STATE}: {e}"))?;
    match FileStorage::open(copy.path(), storage_config()) {
        Ok(store) if state_text(store.initial_state()) == expected => Ok(()),
        Ok(_) => Err(format!(
            "{DATA_DIR} recovers another state than {DATA_DIR_STATE}"
        )),
        Err(StorageError::UnsupportedFormat { .. }) if version_dir_is_not_current(version_dir) => {
            Ok(())
        }
        Err(error) => Err(format!("{DATA_DIR} does not open: {error}")),
    }
}

fn version_dir_is_not_current(dir: &Path) -> bool {
    dir.file_name()
        .is_some_and(|name| name.to_string_lossy() != storage_version())
}

fn check_identity(version_dir: &Path) -> Result<(), String> {
    // Loading a missing key would generate one into testdata.
    if !version_dir.join(IDENTITY_KEY).is_file() {
        return Err(format!("{IDENTITY_KEY}: missing"));
    }
    let identity = Identity::load_or_generate(&version_dir.join(IDENTITY_KEY))
        .map_err(|e| format!("{IDENTITY_KEY}: {e}"))?;
    let expected = std::fs::read_to_string(version_dir.join(IDENTITY_NODE_ID))
        .map_err(|e| format!("{IDENTITY_NODE_ID}: {e}"))?;
    let found = format!("{:016x}\n", identity.node_id());
    (found == expected).then_some(()).ok_or_else(|| {
        format!("{IDENTITY_KEY} is node {found}, {IDENTITY_NODE_ID} says {expected}")
    })
}

// ---------------------------------------------------------------------------------------
// The checks, and the writer.

/// The sample files of one version directory that differ from `samples`: missing, changed
/// or not a sample at all.
fn differences(dir: &Path, samples: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = samples.iter().map(|(name, _)| name.as_str()).collect();
    for (name, bytes) in samples {
        match std::fs::read(dir.join(name)) {
            Ok(found) if &found == bytes => {}
            Ok(_) => problems.push(format!("{name}: today's encoding differs")),
            Err(_) => problems.push(format!("{name}: missing")),
        }
    }
    for name in sample_files(dir) {
        if !names.contains(name.as_str()) {
            problems.push(format!(
                "{name}: no longer a sample (a message or record was removed?)"
            ));
        }
    }
    problems
}

/// The single-file samples of a version directory (everything but the data directory,
/// its state and the identity).
fn sample_files(dir: &Path) -> Vec<String> {
    let Ok(items) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = items
        .filter_map(|item| item.ok())
        .filter(|item| item.path().is_file())
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| ![DATA_DIR_STATE, IDENTITY_KEY, IDENTITY_NODE_ID].contains(&name.as_str()))
        .collect();
    names.sort();
    names
}

/// Version directories under `testdata/<area>`, by name; there must be some.
fn version_dirs(area: &str) -> Vec<(String, PathBuf)> {
    let items = std::fs::read_dir(testdata().join(area)).unwrap_or_else(|err| {
        panic!(
            "no golden {area} files under {}: {err}",
            testdata().display()
        )
    });
    let mut dirs: Vec<(String, PathBuf)> = items
        .filter_map(|item| item.ok())
        .filter(|item| item.path().is_dir())
        .map(|item| (item.file_name().to_string_lossy().into_owned(), item.path()))
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no golden {area} versions under {}",
        testdata().display()
    );
    dirs
}

/// Decodes and re-encodes every sample file of `dir` with `reencode`; lists the files that
/// come back different, and those that do not decode unless `refusal_allowed`.
fn reencode_problems(
    dir: &Path,
    label: &str,
    refusal_allowed: bool,
    reencode: impl Fn(&str, &[u8]) -> Result<Vec<u8>, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in sample_files(dir) {
        let bytes = std::fs::read(dir.join(&name)).expect("readable");
        match reencode(&name, &bytes) {
            Ok(again) if again == bytes => {}
            Ok(_) => problems.push(format!("{label}{name}: decodes to something else")),
            Err(_) if refusal_allowed => {}
            Err(why) => problems.push(format!("{label}{name}: {why}")),
        }
    }
    problems
}

fn how_to_fix(area: &str, version: &str, released: bool) -> String {
    let bump = match area {
        "protocol" => "a compatible addition bumps PROTOCOL_MINOR (sdk/src/transport/frame.rs), an incompatible change PROTOCOL_MAJOR",
        "rendezvous" => "a change bumps RENDEZVOUS_VERSION (sdk/src/internet/rendezvous.rs), and the service answers the old version too while players still speak it",
        _ => "a change bumps the version character of the magic it changes (SEGMENT_MAGIC in sdk/src/storage/file.rs, MAGIC in snapshot_file.rs) and teaches the store to read the old one",
    };
    if released {
        format!(
            "{area} {version} is released (releases.txt): its encodings are frozen. Either the \
             change is a mistake, or {bump}; then `BATON_GOLDEN=write cargo test -p baton --lib \
             golden` writes the new version's directory and the old one keeps passing. See \
             docs/protocol.md, \"Changing a format\"."
        )
    } else {
        format!(
            "{area} {version} is not released yet: if the change is intended, refresh with \
             `BATON_GOLDEN=write cargo test -p baton --lib golden`."
        )
    }
}

fn writing() -> bool {
    std::env::var("BATON_GOLDEN").is_ok_and(|value| value == "write")
}

/// Writes `samples` into `dir`: freely for an unreleased version, and for a released one only
/// if the directory does not exist yet.
fn write_samples(dir: &Path, samples: &[(String, Vec<u8>)], released: bool) {
    if released && dir.exists() {
        let problems = differences(dir, samples);
        assert!(
            problems.is_empty(),
            "refusing to rewrite the released {}: {problems:#?}",
            dir.display()
        );
        return;
    }
    std::fs::create_dir_all(dir).expect("create the version directory");
    for name in sample_files(dir) {
        std::fs::remove_file(dir.join(name)).expect("remove an old sample");
    }
    for (name, bytes) in samples {
        std::fs::write(dir.join(name), bytes).expect("write a sample");
    }
}

fn is_released(area_version: impl Fn(&Release) -> bool) -> bool {
    releases().iter().any(area_version)
}

/// Writes today's samples of `area` when asked to, and lists how the committed files differ.
fn todays_differences(
    area: &str,
    version: &str,
    released: bool,
    samples: &[(String, Vec<u8>)],
) -> (PathBuf, Vec<String>) {
    let dir = testdata().join(area).join(version);
    if writing() {
        write_samples(&dir, samples, released);
    }
    let problems = differences(&dir, samples);
    (dir, problems)
}

fn assert_no_differences(
    area: &str,
    version: &str,
    released: bool,
    dir: &Path,
    problems: &[String],
) {
    assert!(
        problems.is_empty(),
        "{area} {version}, {}:\n{problems:#?}\n{}",
        dir.display(),
        how_to_fix(area, version, released)
    );
}

#[test]
fn golden_protocol_files_match_todays_encoding() {
    let version = protocol_version();
    let released = is_released(|release| release.protocol == version);
    let (dir, problems) = todays_differences("protocol", &version, released, &protocol_samples());
    assert_no_differences("protocol", &version, released, &dir, &problems);
}

#[test]
fn golden_rendezvous_files_match_todays_encoding_and_decode() {
    let version = RENDEZVOUS_VERSION.to_string();
    let released = is_released(|release| release.rendezvous.as_ref() == Some(&version));
    let (dir, mut problems) =
        todays_differences("rendezvous", &version, released, &rendezvous_samples());
    // A service decodes only its own version, so only today's files can be decoded.
    problems.extend(reencode_problems(&dir, "", false, reencode_rendezvous));
    assert_no_differences("rendezvous", &version, released, &dir, &problems);
}

#[test]
fn golden_protocol_files_of_every_minor_of_this_major_decode() {
    let dirs = version_dirs("protocol");
    let mut problems = Vec::new();
    for (version, dir) in dirs {
        let Some((major, minor)) = version.split_once('.') else {
            problems.push(format!("{version}: not a <major>.<minor> directory"));
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u16>(), minor.parse::<u16>()) else {
            problems.push(format!("{version}: not a <major>.<minor> directory"));
            continue;
        };
        // Another major never talks to this one: its files are history, not a promise.
        if major != PROTOCOL_MAJOR || minor > PROTOCOL_MINOR {
            continue;
        }
        problems.extend(reencode_problems(
            &dir,
            &format!("{version}/"),
            false,
            |name, bytes| reencode_protocol(name, minor, bytes),
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn golden_storage_files_match_todays_encoding() {
    let version = storage_version();
    let released = is_released(|release| release.storage == version);
    let dir = testdata().join("storage").join(&version);
    let samples = storage_samples();
    let scratch = tempfile::tempdir().expect("temporary directory");
    write_data_dir(scratch.path());
    let data_dir = data_dir_files(scratch.path());
    if writing() && !(released && dir.exists()) {
        write_samples(&dir, &samples, released);
        let golden = dir.join(DATA_DIR);
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).expect("create the data directory");
        for (name, bytes) in &data_dir {
            std::fs::write(golden.join(name), bytes).expect("write a data file");
        }
        let state = FileStorage::open(scratch.path(), storage_config()).expect("reopens");
        std::fs::write(dir.join(DATA_DIR_STATE), state_text(state.initial_state()))
            .expect("write the state");
        if !dir.join(IDENTITY_KEY).exists() {
            let identity =
                Identity::load_or_generate(&dir.join(IDENTITY_KEY)).expect("writes a key");
            std::fs::write(
                dir.join(IDENTITY_NODE_ID),
                format!("{:016x}\n", identity.node_id()),
            )
            .expect("write the node id");
        }
    }
    let mut problems = differences(&dir, &samples);
    if data_dir_files(&dir.join(DATA_DIR)) != data_dir {
        problems.push(format!("{DATA_DIR}: FileStorage writes other files today"));
    }
    assert_no_differences("storage", &version, released, &dir, &problems);
}

#[test]
fn golden_storage_files_of_every_format_decode_or_are_refused() {
    let dirs = version_dirs("storage");
    let mut problems = Vec::new();
    for (version, dir) in dirs {
        let current = version == storage_version();
        // An older format's single records may be refused, never misread: the data
        // directory check below says whether the store opens it.
        problems.extend(reencode_problems(
            &dir,
            &format!("{version}/"),
            !current,
            reencode_storage,
        ));
        if let Err(why) = check_data_dir(&dir) {
            problems.push(format!("{version}: {why}"));
        }
        if let Err(why) = check_identity(&dir) {
            problems.push(format!("{version}: {why}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn releases_name_versions_that_have_golden_files() {
    let releases = releases();
    assert!(!releases.is_empty(), "releases.txt names no release");
    for release in releases {
        assert!(
            testdata().join("protocol").join(&release.protocol).is_dir(),
            "release {} speaks protocol {} but testdata/protocol/{} is missing",
            release.version,
            release.protocol,
            release.protocol
        );
        assert!(
            testdata().join("storage").join(&release.storage).is_dir(),
            "release {} writes storage {} but testdata/storage/{} is missing",
            release.version,
            release.storage,
            release.storage
        );
    }
}
