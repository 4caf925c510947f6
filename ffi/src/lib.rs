//! The C ABI of Baton (`libbaton.so`, `libbaton.a`, `include/baton.h`).
//!
//! It wraps [`baton_sdk::session::SessionHandle`] one to one: the game pumps the session
//! on its own thread, polls events into caller-owned structs, and answers the host's
//! requests with calls. No callback ever runs on a thread the game does not own; the
//! network runs on a runtime of the library's own (two threads, shared by every session
//! of the process).
//!
//! Every export runs inside one panic boundary ([`error::boundary`]) and returns a
//! `baton_result`; out-parameters are written only on success; the message of the last
//! failure on a thread is `baton_last_error_message`. The C recipe is in the header and
//! in `bindings/c/examples/recipe.c`, which CI compiles and runs.

mod error;
mod registry;
mod types;

pub use types::*;

use baton_sdk::runtime::StorageSettings;
use baton_sdk::session::{Event, LeaveOutcome, SessionConfig, SessionHandle, TickMode};
use baton_sdk::storage::Durability;
use baton_sdk::transport::app_net::{NET_QUEUE_DATAGRAMS_DEFAULT, QUIC_DATAGRAM_BYTES};
use baton_sdk::transport::{AppNet, Identity, Invite, NetAddr, NetConfig};
use error::{boundary, Error};
use registry::Entry;
use std::ffi::c_char;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The ABI this library implements. Pass it to `baton_host` / `baton_join` as the
/// version your code was compiled against; a breaking change to any signature or struct
/// layout bumps it.
pub const BATON_ABI_VERSION: u32 = 1;

/// Longest buffer any call accepts: a larger length is taken for a garbage value (say,
/// a negative `ssize_t` cast to `size_t`) before anything is read.
pub const BATON_BYTES_MAX: usize = 1 << 30;

/// Most events one `baton_poll` fills.
pub const BATON_POLL_EVENTS_MAX: usize = 4096;

/// How often the relaxed durability profile fsyncs.
const RELAXED_FSYNC_INTERVAL: Duration = Duration::from_millis(50);

/// Threads of the library's network runtime: Raft, storage and QUIC for every session of
/// the process. Two keep a 2-core phone responsive to the game.
const RUNTIME_THREADS: usize = 2;

fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            init_logging();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_THREADS)
                .thread_name("baton-net")
                .enable_all()
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|reason| Error::Session(std::io::Error::other(reason.clone()).into()))
}

/// `BATON_LOG` (a `tracing` filter such as `info` or `baton=debug`) turns on logging to
/// stderr; an engine with its own logging leaves it unset.
fn init_logging() {
    if let Ok(filter) = std::env::var("BATON_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

// ---- argument checks -------------------------------------------------------------

/// Borrows `len` bytes at `data`. A length of 0 is an error unless `empty_ok` (then the
/// pointer may be NULL).
///
/// # Safety
/// If `len` is not 0, `data` must point to `len` readable bytes for the lifetime `'a`.
unsafe fn bytes<'a>(
    name: &'static str,
    data: *const u8,
    len: usize,
    empty_ok: bool,
) -> Result<&'a [u8], Error> {
    if len == 0 {
        return if empty_ok {
            Ok(&[])
        } else {
            Err(Error::argument(name, "must not be empty"))
        };
    }
    if data.is_null() {
        return Err(Error::Null(name));
    }
    if len > BATON_BYTES_MAX {
        return Err(Error::argument(
            name,
            format!("length {len} exceeds BATON_BYTES_MAX ({BATON_BYTES_MAX})"),
        ));
    }
    // SAFETY: `data` is non-null and the caller promises `len` readable bytes there
    // (the header's contract for every pointer-and-length pair).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Optional UTF-8 text: NULL with length 0 is `None`.
///
/// # Safety
/// As for [`bytes`].
unsafe fn text<'a>(
    name: &'static str,
    data: *const u8,
    len: usize,
) -> Result<Option<&'a str>, Error> {
    if data.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded from this function's contract.
    let raw = unsafe { bytes(name, data, len, false)? };
    std::str::from_utf8(raw)
        .map(Some)
        .map_err(|err| Error::argument(name, format!("not UTF-8: {err}")))
}

