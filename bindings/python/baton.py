"""Baton from Python, over libbaton's C ABI with ctypes.

The shape is the C API's: a game pumps each session on its own thread with
:meth:`Session.poll`, applies ticks, answers the host's requests, and submits inputs.
Events are copied out of the library's buffers, so they stay valid as long as you keep
them. Every failure raises :class:`BatonError` with the library's code and message.

    import baton
    host = baton.Session.host()
    for event in host.poll():
        if event.kind == baton.EventKind.MAKE_SNAPSHOT:
            host.answer_snapshot(event.tick, b"")

The library is found through ``BATON_LIB`` (a path to libbaton.so), else next to this
file, else in the repository's ``target/debug`` or ``target/release``.
"""

from __future__ import annotations

import ctypes
import enum
import os
import pathlib
from dataclasses import dataclass, field
from typing import List, Optional

ABI_VERSION = 1
"""The ``BATON_ABI_VERSION`` this module was written against."""


class Result(enum.IntEnum):
    OK = 0
    WOULD_BLOCK = 1
    NULL_POINTER = 2
    INVALID_HANDLE = 3
    INVALID_ARGUMENT = 4
    TOO_LARGE = 5
    NO_SUCH_REQUEST = 6
    LEAVING = 7
    STOPPED = 8
    ABI_MISMATCH = 9
    INVALID_CONFIG = 10
    INVALID_INVITE = 11
    BUFFER_TOO_SMALL = 12
    NOT_READY = 13
    PANIC = 14
    IO = 15
    NO_APP_NET = 16


class EventKind(enum.IntEnum):
    STARTED = 1
    APPLY_TICK = 2
    RUN_TICK = 3
    MAKE_SNAPSHOT = 4
    RESTORE = 5
    INPUT_COMMITTED = 6
    BECAME_HOST = 7
    LOST_HOST = 8
    HOST_CHANGED = 9
    PLAYER_JOINED = 10
    PLAYER_LEFT = 11
    PROMOTED = 12
    DEMOTED = 13
    FITNESS_CHANGED = 14
    TICK_OVERRUN = 15
    WARNING = 16
    LEFT = 17
    FATAL = 18


class LeaveOutcome(enum.IntEnum):
    NONE = 0
    HANDED_OVER = 1
    REMOVED = 2
    REMOVED_WITHOUT_SUCCESSOR = 3
    SESSION_ENDED = 4
    TIMED_OUT = 5


class TickMode(enum.IntEnum):
    FIXED_RATE = 0
    TURN_BASED = 1


class Durability(enum.IntEnum):
    MEMORY = 0
    DURABLE = 1
    RELAXED = 2


