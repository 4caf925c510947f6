//! Property tests: every message type that crosses the network round-trips exactly through
//! the codec path it takes in the running system, truncated encodings are refused, and
//! arbitrary bytes never panic a decoder.
//!
//! The paths under test, as the runtime uses them:
//! - a [`Wire`] is sent by `Transport::send`: `encode_payload`, then `encode_frame` with
//!   [`FrameKind::Message`]; the reader checks the frame (`read_frame` applies the same
//!   checks as `decode_frame`) and `decode_payload`s it;
//! - a [`LogCommand`] is `encode`d into an entry's command data (and into
//!   `Wire::Forward`), and the applier `decode`s it;
//! - the session layer `encode`s its [`PlayerMessage`]s into `Wire::Player` and its
//!   [`TickRecord`]s into `LogCommand::App`, and `decode`s them on arrival;
//! - the transport's control frames ([`Hello`], [`ErrorFrame`]) use the frame codec.
//!
//! Each strategy over an enum has one arm per variant. The `variant_names!` helpers hold
//! an exhaustive match per enum, so a new variant does not compile until it is named there,
//! and `strategies_cover_every_variant` then fails until its strategy generates it.

use super::{as_carried, decode, encode, LogCommand, Wire};
use crate::raft::{
    AppendOutcome, ClientTag, ConflictHint, Entry, EntryPayload, Fitness, Membership, Message,
    MessageBody, SnapshotMeta,
};
use crate::session::{decode_player, encode_player, PlayerInput, PlayerMessage, TickRecord};
use crate::transport::frame::{
    decode_frame, decode_payload, encode_frame, encode_payload, ErrorFrame, FrameError, FrameKind,
    Hello, ERROR_MESSAGE_BYTES_MAX,
};
use crate::transport::TransportConfig;
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Cases per property: enough to hit every variant many times, few enough for a debug run
/// of a few seconds.
const CASES: u32 = 128;
/// Longest opaque byte string generated (command data, snapshot chunks, inputs).
const DATA_BYTES_MAX: usize = 48;
/// Most elements generated in any collection (entries, members, inputs).
const ELEMENTS_MAX: usize = 4;
/// Values drawn per strategy when checking variant coverage.
const COVERAGE_SAMPLES: usize = 512;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// A u64 that lands in every bincode varint width (1, 3, 5 and 9 bytes) and on the
/// boundaries between them, not only in the 9-byte range a uniform draw almost always hits.
fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=260,
        65_530u64..=65_540,
        (u64::from(u32::MAX) - 4)..=(u64::from(u32::MAX) + 4),
        any::<u64>(),
    ]
}

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=300, any::<u32>()]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=DATA_BYTES_MAX)
}

fn node_ids() -> impl Strategy<Value = BTreeSet<u64>> {
    btree_set(int(), 0..=ELEMENTS_MAX)
}

fn fitness() -> impl Strategy<Value = Fitness> {
    // Any u16 travels, including values above `Fitness::MAX` a buggy peer might send.
    prop_oneof![0u16..=1000, any::<u16>()].prop_map(Fitness)
}

fn client_tag() -> impl Strategy<Value = ClientTag> {
    (int(), int()).prop_map(|(client_id, sequence)| ClientTag {
        client_id,
        sequence,
    })
}

fn membership() -> impl Strategy<Value = Membership> {
    (node_ids(), node_ids()).prop_map(|(voters, learners)| Membership { voters, learners })
}