/// The struct behind a pointer the caller passes in.
///
/// # Safety
/// A non-null `pointer` must point to a valid, initialised `T`.
unsafe fn input<'a, T>(name: &'static str, pointer: *const T) -> Result<&'a T, Error> {
    // SAFETY: checked for NULL here; validity is the caller's contract.
    unsafe { pointer.as_ref() }.ok_or(Error::Null(name))
}

fn flag(name: &'static str, value: u32) -> Result<bool, Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::argument(
            name,
            format!("must be 0 or 1, not {other}"),
        )),
    }
}

fn out<T>(name: &'static str, pointer: *mut T) -> Result<*mut T, Error> {
    if pointer.is_null() {
        Err(Error::Null(name))
    } else {
        Ok(pointer)
    }
}

/// Writes an out-parameter checked by [`out`].
///
/// # Safety
/// `pointer` must be valid for a write of one `T`.
unsafe fn write<T>(pointer: *mut T, value: T) {
    // SAFETY: non-null (checked by `out`) and writable (the caller's contract).
    unsafe { pointer.write(value) }
}

fn check_abi(caller: u32) -> Result<(), Error> {
    if caller == BATON_ABI_VERSION {
        Ok(())
    } else {
        Err(Error::Abi {
            library: BATON_ABI_VERSION,
            caller,
        })
    }
}

// ---- configuration ---------------------------------------------------------------

fn default_config() -> baton_config {
    let config = SessionConfig::default();
    let (tick_mode, tick_hz, turn_timeout_ms) = match config.tick_mode {
        TickMode::FixedRate { hz } => (baton_tick_mode::FixedRate, hz, 1000),
        TickMode::TurnBased { turn_timeout } => (
            baton_tick_mode::TurnBased,
            30,
            u32::try_from(turn_timeout.as_millis()).unwrap_or(u32::MAX),
        ),
    };
    let clamp = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    baton_config {
        tick_mode: tick_mode as u32,
        tick_hz,
        turn_timeout_ms,
        lockstep: config.lockstep as u32,
        max_voters: clamp(config.max_voters),
        inputs_in_flight_max: clamp(config.inputs_in_flight_max),
        input_bytes_max: clamp(config.input_bytes_max),
        tick_payload_bytes_max: clamp(config.tick_payload_bytes_max),
        tick_record_bytes_max: clamp(config.tick_record_bytes_max),
        events_queued_max: clamp(config.events_queued_max),
        snapshot_interval_ticks: config.snapshot_interval_ticks,
        durability: baton_durability::Memory as u32,
        reserved: 0,
        bind_addr: std::ptr::null(),
        bind_addr_len: 0,
        advertise_addr: std::ptr::null(),
        advertise_addr_len: 0,
        data_dir: std::ptr::null(),
        data_dir_len: 0,
        identity_path: std::ptr::null(),
        identity_path_len: 0,
        net_addr: std::ptr::null(),
        net_addr_len: 0,
        net_datagram_bytes_max: QUIC_DATAGRAM_BYTES as u32,
        net_queue_datagrams_max: NET_QUEUE_DATAGRAMS_DEFAULT as u32,
    }
}

fn address(name: &'static str, text: &str) -> Result<SocketAddr, Error> {
    text.parse().map_err(|err| {
        Error::argument(
            name,
            format!("{text:?} is not an IP address and port: {err}"),
        )
    })
}

