//! Fail closed: what a `require` flow covers never crosses the wire in
//! clear text while ipsecd is down. Gateway A has a default route toward
//! B, as any gateway has toward the Internet, so anything that escaped
//! the enc interface would reach B in the clear and be seen on the wire.
//! A pings B's network all along while its ipsecd is killed (SIGKILL),
//! then stopped (SIGTERM), each time started again and the configuration
//! loaded again (the first time with the enc interface deleted as
//! well, which leaves only the blackhole behind it). Then the flows are flushed, ipsecd stops, and nothing it
//! made may be left. Needs root (CI runs as root); skipped otherwise.

use crate::datapath::{Lab, Tunnel, text};
use std::path::Path;
use std::time::{Duration, Instant};

const AUTH: (&str, &str) = (
    "0x1111111111111111111111111111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222222222222222222222222222",
);
const ENC: (&str, &str) = (
    "0x33333333333333333333333333333333",
    "0x44444444444444444444444444444444",
);

/// Waits until `ok` holds, for at most ten seconds.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn protected_traffic_never_leaves_in_clear_text_while_ipsecd_is_down() {
    let Some(mut lab) = Lab::new("protected_traffic_never_leaves_in_clear_text") else {
        return;
    };
    let (a, b) = lab.gateways();
    // Without ipsecd, A's traffic for B's network would go out in clear.
    lab.exec(&a, &["ip", "route", "add", "default", "via", "192.0.2.2"]);
    lab.exec(
        &b,
        &["ip", "route", "add", "10.61.1.0/24", "via", "192.0.2.1"],
    );
    let tunnel = Tunnel {
        spis: (0x6100, 0x6101),
        auth: AUTH,
        enc: ENC,
    };
    let (conf_a, conf_b) = (tunnel.config(true), tunnel.config(false));

    let sock_a = lab.daemon(&a);
    let mut daemon_a = lab.last_spawned();
    let sock_b = lab.daemon(&b);
    lab.load(&a, &sock_a, &conf_a);
    lab.load(&b, &sock_b, &conf_b);
    lab.ping(&a, "10.61.1.1", "10.61.2.1");

    let (dump, file) = lab.capture(&a, "wa");
    // Echo requests every 20 ms from A's network to B's, all along.
    let pinger = lab.spawn(
        "ping",
        &a,
        &["ping", "-i", "0.02", "-I", "10.61.1.1", "10.61.2.1"],
        "ping.log",
    );
    for (signal, name) in [(libc::SIGKILL, "SIGKILL"), (libc::SIGTERM, "SIGTERM")] {
        std::thread::sleep(Duration::from_millis(300));
        lab.signal(daemon_a, signal);
        if signal == libc::SIGKILL {
            // Even without the enc interface, the guard holds.
            lab.exec(&a, &["ip", "link", "del", "enc0"]);
        }
        // Down for a second and a half: about 75 echo requests that must
        // not get out.
        std::thread::sleep(Duration::from_millis(1500));
        let guard = text(
            &lab.exec(&a, &["ip", "route", "show", "table", "1950"])
                .stdout,
        );
        assert!(
            guard.contains("blackhole 10.61.2.0/24"),
            "after {name}, no guard: {guard}"
        );
        let sock = lab.daemon(&a);
        daemon_a = lab.last_spawned();
        // The flows came back before the configuration is loaded again.
        let flows = lab.ipsecctl(&a, &sock, &["-s", "flow"]);
        assert!(
            flows.contains("flow esp out from 10.61.1.0/24 to 10.61.2.0/24"),
            "after {name}: {flows}"
        );
        lab.load(&a, &sock, &conf_a);
        lab.ping(&a, "10.61.1.1", "10.61.2.1");
    }
    lab.stop(pinger);
    // What tcpdump has not written yet is lost when it stops.
    std::thread::sleep(Duration::from_millis(500));
    lab.stop(dump);

    let clear = "icmp and src host 10.61.1.1";
    assert_eq!(lab.count(&file, clear), 0, "clear text on the wire");
    // The ESP kept flowing before, between and after.
    let esp = lab.count(&file, "esp and src host 192.0.2.1");
    assert!(esp > 50, "only {esp} ESP packets");

    // Flushed and stopped: nothing of ipsecd's is left.
    lab.ipsecctl(&a, &sock_a, &["-F"]);
    lab.stop(daemon_a);
    let left = |args: &[&str]| text(&lab.exec(&a, args).stdout);
    assert!(!left(&["ip", "link", "show"]).contains("enc0"));
    assert!(!left(&["ip", "-4", "rule"]).contains("1950"));
    assert!(!left(&["ip", "-6", "rule"]).contains("1950"));
    assert_eq!(
        left(&["ip", "-4", "route", "show", "table", "all"])
            .matches("table 1950")
            .count(),
        0
    );
    assert_eq!(
        left(&["ip", "-6", "route", "show", "table", "all"])
            .matches("table 1950")
            .count(),
        0
    );
    assert_eq!(left(&["nft", "list", "tables"]).trim(), "");
    assert!(!Path::new(&sock_a.with_extension("flows")).exists());
    eventually("the socket is removed", || !sock_a.exists());
}

#[test]
fn deleting_one_flow_keeps_the_route_another_flow_needs() {
    let Some(mut lab) = Lab::new("deleting_one_flow_keeps_the_route") else {
        return;
    };
    let (a, _b) = lab.gateways();
    let sock = lab.daemon(&a);
    // Two flows to one prefix, one of them from a single address of A's.
    let network = "flow esp out from 10.61.1.0/24 to 10.99.0.0/24 peer 192.0.2.2\n";
    let host = "flow esp out from 192.0.2.1 to 10.99.0.0/24 peer 192.0.2.2\n";
    lab.load(&a, &sock, &format!("{network}{host}"));
    let table = |lab: &Lab| {
        text(
            &lab.exec(&a, &["ip", "route", "show", "table", "1950"])
                .stdout,
        )
    };
    let shown = table(&lab);
    assert!(shown.contains("10.99.0.0/24 dev enc0"), "{shown}");
    assert!(shown.contains("src 192.0.2.1"), "{shown}");
    let only_host = lab.config_file("host.conf", host);
    lab.ipsecctl(&a, &sock, &["-d", "-f", only_host.to_str().unwrap()]);
    // The route stays for the flow that is left.
    std::thread::sleep(Duration::from_millis(500));
    let shown = table(&lab);
    assert!(shown.contains("10.99.0.0/24 dev enc0"), "{shown}");
    assert!(shown.contains("blackhole 10.99.0.0/24"), "{shown}");
    let only_network = lab.config_file("network.conf", network);
    lab.ipsecctl(&a, &sock, &["-d", "-f", only_network.to_str().unwrap()]);
    eventually("the last flow's route goes with it", || {
        table(&lab).is_empty()
    });
}
