#!/usr/bin/python3
"""A lossy, reordering, duplicating wire in userspace, for kernels without
netem (tests/netem.rs runs it when `tc qdisc add ... netem` fails).

Run in a namespace of its own that holds one end of two veth pairs, LEFT
and RIGHT, whose other ends are the two gateways' outer interfaces. Each
Ethernet frame that arrives on one is sent out of the other, with what
`netem delay DELAY JITTER reorder NOW duplicate DUP loss LOSS` does:

- DUP of the frames are sent twice; each copy then has its own fate;
- LOSS of the copies are dropped;
- NOW of those left are sent at once, ahead of those held;
- the others are held DELAY +- JITTER (uniform), then sent.

Only IPv4 frames (the ESP between the gateways) are impaired: ARP and the
rest pass at once, so that the gateways find each other every time.

Each direction draws from its own generator, seeded from --seed, and each
frame takes the same number of draws whatever befalls it: the fate of the
n-th IPv4 frame one way depends on --seed and n alone.

Prints `ready` once both sockets listen. On SIGTERM prints, per
direction, what it did to the IPv4 frames, as `LEFT>RIGHT: N in,
N duplicated, N lost, N at once, N delayed, N sent, N unsent, N held`
(sent: copies handed to the kernel; unsent: copies the kernel refused;
held: copies still delayed when it stopped, never sent), and exits 0.
Standard library only.
"""

import argparse
import heapq
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33


def listen(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    try:
        # What this program sends out of an interface is not read back.
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    s.setblocking(False)
    return s


class Direction:
    def __init__(self, name, out, seed):
        self.name = name
        self.out = out
        self.rng = random.Random(seed)
        self.stats = {
            "in": 0,
            "duplicated": 0,
            "lost": 0,
            "at once": 0,
            "delayed": 0,
            "sent": 0,
            "unsent": 0,
            "held": 0,
        }

    def line(self):
        fields = ", ".join(f"{n} {what}" for what, n in self.stats.items())
        return f"{self.name}: {fields}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--delay", type=float, default=10.0, help="milliseconds")
    p.add_argument("--jitter", type=float, default=5.0, help="milliseconds")
    p.add_argument("--now", type=float, default=0.25, help="fraction")
    p.add_argument("--duplicate", type=float, default=0.05, help="fraction")
    p.add_argument("--loss", type=float, default=0.02, help="fraction")
    p.add_argument("left")
    p.add_argument("right")
    args = p.parse_args()

    left, right = listen(args.left), listen(args.right)
    ways = {
        left: Direction(f"{args.left}>{args.right}", right, 2 * args.seed),
        right: Direction(f"{args.right}>{args.left}", left, 2 * args.seed + 1),
    }
    low = (args.delay - args.jitter) / 1000.0
    high = (args.delay + args.jitter) / 1000.0
    # Copies held: (when, order, frame, direction).
    held, order = [], 0

    def send(way, frame, counted=True):
        try:
            way.out.send(frame)
        except OSError:
            if counted:
                way.stats["unsent"] += 1
        else:
            if counted:
                way.stats["sent"] += 1

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    try:
        while True:
            timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
            ready, _, _ = select.select([left, right], [], [], timeout)
            for s in ready:
                way = ways[s]
                while True:
                    try:
                        frame, addr = s.recvfrom(65536)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    if len(frame) < 14 or int.from_bytes(frame[12:14], "big") != ETH_P_IP:
                        send(way, frame, counted=False)
                        continue
                    way.stats["in"] += 1
                    rng = way.rng
                    # The same draws for every frame: one for the copies,
                    # then three for each of two copies.
                    copies = 2 if rng.random() < args.duplicate else 1
                    fates = [(rng.random(), rng.random(), rng.uniform(low, high)) for _ in range(2)]
                    if copies == 2:
                        way.stats["duplicated"] += 1
                    for lost, now, delay in fates[:copies]:
                        if lost < args.loss:
                            way.stats["lost"] += 1
                        elif now < args.now:
                            way.stats["at once"] += 1
                            send(way, frame)
                        else:
                            way.stats["delayed"] += 1
                            heapq.heappush(held, (time.monotonic() + delay, order, frame, way))
                            order += 1
            now = time.monotonic()
            while held and held[0][0] <= now:
                _, _, frame, way = heapq.heappop(held)
                send(way, frame)
    finally:
        for _, _, _, way in held:
            way.stats["held"] += 1
        for way in ways.values():
            print(way.line(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