/// The session settings and identity a C config describes, every field checked.
///
/// # Safety
/// The config's pointer-and-length pairs must be valid (see [`bytes`]).
unsafe fn session_config(config: &baton_config) -> Result<(SessionConfig, Identity), Error> {
    // The session checks these too, but names its enum field; a C caller set the
    // field of its own struct, so that is the one named.
    let tick_mode = match config.tick_mode {
        mode if mode == baton_tick_mode::FixedRate as u32 => {
            if !(1..=1000).contains(&config.tick_hz) {
                return Err(Error::argument("tick_hz", "must be 1 to 1000"));
            }
            TickMode::FixedRate { hz: config.tick_hz }
        }
        mode if mode == baton_tick_mode::TurnBased as u32 => {
            if config.turn_timeout_ms == 0 {
                return Err(Error::argument("turn_timeout_ms", "must not be zero"));
            }
            TickMode::TurnBased {
                turn_timeout: Duration::from_millis(config.turn_timeout_ms.into()),
            }
        }
        other => {
            return Err(Error::argument(
                "tick_mode",
                format!("{other} is not a baton_tick_mode"),
            ))
        }
    };
    let mut session = SessionConfig {
        tick_mode,
        lockstep: flag("lockstep", config.lockstep)?,
        max_voters: config.max_voters as usize,
        inputs_in_flight_max: config.inputs_in_flight_max as usize,
        input_bytes_max: config.input_bytes_max as usize,
        tick_payload_bytes_max: config.tick_payload_bytes_max as usize,
        tick_record_bytes_max: config.tick_record_bytes_max as usize,
        events_queued_max: config.events_queued_max as usize,
        snapshot_interval_ticks: config.snapshot_interval_ticks,
        ..SessionConfig::default()
    };
    if config.reserved != 0 {
        return Err(Error::argument("reserved", "must be 0"));
    }
    // SAFETY: the config's text fields are pointer-and-length pairs (this function's
    // contract).
    let (bind, advertise, data_dir, identity_path) = unsafe {
        (
            text("bind_addr", config.bind_addr, config.bind_addr_len)?,
            text(
                "advertise_addr",
                config.advertise_addr,
                config.advertise_addr_len,
            )?,
            text("data_dir", config.data_dir, config.data_dir_len)?,
            text(
                "identity_path",
                config.identity_path,
                config.identity_path_len,
            )?,
        )
    };
    if let Some(bind) = bind {
        session.node.transport.bind = address("bind_addr", bind)?;
    }
    session.node.advertise_addr = advertise
        .map(|text| address("advertise_addr", text))
        .transpose()?;
    let durability = match config.durability {
        d if d == baton_durability::Memory as u32 => Durability::Memory,
        d if d == baton_durability::Durable as u32 => Durability::Durable,
        d if d == baton_durability::Relaxed as u32 => Durability::Relaxed {
            fsync_interval: RELAXED_FSYNC_INTERVAL,
        },
        other => {
            return Err(Error::argument(
                "durability",
                format!("{other} is not a baton_durability"),
            ))
        }
    };
    session.node.storage = StorageSettings {
        data_dir: data_dir.map(PathBuf::from),
        durability,
    };
    session.validate()?;
    session
        .node
        .validate()
        .map_err(|err| Error::Session(err.into()))?;
    // SAFETY: a pointer-and-length pair of the config (this function's contract).
    let net_addr = unsafe { bytes("net_addr", config.net_addr, config.net_addr_len, true)? };
    if !net_addr.is_empty() {
        let net = AppNet::new(NetConfig {
            local: NetAddr::new(net_addr)?,
            datagram_bytes_max: config.net_datagram_bytes_max as usize,
            queue_datagrams_max: config.net_queue_datagrams_max as usize,
        })?;
        session.node.transport.app_net = Some(net);
    }
    let identity = match identity_path {
        Some(path) => Identity::load_or_generate(path.as_ref())?,
        None => Identity::generate()?,
    };
    Ok((session, identity))
}

// ---- events ----------------------------------------------------------------------

fn c_inputs(event: &Event) -> Vec<baton_input> {
    let inputs = match event {
        Event::ApplyTick(record) => &record.inputs,
        Event::RunTick { inputs, .. } => inputs,
        _ => return Vec::new(),
    };
    inputs
        .iter()
        .map(|input| baton_input {
            player: input.player,
            incarnation: input.incarnation,
            sequence: input.sequence,
            data: input.data.as_ptr(),
            data_len: input.data.len(),
        })
        .collect()
}

