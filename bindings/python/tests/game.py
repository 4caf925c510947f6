"""A game replica for the binding's tests: a hash chain over every committed tick's
inputs and payload, which the host's payload must match; shared by the in-process tests
and the player processes of the relay test."""

import hashlib
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import baton  # noqa: E402

LIMIT = 30.0


class Player:
    """A game replica: a hash chain over every committed tick's inputs and payload."""

    def __init__(self, session: baton.Session):
        self.session = session
        self.tick = 0
        self.digest = b"\0" * 32
        self.history = {0: self.digest}
        self.applied = set()
        self.hosting = False
        self.stopped = False
        self.started = False
        self.committed = 0
        self.submitted = 0

    def pump(self):
        if self.stopped:
            return
        for event in self.session.poll():
            kind = event.kind
            if kind == baton.EventKind.STARTED:
                self.started = True
            elif kind == baton.EventKind.RUN_TICK:
                payload = hashlib.sha256(b"".join(i.data for i in event.inputs)).digest()
                try:
                    self.session.commit_tick(event.tick, payload)
                except baton.BatonError as error:
                    assert error.code == baton.Result.NO_SUCH_REQUEST
            elif kind == baton.EventKind.APPLY_TICK:
                assert event.tick == self.tick + 1, "ticks in order, once each"
                for item in event.inputs:
                    key = (item.player, item.incarnation, item.sequence)
                    assert key not in self.applied, f"input {key} applied twice"
                    self.applied.add(key)
                if event.inputs:
                    assert event.data == hashlib.sha256(b"".join(i.data for i in event.inputs)).digest()
                self.tick = event.tick
                self.digest = hashlib.sha256(self.digest + event.tick.to_bytes(8, "little") + event.data).digest()
                self.history[self.tick] = self.digest
            elif kind == baton.EventKind.MAKE_SNAPSHOT:
                assert event.tick == self.tick
                self.session.answer_snapshot(event.tick, self.tick.to_bytes(8, "little") + self.digest)
            elif kind == baton.EventKind.RESTORE:
                self.tick = int.from_bytes(event.data[:8], "little")
                self.digest = event.data[8:]
                self.history[self.tick] = self.digest
            elif kind == baton.EventKind.INPUT_COMMITTED:
                self.committed = event.sequence
            elif kind == baton.EventKind.BECAME_HOST:
                self.hosting = True
            elif kind == baton.EventKind.LOST_HOST:
                self.hosting = False
            elif kind in (baton.EventKind.FATAL, baton.EventKind.LEFT):
                self.stopped = True
        if self.started and not self.stopped and self.submitted == self.committed:
            sequence = self.session.submit_input(f"move {self.submitted + 1}".encode())
            if sequence is not None:
                self.submitted = sequence


def pump_until(players, done, carry=None):
    """Pumps every player (and then ``carry``, a platform's delivery) until ``done()``."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        for player in players:
            player.pump()
        if carry is not None:
            carry()
        if done():
            return
        time.sleep(0.002)
    raise AssertionError("timed out: " + ", ".join(f"tick {p.tick} host {p.hosting}" for p in players))