fn entry_payload() -> impl Strategy<Value = EntryPayload> {
    prop_oneof![
        Just(EntryPayload::Noop),
        (option::of(client_tag()), bytes())
            .prop_map(|(tag, data)| EntryPayload::Command { tag, data }),
        membership().prop_map(EntryPayload::Membership),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (int(), int(), entry_payload()).prop_map(|(term, index, payload)| Entry {
        term,
        index,
        payload,
    })
}

fn snapshot_meta() -> impl Strategy<Value = SnapshotMeta> {
    (int(), int(), membership()).prop_map(|(last_index, last_term, membership)| SnapshotMeta {
        last_index,
        last_term,
        membership,
    })
}

fn append_outcome() -> impl Strategy<Value = AppendOutcome> {
    prop_oneof![
        int().prop_map(|match_index| AppendOutcome::Accepted { match_index }),
        (int(), int(), option::of(int())).prop_map(|(prev_log_index, index, term)| {
            AppendOutcome::Rejected {
                prev_log_index,
                hint: ConflictHint { index, term },
            }
        }),
    ]
}

fn message_body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (any::<bool>(), int(), int(), any::<bool>()).prop_map(
            |(pre_vote, last_log_index, last_log_term, leader_transfer)| {
                MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    leader_transfer,
                }
            }
        ),
        (any::<bool>(), any::<bool>()).prop_map(|(pre_vote, granted)| {
            MessageBody::RequestVoteResponse { pre_vote, granted }
        }),
        (int(), int(), vec(entry(), 0..=ELEMENTS_MAX), int()).prop_map(
            |(prev_log_index, prev_log_term, entries, leader_commit)| {
                MessageBody::AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                }
            }
        ),
        (append_outcome(), fitness()).prop_map(|(outcome, fitness)| {
            MessageBody::AppendEntriesResponse { outcome, fitness }
        }),
        (int(), int(), option::of(small_u32())).prop_map(
            |(leader_commit, read_context, successor_rank)| MessageBody::Heartbeat {
                leader_commit,
                read_context,
                successor_rank,
            }
        ),
        (int(), fitness()).prop_map(|(read_context, fitness)| {
            MessageBody::HeartbeatResponse {
                read_context,
                fitness,
            }
        }),
        (snapshot_meta(), int(), int(), bytes()).prop_map(|(meta, offset, total_bytes, data)| {
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total_bytes,
                data,
            }
        }),
        (int(), int(), any::<bool>(), fitness()).prop_map(
            |(snapshot_index, next_offset, complete, fitness)| {
                MessageBody::InstallSnapshotResponse {
                    snapshot_index,
                    next_offset,
                    complete,
                    fitness,
                }
            }
        ),
        Just(MessageBody::TimeoutNow),
        int().prop_map(|request_id| MessageBody::ReadIndexRequest { request_id }),
        (int(), option::of(int()))
            .prop_map(|(request_id, index)| MessageBody::ReadIndexResponse { request_id, index }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (int(), int(), int(), message_body()).prop_map(|(from, to, term, body)| Message {
        from,
        to,
        term,
        body,
    })
}

/// Addresses as they can arrive: IPv6 flow label and scope id are not carried (module docs
/// of `wire`), so they are generated as 0; `v6_flow_label_and_scope_id_are_not_carried`
/// pins that.
fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
        }),
    ]
}

fn log_command() -> impl Strategy<Value = LogCommand> {
    prop_oneof![
        bytes().prop_map(LogCommand::App),
        (int(), socket_addr()).prop_map(|(id, addr)| LogCommand::SetAddress { id, addr }),
        (int(), bytes())
            .prop_map(|(proposer, command)| LogCommand::Forwarded { proposer, command }),
    ]
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        message().prop_map(Wire::Raft),
        // A forward carries the application's bytes; the leader wraps them.
        (client_tag(), bytes()).prop_map(|(tag, command)| Wire::Forward { tag, command }),
        socket_addr().prop_map(|addr| Wire::JoinRequest { addr }),
        bytes().prop_map(Wire::Player),
        (int(), option::of(socket_addr()))
            .prop_map(|(leader, addr)| Wire::Redirect { leader, addr }),
    ]
}

fn player_input() -> impl Strategy<Value = PlayerInput> {
    (int(), int(), int(), bytes()).prop_map(|(player, incarnation, sequence, data)| PlayerInput {
        incarnation,
        player,
        sequence,
        data,
    })
}

fn tick_record() -> impl Strategy<Value = TickRecord> {
    (int(), vec(player_input(), 0..=ELEMENTS_MAX), bytes()).prop_map(|(tick, inputs, payload)| {
        TickRecord {
            tick,
            inputs,
            payload,
        }
    })
}

