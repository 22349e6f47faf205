//! Bridge mode end to end: a host that knows nothing of IPsec, a bridge
//! (`ipsecd -b`) with one port toward it and one toward the rest of the
//! segment, and a peer running ipsecd in host mode, each in a namespace
//! of its own:
//!
//! ```text
//! [h] 10.9.0.1 wh ==== ba [br: ipsecd -b ba -b bb] bb ==== wp 10.9.0.2 [p]
//! ```
//!
//! The bridge's SAs use the host's own address (transport mode), so the
//! host is protected without being touched: it pings and moves TCP to the
//! peer in the clear, and the bridge-to-peer link carries only ESP.

use crate::datapath::{Lab, Proto, config};
use crate::interop::{PYTHON, Summary};

const HOST: &str = "10.9.0.1";
const PEER: &str = "10.9.0.2";

/// The host, the bridge and the peer, each in its namespace, linked as
/// the module's picture shows, the bridge started with `ports` and both
/// daemons keyed. Returns the namespaces and the bridge daemon's index.
fn host_bridge_peer(lab: &mut Lab, ports: [&str; 2]) -> (String, String, String, usize) {
    let h = lab.namespace("h");
    let br = lab.namespace("br");
    let p = lab.namespace("p");
    lab.link((&h, "wh", &["10.9.0.1/24"]), (&br, "ba", &[]));
    lab.link((&br, "bb", &[]), (&p, "wp", &["10.9.0.2/24"]));
    let sock_br = lab.daemon_with(&br, &["-b", ports[0], "-b", ports[1]]);
    let bridge = lab.last_spawned();
    let sock_p = lab.daemon(&p);
    lab.load(&br, &sock_br, &config(Proto::Esp, HOST, PEER, None, true));
    lab.load(&p, &sock_p, &config(Proto::Esp, PEER, HOST, None, false));
    (h, br, p, bridge)
}

#[test]
fn a_bridge_protects_a_host_that_knows_nothing_of_ipsec() {
    const TEST: &str = "a_bridge_protects_a_host_that_knows_nothing_of_ipsec";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (h, br, p, _) = host_bridge_peer(&mut lab, ["ba", "bb"]);
    let (host, peer) = (HOST, PEER);

    let (dump, file) = lab.capture(&br, "bb");
    lab.ping(&h, host, peer);
    lab.transfer(&h, &p, host, peer);
    lab.ping(&p, peer, host);
    lab.stop(dump);

    assert!(
        lab.count(&file, "esp") > 100,
        "too little ESP toward the peer"
    );
    let clear = "tcp or icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply";
    assert_eq!(lab.count(&file, clear), 0, "cleartext toward the peer");
    // ARP crossed as it came, or nobody could have found anybody.
    assert!(lab.count(&file, "arp") > 0, "no ARP crossed");
}

