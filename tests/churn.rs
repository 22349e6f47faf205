//! Churn: ten thousand SAs added and deleted through PF_KEY, three times
//! over, while pings cross a tunnel on an SA nobody touches. Not one ping
//! may be lost, and the daemon's resident memory must come back to
//! within 10% of where it was. Needs root (CI runs as root); skipped
//! otherwise.

use crate::datapath::{Lab, Tunnel};
use std::fmt::Write as _;
use std::time::Duration;

const CHURNED: u32 = 10_000;
const ROUNDS: usize = 3;

/// `count` SAs to peers the traffic does not go to.
fn churn(count: u32) -> String {
    let mut text = String::new();
    for n in 0..count {
        let _ = writeln!(
            text,
            "esp transport from 192.0.2.1 to 198.51.100.{} spi {:#x} auth hmac-sha2-256 \
             enc aes authkey 0x{} enckey 0x{}",
            n % 250 + 1,
            0x10_0000 + n,
            "ab".repeat(32),
            "cd".repeat(16)
        );
    }
    text
}

/// The resident memory of a process, in KiB.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn ten_thousand_sas_come_and_go_without_a_drop_or_a_leak() {
    let Some(mut lab) = Lab::new("ten_thousand_sas_come_and_go") else {
        return;
    };
    let (a, b) = lab.gateways();
    let sock_a = lab.daemon(&a);
    let pid = lab.pid(lab.last_spawned());
    let sock_b = lab.daemon(&b);
    let tunnel = Tunnel {
        spis: (0x6100, 0x6101),
        auth: (
            &format!("0x{}", "11".repeat(32)),
            &format!("0x{}", "22".repeat(32)),
        ),
        enc: (
            &format!("0x{}", "33".repeat(16)),
            &format!("0x{}", "44".repeat(16)),
        ),
    };
    lab.load(&a, &sock_a, &tunnel.config(true));
    lab.load(&b, &sock_b, &tunnel.config(false));
    lab.ping(&a, "10.61.1.1", "10.61.2.1");
    let file = lab.config_file("churn.conf", &churn(CHURNED));
    let file = file.to_str().unwrap();
    // A round of a hundred first, so that the code of adding, showing and
    // deleting is paged in (it counts as resident) before the baseline.
    let warm = lab.config_file("warm.conf", &churn(100));
    let warm = warm.to_str().unwrap();
    lab.ipsecctl(&a, &sock_a, &["-f", warm]);
    lab.ipsecctl(&a, &sock_a, &["-s", "sa"]);
    lab.ipsecctl(&a, &sock_a, &["-d", "-f", warm]);
    let pinger = lab.spawn(
        "ping",
        &a,
        &["ping", "-i", "0.01", "-I", "10.61.1.1", "10.61.2.1"],
        "ping.log",
    );
    // The baseline is taken with the traffic flowing.
    std::thread::sleep(Duration::from_millis(1000));
    let before = rss(pid);
    let mut peak = 0;
    for _ in 0..ROUNDS {
        lab.ipsecctl(&a, &sock_a, &["-f", file]);
        let shown = lab.ipsecctl(&a, &sock_a, &["-s", "sa"]);
        assert_eq!(shown.lines().count(), CHURNED as usize + 2);
        peak = peak.max(rss(pid));
        lab.ipsecctl(&a, &sock_a, &["-d", "-f", file]);
    }
    // The daemon gives memory back at its next second.
    std::thread::sleep(Duration::from_millis(1500));
    lab.signal(pinger, libc::SIGINT);
    let after = rss(pid);
    eprintln!(
        "ipsecd RSS: {before} KiB before, {peak} KiB with {CHURNED} SAs, {after} KiB after {ROUNDS} rounds"
    );
    let log = lab.log("ping.log");
    assert!(log.contains(" 0% packet loss"), "{log}");
    assert!(
        after * 10 <= before * 11,
        "RSS {before} KiB before, {after} KiB after"
    );
    let sas = lab.ipsecctl(&a, &sock_a, &["-s", "sa"]);
    assert_eq!(sas.lines().count(), 2, "{sas}");
}
