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