fn c_event(event: &Event, inputs: &[baton_input]) -> baton_event {
    let mut out = baton_event {
        kind: baton_event_kind::Started,
        leave_outcome: baton_leave_outcome::None,
        tick: 0,
        sequence: 0,
        player: 0,
        player_set: 0,
        fitness: 0,
        data: std::ptr::null(),
        data_len: 0,
        inputs: if inputs.is_empty() {
            std::ptr::null()
        } else {
            inputs.as_ptr()
        },
        inputs_len: inputs.len(),
    };
    let mut player = |id: u64| {
        out.player = id;
        out.player_set = 1;
    };
    let (kind, tick, data): (baton_event_kind, u64, &[u8]) = match event {
        Event::Started { id } => {
            player(*id);
            (baton_event_kind::Started, 0, &[])
        }
        Event::ApplyTick(record) => (baton_event_kind::ApplyTick, record.tick, &record.payload),
        Event::RunTick { tick, .. } => (baton_event_kind::RunTick, *tick, &[]),
        Event::MakeSnapshot { tick } => (baton_event_kind::MakeSnapshot, *tick, &[]),
        Event::Restore { tick, snapshot } => (baton_event_kind::Restore, *tick, snapshot),
        Event::InputCommitted { sequence, tick } => {
            out.sequence = *sequence;
            (baton_event_kind::InputCommitted, *tick, &[])
        }
        Event::BecameHost { next_tick } => (baton_event_kind::BecameHost, *next_tick, &[]),
        Event::LostHost => (baton_event_kind::LostHost, 0, &[]),
        Event::HostChanged { host } => {
            if let Some(host) = host {
                player(*host);
            }
            (baton_event_kind::HostChanged, 0, &[])
        }
        Event::PlayerJoined(id) => {
            player(*id);
            (baton_event_kind::PlayerJoined, 0, &[])
        }
        Event::PlayerLeft(id) => {
            player(*id);
            (baton_event_kind::PlayerLeft, 0, &[])
        }
        Event::Promoted => (baton_event_kind::Promoted, 0, &[]),
        Event::Demoted => (baton_event_kind::Demoted, 0, &[]),
        Event::FitnessChanged(fitness) => {
            out.fitness = fitness.0.into();
            (baton_event_kind::FitnessChanged, 0, &[])
        }
        Event::TickOverrun { tick } => (baton_event_kind::TickOverrun, *tick, &[]),
        Event::Warning(message) => (baton_event_kind::Warning, 0, message.as_bytes()),
        Event::Left(outcome) => {
            out.leave_outcome = match outcome {
                LeaveOutcome::HandedOver { to } => {
                    player(*to);
                    baton_leave_outcome::HandedOver
                }
                LeaveOutcome::Removed => baton_leave_outcome::Removed,
                LeaveOutcome::RemovedWithoutSuccessor => {
                    baton_leave_outcome::RemovedWithoutSuccessor
                }
                LeaveOutcome::SessionEnded => baton_leave_outcome::SessionEnded,
                LeaveOutcome::TimedOut => baton_leave_outcome::TimedOut,
            };
            (baton_event_kind::Left, 0, &[])
        }
        Event::Fatal(reason) => (baton_event_kind::Fatal, 0, reason.as_bytes()),
    };
    out.kind = kind;
    out.tick = tick;
    if !data.is_empty() {
        out.data = data.as_ptr();
        out.data_len = data.len();
    }
    out
}

// ---- exports ---------------------------------------------------------------------

/// The ABI version of the library loaded at run time (compare with the
/// `BATON_ABI_VERSION` you compiled against). Any thread.
#[no_mangle]
pub extern "C" fn baton_abi_version() -> u32 {
    BATON_ABI_VERSION
}

/// The name of a result code, such as "BATON_RESULT_WOULD_BLOCK" (a static string,
/// NUL-terminated, never freed; "BATON_RESULT_UNKNOWN" for a number no version used).
/// Any thread.
#[no_mangle]
pub extern "C" fn baton_result_name(result: u32) -> *const c_char {
    let name: &'static [u8] = match result {
        0 => b"BATON_RESULT_OK\0",
        1 => b"BATON_RESULT_WOULD_BLOCK\0",
        2 => b"BATON_RESULT_NULL_POINTER\0",
        3 => b"BATON_RESULT_INVALID_HANDLE\0",
        4 => b"BATON_RESULT_INVALID_ARGUMENT\0",
        5 => b"BATON_RESULT_TOO_LARGE\0",
        6 => b"BATON_RESULT_NO_SUCH_REQUEST\0",
        7 => b"BATON_RESULT_LEAVING\0",
        8 => b"BATON_RESULT_STOPPED\0",
        9 => b"BATON_RESULT_ABI_MISMATCH\0",
        10 => b"BATON_RESULT_INVALID_CONFIG\0",
        11 => b"BATON_RESULT_INVALID_INVITE\0",
        12 => b"BATON_RESULT_BUFFER_TOO_SMALL\0",
        13 => b"BATON_RESULT_NOT_READY\0",
        14 => b"BATON_RESULT_PANIC\0",
        15 => b"BATON_RESULT_IO\0",
        16 => b"BATON_RESULT_NO_APP_NET\0",
        _ => b"BATON_RESULT_UNKNOWN\0",
    };
    name.as_ptr().cast()
}

