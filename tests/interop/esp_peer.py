#!/usr/bin/python3
"""An IPsec peer that is not ours: scapy's IPsec layer, in transport mode.

Run in the namespace of the host without ipsecd. For each of --count
rounds it builds an ICMP echo request from --local to --remote, protects
it with scapy's SA (--spi-out and the -out keys), sends it through a raw
socket, then waits for the remote's protected echo reply under --spi-in,
which scapy must verify (its ICV or GCM tag check) and open with the -in
keys into the echo reply of the same identifier, sequence and payload.
Along the way it checks what scapy does not: the ESP padding and next
header, the IV size, the sequence numbers, that scapy's own checks do
reject a tampered packet, and (AH) that the ICV covers the immutable IP
header fields and not the mutable ones.

Exit status: 0 when every round passed, 1 when something did not (the
reason is printed), 77 when scapy or its cryptography cannot be loaded.
"""

import argparse
import os
import select
import socket
import struct
import sys
import time
import traceback

SKIP = 77

try:
    from scapy.config import conf

    conf.verb = 0
    from scapy.compat import raw
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.ipsec import AH, ESP, IPSecIntegrityError, SecurityAssociation
    from scapy.packet import Raw
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except Exception as e:  # noqa: BLE001 - any failure to load means "skip"
    print(f"skip: cannot load scapy's IPsec layer: {e!r}")
    sys.exit(SKIP)

IPPROTO_ESP = 50
IPPROTO_AH = 51
ICMP_ID = 0x5150


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def hexkey(text):
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def make_sa(args, direction):
    spi = int(getattr(args, f"spi_{direction}"), 0)
    auth = getattr(args, f"auth_{direction}")
    enc = getattr(args, f"enc_{direction}")
    if args.proto == "ah":
        return SecurityAssociation(
            AH, spi=spi, auth_algo="SHA2-256-128", auth_key=hexkey(auth)
        )
    if args.proto == "gcm":
        # RFC 4106: the key, then a 4-byte salt; scapy splits it the same.
        return SecurityAssociation(
            ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=hexkey(enc), auth_algo="NULL"
        )
    return SecurityAssociation(
        ESP,
        spi=spi,
        crypt_algo="AES-CBC",
        crypt_key=hexkey(enc),
        auth_algo="SHA2-256-128",
        auth_key=hexkey(auth),
    )


def echo(args, seq, payload):
    return (
        IP(src=args.local, dst=args.remote, id=0x4000 + seq, flags="DF", ttl=64)
        / ICMP(type=8, id=ICMP_ID, seq=seq)
        / Raw(payload)
    )


def esp_plaintext(sa, esp):
    """ESP's decrypted payload, trailer included, by the cryptography
    package directly (scapy drops the padding it reads)."""
    data = esp.data
    if sa.crypt_algo.name == "AES-GCM":
        iv, body = data[:8], data[8:]
        aad = struct.pack("!LL", esp.spi, esp.seq)
        return AESGCM(sa.crypt_key).decrypt(sa.crypt_salt + iv, body, aad)
    iv, body = data[:16], data[16 : len(data) - sa.auth_algo.icv_size]
    check(len(body) % 16 == 0, f"ciphertext of {len(body)} bytes is not whole blocks")
    d = Cipher(algorithms.AES(sa.crypt_key), modes.CBC(iv)).decryptor()
    return d.update(body) + d.finalize()


def check_esp_trailer(sa, esp):
    plain = esp_plaintext(sa, esp)
    pad_len, next_header = plain[-2], plain[-1]
    padding = plain[-2 - pad_len : -2]
    check(next_header == 1, f"ESP next header {next_header}, not ICMP")
    # RFC 4303 §2.4: 1, 2, 3, ... unless the algorithm says otherwise.
    check(padding == bytes(range(1, pad_len + 1)), f"ESP padding {padding.hex()}")
    if sa.crypt_algo.name == "AES-GCM":
        # RFC 4106 §3: 4-byte alignment of the trailer, no more needed.
        check((len(plain)) % 4 == 0, "ESP payload not 4-byte aligned")


def flip(packet_bytes, offset):
    b = bytearray(packet_bytes)
    b[offset] ^= 0x01
    return bytes(b)


def rejects(sa, packet_bytes):
    """Whether scapy refuses a packet with its integrity check."""
    try:
        sa.decrypt(IP(packet_bytes))
    except IPSecIntegrityError:
        return True
    return False


def self_test(args):
    """scapy's checks are live: a packet it sealed opens, and the same
    with one bit flipped does not."""
    sa_tx, sa_rx = make_sa(args, "out"), make_sa(args, "out")
    sealed = raw(sa_tx.encrypt(echo(args, 0, b"self test")))
    opened = IP(raw(sa_rx.decrypt(IP(sealed))))
    check(raw(opened[ICMP].payload) == b"self test", "scapy cannot open its own packet")
    check(rejects(sa_rx, flip(sealed, len(sealed) - 1)), "scapy accepts a bad ICV")


