"""One player process over a relay (relay.py): its session's datagrams go to the relay
by id. Prints "invite <code>" (the founder), "voter" once it votes, and "tick <n> <hash>"
for every tick it applies. Usage: net_player.py <relay port> <id> [invite]."""

import pathlib
import socket
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import baton  # noqa: E402
from game import Player  # noqa: E402

port, name = int(sys.argv[1]), sys.argv[2].encode()
relay = ("127.0.0.1", port)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.setblocking(False)
config = baton.net_config(name, 1200)
session = baton.Session.join(sys.argv[3], config) if len(sys.argv) > 3 else baton.Session.host(config)
player = Player(session)
printed = 0
voter = False
registered = 0.0
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not player.stopped:
    if time.monotonic() - registered > 0.5:
        sock.sendto(b"\0" + name, relay)
        registered = time.monotonic()
    player.pump()
    while (datagram := session.net_take()) is not None:
        peer, data = datagram
        sock.sendto(bytes([len(peer)]) + peer + data, relay)
    while True:
        try:
            packet = sock.recv(65536)
        except BlockingIOError:
            break
        length = packet[0]
        session.net_push(packet[1 : 1 + length], packet[1 + length :])
    if player.started and len(sys.argv) <= 3 and printed == 0 and player.tick == 0:
        print("invite", session.invite(), flush=True)
        printed = -1
    if not voter and player.started and session.status().voter:
        voter = True
        print("voter", flush=True)
    for tick in sorted(t for t in player.history if t > max(printed, 0)):
        print("tick", tick, player.history[tick].hex(), flush=True)
        printed = tick
    time.sleep(0.002)