/// Fills `*config` with the defaults (a 30 Hz game of up to a dozen players, in memory,
/// bound to 127.0.0.1 on a free port). Any thread.
///
/// # Safety
/// `config` must be NULL or point to a writable `baton_config`.
#[no_mangle]
pub unsafe extern "C" fn baton_config_default(config: *mut baton_config) -> baton_result {
    boundary(|| {
        let config = out("config", config)?;
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(config, default_config()) };
        Ok(())
    })
}

/// Founds a session hosted by this player. Returns at once with the handle in
/// `*session`; `BATON_EVENT_KIND_STARTED` or `BATON_EVENT_KIND_FATAL` follows in a poll.
/// `abi_version` is the `BATON_ABI_VERSION` the caller was compiled against.
///
/// # Safety
/// `config` must be NULL or point to a valid `baton_config` whose text pointers are
/// valid for their lengths; `session` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn baton_host(
    abi_version: u32,
    config: *const baton_config,
    session: *mut baton_session,
) -> baton_result {
    boundary(|| {
        check_abi(abi_version)?;
        // SAFETY: this function's contract.
        let config = unsafe { input("config", config)? };
        let session = out("session", session)?;
        // SAFETY: the config's pointers are valid by this function's contract.
        let (config, identity) = unsafe { session_config(config)? };
        let net = config.node.transport.app_net.clone();
        let handle = SessionHandle::host(config, identity, runtime()?.handle())?;
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(session, registry::insert(Entry::new(handle, net))) };
        Ok(())
    })
}

/// Joins the session an invite code names (`baton1-...`, UTF-8, `invite_len` bytes).
/// Returns at once with the handle in `*session`; a refused invite arrives as
/// `BATON_EVENT_KIND_FATAL`.
///
/// # Safety
/// As for `baton_host`; `invite` must point to `invite_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn baton_join(
    abi_version: u32,
    config: *const baton_config,
    invite: *const u8,
    invite_len: usize,
    session: *mut baton_session,
) -> baton_result {
    boundary(|| {
        check_abi(abi_version)?;
        // SAFETY: this function's contract.
        let config = unsafe { input("config", config)? };
        // SAFETY: this function's contract.
        let code = unsafe { text("invite", invite, invite_len)? }.ok_or(Error::Null("invite"))?;
        let invite: Invite = code.trim().parse()?;
        let session = out("session", session)?;
        // SAFETY: the config's pointers are valid by this function's contract.
        let (config, identity) = unsafe { session_config(config)? };
        let net = config.node.transport.app_net.clone();
        let handle = SessionHandle::join(&invite, config, identity, runtime()?.handle())?;
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(session, registry::insert(Entry::new(handle, net))) };
        Ok(())
    })
}

/// Moves up to `capacity` waiting events into `events[0..*count]`. Never blocks; `*count`
/// may be 0. The bytes the events point to stay valid until the next `baton_poll` on
/// this session or its `baton_session_free`. Poll one session from one thread.
///
/// # Safety
/// `events` must point to `capacity` writable `baton_event`s; `count` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_poll(
    session: baton_session,
    events: *mut baton_event,
    capacity: usize,
    count: *mut usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let events = out("events", events)?;
        let count = out("count", count)?;
        if capacity == 0 || capacity > BATON_POLL_EVENTS_MAX {
            return Err(Error::argument(
                "capacity",
                format!("must be 1 to BATON_POLL_EVENTS_MAX ({BATON_POLL_EVENTS_MAX})"),
            ));
        }
        let mut polled = entry.polled();
        polled.events.clear();
        polled.inputs.clear();
        while polled.events.len() < capacity {
            match entry.session.poll_event() {
                Some(event) => polled.events.push(event),
                None => break,
            }
        }
        let inputs: Vec<Vec<baton_input>> = polled.events.iter().map(c_inputs).collect();
        polled.inputs = inputs;
        for (index, (event, inputs)) in polled.events.iter().zip(&polled.inputs).enumerate() {
            // SAFETY: `index < capacity`, and `events` holds `capacity` writable structs
            // by this function's contract.
            unsafe { write(events.add(index), c_event(event, inputs)) };
        }
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(count, polled.events.len()) };
        Ok(())
    })
}

