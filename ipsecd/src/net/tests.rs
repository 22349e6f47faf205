use super::receive::Inbox;
use super::socket::{check, sendto, set_int, sockaddr_in, sockaddr_in6, socket};
use super::*;
use crate::tun::netns::{is_root, readable, run, sh};
use ipsec_engine::wire::checksum;
use std::mem::size_of;
use std::net::{Ipv6Addr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

const LOOPBACK4: [u8; 4] = [127, 0, 0, 1];

fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (IPV4_HEADER + payload.len()) as u16;
    let mut p = vec![0x45, 0x08, 0, 0, 0xab, 0xcd, 0x40, 0, 37, protocol, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&LOOPBACK4);
    p.extend_from_slice(&LOOPBACK4);
    let sum = checksum::of(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Traffic class 0x28 and hop limit 33, so that both are seen to come
/// from the ancillary data; flow label 0, which is not carried.
fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x62, 0x80, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next_header, 33]);
    p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    p.extend_from_slice(payload);
    p
}

fn input(peers: &Peers, kind: Kind) -> RawFd {
    peers
        .inputs
        .iter()
        .find(|i| i.kind == kind)
        .map(|i| i.fd.as_raw_fd())
        .unwrap()
}

/// An arrival and the packet read with it.
#[derive(Debug)]
struct Got {
    packet: Vec<u8>,
    udp_port: Option<u16>,
}

/// The next arrival on `fd`, within two seconds.
fn arrival(peers: &Peers, fd: RawFd) -> Option<Got> {
    assert!(readable(fd, 2000), "nothing arrived on {fd}");
    let (packet, arrival) = peers.recv(fd).unwrap()?;
    Some(Got {
        packet,
        udp_port: arrival.udp_port,
    })
}

/// Nothing else is waiting on any input.
fn all_quiet(peers: &Peers) {
    for fd in peers.fds() {
        let stray = peers.recv(fd).unwrap();
        assert!(stray.is_none(), "stray packet on {fd}");
    }
}

fn esp_payload(spi: u32) -> Vec<u8> {
    let mut p = spi.to_be_bytes().to_vec();
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(b"opaque ciphertext, odd length");
    p
}