class _Config(ctypes.Structure):
    _fields_ = [
        ("tick_mode", ctypes.c_uint32),
        ("tick_hz", ctypes.c_uint32),
        ("turn_timeout_ms", ctypes.c_uint32),
        ("lockstep", ctypes.c_uint32),
        ("max_voters", ctypes.c_uint32),
        ("inputs_in_flight_max", ctypes.c_uint32),
        ("input_bytes_max", ctypes.c_uint32),
        ("tick_payload_bytes_max", ctypes.c_uint32),
        ("tick_record_bytes_max", ctypes.c_uint32),
        ("events_queued_max", ctypes.c_uint32),
        ("snapshot_interval_ticks", ctypes.c_uint64),
        ("durability", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("bind_addr", ctypes.c_char_p),
        ("bind_addr_len", ctypes.c_size_t),
        ("advertise_addr", ctypes.c_char_p),
        ("advertise_addr_len", ctypes.c_size_t),
        ("data_dir", ctypes.c_char_p),
        ("data_dir_len", ctypes.c_size_t),
        ("identity_path", ctypes.c_char_p),
        ("identity_path_len", ctypes.c_size_t),
        ("net_addr", ctypes.c_char_p),
        ("net_addr_len", ctypes.c_size_t),
        ("net_datagram_bytes_max", ctypes.c_uint32),
        ("net_queue_datagrams_max", ctypes.c_uint32),
    ]


class _Input(ctypes.Structure):
    _fields_ = [
        ("player", ctypes.c_uint64),
        ("incarnation", ctypes.c_uint64),
        ("sequence", ctypes.c_uint64),
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("data_len", ctypes.c_size_t),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("leave_outcome", ctypes.c_uint32),
        ("tick", ctypes.c_uint64),
        ("sequence", ctypes.c_uint64),
        ("player", ctypes.c_uint64),
        ("player_set", ctypes.c_uint32),
        ("fitness", ctypes.c_uint32),
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("data_len", ctypes.c_size_t),
        ("inputs", ctypes.POINTER(_Input)),
        ("inputs_len", ctypes.c_size_t),
    ]


class _Status(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("host", ctypes.c_uint64),
        ("host_set", ctypes.c_uint32),
        ("hosting", ctypes.c_uint32),
        ("voter", ctypes.c_uint32),
        ("voters", ctypes.c_uint32),
        ("learners", ctypes.c_uint32),
        ("fitness", ctypes.c_uint32),
        ("last_tick", ctypes.c_uint64),
        ("inputs_pending", ctypes.c_uint64),
        ("leaving", ctypes.c_uint32),
        ("stopped", ctypes.c_uint32),
    ]


STRUCTS = {
    "baton_config": _Config,
    "baton_input": _Input,
    "baton_event": _Event,
    "baton_session_status": _Status,
}
"""The ctypes mirror of each struct of baton.h (a test checks them against the header)."""


def _find_library() -> str:
    explicit = os.environ.get("BATON_LIB")
    if explicit:
        return explicit
    here = pathlib.Path(__file__).resolve().parent
    candidates = [here / "libbaton.so"]
    target = os.environ.get("CARGO_TARGET_DIR")
    roots = [pathlib.Path(target)] if target else []
    roots.append(here.parent.parent / "target")
    for root in roots:
        candidates += [root / "debug" / "libbaton.so", root / "release" / "libbaton.so"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise OSError("libbaton.so not found; build it with `cargo build -p baton-ffi` or set BATON_LIB")


_lib = ctypes.CDLL(_find_library())
_u8p = ctypes.POINTER(ctypes.c_uint8)
_SIGNATURES = {
    "baton_abi_version": ([], ctypes.c_uint32),
    "baton_result_name": ([ctypes.c_uint32], ctypes.c_char_p),
    "baton_config_default": ([ctypes.POINTER(_Config)], ctypes.c_uint32),
    "baton_host": ([ctypes.c_uint32, ctypes.POINTER(_Config), ctypes.POINTER(ctypes.c_uint64)], ctypes.c_uint32),
    "baton_join": (
        [ctypes.c_uint32, ctypes.POINTER(_Config), ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64)],
        ctypes.c_uint32,
    ),
    "baton_poll": (
        [ctypes.c_uint64, ctypes.POINTER(_Event), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        ctypes.c_uint32,
    ),
    "baton_wait": ([ctypes.c_uint64, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)], ctypes.c_uint32),
    "baton_submit_input": (
        [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64)],
        ctypes.c_uint32,
    ),
    "baton_commit_tick": ([ctypes.c_uint64, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_uint32),
    "baton_answer_snapshot": ([ctypes.c_uint64, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_uint32),
    "baton_set_game_score": ([ctypes.c_uint64, ctypes.c_double], ctypes.c_uint32),
    "baton_network_changed": ([ctypes.c_uint64], ctypes.c_uint32),
    "baton_leave": ([ctypes.c_uint64], ctypes.c_uint32),
    "baton_stop": ([ctypes.c_uint64], ctypes.c_uint32),
    "baton_status": ([ctypes.c_uint64, ctypes.POINTER(_Status)], ctypes.c_uint32),
    "baton_invite": ([ctypes.c_uint64, _u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], ctypes.c_uint32),
    "baton_session_free": ([ctypes.c_uint64], ctypes.c_uint32),
    "baton_last_error_message": ([_u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], ctypes.c_uint32),
    "baton_net_take": (
        [
            ctypes.c_uint64,
            _u8p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
            _u8p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ],
        ctypes.c_uint32,
    ),
    "baton_net_push": (
        [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
        ctypes.c_uint32,
    ),
    "baton_net_unreachable": ([ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_uint32),
}

NET_ADDR_BYTES_MAX = 16
"""Longest player address on an application's own network (``BATON_NET_ADDR_BYTES_MAX``)."""
for _name, (_args, _ret) in _SIGNATURES.items():
    _function = getattr(_lib, _name)
    _function.argtypes = _args
    _function.restype = _ret

if _lib.baton_abi_version() != ABI_VERSION:
    raise ImportError(f"libbaton implements ABI {_lib.baton_abi_version()}; this module expects {ABI_VERSION}")


class BatonError(Exception):
    """A call into libbaton failed: ``code`` is a :class:`Result`, the text its message."""

    def __init__(self, code: int, call: str):
        self.code = Result(code) if code in Result._value2member_map_ else code
        name = _lib.baton_result_name(code).decode()
        super().__init__(f"{call}: {name}: {_last_error_message()}")


def _last_error_message() -> str:
    needed = ctypes.c_size_t(0)
    if _lib.baton_last_error_message(None, 0, ctypes.byref(needed)) != Result.OK:
        return ""
    buffer = (ctypes.c_uint8 * max(needed.value, 1))()
    length = ctypes.c_size_t(0)
    if _lib.baton_last_error_message(buffer, needed.value, ctypes.byref(length)) != Result.OK:
        return ""
    return bytes(buffer[: length.value]).decode("utf-8", "replace")


def _call(name: str, *args) -> None:
    code = getattr(_lib, name)(*args)
    if code != Result.OK:
        raise BatonError(code, name)


@dataclass
class Input:
    """One player's input inside a tick."""

    player: int
    incarnation: int
    sequence: int
    data: bytes


@dataclass
class Event:
    """A polled event, copied out of the library (see ``baton_event`` in baton.h)."""

    kind: EventKind
    tick: int = 0
    sequence: int = 0
    player: Optional[int] = None
    fitness: int = 0
    leave_outcome: LeaveOutcome = LeaveOutcome.NONE
    data: bytes = b""
    inputs: List[Input] = field(default_factory=list)

    @property
    def text(self) -> str:
        """``data`` as text, for WARNING and FATAL."""
        return self.data.decode("utf-8", "replace")


def _copy_event(raw: _Event) -> Event:
    data = ctypes.string_at(raw.data, raw.data_len) if raw.data_len else b""
    inputs = []
    for i in range(raw.inputs_len):
        item = raw.inputs[i]
        payload = ctypes.string_at(item.data, item.data_len) if item.data_len else b""
        inputs.append(Input(item.player, item.incarnation, item.sequence, payload))
    return Event(
        kind=EventKind(raw.kind),
        tick=raw.tick,
        sequence=raw.sequence,
        player=raw.player if raw.player_set else None,
        fitness=raw.fitness,
        leave_outcome=LeaveOutcome(raw.leave_outcome),
        data=data,
        inputs=inputs,
    )


def default_config() -> _Config:
    """The library's defaults; change fields, then pass it to ``Session.host``/``join``."""
    config = _Config()
    _call("baton_config_default", ctypes.byref(config))
    return config


def _set_text(config: _Config, name: str, value) -> None:
    """Sets a text or bytes field (ctypes keeps the bytes alive as long as the struct)."""
    if value is not None:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        setattr(config, name, raw)
        setattr(config, name + "_len", len(raw))


def net_config(addr: bytes, datagram_bytes_max: int = 1200) -> _Config:
    """Defaults for a session over the application's own network, as player ``addr``."""
    config = default_config()
    _set_text(config, "net_addr", addr)
    config.net_datagram_bytes_max = datagram_bytes_max
    return config


@dataclass
class Status:
    """What a player knows of its session (``baton_session_status``)."""

    id: int
    host: Optional[int]
    hosting: bool
    voter: bool
    voters: int
    learners: int
    fitness: int
    last_tick: int
    inputs_pending: int
    leaving: bool
    stopped: bool


class Session:
    """One player's session. Pump it with :meth:`poll` from one thread."""

    _POLL_CAPACITY = 256

    def __init__(self, handle: int):
        self._handle = handle
        self._events = (_Event * self._POLL_CAPACITY)()
        self._net_buffer = None
        self._net_peer = None

    @classmethod
    def host(cls, config: Optional[_Config] = None, *, bind: Optional[str] = None) -> "Session":
        config = config if config is not None else default_config()
        _set_text(config, "bind_addr", bind)
        handle = ctypes.c_uint64(0)
        _call("baton_host", ABI_VERSION, ctypes.byref(config), ctypes.byref(handle))
        return cls(handle.value)

    @classmethod
    def join(cls, invite: str, config: Optional[_Config] = None, *, bind: Optional[str] = None) -> "Session":
        config = config if config is not None else default_config()
        _set_text(config, "bind_addr", bind)
        code = invite.encode()
        handle = ctypes.c_uint64(0)
        _call("baton_join", ABI_VERSION, ctypes.byref(config), code, len(code), ctypes.byref(handle))
        return cls(handle.value)

    @property
    def handle(self) -> int:
        return self._handle

    def poll(self) -> List[Event]:
        """Every waiting event (never blocks)."""
        out: List[Event] = []
        count = ctypes.c_size_t(0)
        while True:
            _call("baton_poll", self._handle, self._events, self._POLL_CAPACITY, ctypes.byref(count))
            out.extend(_copy_event(self._events[i]) for i in range(count.value))
            if count.value < self._POLL_CAPACITY:
                return out

    def wait(self, timeout: float) -> bool:
        """Blocks up to ``timeout`` seconds for an event; whether one is waiting."""
        ready = ctypes.c_uint32(0)
        _call("baton_wait", self._handle, int(timeout * 1000), ctypes.byref(ready))
        return bool(ready.value)

    def submit_input(self, data: bytes) -> Optional[int]:
        """Sends an input; its sequence number, or None while the window is full."""
        sequence = ctypes.c_uint64(0)
        code = _lib.baton_submit_input(self._handle, data, len(data), ctypes.byref(sequence))
        if code == Result.WOULD_BLOCK:
            return None
        if code != Result.OK:
            raise BatonError(code, "baton_submit_input")
        return sequence.value

    def commit_tick(self, tick: int, payload: bytes = b"") -> None:
        _call("baton_commit_tick", self._handle, tick, payload or None, len(payload))

    def answer_snapshot(self, tick: int, snapshot: bytes) -> None:
        _call("baton_answer_snapshot", self._handle, tick, snapshot or None, len(snapshot))

    def set_game_score(self, score: float) -> None:
        _call("baton_set_game_score", self._handle, score)

    def network_changed(self) -> None:
        """The device's network changed: over the Internet, re-register at once."""
        _call("baton_network_changed", self._handle)

    def leave(self) -> None:
        _call("baton_leave", self._handle)

    def stop(self) -> None:
        """Stops at once, as a crash would."""
        _call("baton_stop", self._handle)

    def status(self) -> Status:
        raw = _Status()
        _call("baton_status", self._handle, ctypes.byref(raw))
        return Status(
            id=raw.id,
            host=raw.host if raw.host_set else None,
            hosting=bool(raw.hosting),
            voter=bool(raw.voter),
            voters=raw.voters,
            learners=raw.learners,
            fitness=raw.fitness,
            last_tick=raw.last_tick,
            inputs_pending=raw.inputs_pending,
            leaving=bool(raw.leaving),
            stopped=bool(raw.stopped),
        )

    def invite(self) -> str:
        needed = ctypes.c_size_t(0)
        _call("baton_invite", self._handle, None, 0, ctypes.byref(needed))
        buffer = (ctypes.c_uint8 * needed.value)()
        length = ctypes.c_size_t(0)
        _call("baton_invite", self._handle, buffer, needed.value, ctypes.byref(length))
        return bytes(buffer[: length.value]).decode()

    def net_take(self) -> Optional[tuple]:
        """The next datagram to carry over the application's network, as ``(peer, bytes)``,
        or None when none waits."""
        if self._net_buffer is None:
            self._net_buffer = (ctypes.c_uint8 * 65536)()
            self._net_peer = (ctypes.c_uint8 * NET_ADDR_BYTES_MAX)()
        peer_len, length = ctypes.c_size_t(0), ctypes.c_size_t(0)
        _call(
            "baton_net_take",
            self._handle,
            self._net_peer,
            NET_ADDR_BYTES_MAX,
            ctypes.byref(peer_len),
            self._net_buffer,
            len(self._net_buffer),
            ctypes.byref(length),
        )
        if length.value == 0:
            return None
        return bytes(self._net_peer[: peer_len.value]), bytes(self._net_buffer[: length.value])

    def net_push(self, peer: bytes, data: bytes) -> bool:
        """Hands in a datagram from ``peer``; False while the incoming queue is full."""
        code = _lib.baton_net_push(self._handle, peer, len(peer), data, len(data))
        if code == Result.WOULD_BLOCK:
            return False
        if code != Result.OK:
            raise BatonError(code, "baton_net_push")
        return True

    def net_unreachable(self, peer: bytes) -> None:
        """The application's network cannot reach ``peer``."""
        _call("baton_net_unreachable", self._handle, peer, len(peer))

    def close(self) -> None:
        """Stops the session and frees its handle; a second close does nothing."""
        if self._handle:
            handle, self._handle = self._handle, 0
            _call("baton_session_free", handle)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", 0):
            _lib.baton_session_free(self._handle)
