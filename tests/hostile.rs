//! Hostile input end to end: two gateways with ESP in transport mode, as
//! in `datapath`, and from A's namespace a script
//! (`tests/hostile/attacker.py`, standard library only) that first
//! records real ESP from A to B and then sends B replays of it, tampered
//! and truncated copies, unknown SPIs, a spoofed source, and random bytes
//! as protocols 50 and 51 and to UDP port 4500. B's daemon must survive,
//! answer nothing hostile (the script listens for any ESP or AH from B;
//! B's SA counts only the genuine packets), still carry a ping, and count
//! each kind of drop under its reason in the summary it logs at SIGTERM.
//! Needs root (CI runs as root) and `/usr/bin/python3`; skipped otherwise.

use crate::datapath::{Lab, text};
use crate::interop::{GW_A, GW_B, PYTHON, SPI_AB, Suite, Summary, transport_config};
use crate::support::{Flags, compile};
use ipsec_compiler::lower::{self, Action, Sequencer};
use pfkey::Body;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

const ATTACKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/attacker.py");

/// ipsecd's firewall mark (`ipsec_engine::sys::net::MARK`): what the
/// attacker sends carries it, so that A's policy routing does not steer
/// it into A's enc0.
const MARK: &str = "0x19500000";

/// A source on B's link that is not the SA's peer.
const SPOOFED: &str = "192.0.2.99";

/// B's replay window, in packets.
const WINDOW: u8 = 64;

/// Loads `config` into the daemon at `socket` as ipsecctl would, except
/// that every SA gets a replay window of `window` packets: static keys
/// from ipsec.conf come without one (ipsecctl sends 0, as OpenBSD's does),
/// and replays are what this test needs refused.
fn load_with_replay(lab: &Lab, ns: &str, socket: &Path, config: &str, window: u8) {
    let (_, out) = compile("hostile.conf", config, Flags::of(config));
    assert!(
        out.ok(),
        "the configuration compiles: {:?}",
        out.diagnostics
    );
    let fd = crate::daemon::raw_connect(socket).expect("ipsecd accepts a client");
    let mut seq = Sequencer::new(std::process::id());
    for rule in &out.rules {
        for mut message in lower::lower(rule, Action::Add, &mut seq).expect("keys given") {
            for ext in &mut message.extensions {
                if let Body::Sa(sa) = &mut ext.body {
                    sa.replay = window;
                }
            }
            let reply = exchange(&fd, &message.encode());
            assert!(
                reply.len() >= 16 && reply[2] == 0,
                "{ns}: PF_KEY {:?} refused: {reply:02x?}",
                message.header.msg_type
            );
        }
    }
    // Routes follow the tables once the daemon is idle (as in Lab::load).
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab
        .try_exec(ns, &["ip", "-4", "route", "show", "table", "1950"])
        .stdout
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no routes into enc0 in {ns}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One message out, its reply back.
fn exchange(fd: &OwnedFd, bytes: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: send and recv on our own socket, from and into buffers of
    // their true lengths.
    let n = unsafe {
        libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0);
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    };
    buf.truncate(n.max(0) as usize);
    buf
}

/// The packets an SA has opened, from `ipsecctl -s sa -v`.
fn input_packets(lab: &Lab, ns: &str, socket: &Path, spi: u32) -> u64 {
    let shown = lab.ipsecctl(ns, socket, &["-s", "sa", "-v"]);
    let head = format!("spi {spi:#010x} ");
    let mut inside = false;
    for line in shown.lines() {
        if !line.starts_with('\t') {
            inside = line.contains(&head);
        } else if inside && let Some(n) = line.trim().strip_suffix(" input packets") {
            return n.parse().expect("a count");
        }
    }
    panic!("no SA {spi:#x} in:\n{shown}");
}

#[test]
fn hostile_input_is_dropped_and_counted() {
    let test = "hostile_input_is_dropped_and_counted";
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    if !Path::new(PYTHON).exists() {
        eprintln!("{test}: skipped, no {PYTHON}");
        return;
    }
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    let (addr_a, addr_b) = (format!("{GW_A}/24"), format!("{GW_B}/24"));
    lab.link((&a, "wa", &[&addr_a]), (&b, "wb", &[&addr_b]));
    let sock_a = lab.daemon(&a);
    let daemon_a = lab.last_spawned();
    let sock_b = lab.daemon(&b);
    let daemon_b = lab.last_spawned();
    lab.load(&a, &sock_a, &transport_config(Suite::EspCbc, true));
    load_with_replay(
        &lab,
        &b,
        &sock_b,
        &transport_config(Suite::EspCbc, false),
        WINDOW,
    );
    lab.ping(&a, GW_A, GW_B);

    let spi = u32::from_str_radix(SPI_AB.trim_start_matches("0x"), 16).unwrap();
    let before = input_packets(&lab, &b, &sock_b, spi);
    let out = lab.try_exec(
        &a,
        &[
            PYTHON, ATTACKER, "--iface", "wa", "--local", GW_A, "--remote", GW_B, "--spoof",
            SPOOFED, "--spi", SPI_AB, "--mark", MARK, "--rounds", "64",
        ],
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("{test}: the attacker says:\n{said}");
    let log_b = format!("{b}-ipsecd.log");
    assert!(
        out.status.success(),
        "the attack failed or was answered:\n{said}\nipsecd in B:\n{}",
        lab.log(&log_b)
    );
    let legit: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("legit "))
        .and_then(|n| n.parse().ok())
        .expect("the attacker says how many genuine packets it caused");
    let sent: u64 = said
        .lines()
        .filter_map(|l| {
            l.strip_prefix("sent ")?
                .rsplit_once(": ")?
                .1
                .parse::<u64>()
                .ok()
        })
        .sum();
    // B opened the genuine packets and nothing else.
    let after = input_packets(&lab, &b, &sock_b, spi);
    assert_eq!(after - before, legit, "B accepted hostile packets");

    // Both daemons live on, and the SAs still carry traffic: no forged
    // sequence number moved B's replay window.
    let alive = lab.running(daemon_b);
    assert!(alive, "ipsecd in B died:\n{}", lab.log(&log_b));
    assert!(lab.running(daemon_a), "ipsecd in A died");
    lab.ping(&a, GW_A, GW_B);
    lab.ping(&b, GW_B, GW_A);

    lab.stop(daemon_b);
    let log = lab.log(&log_b);
    assert!(!log.contains("panicked"), "{log}");
    let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary in:\n{log}"));
    eprintln!("{test}: B counted {summary:?}");
    for reason in [
        "malformed",
        "truncated",
        "no SA",
        "authentication failed",
        "replay",
        "policy mismatch",
        "encapsulation mismatch",
    ] {
        assert!(
            summary.dropped_in(reason) > 0,
            "no inbound drop for {reason}:\n{log}"
        );
    }
    // Every hostile packet met its fate in the daemon: a drop with a
    // reason, or (UDP) a keepalive or a non-ESP datagram. The genuine
    // traffic lost nothing.
    let dropped: u64 = summary.drops.values().map(|&(i, _)| i).sum();
    assert_eq!(
        dropped + summary.keepalives + summary.non_esp,
        sent,
        "hostile packets unaccounted for: {summary:?}"
    );
}
