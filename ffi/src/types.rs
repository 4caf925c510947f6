//! The structs and enums the C API exchanges. Everything here is `#[repr(C)]` (or
//! `#[repr(u32)]`) and blittable: integers and pointers only, no `bool`, so C#, Python's
//! ctypes and LuaJIT's FFI read them without marshalling.
//!
//! Enums the caller hands *in* travel as `uint32_t` and are checked: an unknown value is
//! an error, never undefined behaviour. Enums handed *out* are the enum types.

#![allow(non_camel_case_types)]

/// A session, as an opaque number: a slot index and that slot's generation. A handle
/// that was freed, or never issued, is refused with `BATON_RESULT_INVALID_HANDLE`, even
/// after its slot holds another session. `0` is never a valid handle.
pub type baton_session = u64;

/// What every function returns. The numbers are fixed: new codes are only ever added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum baton_result {
    /// Success; out-parameters were written.
    Ok = 0,
    /// As many inputs as `inputs_in_flight_max` await commitment: try again after a
    /// `BATON_EVENT_KIND_INPUT_COMMITTED`. Nothing was queued.
    WouldBlock = 1,
    /// A pointer argument was NULL where one is required.
    NullPointer = 2,
    /// The session handle was never issued, was freed, or is stale.
    InvalidHandle = 3,
    /// An argument is out of range: a zero or oversized length or capacity, an unknown
    /// enum value, text that is not UTF-8, a score outside [0, 1].
    InvalidArgument = 4,
    /// An input or a tick payload exceeds the session's limit; nothing was taken (a tick
    /// request stays open for a smaller answer).
    TooLarge = 5,
    /// No request for this tick is open: answered already, or hosting moved on.
    NoSuchRequest = 6,
    /// A leave is already under way.
    Leaving = 7,
    /// The session has stopped; it produces nothing more.
    Stopped = 8,
    /// The caller was built against another `BATON_ABI_VERSION` than the library's.
    AbiMismatch = 9,
    /// A setting in `baton_config` cannot work; the message names it.
    InvalidConfig = 10,
    /// The invite code is not a valid Baton invite.
    InvalidInvite = 11,
    /// The caller's buffer is too small; nothing was written. Ask for the size first.
    BufferTooSmall = 12,
    /// The session has not started yet (wait for `BATON_EVENT_KIND_STARTED`).
    NotReady = 13,
    /// A bug inside the library panicked; it was caught at the boundary. The session it
    /// happened in may have stopped.
    Panic = 14,
    /// The operating system refused something (a file, a thread).
    Io = 15,
    /// A `baton_net_*` call on a session that does not run over the application's own
    /// network (its config had no `net_addr`).
    NoAppNet = 16,
}

/// What a polled event says. Requests (`RUN_TICK`, `MAKE_SNAPSHOT`) are answered with
/// a call; everything else is news.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum baton_event_kind {
    /// The session's node runs; `player` is this player's id. Always the first event.
    Started = 1,
    /// Apply committed tick `tick`: its `inputs`, and the host's payload in `data`.
    /// Ticks come once each, in order.
    ApplyTick = 2,
    /// Host only: compute tick `tick` from `inputs`, against the state of the ticks
    /// applied so far, and answer with `baton_commit_tick`. Never in lockstep.
    RunTick = 3,
    /// Make a snapshot of the game state as of tick `tick` and answer with
    /// `baton_answer_snapshot` (later is fine; the state must be that of `tick`).
    MakeSnapshot = 4,
    /// Replace the whole game state with the snapshot in `data`, made after tick `tick`.
    Restore = 5,
    /// This player's input `sequence` was applied in tick `tick`.
    InputCommitted = 6,
    /// This player now hosts; its first tick is `tick`.
    BecameHost = 7,
    /// This player no longer hosts.
    LostHost = 8,
    /// The host changed: `player` when `player_set` is 1; none (an election runs) when 0.
    HostChanged = 9,
    /// Player `player` joined (as a learner).
    PlayerJoined = 10,
    /// Player `player` left the session.
    PlayerLeft = 11,
    /// This player became a voter.
    Promoted = 12,
    /// This player became a learner.
    Demoted = 13,
    /// This player's fitness changed noticeably: `fitness`, in thousandths.
    FitnessChanged = 14,
    /// The host could not keep the tick rate: tick `tick` was due early.
    TickOverrun = 15,
    /// Something the game may want to show, in `data` (UTF-8); the session goes on.
    Warning = 16,
    /// The leave finished (`leave_outcome`); the session has stopped.
    Left = 17,
    /// The session stopped for the reason in `data` (UTF-8), and produces nothing more.
    /// The game's state is that of the last tick it applied, which was committed.
    Fatal = 18,
}