def receive(sock, args, protocol, deadline):
    """The next packet of `protocol` from the remote, whole, as bytes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data = sock.recv(65535)
        # Linux raw sockets give the IPv4 header as received.
        if len(data) < 20 or data[9] != protocol:
            continue
        if socket.inet_ntoa(data[12:16]) == args.remote:
            return data


def ip_checksum_ok(header):
    total = 0
    for i in range(0, len(header), 2):
        total += (header[i] << 8) | header[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def round_trip(args, tx, rx, sa_out, sa_in, seq, last_seq):
    protocol = IPPROTO_AH if args.proto == "ah" else IPPROTO_ESP
    payload = b"interop %d " % seq + os.urandom(24).hex().encode()
    sealed = raw(sa_out.encrypt(echo(args, seq, payload)))
    tx.sendto(sealed, (args.remote, 0))
    data = receive(rx, args, protocol, time.monotonic() + args.timeout)
    check(data is not None, f"round {seq}: no {args.proto} reply from {args.remote}")
    outer = IP(data)
    header_len = (data[0] & 0x0F) * 4
    check(ip_checksum_ok(data[:header_len]), f"round {seq}: bad outer IP checksum")
    layer = outer[AH] if protocol == IPPROTO_AH else outer[ESP]
    check(
        layer.spi == sa_in.spi,
        f"round {seq}: reply under SPI {layer.spi:#x}, not {sa_in.spi:#x}",
    )
    check(
        layer.seq == last_seq + 1,
        f"round {seq}: reply sequence number {layer.seq} after {last_seq}",
    )
    if protocol == IPPROTO_ESP:
        iv_size = 8 if args.proto == "gcm" else 16
        icv_size = 16
        check(
            len(layer.data) >= iv_size + icv_size + 16,
            f"round {seq}: ESP of {len(layer.data)} bytes",
        )
        check_esp_trailer(sa_in, layer)
    else:
        # 12 bytes of header and 16 of ICV: 7 words, minus 2.
        check(layer.payloadlen == 5, f"AH payload length {layer.payloadlen}")
        check(layer.nh == 1, f"AH next header {layer.nh}")
    # scapy's verdict on our ICV (or tag), and our payload.
    try:
        # Parsed again: scapy leaves AH's payload raw.
        opened = IP(raw(sa_in.decrypt(IP(data))))
    except IPSecIntegrityError as e:
        raise Failure(f"round {seq}: scapy rejects our ICV: {e}")
    check(opened.haslayer(ICMP), f"round {seq}: no ICMP inside: {opened!r}")
    icmp = opened[ICMP]
    check(
        (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, ICMP_ID, seq),
        f"round {seq}: not our echo reply: {icmp!r}",
    )
    check(raw(icmp.payload) == payload, f"round {seq}: payload differs")
    check(
        (opened[IP].src, opened[IP].dst) == (args.remote, args.local),
        f"round {seq}: addresses {opened[IP].src} -> {opened[IP].dst}",
    )
    chksum = icmp.chksum
    icmp_again = ICMP(raw(icmp))
    del icmp_again.chksum
    check(ICMP(raw(icmp_again)).chksum == chksum, f"round {seq}: bad ICMP checksum")
    # scapy's checks bite on this very packet.
    check(rejects(sa_in, flip(data, len(data) - 1)), "a flipped ICV verified")
    if protocol == IPPROTO_AH:
        # The identification is covered; the TTL and the DF flag are not.
        check(rejects(sa_in, flip(data, 5)), "AH: a changed IP id verified")
        check(rejects(sa_in, flip(data, header_len + 28 + 4)), "AH: a changed payload verified")
        ttl = bytearray(data)
        ttl[8] = (ttl[8] - 3) % 256
        ttl[6] ^= 0x40
        try:
            sa_in.decrypt(IP(bytes(ttl)))
        except IPSecIntegrityError:
            raise Failure("AH: the ICV covers the TTL or flags (mutable fields)")
    else:
        check(rejects(sa_in, flip(data, header_len + 8 + 3)), "ESP: a changed IV verified")
        check(rejects(sa_in, flip(data, header_len + 5)), "ESP: a changed sequence verified")
    print(
        f"round {seq}: {args.proto} reply spi={layer.spi:#x} seq={layer.seq} "
        f"len={len(data)} verified by scapy, echo reply of {len(payload)} bytes"
    )
    return layer.seq


def forged(args, tx, rx):
    """A request under the right SPI with a wrong key: no reply."""
    bad = make_sa(args, "out")
    if args.proto == "gcm":
        bad.crypt_key = bytes(b ^ 0xFF for b in bad.crypt_key)
    else:
        bad.auth_key = bytes(b ^ 0xFF for b in bad.auth_key)
    bad.seq_num = 1000
    protocol = IPPROTO_AH if args.proto == "ah" else IPPROTO_ESP
    tx.sendto(raw(bad.encrypt(echo(args, 1000, b"forged"))), (args.remote, 0))
    data = receive(rx, args, protocol, time.monotonic() + 1.5)
    check(data is None, "a packet with a wrong ICV was answered")
    print("forged: a packet with a wrong ICV got no reply")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto", choices=["esp", "ah", "gcm"], required=True)
    p.add_argument("--local", required=True)
    p.add_argument("--remote", required=True)
    p.add_argument("--spi-out", required=True)
    p.add_argument("--spi-in", required=True)
    p.add_argument("--auth-out")
    p.add_argument("--auth-in")
    p.add_argument("--enc-out")
    p.add_argument("--enc-in")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()

    protocol = IPPROTO_AH if args.proto == "ah" else IPPROTO_ESP
    # Open before sending: with a raw socket of the protocol open, the
    # kernel also does not answer the replies with protocol-unreachable.
    rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol)
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        self_test(args)
        sa_out, sa_in = make_sa(args, "out"), make_sa(args, "in")
        last = 0
        for seq in range(1, args.count + 1):
            last = round_trip(args, tx, rx, sa_out, sa_in, seq, last)
        forged(args, tx, rx)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    except Exception:  # noqa: BLE001 - whatever broke, say so and fail
        traceback.print_exc(file=sys.stdout)
        print("FAIL: the peer broke")
        return 1
    print(f"PASS: {args.count} round trips with scapy ({args.proto})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
