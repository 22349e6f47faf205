//! What the person on call sees: a key mismatch named in the log, once
//! per interval, with the SA, the addresses and the likely cause; and
//! `ipsecctl --explain`, which asks the running daemon what it would do
//! with a packet. Needs root (CI runs as root); skipped otherwise.

use crate::datapath::{Lab, Tunnel};
use std::time::{Duration, Instant};

#[test]
fn a_key_mismatch_is_named_in_the_log_and_explain_tells_the_path() {
    let Some(mut lab) = Lab::new("a_key_mismatch_is_named") else {
        return;
    };
    let (a, b) = lab.gateways();
    let sock_a = lab.daemon(&a);
    let sock_b = lab.daemon(&b);
    let (k1, k2, wrong) = ("11".repeat(32), "22".repeat(32), "99".repeat(32));
    let (k1, k2, wrong) = (format!("0x{k1}"), format!("0x{k2}"), format!("0x{wrong}"));
    let (e1, e2) = (
        format!("0x{}", "33".repeat(16)),
        format!("0x{}", "44".repeat(16)),
    );
    let tunnel = |auth_ab| Tunnel {
        spis: (0x6100, 0x6101),
        auth: (auth_ab, &k2),
        enc: (&e1, &e2),
    };
    lab.load(&a, &sock_a, &tunnel(&k1).config(true));
    // B holds another authentication key for the SA from A than A does.
    lab.load(&b, &sock_b, &tunnel(&wrong).config(false));
    let pings = lab.try_exec(
        &a,
        &[
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "10.61.1.1",
            "10.61.2.1",
        ],
    );
    assert!(!pings.status.success(), "the pings cannot get through");

    let want = "esp in spi 0x00006100 from 192.0.2.1 to 192.0.2.2: ";
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = lab.log(&format!("{b}-ipsecd.log"));
        if log.contains(want) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = log
        .lines()
        .find(|l| l.contains(want))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(" dropped (authentication failed)"), "{line}");
    assert!(
        line.contains("the two ends hold different keys or transforms"),
        "{line}"
    );
    // One line in ten seconds for five packets, not five.
    assert_eq!(log.matches(want).count(), 1, "{log}");

    let told = lab.ipsecctl(
        &a,
        &sock_a,
        &["--explain", "out proto icmp from 10.61.1.1 to 10.61.2.1"],
    );
    assert_eq!(
        told,
        "packet: out proto icmp from 10.61.1.1 to 10.61.2.1\n\
         flow: flow esp out from 10.61.1.0/24 to 10.61.2.0/24 peer 192.0.2.2 type require\n\
         verdict: protected by esp SA spi 0x00006100 to 192.0.2.2\n"
    );
    let told = lab.ipsecctl(
        &b,
        &sock_b,
        &["--explain", "in from 10.61.1.1 to 10.61.2.1"],
    );
    assert!(
        told.contains("verdict: accepted only through esp from its peer"),
        "{told}"
    );
    let told = lab.ipsecctl(
        &a,
        &sock_a,
        &["--explain", "out from 10.61.1.1 to 198.51.100.7"],
    );
    assert!(
        told.ends_with("verdict: no flow selects it: sent in the clear\n"),
        "{told}"
    );
}