/// How a graceful leave ended (in a `BATON_EVENT_KIND_LEFT`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum baton_leave_outcome {
    /// Not a `LEFT` event.
    None = 0,
    /// This player hosted and handed over to `player` first; then it was removed.
    HandedOver = 1,
    /// This player was removed (it did not host).
    Removed = 2,
    /// This player hosted and no voter was caught up: it removed itself and the others
    /// elect a host among them.
    RemovedWithoutSuccessor = 3,
    /// This player was the only voter: the session ended.
    SessionEnded = 4,
    /// The leave did not finish in time; the player stopped as if it had crashed.
    TimedOut = 5,
}

/// How the host paces ticks (`baton_config.tick_mode`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum baton_tick_mode {
    /// A tick every `1 / tick_hz` seconds.
    FixedRate = 0,
    /// A tick once every member has an input waiting, or after `turn_timeout_ms`.
    TurnBased = 1,
}

/// Where a session keeps its log (`baton_config.durability`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum baton_durability {
    /// In memory: the state lives as long as the process. Needs no `data_dir`.
    Memory = 0,
    /// Every write is fsynced before it is acknowledged. Needs `data_dir`.
    Durable = 1,
    /// Writes reach the OS at once and are fsynced every 50 ms. Needs `data_dir`.
    Relaxed = 2,
}

/// One player's input, inside a polled event.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct baton_input {
    /// The player who sent it (authenticated by the transport).
    pub player: u64,
    /// The sending session's incarnation (grows each time a player starts again).
    pub incarnation: u64,
    /// The player's sequence number for it, from 1 within the incarnation.
    pub sequence: u64,
    /// The game's bytes; valid until the next `baton_poll` on this session.
    pub data: *const u8,
    /// Their length.
    pub data_len: usize,
}

/// One polled event. Which fields mean something depends on `kind` (see
/// `baton_event_kind`); the others are zero. Pointers stay valid until the next
/// `baton_poll` (or `baton_session_free`) on the same session: copy what you keep.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct baton_event {
    /// What happened.
    pub kind: baton_event_kind,
    /// For `LEFT`: how the leave ended.
    pub leave_outcome: baton_leave_outcome,
    /// The tick the event is about.
    pub tick: u64,
    /// For `INPUT_COMMITTED`: the input's sequence number.
    pub sequence: u64,
    /// The player the event is about (see `player_set`).
    pub player: u64,
    /// 1 when `player` names a player, 0 when not.
    pub player_set: u32,
    /// For `FITNESS_CHANGED`: the new fitness, 0 to 1000.
    pub fitness: u32,
    /// Bytes: a tick's payload, a snapshot, or a UTF-8 message (not NUL-terminated).
    pub data: *const u8,
    /// Their length.
    pub data_len: usize,
    /// For `APPLY_TICK` and `RUN_TICK`: the inputs, each player's in sequence order.
    pub inputs: *const baton_input,
    /// How many.
    pub inputs_len: usize,
}