/// Both ports of a bridge on one segment (a Linux bridge in a namespace
/// of its own joins them to a host): everything the bridge sends comes
/// back to it on the other port. A burst of broadcasts from the host
/// must not circle: the segment sees each at most a few times.
/// The bridge with an address of its own on its port toward the peer,
/// and SAs in tunnel mode between that address and the peer, which is
/// also the router to a network (10.8.0.0/24, on its loopback):
///
/// ```text
/// [h] 10.9.0.1 wh ==== ba [br] bb 10.9.0.100 ==== wp 10.9.0.2 [p] 10.8.0.1
/// ```
///
/// The host's packets to that network leave the bridge's host as ESP
/// between the bridge's address and the peer's; what the peer sends back
/// reaches the bridge's host, and once opened goes to the host as from
/// its router.
#[test]
fn a_bridge_protects_a_host_under_its_own_address() {
    const TEST: &str = "a_bridge_protects_a_host_under_its_own_address";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (bridge_address, far) = ("10.9.0.100", "10.8.0.1");
    let h = lab.namespace("h");
    let br = lab.namespace("br");
    let p = lab.namespace("p");
    lab.link((&h, "wh", &["10.9.0.1/24"]), (&br, "ba", &[]));
    lab.link(
        (&br, "bb", &["10.9.0.100/24"]),
        (&p, "wp", &["10.9.0.2/24"]),
    );
    lab.exec(&p, &["ip", "addr", "add", "10.8.0.1/32", "dev", "lo"]);
    lab.exec(&h, &["ip", "route", "add", "10.8.0.0/24", "via", PEER]);
    let sock_br = lab.daemon_with(&br, &["-b", "ba", "-b", "bb"]);
    let bridge = lab.last_spawned();
    let sock_p = lab.daemon(&p);
    let nets = ("10.9.0.1/32", "10.8.0.0/24");
    let to_br = config(Proto::Esp, bridge_address, PEER, Some(nets), true);
    let to_p = config(
        Proto::Esp,
        PEER,
        bridge_address,
        Some((nets.1, nets.0)),
        false,
    );
    lab.load(&br, &sock_br, &to_br);
    lab.load(&p, &sock_p, &to_p);

    let (dump, file) = lab.capture(&p, "wp");
    lab.ping(&h, HOST, far);
    lab.transfer(&h, &p, HOST, far);
    lab.stop(dump);

    let esp = |from: &str, to: &str| lab.count(&file, &format!("esp and src {from} and dst {to}"));
    assert!(
        esp(bridge_address, PEER) > 100,
        "too little ESP to the peer"
    );
    assert!(esp(PEER, bridge_address) > 10, "too little ESP back");
    assert_eq!(
        lab.count(&file, &format!("host {far}")),
        0,
        "cleartext on the wire"
    );

    lab.stop(bridge);
    let log = lab.log(&format!("{br}-ipsecd.log"));
    let line = log
        .lines()
        .find(|l| l.contains("stations known"))
        .unwrap_or_else(|| panic!("no bridge summary:\n{log}"));
    let count = |what: &str| -> u64 {
        let (before, _) = line
            .split_once(what)
            .unwrap_or_else(|| panic!("no {what:?} in {line}"));
        before
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count(" packets protected under this host's address") > 100,
        "{line}"
    );
    assert!(count(" opened for a bridged station") > 10, "{line}");
    // ESP to the bridge's address is its host's, not bridged to the host.
    assert!(line.contains("dropped for this host: "), "{line}");
}

