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

#[test]
fn a_bridge_protects_a_host_that_knows_nothing_of_ipsec() {
    const TEST: &str = "a_bridge_protects_a_host_that_knows_nothing_of_ipsec";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let h = lab.namespace("h");
    let br = lab.namespace("br");
    let p = lab.namespace("p");
    lab.link((&h, "wh", &["10.9.0.1/24"]), (&br, "ba", &[]));
    lab.link((&br, "bb", &[]), (&p, "wp", &["10.9.0.2/24"]));
    let (host, peer) = ("10.9.0.1", "10.9.0.2");
    let sock_br = lab.daemon_with(&br, &["-b", "ba", "-b", "bb"]);
    let sock_p = lab.daemon(&p);
    lab.load(&br, &sock_br, &config(Proto::Esp, host, peer, None, true));
    lab.load(&p, &sock_p, &config(Proto::Esp, peer, host, None, false));

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