/// Session settings. Fill it with `baton_config_default` first, then change fields:
/// new fields are only ever added at the end, together with a new `BATON_ABI_VERSION`.
/// Text fields are UTF-8 with an explicit length; a NULL pointer with length 0 means
/// "the default". The pointers need only live for the call that takes the config.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct baton_config {
    /// A `baton_tick_mode`.
    pub tick_mode: u32,
    /// Ticks per second for `BATON_TICK_MODE_FIXED_RATE`, 1 to 1000.
    pub tick_hz: u32,
    /// Longest a turn waits for slow players, for `BATON_TICK_MODE_TURN_BASED`.
    pub turn_timeout_ms: u32,
    /// 1: pure lockstep, the record is the inputs and `RUN_TICK` is never asked; 0: the
    /// host's game answers each tick with a payload.
    pub lockstep: u32,
    /// Most voters the session keeps; every other player is a warm learner.
    pub max_voters: u32,
    /// Inputs a player may have awaiting commitment before `baton_submit_input` says
    /// `BATON_RESULT_WOULD_BLOCK`.
    pub inputs_in_flight_max: u32,
    /// Largest input, in bytes.
    pub input_bytes_max: u32,
    /// Largest payload a `RUN_TICK` may be answered with, in bytes.
    pub tick_payload_bytes_max: u32,
    /// Largest encoded tick record (inputs, payload and framing), in bytes.
    pub tick_record_bytes_max: u32,
    /// Events the game may leave unpolled; at the bound the session stops with `FATAL`.
    pub events_queued_max: u32,
    /// The game is asked for a snapshot every this many ticks.
    pub snapshot_interval_ticks: u64,
    /// A `baton_durability`.
    pub durability: u32,
    /// Reserved; must be 0.
    pub reserved: u32,
    /// The UDP address to bind, such as "0.0.0.0:7777"; default "127.0.0.1:0".
    pub bind_addr: *const u8,
    /// Its length.
    pub bind_addr_len: usize,
    /// The address the others dial this player at, when it differs from the bound one
    /// (a port forward); default: the bound address.
    pub advertise_addr: *const u8,
    /// Its length.
    pub advertise_addr_len: usize,
    /// Directory for the log when `durability` is not memory.
    pub data_dir: *const u8,
    /// Its length.
    pub data_dir_len: usize,
    /// A file holding this player's key (created when missing), so a restarted player is
    /// the same player; default: a fresh identity each time.
    pub identity_path: *const u8,
    /// Its length.
    pub identity_path_len: usize,
    /// This player's address on the application's own network (1 to
    /// `BATON_NET_ADDR_BYTES_MAX` opaque bytes: a Steam ID, an EOS product user id). When
    /// set, the session sends no UDP itself: its datagrams go through `baton_net_take` and
    /// `baton_net_push` (see docs/own-network.md). Default: none, QUIC over UDP.
    pub net_addr: *const u8,
    /// Its length.
    pub net_addr_len: usize,
    /// The largest datagram the application's network carries (256 to 65535 bytes; below
    /// 1200 each QUIC datagram travels in fragments). Default 1200.
    pub net_datagram_bytes_max: u32,
    /// Datagrams each of the network queues (outgoing, incoming) holds. Default 1024.
    pub net_queue_datagrams_max: u32,
}

/// What one player knows of its session right now (`baton_session_status`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct baton_session_status {
    /// This player's id.
    pub id: u64,
    /// The host's id, when `host_set` is 1.
    pub host: u64,
    /// 1 when a host is known, 0 while an election runs.
    pub host_set: u32,
    /// 1 when this player hosts and produces ticks.
    pub hosting: u32,
    /// 1 when this player is a voter, 0 when a learner.
    pub voter: u32,
    /// Voters in the session.
    pub voters: u32,
    /// Learners in the session.
    pub learners: u32,
    /// This player's fitness, 0 to 1000.
    pub fitness: u32,
    /// The last tick this player has seen committed (perhaps not yet polled).
    pub last_tick: u64,
    /// This player's inputs awaiting commitment.
    pub inputs_pending: u64,
    /// 1 while a graceful leave is under way.
    pub leaving: u32,
    /// 1 once the session has stopped.
    pub stopped: u32,
}