/// Blocks up to `timeout_ms` until an event is waiting, without taking it; `*ready` is 1
/// if one is. For threads with nothing else to do (tools, tests), never a game's frame.
///
/// # Safety
/// `ready` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_wait(
    session: baton_session,
    timeout_ms: u32,
    ready: *mut u32,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let ready = out("ready", ready)?;
        let found = entry
            .session
            .wait_queued(Duration::from_millis(timeout_ms.into()));
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(ready, found as u32) };
        Ok(())
    })
}

/// Sends an input (the bytes are copied) toward the host; `*sequence` is its number,
/// from 1. `BATON_RESULT_WOULD_BLOCK` while the window of inputs in flight is full.
///
/// # Safety
/// `data` must point to `len` readable bytes; `sequence` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_submit_input(
    session: baton_session,
    data: *const u8,
    len: usize,
    sequence: *mut u64,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        // SAFETY: this function's contract.
        let data = unsafe { bytes("data", data, len, false)? };
        let sequence = out("sequence", sequence)?;
        let number = entry.session.submit_input(data)?;
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(sequence, number) };
        Ok(())
    })
}

/// Answers `BATON_EVENT_KIND_RUN_TICK` for `tick` with the payload (copied; may be empty,
/// with `payload` NULL).
///
/// # Safety
/// `payload` must point to `len` readable bytes when `len` is not 0.
#[no_mangle]
pub unsafe extern "C" fn baton_commit_tick(
    session: baton_session,
    tick: u64,
    payload: *const u8,
    len: usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        // SAFETY: this function's contract.
        let payload = unsafe { bytes("payload", payload, len, true)? };
        entry.session.commit_tick(tick, payload.to_vec())?;
        Ok(())
    })
}

/// Answers `BATON_EVENT_KIND_MAKE_SNAPSHOT` for `tick` with the game state's bytes (copied;
/// may be empty).
///
/// # Safety
/// `snapshot` must point to `len` readable bytes when `len` is not 0.
#[no_mangle]
pub unsafe extern "C" fn baton_answer_snapshot(
    session: baton_session,
    tick: u64,
    snapshot: *const u8,
    len: usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        // SAFETY: this function's contract.
        let snapshot = unsafe { bytes("snapshot", snapshot, len, true)? };
        entry.session.answer_snapshot(tick, snapshot.to_vec())?;
        Ok(())
    })
}

/// Sets the game's own part of this player's fitness, in [0, 1] (battery, device class,
/// 0 when the app is in the background). A host whose score drops hands over.
#[no_mangle]
pub extern "C" fn baton_set_game_score(session: baton_session, score: f64) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        if !(0.0..=1.0).contains(&score) {
            return Err(Error::argument(
                "score",
                format!("{score} is not in [0, 1]"),
            ));
        }
        entry.session.set_game_score(score);
        Ok(())
    })
}

/// Tells the session that the device's network changed: call it from the OS's or the
/// engine's connectivity callback (Wi-Fi to mobile data, a cable plugged in, a VPN up). A
/// session that plays over the Internet registers with the rendezvous service at once, so
/// the other players reach it again in a round trip instead of after its registration
/// interval (5 s by default). Harmless, and `BATON_RESULT_OK`, on a LAN session, over the
/// application's network, or before `BATON_EVENT_KIND_STARTED`. Callable from any thread.
#[no_mangle]
pub extern "C" fn baton_network_changed(session: baton_session) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        entry.session.network_changed();
        Ok(())
    })
}

/// Starts a graceful leave: a host hands over to the fittest caught-up voter first.
/// `BATON_EVENT_KIND_LEFT` says how it ended; free the session after it.
#[no_mangle]
pub extern "C" fn baton_leave(session: baton_session) -> baton_result {
    boundary(|| {
        registry::get(session)?.session.leave()?;
        Ok(())
    })
}

