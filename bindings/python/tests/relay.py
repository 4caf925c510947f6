"""A stand-in for a platform relay: forwards datagrams between players by opaque id over
loopback UDP. A player registers with b"\0" + id; a datagram for another player is
len(dest) + dest + payload, delivered as len(src) + src + payload. Prints its port."""

import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
where = {}  # id -> UDP address
who = {}  # UDP address -> id
while True:
    packet, sender = sock.recvfrom(65536)
    if not packet:
        continue
    if packet[0] == 0:
        where[packet[1:]] = sender
        who[sender] = packet[1:]
        continue
    length = packet[0]
    dest, payload = packet[1 : 1 + length], packet[1 + length :]
    src = who.get(sender)
    if src is None or dest not in where or len(dest) != length:
        continue  # unregistered sender or unknown id: dropped, as a relay would
    sock.sendto(bytes([len(src)]) + src + payload, where[dest])