fn session_message() -> impl Strategy<Value = PlayerMessage> {
    prop_oneof![
        (int(), vec((int(), bytes()), 0..=ELEMENTS_MAX)).prop_map(|(incarnation, inputs)| {
            PlayerMessage::Inputs {
                incarnation,
                inputs,
            }
        }),
        Just(PlayerMessage::Leave),
        Just(PlayerMessage::Removed),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (any::<[u8; 16]>(), int(), any::<u8>(), any::<[u8; 32]>()).prop_map(
        |(session_id, incarnation, role, proof)| Hello {
            session_id,
            incarnation,
            role,
            proof,
        },
    )
}

fn error_frame() -> impl Strategy<Value = ErrorFrame> {
    // Any Unicode text, cut at `ERROR_MESSAGE_BYTES_MAX` on a char boundary as
    // `handshake::error_frame` does.
    (small_u32(), any::<String>()).prop_map(|(code, text)| {
        let mut end = text.len().min(ERROR_MESSAGE_BYTES_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        ErrorFrame {
            code,
            message: text[..end].to_string(),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Variant names: exhaustive matches, so a new variant must be named here to compile.
// ---------------------------------------------------------------------------------------

/// Defines `$names`, the list of an enum's variant patterns, and `$name`, which returns the
/// pattern a value matches. The match is exhaustive, so the list is every variant.
macro_rules! variant_names {
    ($name:ident, $names:ident, $ty:ty { $($pat:pat),+ $(,)? }) => {
        const $names: &[&str] = &[$(stringify!($pat)),+];
        fn $name(value: &$ty) -> &'static str {
            match value {
                $($pat => stringify!($pat)),+
            }
        }
    };
}

variant_names!(message_body_variant, MESSAGE_BODY_VARIANTS, MessageBody {
    MessageBody::RequestVote { .. },
    MessageBody::RequestVoteResponse { .. },
    MessageBody::AppendEntries { .. },
    MessageBody::AppendEntriesResponse { .. },
    MessageBody::Heartbeat { .. },
    MessageBody::HeartbeatResponse { .. },
    MessageBody::InstallSnapshot { .. },
    MessageBody::InstallSnapshotResponse { .. },
    MessageBody::TimeoutNow,
    MessageBody::ReadIndexRequest { .. },
    MessageBody::ReadIndexResponse { .. },
});

variant_names!(append_outcome_variant, APPEND_OUTCOME_VARIANTS, AppendOutcome {
    AppendOutcome::Accepted { .. },
    AppendOutcome::Rejected { .. },
});

variant_names!(entry_payload_variant, ENTRY_PAYLOAD_VARIANTS, EntryPayload {
    EntryPayload::Noop,
    EntryPayload::Command { .. },
    EntryPayload::Membership(_),
});

variant_names!(wire_variant, WIRE_VARIANTS, Wire {
    Wire::Raft(_),
    Wire::Forward { .. },
    Wire::JoinRequest { .. },
    Wire::Player(_),
    Wire::Redirect { .. },
});

variant_names!(log_command_variant, LOG_COMMAND_VARIANTS, LogCommand {
    LogCommand::App(_),
    LogCommand::SetAddress { .. },
    LogCommand::Forwarded { .. },
});

variant_names!(session_message_variant, SESSION_MESSAGE_VARIANTS, PlayerMessage {
    PlayerMessage::Inputs { .. },
    PlayerMessage::Leave,
    PlayerMessage::Removed,
});

variant_names!(socket_addr_variant, SOCKET_ADDR_VARIANTS, SocketAddr {
    SocketAddr::V4(_),
    SocketAddr::V6(_),
});

/// The variant names a strategy produced over a fixed, seeded run.
fn variants_produced<T>(
    strategy: impl Strategy<Value = T>,
    variant: fn(&T) -> &'static str,
) -> BTreeSet<&'static str> {
    let mut runner = TestRunner::deterministic();
    (0..COVERAGE_SAMPLES)
        .map(|_| variant(&strategy.new_tree(&mut runner).unwrap().current()))
        .collect()
}

fn all(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

#[test]
fn strategies_cover_every_variant() {
    assert_eq!(
        variants_produced(message_body(), message_body_variant),
        all(MESSAGE_BODY_VARIANTS)
    );
    assert_eq!(
        variants_produced(append_outcome(), append_outcome_variant),
        all(APPEND_OUTCOME_VARIANTS)
    );
    assert_eq!(
        variants_produced(entry_payload(), entry_payload_variant),
        all(ENTRY_PAYLOAD_VARIANTS)
    );
    assert_eq!(variants_produced(wire(), wire_variant), all(WIRE_VARIANTS));
    assert_eq!(
        variants_produced(log_command(), log_command_variant),
        all(LOG_COMMAND_VARIANTS)
    );
    assert_eq!(
        variants_produced(session_message(), session_message_variant),
        all(SESSION_MESSAGE_VARIANTS)
    );
    assert_eq!(
        variants_produced(socket_addr(), socket_addr_variant),
        all(SOCKET_ADDR_VARIANTS)
    );
}

#[test]
fn nested_enums_reach_every_variant_inside_messages() {
    // The nested strategies are reached through `wire()` too, not only on their own.
    let mut runner = TestRunner::deterministic();
    let strategy = wire();
    let mut outcomes = BTreeSet::new();
    let mut payloads = BTreeSet::new();
    for _ in 0..COVERAGE_SAMPLES * 4 {
        if let Wire::Raft(message) = strategy.new_tree(&mut runner).unwrap().current() {
            match &message.body {
                MessageBody::AppendEntriesResponse { outcome, .. } => {
                    outcomes.insert(append_outcome_variant(outcome));
                }
                MessageBody::AppendEntries { entries, .. } => {
                    payloads.extend(entries.iter().map(|e| entry_payload_variant(&e.payload)));
                }
                _ => {}
            }
        }
    }
    assert_eq!(outcomes, all(APPEND_OUTCOME_VARIANTS));
    assert_eq!(payloads, all(ENTRY_PAYLOAD_VARIANTS));
}

// ---------------------------------------------------------------------------------------
// The codec paths
// ---------------------------------------------------------------------------------------

/// The largest frame a default transport accepts.
fn max_frame_bytes() -> usize {
    TransportConfig::default().max_frame_bytes
}

/// Sends `value` the way `Transport::send` frames it and reads it back the way the
/// transport's reader does; checks the frame is consumed whole and re-encodes identically.
fn through_frame<T>(kind: FrameKind, value: &T) -> Result<T, TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let payload = encode_payload(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let bytes = encode_frame(kind as u8, &payload);
    let (frame, used) =
        decode_frame(&bytes, max_frame_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(used, bytes.len());
    prop_assert_eq!(FrameKind::from_u8(frame.header.kind), Some(kind));
    prop_assert_eq!(&frame.payload, &payload);
    let decoded: T =
        decode_payload(&frame.payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(encode_payload(&decoded).unwrap(), payload);
    Ok(decoded)
}

/// Encodes with the runtime codec, decodes, and checks the value and its bytes are unchanged.
fn through_runtime_codec<T>(value: &T) -> Result<T, TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let Some(decoded) = decode::<T>(&bytes) else {
        return Err(TestCaseError::fail(format!("{value:?} does not decode")));
    };
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(encode(&decoded).unwrap(), bytes);
    Ok(decoded)
}

/// Every strict prefix of `bytes` fails to decode as `T` with the runtime codec.
fn runtime_prefixes_refused<T: DeserializeOwned + Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    for cut in 0..bytes.len() {
        let decoded: Option<T> = decode(&bytes[..cut]);
        prop_assert!(
            decoded.is_none(),
            "prefix of {} bytes decoded: {:?}",
            cut,
            decoded
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn raft_messages_round_trip_through_the_transport(message in message()) {
        let wire = Wire::Raft(message.clone());
        prop_assert_eq!(through_frame(FrameKind::Message, &wire)?, Wire::Raft(message));
    }

    #[test]
    fn wire_messages_round_trip_through_the_transport(wire in wire()) {
        through_frame(FrameKind::Message, &wire)?;
    }

    #[test]
    fn log_commands_round_trip_through_the_runtime_codec(command in log_command()) {
        through_runtime_codec(&command)?;
    }

    #[test]
    fn session_messages_round_trip_through_the_runtime_codec(message in session_message()) {
        through_runtime_codec(&message)?;
    }

    #[test]
    fn player_messages_carry_their_life_and_stay_readable_by_protocol_1_0(
        message in session_message(),
        life in int(),
    ) {
        let bytes = encode_player(&message, life).unwrap();
        prop_assert_eq!(decode_player(&bytes), Some((message.clone(), Some(life))));
        // A 1.0 receiver decodes the message and ignores the appended life.
        prop_assert_eq!(decode::<PlayerMessage>(&bytes), Some(message.clone()));
        // From a 1.0 sender the life is unknown.
        let old = encode(&message).unwrap();
        prop_assert_eq!(decode_player(&old), Some((message, None)));
        // A life cut short is malformed, not a life of zero.
        prop_assert_eq!(decode_player(&[&old[..], &[0xfd][..]].concat()), None);
    }

    #[test]
    fn tick_records_round_trip_through_the_runtime_codec(record in tick_record()) {
        through_runtime_codec(&record)?;
    }

    #[test]
    fn control_frames_round_trip_through_the_transport(hello in hello(), error in error_frame()) {
        through_frame(FrameKind::Hello, &hello)?;
        through_frame(FrameKind::Error, &error)?;
    }

    /// A tick record takes the whole path of a committed command: session encodes it, the
    /// driver wraps it in `LogCommand::App`, the leader replicates the entry in an
    /// `AppendEntries` over the transport, the applier unwraps it and the session's machine
    /// decodes it.
    #[test]
    fn tick_records_survive_the_replication_path(
        record in tick_record(),
        tag in option::of(client_tag()),
        term in int(),
        index in int(),
    ) {
        let command = encode(&LogCommand::App(encode(&record).unwrap())).unwrap();
        let entry = Entry { term, index, payload: EntryPayload::Command { tag, data: command } };
        let sent = Wire::Raft(Message {
            from: 1,
            to: 2,
            term,
            body: MessageBody::AppendEntries {
                prev_log_index: index.saturating_sub(1),
                prev_log_term: term,
                entries: vec![entry],
                leader_commit: index,
            },
        });
        let Wire::Raft(Message { body: MessageBody::AppendEntries { entries, .. }, .. }) =
            through_frame(FrameKind::Message, &sent)?
        else {
            return Err(TestCaseError::fail("not an AppendEntries"));
        };
        let [Entry { payload: EntryPayload::Command { tag: got_tag, data }, .. }] = &entries[..]
        else {
            return Err(TestCaseError::fail("not one command entry"));
        };
        prop_assert_eq!(*got_tag, tag);
        let Some(LogCommand::App(app)) = decode::<LogCommand>(data) else {
            return Err(TestCaseError::fail("not an application command"));
        };
        prop_assert_eq!(decode::<TickRecord>(&app), Some(record));
    }

    /// Session messages ride in `Wire::Player` over the transport.
    #[test]
    fn session_messages_survive_the_session_channel(message in session_message()) {
        let sent = Wire::Player(encode(&message).unwrap());
        let Wire::Player(bytes) = through_frame(FrameKind::Message, &sent)? else {
            return Err(TestCaseError::fail("not a session message"));
        };
        prop_assert_eq!(decode::<PlayerMessage>(&bytes), Some(message));
    }

    #[test]
    fn every_strict_prefix_of_a_wire_message_is_refused(wire in wire()) {
        let payload = encode_payload(&wire).unwrap();
        for cut in 0..payload.len() {
            let decoded = decode_payload::<Wire>(&payload[..cut]);
            prop_assert!(
                matches!(decoded, Err(FrameError::Payload(_))),
                "payload prefix of {} bytes: {:?}", cut, decoded
            );
            prop_assert!(decode::<Wire>(&payload[..cut]).is_none());
        }
        let frame = encode_frame(FrameKind::Message as u8, &payload);
        for cut in 0..frame.len() {
            let decoded = decode_frame(&frame[..cut], max_frame_bytes());
            prop_assert!(
                matches!(decoded, Err(FrameError::Truncated { .. })),
                "frame prefix of {} bytes: {:?}", cut, decoded
            );
        }
    }

    #[test]
    fn every_strict_prefix_of_a_runtime_encoding_is_refused(
        command in log_command(),
        message in session_message(),
        record in tick_record(),
    ) {
        runtime_prefixes_refused::<LogCommand>(&encode(&command).unwrap())?;
        runtime_prefixes_refused::<PlayerMessage>(&encode(&message).unwrap())?;
        runtime_prefixes_refused::<TickRecord>(&encode(&record).unwrap())?;
    }

    /// Whatever a peer sends, decoding returns a value or an error; anything accepted
    /// re-encodes to a value that decodes to itself.
    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..=256)) {
        if let Ok(wire) = decode_payload::<Wire>(&bytes) {
            prop_assert_eq!(decode_payload::<Wire>(&encode_payload(&wire).unwrap()).ok(), Some(wire));
        }
        if let Some(command) = decode::<LogCommand>(&bytes) {
            prop_assert_eq!(decode::<LogCommand>(&encode(&command).unwrap()), Some(command));
        }
        if let Some(message) = decode::<PlayerMessage>(&bytes) {
            prop_assert_eq!(decode::<PlayerMessage>(&encode(&message).unwrap()), Some(message));
        }
        if let Some(record) = decode::<TickRecord>(&bytes) {
            prop_assert_eq!(decode::<TickRecord>(&encode(&record).unwrap()), Some(record));
        }
        let _ = decode_payload::<Hello>(&bytes);
        let _ = decode_payload::<ErrorFrame>(&bytes);
    }

    /// Valid encodings with one byte changed reach deep into the decoder, where uniformly
    /// random bytes rarely get past the first tag.
    #[test]
    fn corrupted_wire_messages_never_panic_the_decoder(
        wire in wire(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut payload = encode_payload(&wire).unwrap();
        let at = at.index(payload.len());
        payload[at] = byte;
        if let Ok(decoded) = decode_payload::<Wire>(&payload) {
            let again = decode_payload::<Wire>(&encode_payload(&decoded).unwrap()).ok();
            prop_assert_eq!(again, Some(decoded));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any local address, scoped IPv6 included, reads back as `as_carried` says, on both
    /// codec paths.
    #[test]
    fn addresses_read_back_as_carried(
        addr in prop_oneof![
            any::<SocketAddrV4>().prop_map(SocketAddr::V4),
            any::<SocketAddrV6>().prop_map(SocketAddr::V6),
        ],
        id in int(),
    ) {
        let command = LogCommand::SetAddress { id, addr };
        let expected = LogCommand::SetAddress { id, addr: as_carried(addr) };
        prop_assert_eq!(decode::<LogCommand>(&encode(&command).unwrap()), Some(expected));
        let wire = Wire::JoinRequest { addr };
        prop_assert_eq!(
            decode_payload::<Wire>(&encode_payload(&wire).unwrap()).unwrap(),
            Wire::JoinRequest { addr: as_carried(addr) }
        );
    }
}

#[test]
fn v6_flow_label_and_scope_id_are_not_carried() {
    let local = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4433, 7, 3));
    let command = LogCommand::SetAddress { id: 9, addr: local };
    let decoded: Option<LogCommand> = decode(&encode(&command).unwrap());
    assert_eq!(
        decoded,
        Some(LogCommand::SetAddress {
            id: 9,
            addr: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4433, 0, 0)),
        })
    );
}

/// `Forwarded` was added last, so entries written before it decode as they did:
/// bincode numbers variants by position.
#[test]
fn log_command_variants_keep_their_numbers() {
    assert_eq!(encode(&LogCommand::App(vec![7])).unwrap(), vec![0, 1, 7]);
    let forwarded = encode(&LogCommand::Forwarded {
        proposer: 1,
        command: vec![7],
    })
    .unwrap();
    assert_eq!(forwarded, vec![2, 1, 1, 7]);
}

#[test]
fn a_client_id_is_bound_to_its_sender() {
    use super::bind_client_id;
    assert_eq!(
        bind_client_id(1, 42),
        bind_client_id(1, 42),
        "deterministic"
    );
    assert_ne!(bind_client_id(1, 42), bind_client_id(2, 42), "per sender");
    assert_ne!(
        bind_client_id(1, 42),
        bind_client_id(1, 43),
        "per claimed id"
    );
    assert_ne!(bind_client_id(1, 42), 42, "never the claimed id itself");
}