/// Stops this player at once, without handing over, as a crash would (the others elect
/// a new host). The handle stays valid until freed; polls end with `BATON_EVENT_KIND_FATAL`.
#[no_mangle]
pub extern "C" fn baton_stop(session: baton_session) -> baton_result {
    boundary(|| {
        registry::get(session)?.session.stop_soon();
        Ok(())
    })
}

/// What this player knows of its session right now. Never blocks on the network.
///
/// # Safety
/// `status` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_status(
    session: baton_session,
    status: *mut baton_session_status,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let status = out("status", status)?;
        let view = entry.session.view();
        let wide = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        let filled = baton_session_status {
            id: view.id,
            host: view.host.unwrap_or(0),
            host_set: view.host.is_some() as u32,
            hosting: view.hosting as u32,
            voter: view.voter as u32,
            voters: wide(view.voters),
            learners: wide(view.learners),
            fitness: view.fitness.0.into(),
            last_tick: view.last_tick,
            inputs_pending: view.inputs_pending as u64,
            leaving: view.leaving as u32,
            stopped: view.stopped as u32,
        };
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe { write(status, filled) };
        Ok(())
    })
}

/// Copies `text` to a caller's buffer with the size-query convention: `buffer` NULL and
/// `capacity` 0 ask for the size only.
///
/// # Safety
/// `buffer` must be NULL or point to `capacity` writable bytes; `len` must be writable.
unsafe fn copy_out(
    text: &[u8],
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> Result<(), Error> {
    let len = out("len", len)?;
    if buffer.is_null() {
        if capacity != 0 {
            return Err(Error::Null("buffer"));
        }
    } else if capacity < text.len() {
        return Err(Error::BufferTooSmall {
            capacity,
            needed: text.len(),
        });
    } else {
        // SAFETY: `buffer` holds `capacity >= text.len()` writable bytes (the caller's
        // contract), and a caller's buffer cannot overlap our own string.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buffer, text.len()) };
    }
    // SAFETY: checked non-null; writable by this function's contract.
    unsafe { write(len, text.len()) };
    Ok(())
}

/// Writes the session's invite code (ASCII, not NUL-terminated) to `buffer` and its
/// length to `*len`. With `buffer` NULL and `capacity` 0, writes only the length.
/// `BATON_RESULT_NOT_READY` before `BATON_EVENT_KIND_STARTED`.
///
/// # Safety
/// `buffer` must be NULL or point to `capacity` writable bytes; `len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_invite(
    session: baton_session,
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let invite = entry.session.invite().ok_or(Error::NotReady)?.to_string();
        // SAFETY: this function's contract.
        unsafe { copy_out(invite.as_bytes(), buffer, capacity, len) }
    })
}

/// Stops the session (as `baton_stop`, unless it has stopped already) and frees its
/// handle and the storage of its last poll. Safe from any thread (a finalizer's too); a
/// second free of the same handle is `BATON_RESULT_INVALID_HANDLE`, never a crash.
#[no_mangle]
pub extern "C" fn baton_session_free(session: baton_session) -> baton_result {
    boundary(|| {
        let entry = registry::remove(session)?;
        if !entry.session.is_stopped() {
            entry.session.stop_soon();
        }
        Ok(())
    })
}

/// Writes the message of the last failed call on this thread (UTF-8, not
/// NUL-terminated) to `buffer` and its length to `*len`, with the size-query
/// convention of `baton_invite`. It does not change the message itself.
///
/// # Safety
/// `buffer` must be NULL or point to `capacity` writable bytes; `len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_last_error_message(
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> baton_result {
    let message = error::last_message();
    let result = boundary(|| {
        // SAFETY: this function's contract.
        unsafe { copy_out(message.as_bytes(), buffer, capacity, len) }
    });
    // Reading the message must not replace it, even when the read itself fails.
    error::remember(message);
    result
}

// ---- the application's own network ------------------------------------------------

/// Longest player address on the application's own network, in bytes.
pub const BATON_NET_ADDR_BYTES_MAX: usize = 16;
const _: () =
    assert!(BATON_NET_ADDR_BYTES_MAX == baton_sdk::transport::app_net::NET_ADDR_BYTES_MAX);

fn app_net(entry: &Entry) -> Result<&AppNet, Error> {
    entry.net.as_ref().ok_or(Error::NoAppNet)
}

