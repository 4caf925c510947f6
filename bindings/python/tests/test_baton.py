"""The Python binding against the real library: bad input, the header's layouts, and a
3-player session in one process whose host is dropped while the game goes on."""

import ctypes
import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import baton  # noqa: E402
from game import Player, pump_until  # noqa: E402

HEADER = pathlib.Path(__file__).resolve().parents[3] / "ffi" / "include" / "baton.h"


def test_struct_mirrors_follow_the_header():
    header = HEADER.read_text()
    for name, struct in baton.STRUCTS.items():
        body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), header, re.S)
        assert body, f"{name} is not in baton.h"
        fields = re.findall(r"^\s+[\w\s\*]+?\b(\w+);", body.group(1), re.M)
        assert fields == [f[0] for f in struct._fields_], f"{name} drifted from baton.h"


def test_enums_follow_the_header():
    header = HEADER.read_text()
    for prefix, enum in [("BATON_RESULT_", baton.Result), ("BATON_EVENT_KIND_", baton.EventKind)]:
        found = {m[0]: int(m[1]) for m in re.findall(prefix + r"(\w+) = (\d+)", header)}
        assert found == {member.name: member.value for member in enum}


def test_bad_input_raises_with_the_librarys_code_and_message():
    stale = baton.Session(0xDEADBEEF00000001)
    with pytest.raises(baton.BatonError) as error:
        stale.poll()
    assert error.value.code == baton.Result.INVALID_HANDLE
    assert "never issued" in str(error.value)
    stale._handle = 0

    config = baton.default_config()
    config.tick_mode = 42
    with pytest.raises(baton.BatonError) as error:
        baton.Session.host(config)
    assert error.value.code == baton.Result.INVALID_ARGUMENT and "tick_mode" in str(error.value)

    handle = ctypes.c_uint64(0)
    code = baton._lib.baton_host(baton.ABI_VERSION + 7, ctypes.byref(baton.default_config()), ctypes.byref(handle))
    assert code == baton.Result.ABI_MISMATCH and handle.value == 0

    with pytest.raises(baton.BatonError) as error:
        baton.Session.join("baton1-garbage")
    assert error.value.code == baton.Result.INVALID_INVITE

    session = baton.Session.host()
    with pytest.raises(baton.BatonError) as error:
        session.submit_input(b"")
    assert error.value.code == baton.Result.INVALID_ARGUMENT
    with pytest.raises(baton.BatonError) as error:
        session.submit_input(bytes(1 << 20))
    assert error.value.code == baton.Result.TOO_LARGE
    session.network_changed()  # a LAN session: nothing to do, no error
    handle = session.handle
    session.close()
    session.close()
    assert baton._lib.baton_session_free(handle) == baton.Result.INVALID_HANDLE
    assert baton._lib.baton_network_changed(handle) == baton.Result.INVALID_HANDLE


def test_three_players_lose_the_host_and_play_on():
    config = baton.default_config()
    config.tick_hz = 60
    host = Player(baton.Session.host(config))
    pump_until([host], lambda: host.started)
    invite = host.session.invite()
    players = [host] + [Player(baton.Session.join(invite, baton.default_config())) for _ in range(2)]
    pump_until(players, lambda: all(p.session.status().voter and p.committed >= 3 for p in players))

    # The host's process dies: no handover.
    assert host.hosting
    host.session.stop()
    host.stopped = True
    dropped_at = host.tick
    survivors = players[1:]
    pump_until(survivors, lambda: all(p.tick >= dropped_at + 30 for p in survivors) and sum(p.hosting for p in survivors) == 1)

    a, b = survivors
    common = min(a.tick, b.tick)
    for tick in range(1, common + 1):
        if tick in a.history and tick in b.history:
            assert a.history[tick] == b.history[tick], f"survivors differ at tick {tick}"
    # Every tick the dropped host applied was committed: the survivors hold it alike.
    assert a.history[dropped_at] == host.history[dropped_at] == b.history[dropped_at]
    for player in players:
        player.session.close()
