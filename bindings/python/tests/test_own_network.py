"""Sessions over the application's own network from Python: in one process through a
platform stand-in, and across processes through a relay process that knows players only
by opaque ids, with the host's process killed mid-game."""

import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import baton  # noqa: E402
from game import LIMIT, Player, pump_until  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
EOS_PACKET_BYTES = 1170


class Platform:
    """Delivers datagrams between players by id, losing some and reordering others."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.players = {}
        self.held = []

    def carry(self):
        late, self.held = self.held, []
        for item in late:
            self.deliver(*item)
        for name, player in self.players.items():
            if player.stopped:
                continue
            while (datagram := player.session.net_take()) is not None:
                peer, data = datagram
                roll = self.rng.random()
                if roll < 0.02:
                    continue
                if roll < 0.12:
                    self.held.append((name, peer, data))
                    continue
                self.deliver(name, peer, data)

    def deliver(self, sender, peer, data):
        target = self.players.get(peer)
        if target is None:
            return
        if target.stopped:
            self.players[sender].session.net_unreachable(peer)
            return
        target.session.net_push(sender, data)


def test_three_players_on_a_platform_lose_the_host_and_play_on():
    platform = Platform(5)
    names = [b"eos:%d" % n for n in range(3)]
    host = Player(baton.Session.host(baton.net_config(names[0], EOS_PACKET_BYTES)))
    platform.players[names[0]] = host
    pump_until([host], lambda: host.started, platform.carry)
    invite = host.session.invite()
    players = [host]
    for name in names[1:]:
        player = Player(baton.Session.join(invite, baton.net_config(name, EOS_PACKET_BYTES)))
        platform.players[name] = player
        players.append(player)
    pump_until(players, lambda: all(p.session.status().voter and p.committed >= 3 for p in players), platform.carry)

    host.session.stop()
    host.stopped = True
    dropped_at = host.tick
    survivors = players[1:]
    pump_until(
        players,
        lambda: all(p.tick >= dropped_at + 20 for p in survivors) and sum(p.hosting for p in survivors) == 1,
        platform.carry,
    )
    a, b = survivors
    for tick in set(a.history) & set(b.history):
        assert a.history[tick] == b.history[tick], f"survivors differ at tick {tick}"
    assert a.history[dropped_at] == host.history[dropped_at] == b.history[dropped_at]
    with __import__("pytest").raises(baton.BatonError) as error:
        a.session.net_push(b"", b"\x00x")
    assert error.value.code == baton.Result.INVALID_ARGUMENT
    for player in players:
        player.session.close()


class Reader:
    """Collects a player process's report lines on a thread."""

    def __init__(self, process):
        self.process = process
        self.lines = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def history(self):
        out = {}
        for line in list(self.lines):
            if line.startswith("tick "):
                _, tick, digest = line.split()
                out[int(tick)] = digest
        return out

    def first(self, prefix):
        for line in list(self.lines):
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return None


def wait(what, condition):
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_relay_process_carries_a_session_whose_host_process_is_killed():
    relay = subprocess.Popen([sys.executable, str(HERE / "relay.py")], stdout=subprocess.PIPE, text=True)
    processes = []
    try:
        port = int(relay.stdout.readline())
        env = dict(os.environ, PYTHONUNBUFFERED="1")

        def spawn(name, invite=None):
            argv = [sys.executable, str(HERE / "net_player.py"), str(port), name] + ([invite] if invite else [])
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
            processes.append(process)
            return Reader(process)

        host = spawn("relay:host")
        wait("the host's invite", lambda: host.first("invite ") is not None)
        invite = host.first("invite ")
        guests = [spawn(f"relay:guest{n}", invite) for n in range(2)]
        everyone = [host] + guests
        wait("three voters playing", lambda: all(r.first("voter") is not None and len(r.history()) > 5 for r in everyone))

        host.process.send_signal(signal.SIGKILL)
        host.process.wait()
        host.thread.join(timeout=5)
        last = max(host.history())
        wait("the game to go on", lambda: all(max(r.history(), default=0) >= last + 20 for r in guests))
        a, b = (r.history() for r in guests)
        for tick in set(a) & set(b):
            assert a[tick] == b[tick], f"survivors differ at tick {tick}"
        assert a[last] == b[last] == host.history()[last], "a tick the killed host applied was lost"
    finally:
        for process in processes + [relay]:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