#[test]
fn peers_carry_esp_ah_and_esp_in_udp() {
    const TEST: &str = "peers_carry_esp_ah_and_esp_in_udp";
    if !is_root(TEST) {
        return;
    }
    run(TEST, || {
        sh(&["ip", "link", "set", "lo", "up"]);
        let peers = Peers::open(4500).unwrap();
        let v6 = peers.send6.is_some();
        assert_eq!(peers.fds().len(), if v6 { 8 } else { 4 });
        for input in &peers.inputs {
            let fd = input.fd.as_raw_fd();
            // SAFETY: the descriptor is ours and open.
            let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            assert_ne!(fl & libc::O_NONBLOCK, 0);
            // SAFETY: as above.
            assert_ne!(
                unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
                0
            );
            let mut mark: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt fills one c_int we own.
            check(unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_MARK,
                    (&raw mut mark).cast(),
                    &mut len,
                )
            })
            .unwrap();
            assert_eq!(mark as u32, MARK);
        }
        all_quiet(&peers);

        // Raw IPv4 ESP and AH come back byte for byte: the kernel gives
        // the header as sent, total length in network order.
        for (protocol, spi) in [(IPPROTO_ESP, 0x1000_0001), (IPPROTO_AH, 0x1000_0002)] {
            let sent = ipv4(protocol, &esp_payload(spi));
            peers.send(&sent).unwrap();
            let raw4: Vec<RawFd> = peers
                .inputs
                .iter()
                .filter(|i| i.kind == Kind::Raw4)
                .map(|i| i.fd.as_raw_fd())
                .collect();
            let fd = raw4[usize::from(protocol == IPPROTO_AH)];
            let got = arrival(&peers, fd).unwrap();
            assert_eq!(got.udp_port, None);
            assert_eq!(got.packet, sent, "protocol {protocol}");
            all_quiet(&peers);
        }
        // The kernel fills a zero identification and checksum.
        let mut unfilled = ipv4(IPPROTO_ESP, &esp_payload(3));
        unfilled[4..6].fill(0);
        unfilled[10..12].fill(0);
        peers.send(&unfilled).unwrap();
        let got = arrival(&peers, input(&peers, Kind::Raw4)).unwrap();
        assert_eq!(checksum::of(&got.packet[..IPV4_HEADER]), 0);
        assert_eq!(got.packet[..4], unfilled[..4]);
        assert_eq!(got.packet[12..], unfilled[12..]);

        // UDP 4500 over IPv4: a rebuilt header of protocol 50.
        let udp4 = input(&peers, Kind::Udp4);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let payload = esp_payload(0x2000_0001);
        socket.send_to(&payload, "127.0.0.1:4500").unwrap();
        let got = arrival(&peers, udp4).unwrap();
        assert_eq!(got.udp_port, Some(port));
        let p = &got.packet;
        assert_eq!(p.len(), IPV4_HEADER + payload.len());
        assert_eq!(p[0], 0x45);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(p[8], 64, "the default TTL of a UDP socket");
        assert_eq!(p[9], IPPROTO_ESP);
        assert_eq!(checksum::of(&p[..IPV4_HEADER]), 0);
        assert_eq!(p[12..16], LOOPBACK4);
        assert_eq!(p[16..20], LOOPBACK4);
        assert_eq!(&p[IPV4_HEADER..], &payload[..]);
        // The TOS and TTL received are the ones in the rebuilt header.
        let marked = UdpSocket::bind("127.0.0.1:0").unwrap();
        marked.set_ttl(9).unwrap();
        // SAFETY: setsockopt reads one c_int we own.
        check(unsafe {
            let tos: libc::c_int = 0x2e;
            libc::setsockopt(
                marked.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_TOS,
                (&raw const tos).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .unwrap();
        marked.send_to(&payload, "127.0.0.1:4500").unwrap();
        let p = arrival(&peers, udp4).unwrap().packet;
        assert_eq!((p[1], p[8]), (0x2e, 9));
        assert_eq!(checksum::of(&p[..IPV4_HEADER]), 0);

        // A keepalive and a non-ESP marker are consumed and counted.
        socket.send_to(&[0xff], "127.0.0.1:4500").unwrap();
        assert!(arrival(&peers, udp4).is_none());
        assert_eq!(peers.keepalives(), 1);
        socket
            .send_to(&[0, 0, 0, 0, 0x21, 0x20], "127.0.0.1:4500")
            .unwrap();
        assert!(arrival(&peers, udp4).is_none());
        assert_eq!(peers.non_esp(), 1);
        all_quiet(&peers);

        // A descriptor that is not ours, and packets that are not IP.
        assert_eq!(
            peers.recv(-1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        for junk in [&[][..], &[0x45; 19], &[0x60; 39], &[0x12; 64]] {
            assert_eq!(
                peers.send(junk).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }

        if !v6 {
            eprintln!("{TEST}: no IPv6 in this kernel, IPv6 not tested");
            return;
        }
        // Raw IPv6: the kernel gives the payload; the rebuilt header
        // is the one sent, traffic class and hop limit included.
        for (protocol, spi) in [(IPPROTO_ESP, 0x3000_0001), (IPPROTO_AH, 0x3000_0002)] {
            let sent = ipv6(protocol, &esp_payload(spi));
            peers.send(&sent).unwrap();
            let got = arrival(&peers, input(&peers, Kind::Raw6(protocol))).unwrap();
            assert_eq!(got.udp_port, None);
            assert_eq!(got.packet, sent, "protocol {protocol}");
            all_quiet(&peers);
        }

        // UDP 4500 over IPv6.
        let socket = UdpSocket::bind("[::1]:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let payload = esp_payload(0x4000_0001);
        socket.send_to(&payload, "[::1]:4500").unwrap();
        let got = arrival(&peers, input(&peers, Kind::Udp6)).unwrap();
        assert_eq!(got.udp_port, Some(port));
        let mut expected = ipv6(IPPROTO_ESP, &payload);
        expected[..2].copy_from_slice(&[0x60, 0]); // traffic class 0
        expected[7] = 64; // the loopback's default hop limit
        assert_eq!(got.packet, expected);
        socket.send_to(&[0xff], "[::1]:4500").unwrap();
        assert!(arrival(&peers, input(&peers, Kind::Udp6)).is_none());
        assert_eq!(peers.keepalives(), 2);
        all_quiet(&peers);
    });
}

/// A second daemon cannot take the NAT-T port from the first.
#[test]
fn a_second_binder_is_refused() {
    const TEST: &str = "a_second_binder_is_refused";
    if !is_root(TEST) {
        return;
    }
    run(TEST, || {
        sh(&["ip", "link", "set", "lo", "up"]);
        let first = Peers::open(4500).unwrap();
        let err = Peers::open(4500).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(&esp_payload(5), "127.0.0.1:4500").unwrap();
        assert!(arrival(&first, input(&first, Kind::Udp4)).is_some());
    });
}

/// Every ICMP (or ICMPv6) message that arrives within 300 ms after
/// `packet` is sent from a socket without the mark, as (type, code).
fn icmp_errors_after(packet: &[u8]) -> Vec<(u8, u8)> {
    let v6 = packet[0] >> 4 == 6;
    let (family, protocol, header) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6, 0)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP, IPV4_HEADER)
    };
    let listener = socket(family, libc::SOCK_RAW, protocol).unwrap();
    let sender = socket(family, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap();
    let n = if v6 {
        sendto(
            &sender,
            packet,
            &sockaddr_in6(Ipv6Addr::LOCALHOST.octets(), 0),
        )
    } else {
        sendto(&sender, packet, &sockaddr_in(LOOPBACK4, 0))
    };
    assert_eq!(n.unwrap(), packet.len());
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    while readable(listener.as_raw_fd(), 300) {
        // SAFETY: recv(2) into a local buffer, at most its length.
        let n = unsafe { libc::recv(listener.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if let Some(icmp) = usize::try_from(n)
            .ok()
            .and_then(|n| buf[..n].get(header..header + 2))
        {
            seen.push((icmp[0], icmp[1]));
        }
    }
    seen
}

/// Linux answers a protocol it has no handler for with ICMP protocol
/// unreachable (ICMPv6 parameter problem, unrecognized next header),
/// unless a raw socket took the packet: the open Peers keep the kernel
/// quiet about ESP and AH (on a kernel without esp4/ah4 it would
/// answer). Protocol 99 shows that the listener hears what is sent.
#[test]
fn open_peers_keep_the_kernel_from_refusing_what_they_read() {
    const TEST: &str = "open_peers_keep_the_kernel_from_refusing_what_they_read";
    if !is_root(TEST) {
        return;
    }
    run(TEST, || {
        sh(&["ip", "link", "set", "lo", "up"]);
        let peers = Peers::open(4500).unwrap();
        for protocol in PROTECTED {
            assert_eq!(icmp_errors_after(&ipv4(protocol, &esp_payload(1))), []);
        }
        assert_eq!(icmp_errors_after(&ipv4(99, &esp_payload(1))), [(3, 2)]);
        if peers.send6.is_some() {
            for protocol in PROTECTED {
                assert_eq!(icmp_errors_after(&ipv6(protocol, &esp_payload(1))), []);
            }
            assert_eq!(icmp_errors_after(&ipv6(99, &esp_payload(1))), [(4, 1)]);
        }
        // The raw sockets got them all; nothing else is left over.
        let mut got = 0;
        for fd in peers.fds() {
            while peers.recv(fd).unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(got, if peers.send6.is_some() { 6 } else { 3 });
    });
}

/// The mark is what the routing lookup of a send sees: a destination
/// only a `fwmark MARK` rule can route is reached by `send` and not by
/// an unmarked raw socket.
#[test]
fn the_mark_steers_the_route_of_what_is_sent() {
    const TEST: &str = "the_mark_steers_the_route_of_what_is_sent";
    if !is_root(TEST) {
        return;
    }
    run(TEST, || {
        let mark = format!("{MARK:#x}");
        sh(&["ip", "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "route",
            "add",
            "10.88.0.0/16",
            "dev",
            "lo",
            "table",
            "300",
        ]);
        sh(&["ip", "rule", "add", "fwmark", &mark, "lookup", "300"]);
        let peers = Peers::open(4500).unwrap();
        let mut packet = ipv4(IPPROTO_ESP, &esp_payload(1));
        packet[16..20].copy_from_slice(&[10, 88, 0, 1]);
        peers.send(&packet).unwrap();
        let unmarked = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap();
        set_int(&unmarked, libc::SOL_SOCKET, libc::SO_MARK, 0).unwrap();
        let e = sendto(&unmarked, &packet, &sockaddr_in([10, 88, 0, 1], 0)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH), "{e}");
        if peers.send6.is_some() {
            sh(&[
                "ip",
                "-6",
                "route",
                "add",
                "fd88::/16",
                "dev",
                "lo",
                "table",
                "300",
            ]);
            sh(&["ip", "-6", "rule", "add", "fwmark", &mark, "lookup", "300"]);
            let mut packet = ipv6(IPPROTO_ESP, &esp_payload(1));
            packet[24..26].copy_from_slice(&[0xfd, 0x88]);
            peers.send(&packet).unwrap();
        }
    });
}

/// A whole ESP-in-UDP packet as the core builds it: IPv4 with DF and
/// `tos`, UDP from and to `port` with checksum 0, then `payload`.
fn esp_in_udp4(src: [u8; 4], port: u16, tos: u8, payload: &[u8]) -> Vec<u8> {
    let total = (IPV4_HEADER + 8 + payload.len()) as u16;
    let mut p = vec![0x45, tos, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&LOOPBACK4);
    let sum = checksum::of(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// ESP payload number `n` of `len` bytes: the SPI, then `n` over and
/// over, so that each says where it belongs.
fn numbered(n: u8, len: usize) -> Vec<u8> {
    let mut p = 0x3000_0000u32.to_be_bytes().to_vec();
    p.resize(len, n);
    p
}

/// Every packet of what the inbox holds, with where it came from.
fn drain(peers: &Peers, inbox: &mut Inbox) -> Vec<(Vec<u8>, Arrival)> {
    let mut got = Vec::new();
    while let Some((buf, arrival)) = peers.next_arrival(inbox) {
        got.push((buf.as_slice().to_vec(), arrival));
    }
    got
}

#[test]
fn runs_of_esp_in_udp_leave_in_one_send_and_come_back_cut_up() {
    const TEST: &str = "runs_of_esp_in_udp_leave_in_one_send_and_come_back_cut_up";
    if !is_root(TEST) {
        return;
    }
    run(TEST, || {
        sh(&["ip", "link", "set", "lo", "up"]);
        let port = 4500;
        let peers = Peers::open(port).unwrap();
        let udp4 = input(&peers, Kind::Udp4);
        // Forty equal datagrams and a shorter last one, then a raw ESP
        // packet, then three more datagrams with another TOS: two runs
        // and one raw packet, in one call.
        let mut packets: Vec<Vec<u8>> = (0..40)
            .map(|n| esp_in_udp4(LOOPBACK4, port, 0, &numbered(n, 1200)))
            .collect();
        packets.push(esp_in_udp4(LOOPBACK4, port, 0, &numbered(40, 300)));
        let raw = ipv4(IPPROTO_ESP, &esp_payload(7));
        packets.push(raw.clone());
        for n in 41..44 {
            packets.push(esp_in_udp4(LOOPBACK4, port, 0x08, &numbered(n, 100)));
        }
        assert_eq!(peers.send_many(packets.iter().map(Vec::as_slice)), 0);

        // The first run comes back as one read, cut up in order; each
        // packet as if it had never been in UDP.
        assert!(readable(udp4, 2000));
        let mut inbox = Inbox::new(4);
        assert_eq!(peers.recv_many(udp4, &mut inbox).unwrap(), 2);
        let got = drain(&peers, &mut inbox);
        assert_eq!(got.len(), 44, "every datagram but the raw one");
        let expected = packets.iter().filter(|p| p[9] == 17);
        for ((p, arrival), sent) in got.iter().zip(expected) {
            assert_eq!(arrival.udp_port, Some(port));
            assert_eq!(&p[IPV4_HEADER..], &sent[IPV4_HEADER + 8..]);
            assert_eq!(p[1], sent[1], "the TOS sent and received");
            assert_eq!(p[9], IPPROTO_ESP);
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(checksum::of(&p[..IPV4_HEADER]), 0);
        }
        let got = arrival(&peers, input(&peers, Kind::Raw4)).unwrap();
        assert_eq!(got.packet[IPV4_HEADER..], raw[IPV4_HEADER..]);

        // A keepalive behind datagrams of a run is counted, not passed on.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let run = [&numbered(1, 2)[..2], &[0xff]].concat();
        // SAFETY: setsockopt reads one c_int we own.
        check(unsafe {
            let size: libc::c_int = 2;
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .unwrap();
        socket.send_to(&run, "127.0.0.1:4500").unwrap();
        assert!(readable(udp4, 2000));
        let keepalives = peers.keepalives();
        assert_eq!(peers.recv_many(udp4, &mut inbox).unwrap(), 1);
        let got = drain(&peers, &mut inbox);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0[IPV4_HEADER..], numbered(1, 2));
        assert_eq!(peers.keepalives(), keepalives + 1);

        // From an address that is not this host's, the UDP socket cannot
        // send; the run goes through the raw socket instead, whole.
        let foreign = [192, 0, 2, 9];
        let refused: Vec<Vec<u8>> = (0..3)
            .map(|n| esp_in_udp4(foreign, port, 0, &numbered(n, 500)))
            .collect();
        assert_eq!(peers.send_many(refused.iter().map(Vec::as_slice)), 0);
        for sent in &refused {
            let got = arrival(&peers, udp4).unwrap();
            assert_eq!(got.packet[12..16], foreign);
            assert_eq!(&got.packet[IPV4_HEADER..], &sent[IPV4_HEADER + 8..]);
        }
        all_quiet(&peers);
    });
}