#[test]
fn two_ports_on_one_segment_do_not_loop() {
    const TEST: &str = "two_ports_on_one_segment_do_not_loop";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let seg = lab.namespace("seg");
    let h = lab.namespace("h");
    let br = lab.namespace("br");
    lab.exec(&seg, &["ip", "link", "add", "sw", "type", "bridge"]);
    lab.exec(&seg, &["ip", "link", "set", "sw", "up"]);
    lab.link((&h, "wh", &["10.9.0.1/24"]), (&seg, "sh", &[]));
    lab.link((&br, "ba", &[]), (&seg, "sa", &[]));
    lab.link((&br, "bb", &[]), (&seg, "sb", &[]));
    for port in ["sh", "sa", "sb"] {
        lab.exec(&seg, &["ip", "link", "set", port, "master", "sw"]);
    }
    let daemon_socket = lab.daemon_with(&br, &["-b", "ba", "-b", "bb"]);
    let daemon = lab.last_spawned();
    assert!(daemon_socket.exists());

    let (dump, file) = lab.capture(&h, "wh");
    // 50 broadcast echo requests, 20 ms apart: each reaches the bridge on
    // both ports, and the bridge sends what it forwards back onto the
    // segment.
    let sent = 50;
    let _ = lab.try_exec(
        &h,
        &[
            "ping",
            "-b",
            "-c",
            "50",
            "-i",
            "0.02",
            "-W",
            "1",
            "10.9.0.255",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.stop(dump);
    assert!(lab.running(daemon), "the bridge died");
    let seen = lab.count(&file, "icmp[icmptype] == icmp-echo");
    eprintln!("{TEST}: {sent} broadcasts sent, {seen} seen on the segment");
    assert!(
        seen >= sent,
        "the host's own broadcasts are missing: {seen}"
    );
    assert!(
        seen <= 3 * sent,
        "{seen} copies of {sent} broadcasts: a loop"
    );
}

/// A bridge's EtherIP configuration toward the other bridge: the flow
/// that selects EtherIP between the two, and the SA pair (transport
/// mode) that protects it.
fn etherip_config(me: &str, peer: &str, a_side: bool) -> String {
    use crate::interop::{AUTH_AB, AUTH_BA, ENC_AB, ENC_BA};
    let (spis, auth, enc) = if a_side {
        (
            "0x1000:0x1001",
            format!("{AUTH_AB}:{AUTH_BA}"),
            format!("{ENC_AB}:{ENC_BA}"),
        )
    } else {
        (
            "0x1001:0x1000",
            format!("{AUTH_BA}:{AUTH_AB}"),
            format!("{ENC_BA}:{ENC_AB}"),
        )
    };
    format!(
        "flow esp proto etherip from {me} to {peer} peer {peer}\n\
         esp transport from {me} to {peer} spi {spis} auth hmac-sha2-256 enc aes \
         authkey {auth} enckey {enc}\n"
    )
}

/// Two LAN segments made one by two bridges and an EtherIP tunnel in
/// ESP between them, each in its namespace:
///
/// ```text
/// [ha] 10.5.0.1 wa == la [b1 -b la -b etherip:192.0.2.2] w1 == w2 [b2 ...] lb == wb 10.5.0.2 [hb]
/// ```
pub(crate) struct TwoBridges {
    pub(crate) ha: String,
    pub(crate) b1: String,
    pub(crate) b2: String,
    pub(crate) hb: String,
    pub(crate) sock1: std::path::PathBuf,
    /// The bridges' daemons.
    pub(crate) daemon1: usize,
    pub(crate) daemon2: usize,
}

/// Builds [`TwoBridges`], the first bridge's daemon started with `more`
/// arguments too, both keyed.
pub(crate) fn two_bridges(lab: &mut Lab, more: &[&str]) -> TwoBridges {
    let ha = lab.namespace("ha");
    let b1 = lab.namespace("b1");
    let b2 = lab.namespace("b2");
    let hb = lab.namespace("hb");
    lab.link((&ha, "wa", &["10.5.0.1/24"]), (&b1, "la", &[]));
    lab.link(
        (&b1, "w1", &["192.0.2.1/24"]),
        (&b2, "w2", &["192.0.2.2/24"]),
    );
    lab.link((&b2, "lb", &[]), (&hb, "wb", &["10.5.0.2/24"]));
    // The path between the bridges carries a whole LAN frame in EtherIP
    // and ESP.
    lab.exec(&b1, &["ip", "link", "set", "w1", "mtu", "9000"]);
    lab.exec(&b2, &["ip", "link", "set", "w2", "mtu", "9000"]);
    let mut args = vec!["-b", "la", "-b", "etherip:192.0.2.2"];
    args.extend_from_slice(more);
    let sock1 = lab.daemon_with(&b1, &args);
    let daemon1 = lab.last_spawned();
    let sock2 = lab.daemon_with(&b2, &["-b", "lb", "-b", "etherip:192.0.2.1"]);
    let daemon2 = lab.last_spawned();
    lab.load(&b1, &sock1, &etherip_config("192.0.2.1", "192.0.2.2", true));
    lab.load(
        &b2,
        &sock2,
        &etherip_config("192.0.2.2", "192.0.2.1", false),
    );
    TwoBridges {
        ha,
        b1,
        b2,
        hb,
        sock1,
        daemon1,
        daemon2,
    }
}

/// [`TwoBridges`]: the hosts share one broadcast domain. They find each
/// other by ARP, ping, and a broadcast from one reaches the other.
/// Between the bridges there is ESP and nothing else of theirs.
#[test]
fn two_bridges_join_two_segments_over_etherip_in_esp() {
    const TEST: &str = "two_bridges_join_two_segments_over_etherip_in_esp";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let TwoBridges {
        ha,
        b1,
        b2,
        hb,
        daemon1,
        daemon2,
        ..
    } = two_bridges(&mut lab, &[]);

    let (wan_dump, wan) = lab.capture(&b1, "w1");
    let (lan_dump, lan) = lab.capture(&hb, "wb");
    lab.ping(&ha, "10.5.0.1", "10.5.0.2");
    lab.transfer(&ha, &hb, "10.5.0.1", "10.5.0.2");
    let _ = lab.try_exec(
        &ha,
        &[
            "ping",
            "-b",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "10.5.0.255",
        ],
    );
    let broadcast = "icmp[icmptype] == icmp-echo and dst host 10.5.0.255";
    lab.captured(&lan, broadcast, 3, std::time::Duration::from_secs(5));
    lab.stop(wan_dump);
    lab.stop(lan_dump);

    // Host B saw host A's ARP and its broadcasts, as on one segment: all
    // three, once each.
    assert!(
        lab.count(&lan, "arp and src host 10.5.0.1") > 0,
        "no ARP from A"
    );
    let crossed = lab.count(&lan, broadcast);
    if crossed != 3 {
        // What each bridge counted says where the rest went.
        lab.stop(daemon1);
        lab.stop(daemon2);
        let summaries: Vec<String> = [&b1, &b2]
            .iter()
            .map(|ns| lab.log(&format!("{ns}-ipsecd.log")))
            .collect();
        panic!(
            "{crossed} of A's 3 broadcasts crossed; the bridges said:\n{}",
            summaries.join("\n")
        );
    }
    // Between the bridges: ESP, and no EtherIP, ARP, ICMP or TCP of the
    // hosts' in the clear.
    assert!(
        lab.count(&wan, "esp") > 100,
        "too little ESP between the bridges"
    );
    let clear = "ip proto 97 or (arp and host 10.5.0.1) or tcp or icmp[icmptype] == icmp-echo";
    assert_eq!(
        lab.count(&wan, clear),
        0,
        "the LAN in the clear between the bridges"
    );
}

/// Frames crafted to be refused, sent into the bridge from both sides.
const BAD_FRAMES: &str = r#"
import socket, struct, sys

def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def ipv4(src, dst, proto, payload, total=None, good=True):
    total = total if total is not None else 20 + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    c = checksum(h) if good else checksum(h) ^ 0x5555
    return h[:10] + struct.pack("!H", c) + h[12:] + payload

ifname, side = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
me = bytes.fromhex("02aabbccdd01")
anyone = b"\xff" * 6
udp = struct.pack("!HHHH", 4000, 4001, 12, 0) + b"data"
if side == "host":
    # A VLAN tag, a group source address, an IP length past the frame,
    # a damaged IP header checksum.
    tagged = anyone + me + struct.pack("!HH", 0x8100, 7) + struct.pack("!H", 0x0800)
    tagged += ipv4("10.9.0.1", "10.9.0.2", 17, udp)
    s.send(tagged)
    s.send(anyone + bytes.fromhex("01005e000001") + b"\x08\x00" + ipv4("10.9.0.1", "10.9.0.2", 17, udp))
    s.send(anyone + me + b"\x08\x00" + ipv4("10.9.0.1", "10.9.0.2", 17, udp, total=900))
    s.send(anyone + me + b"\x08\x00" + ipv4("10.9.0.1", "10.9.0.2", 17, udp, good=False))
    # IPX, into a port that lets only IP, ARP and RARP through.
    s.send(anyone + me + b"\x81\x37" + b"\xff\xff" + b"\0" * 44)
else:
    # ESP to the host under the SA the bridge holds for it, forged.
    esp = struct.pack("!II", 0x1001, 99) + b"\x5a" * 48
    s.send(anyone + me + b"\x08\x00" + ipv4("10.9.0.2", "10.9.0.1", 50, esp))
"#;

/// Bad frames into a bridge are dropped and counted by reason, and the
/// bridge goes on carrying the host's traffic. The host's port lets only
/// IP, ARP and RARP through.
#[test]
fn bad_frames_are_dropped_and_counted_by_reason() {
    const TEST: &str = "bad_frames_are_dropped_and_counted_by_reason";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (h, br, p, bridge) = host_bridge_peer(&mut lab, ["ba,blocknonip", "bb"]);
    let (host, peer) = (HOST, PEER);
    lab.ping(&h, host, peer);

    lab.exec(&h, &[PYTHON, "-c", BAD_FRAMES, "wh", "host"]);
    lab.exec(&p, &[PYTHON, "-c", BAD_FRAMES, "wp", "peer"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.ping(&h, host, peer);
    lab.stop(bridge);

    let log = lab.log(&format!("{br}-ipsecd.log"));
    assert!(!log.contains("panicked"), "{log}");
    let bridge_line = log
        .lines()
        .rev()
        .find(|l| l.contains("stations known"))
        .unwrap_or_else(|| panic!("no bridge summary in:\n{log}"));
    for reason in [
        "VLAN tagged: 1",
        "group source address: 1",
        "not IP (blocked): 1",
    ] {
        assert!(bridge_line.contains(reason), "{reason}: {bridge_line}");
    }
    let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary in:\n{log}"));
    for reason in ["truncated", "bad header checksum", "authentication failed"] {
        assert_eq!(summary.dropped_in(reason), 1, "{reason}: {log}");
    }
}