/// A player address the caller passes in.
///
/// # Safety
/// `peer` must point to `peer_len` readable bytes.
unsafe fn peer_addr(peer: *const u8, peer_len: usize) -> Result<NetAddr, Error> {
    // SAFETY: forwarded from this function's contract.
    let raw = unsafe { bytes("peer", peer, peer_len, false)? };
    Ok(NetAddr::new(raw)?)
}

/// Takes the next datagram the session wants sent over the application's network: its
/// destination player into `peer` (`*peer_len` bytes; `peer_capacity` must be at least
/// `BATON_NET_ADDR_BYTES_MAX`) and its bytes into `data` (`*len` bytes; `capacity`
/// should be the config's `net_datagram_bytes_max`). `*len` is 0 when none waits. A
/// datagram that does not fit stays queued (`BATON_RESULT_BUFFER_TOO_SMALL`). Send it
/// unreliably and unordered (QUIC repairs loss and order).
///
/// # Safety
/// `peer` and `data` must point to `peer_capacity` and `capacity` writable bytes;
/// `peer_len` and `len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn baton_net_take(
    session: baton_session,
    peer: *mut u8,
    peer_capacity: usize,
    peer_len: *mut usize,
    data: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let net = app_net(&entry)?;
        let peer = out("peer", peer)?;
        let data = out("data", data)?;
        let peer_len = out("peer_len", peer_len)?;
        let len = out("len", len)?;
        if peer_capacity < BATON_NET_ADDR_BYTES_MAX {
            return Err(Error::argument(
                "peer_capacity",
                format!("must be at least BATON_NET_ADDR_BYTES_MAX ({BATON_NET_ADDR_BYTES_MAX})"),
            ));
        }
        if capacity == 0 || capacity > BATON_BYTES_MAX {
            return Err(Error::argument("capacity", "must be 1 to BATON_BYTES_MAX"));
        }
        // SAFETY: `data` holds `capacity` writable bytes (this function's contract).
        let buffer = unsafe { std::slice::from_raw_parts_mut(data, capacity) };
        let (addr_len, taken) = match net.take_outgoing_into(buffer)? {
            Some((addr, taken)) => {
                let addr = addr.as_bytes();
                // SAFETY: `peer` holds at least BATON_NET_ADDR_BYTES_MAX >= addr.len()
                // writable bytes, checked above; the two buffers are the caller's own.
                unsafe { std::ptr::copy_nonoverlapping(addr.as_ptr(), peer, addr.len()) };
                (addr.len(), taken)
            }
            None => (0, 0),
        };
        // SAFETY: checked non-null; writable by this function's contract.
        unsafe {
            write(peer_len, addr_len);
            write(len, taken);
        }
        Ok(())
    })
}

/// Hands the session a datagram the application's network delivered from player
/// `peer`. `BATON_RESULT_WOULD_BLOCK` while the incoming queue is full (push it again
/// later, or drop it: QUIC repairs loss); `TOO_LARGE` above `net_datagram_bytes_max`;
/// `INVALID_ARGUMENT` for bytes that are not Baton's framing (counted and dropped).
/// Whatever is accepted still has to pass QUIC's authentication before anything reads it.
///
/// # Safety
/// `peer` and `data` must point to `peer_len` and `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn baton_net_push(
    session: baton_session,
    peer: *const u8,
    peer_len: usize,
    data: *const u8,
    len: usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let net = app_net(&entry)?;
        // SAFETY: this function's contract.
        let (from, datagram) =
            unsafe { (peer_addr(peer, peer_len)?, bytes("data", data, len, false)?) };
        net.push_incoming(&from, datagram)?;
        Ok(())
    })
}

/// Tells the session that the application's network cannot reach player `peer` (a
/// closed P2P connection, a player who left the lobby): datagrams for it are dropped
/// until it is heard from again, so a dead peer never fills the queue the others share.
///
/// # Safety
/// `peer` must point to `peer_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn baton_net_unreachable(
    session: baton_session,
    peer: *const u8,
    peer_len: usize,
) -> baton_result {
    boundary(|| {
        let entry = registry::get(session)?;
        let net = app_net(&entry)?;
        // SAFETY: this function's contract.
        let peer = unsafe { peer_addr(peer, peer_len)? };
        net.peer_unreachable(&peer);
        Ok(())
    })
}
