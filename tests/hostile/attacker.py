#!/usr/bin/python3
"""Hostile input for an ipsecd peer, from the namespace of its partner.

Run in A, whose ipsecd protects A <-> B with ESP in transport mode under
--spi (A to B). Standard library only. It first sniffs real traffic on
--iface while `ping` runs through the SAs, keeping A's ESP packets to B,
then sends B, with raw sockets that carry ipsecd's mark (so that A's own
policy routing leaves them alone):

- the real packets again (replays);
- real packets tampered with: a new sequence number, a flipped bit in the
  IV, the ciphertext or the ICV (echo requests hidden under a bad ICV);
- real packets truncated at many lengths;
- real packets under SPIs B does not have, and from an address that is
  not the SA's peer;
- random bytes as protocols 50 and 51, and to UDP port 4500 (with a real
  ESP packet among them, which B's SA does not expect in UDP);

and then listens: nothing hostile may be answered, so no ESP or AH may
come back from B. Prints what it sent, by kind, and one line
`legit N` with the number of genuine packets it caused B to accept.
Exit status 0 when B stayed silent, 1 otherwise.
"""

import argparse
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IPPROTO_ESP = 50
IPPROTO_AH = 51
SO_MARK = 36
NAT_T = 4500


def ipv4_header(src, dst, protocol, payload_len, ident, options=b""):
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + payload_len,
        ident,
        0x4000,  # DF
        64,
        protocol,
        0,  # the kernel fills the checksum
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + options


class Sniffer:
    """IPv4 packets on one interface, both ways, as (outgoing, bytes)."""

    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))

    def drain(self, seconds):
        packets = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return packets
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            frame, addr = self.sock.recvfrom(65535)
            if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
                continue
            packets.append((addr[2] == PACKET_OUTGOING, frame[14:]))


def addresses(packet):
    return socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])


def from_remote(packets, remote, protocols=(IPPROTO_ESP, IPPROTO_AH)):
    return [
        p for out, p in packets if not out and addresses(p)[0] == remote and p[9] in protocols
    ]


class Attacker:
    def __init__(self, args):
        self.args = args
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mark = int(args.mark, 0)
        for s in (self.raw, self.udp):
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        self.sent = {}
        self.ident = 0x7000

    def count(self, kind):
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def ip(self, kind, protocol, payload, src=None, options=b""):
        self.ident = (self.ident + 1) & 0xFFFF or 1
        src = src or self.args.local
        packet = ipv4_header(src, self.args.remote, protocol, len(payload), self.ident, options)
        self.raw.sendto(packet + payload, (self.args.remote, 0))
        self.count(kind)
        time.sleep(0.002)

    def udp4500(self, kind, payload):
        self.udp.sendto(payload, (self.args.remote, NAT_T))
        self.count(kind)
        time.sleep(0.002)


def esp_of(packet):
    return packet[(packet[0] & 0x0F) * 4 :]


def with_seq(esp, seq):
    return esp[:4] + struct.pack("!I", seq) + esp[8:]


def with_spi(esp, spi):
    return struct.pack("!I", spi) + esp[4:]


def flipped(data, offset, bit=0x01):
    b = bytearray(data)
    b[offset] ^= bit
    return bytes(b)


def attack(a, real, rng, rounds):
    esp = esp_of(real[0])
    n = len(esp)
    fresh = iter(range(0x00100000, 0x00200000, 7))

    # Replays: what B already accepted, verbatim.
    for packet in real:
        a.ip("replay", IPPROTO_ESP, esp_of(packet))
    # The same again a few times, interleaved with the others below.
    replays = [esp_of(p) for p in real]

    # Tampered: a fresh sequence number makes it pass the replay check,
    # then the ICV must fail. Echo requests all, under a bad ICV.
    a.ip("tampered", IPPROTO_ESP, with_seq(esp, next(fresh)))
    for offset in (8, 8 + 7, 8 + 16, n // 2, n - 16, n - 1):
        a.ip("tampered", IPPROTO_ESP, flipped(with_seq(esp, next(fresh)), offset))
    for _ in range(rounds):
        offset = rng.randrange(8, n)
        a.ip("tampered", IPPROTO_ESP, flipped(with_seq(esp, next(fresh)), offset, 1 << rng.randrange(8)))
    # Tampered under its own, already used, sequence number.
    a.ip("tampered", IPPROTO_ESP, flipped(esp, n - 1))

    # Truncated: within the header, in the IV, short of the ICV, unaligned.
    for length in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 23, 24, 25, 40, n - 17, n - 16, n - 15, n - 1):
        a.ip("truncated", IPPROTO_ESP, with_seq(esp, next(fresh))[: max(length, 0)])
    # Padded: bytes after the ICV.
    a.ip("truncated", IPPROTO_ESP, with_seq(esp, next(fresh)) + b"\0" * 16)

    # Unknown SPIs, B's outbound one among them; and the right SPI from
    # an address that is not the SA's peer.
    for spi in (0, 1, 255, 0xDEAD0001, 0xFFFFFFFF, int(a.args.spi, 0) ^ 1, rng.getrandbits(32)):
        a.ip("unknown SPI", IPPROTO_ESP, with_spi(with_seq(esp, next(fresh)), spi))
    a.ip("spoofed source", IPPROTO_ESP, with_seq(esp, next(fresh)), src=a.args.spoof)

    # With IP options (NOPs and an end of list): the same ESP behind them.
    a.ip("options", IPPROTO_ESP, with_seq(esp, next(fresh)), options=b"\x01\x01\x01\x00")

    # Garbage as ESP and as AH, some of it under B's SPI.
    spi_bytes = struct.pack("!I", int(a.args.spi, 0))
    for i in range(rounds):
        size = rng.choice([rng.randrange(0, 40), rng.randrange(0, 1400)])
        junk = rng.randbytes(size)
        if i % 3 == 0 and size >= 4:
            junk = spi_bytes + junk[4:]
        a.ip("garbage ESP", IPPROTO_ESP, junk)
    for i in range(rounds):
        size = rng.choice([rng.randrange(0, 40), rng.randrange(0, 1400)])
        junk = bytearray(rng.randbytes(size))
        if i % 2 == 0 and size >= 12:
            # A plausible AH header: next header, length, reserved, SPI.
            junk[0] = rng.choice([1, 4, 6, 17, 41, 50, 51])
            junk[1] = rng.choice([0, 1, 4, 5, 7, 255])
            junk[4:8] = spi_bytes if i % 4 == 0 else junk[4:8]
        a.ip("garbage AH", IPPROTO_AH, bytes(junk))
    # AH inside AH, ESP inside AH, under B's SPI.
    a.ip("garbage AH", IPPROTO_AH, bytes([51, 4, 0, 0]) + spi_bytes + bytes(16) + esp)
    a.ip("garbage AH", IPPROTO_AH, bytes([50, 4, 0, 0]) + spi_bytes + bytes(16) + esp)

    # UDP 4500: garbage, a keepalive, a non-ESP marker, and real ESP that
    # B's SA does not take encapsulated.
    for _ in range(rounds):
        a.udp4500("garbage UDP 4500", rng.randbytes(rng.randrange(1, 1400)))
    a.udp4500("garbage UDP 4500", b"\xff")
    a.udp4500("garbage UDP 4500", bytes(4) + rng.randbytes(40))
    a.udp4500("ESP in UDP", with_seq(esp, next(fresh)))
    for packet in replays:
        a.udp4500("ESP in UDP", esp_of(packet))

    for packet in replays:
        a.ip("replay", IPPROTO_ESP, packet)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iface", required=True)
    p.add_argument("--local", required=True)
    p.add_argument("--remote", required=True)
    p.add_argument("--spoof", required=True, help="a source that is not the peer")
    p.add_argument("--spi", required=True, help="the SPI of A's SA to B")
    p.add_argument("--mark", required=True, help="ipsecd's firewall mark")
    p.add_argument("--rounds", type=int, default=64)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}")
    rng = random.Random(seed)

    sniffer = Sniffer(args.iface)
    # Real traffic through the SAs: two echo round trips.
    ping = subprocess.run(
        ["ping", "-c", "2", "-i", "0.3", "-W", "2", "-I", args.local, args.remote],
        capture_output=True,
        text=True,
    )
    seen = sniffer.drain(1.0)
    spi = int(args.spi, 0)
    real = [
        pkt
        for out, pkt in seen
        if out
        and pkt[9] == IPPROTO_ESP
        and addresses(pkt) == (args.local, args.remote)
        and struct.unpack("!I", esp_of(pkt)[:4])[0] == spi
    ]
    replies = from_remote(seen, args.remote)
    print(f"legit {len(real)}")
    print(f"real replies {len(replies)}")
    if ping.returncode != 0 or len(real) < 2 or len(replies) < 2:
        print(f"FAIL: no real traffic to work from: {ping.stdout}{ping.stderr}")
        return 1

    a = Attacker(args)
    attack(a, real, rng, args.rounds)
    answered = from_remote(sniffer.drain(2.0), args.remote)
    for kind, n in a.sent.items():
        print(f"sent {kind}: {n}")
    print(f"answers {len(answered)}")
    if answered:
        for packet in answered:
            print(f"answered: {packet.hex()}")
        print("FAIL: B answered hostile input")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
