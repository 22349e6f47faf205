//! A lossy, reordering, duplicating wire: each packet between the two
//! gateways is delayed 10 ms ± 5 ms, a quarter of them are sent at once
//! (ahead of those delayed), 5% are duplicated and 2% lost, both ways.
//! Where the kernel has netem (sch_netem), netem does it on both
//! gateways' outer interfaces (`tc qdisc add dev IF root netem ...`);
//! where it has not, the wire is cut in two through a third namespace
//! in which `tests/netem/impair.py` (standard library only, its random
//! numbers seeded) relays each frame with the same impairments. Through
//! an ESP tunnel whose SAs have the replay window on (keyed with keymgr:
//! SAs from ipsec.conf have none), a burst of pings and a TCP transfer
//! must come through whole, the pings without a duplicate reply.
//! Captures of what arrived on each gateway's outer interface say which
//! ESP sequence numbers came twice, or behind a later one: each daemon
//! must have refused as `replay` exactly the copies that the window
//! (`ipsec_engine::replay::WINDOW` packets) refuses, opened every other
//! packet, and failed no integrity check. Prints which impairment it
//! used. Needs root (CI runs as root), and netem or `/usr/bin/python3`;
//! skipped otherwise.

use crate::datapath::{Lab, run, text};
use crate::interop::{AUTH_AB, AUTH_BA, ENC_AB, ENC_BA, PYTHON, Summary};
use ipsec_engine::replay::WINDOW;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TEST: &str = "esp_survives_reordering_duplication_and_loss";

/// What netem does to each packet that leaves a gateway. Reordering
/// needs the delay: the packets netem picks are sent at once, ahead of
/// those it holds.
const NETEM: [&str; 10] = [
    "delay",
    "10ms",
    "5ms",
    "reorder",
    "25%",
    "50%",
    "duplicate",
    "5%",
    "loss",
    "2%",
];

/// The same impairments, by `tests/netem/impair.py`, when the kernel has
/// no netem.
const RELAY: [&str; 10] = [
    "--delay",
    "10",
    "--jitter",
    "5",
    "--now",
    "0.25",
    "--duplicate",
    "0.05",
    "--loss",
    "0.02",
];

const IMPAIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netem/impair.py");

/// impair.py's random numbers: the fate of the n-th packet each way is
/// the same in every run.
const SEED: u64 = 1950;

const GW_A: &str = "192.0.2.1";
const GW_B: &str = "192.0.2.2";
const HOST_A: &str = "10.61.1.1";
const HOST_B: &str = "10.61.2.1";
/// The SPIs: A to B, and B to A.
const SPI_AB: u32 = 0x6200;
const SPI_BA: u32 = 0x6201;

const PINGS: u64 = 200;
/// What the TCP transfer carries, in bytes.
const BYTES: u64 = 4 << 20;

/// Puts netem on `ifname` in `ns`. Without netem in the kernel (and no
/// module to load), says why.
fn netem(lab: &Lab, ns: &str, ifname: &str) -> Result<(), String> {
    let mut args = vec!["tc", "qdisc", "add", "dev", ifname, "root", "netem"];
    args.extend(NETEM);
    let mut out = lab.try_exec(ns, &args);
    let unknown = |out: &std::process::Output| text(&out.stderr).contains("qdisc kind is unknown");
    if !out.status.success() && unknown(&out) {
        let loaded = Command::new("modprobe").arg("sch_netem").output();
        out = lab.try_exec(ns, &args);
        if !out.status.success() && unknown(&out) {
            let why = match loaded {
                Ok(m) if m.status.success() => "modprobe sch_netem succeeded".to_string(),
                Ok(m) => format!("modprobe sch_netem: {}", text(&m.stderr).trim()),
                Err(e) => format!("modprobe: {e}"),
            };
            return Err(format!(
                "tc: {}; {why}; it needs CONFIG_NET_SCH_NETEM",
                text(&out.stderr).trim()
            ));
        }
    }
    assert!(
        out.status.success(),
        "{ns}: {} failed: {}",
        args.join(" "),
        text(&out.stderr)
    );
    Ok(())
}

/// Who impairs the wire.
enum Impairment {
    /// netem, on both gateways' outer interfaces.
    Netem,
    /// impair.py, between them: its process.
    Relay(usize),
}

/// Impairs the wire between the gateways `a` and `b` of
/// [`Lab::gateways`]: with netem if the kernel has it, with impair.py
/// otherwise. None, having said why, when neither can.
fn impair(lab: &mut Lab, a: &str, b: &str) -> Option<Impairment> {
    let why = match netem(lab, a, "wa") {
        Ok(()) => {
            netem(lab, b, "wb").unwrap_or_else(|why| panic!("{b}: netem on wb: {why}"));
            eprintln!("{TEST}: impairment: netem {} on wa and wb", NETEM.join(" "));
            return Some(Impairment::Netem);
        }
        Err(why) => why,
    };
    if !Path::new(PYTHON).exists() {
        eprintln!("{TEST}: skipped, this kernel has no netem ({why}), and there is no {PYTHON}");
        return None;
    }
    let relay = relay(lab, a, b);
    eprintln!(
        "{TEST}: impairment: tests/netem/impair.py --seed {SEED} {} between wa and wb, \
         since this kernel has no netem ({why})",
        RELAY.join(" ")
    );
    Some(Impairment::Relay(relay))
}

/// Replaces the wire between `a` and `b` (a veth pair, `wa` to `wb`)
/// with two, `wa` to `qa` and `qb` to `wb`, whose middle ends are in a
/// namespace of their own where impair.py relays each frame from one to
/// the other. The gateways keep their interfaces' names and addresses.
/// Returns impair.py's process once it listens.
fn relay(lab: &mut Lab, a: &str, b: &str) -> usize {
    // The other end goes with it.
    lab.exec(a, &["ip", "link", "del", "wa"]);
    let m = lab.namespace("m");
    // The middle's own stack stays out of the way: no forwarding, no
    // IPv6 (its neighbour discovery), no addresses.
    for setting in [
        "net.ipv4.ip_forward=0",
        "net.ipv6.conf.all.forwarding=0",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        lab.exec(&m, &["sysctl", "-qw", setting]);
    }
    let (addr_a, addr_b) = (format!("{GW_A}/24"), format!("{GW_B}/24"));
    lab.link((a, "wa", &[&addr_a]), (&m, "qa", &[]));
    lab.link((b, "wb", &[&addr_b]), (&m, "qb", &[]));
    let seed = SEED.to_string();
    let mut args = vec![PYTHON, "-u", IMPAIR, "--seed", &seed];
    args.extend(RELAY);
    args.extend(["qa", "qb"]);
    let index = lab.spawn("impair.py", &m, &args, "impair.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.log("impair.log").lines().any(|l| l == "ready") {
        assert!(
            lab.running(index),
            "impair.py failed: {}",
            lab.log("impair.log")
        );
        assert!(Instant::now() < deadline, "impair.py did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    index
}

/// What impair.py did each way, from the lines it prints when it stops:
/// the way (`qa>qb`) and its counts by name.
fn relayed(log: &str) -> Vec<(String, Vec<(String, u64)>)> {
    log.lines()
        .filter_map(|line| {
            let (way, counts) = line.split_once(": ")?;
            let counts = counts
                .split(", ")
                .map(|field| {
                    let (n, what) = field.split_once(' ')?;
                    Some((what.to_string(), n.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            Some((way.to_string(), counts))
        })
        .collect()
}

/// Keys both SAs of the tunnel into the daemon at `socket`, in tunnel
/// mode, AES-CBC and HMAC-SHA2-256, with the replay window on.
fn key(lab: &Lab, ns: &str, socket: &Path) {
    let keymgr = env!("CARGO_BIN_EXE_keymgr");
    for (src, dst, spi, enc, auth) in [
        (GW_A, GW_B, SPI_AB, ENC_AB, AUTH_AB),
        (GW_B, GW_A, SPI_BA, ENC_BA, AUTH_BA),
    ] {
        let spi = format!("{spi:#x}");
        lab.exec(
            ns,
            &[
                keymgr,
                "-s",
                socket.to_str().unwrap(),
                "add",
                "--src",
                src,
                "--dst",
                dst,
                "--spi",
                &spi,
                "--enc",
                "aes",
                "--enckey",
                enc,
                "--auth",
                "hmac-sha2-256",
                "--authkey",
                auth,
                "--tunnel",
                "--replay",
                "64",
            ],
        );
    }
}

/// The ESP one way as it arrived, and what a receiver's replay window
/// makes of it.
#[derive(Debug, Default)]
struct Wire {
    /// ESP packets from the sender.
    arrived: u64,
    /// Copies of a sequence number that arrived before.
    duplicates: u64,
    /// First copies behind a higher sequence number.
    reordered: u64,
    /// What the window refuses: the duplicates, and anything older than
    /// the window.
    refused: u64,
}

/// Reads the ESP from `src` to `dst` with SPI `spi` in a capture, in the
/// order it arrived, through a replay window of [`WINDOW`] packets.
fn wire(file: &Path, src: &str, dst: &str, spi: u32) -> Wire {
    let filter = format!("esp and src host {src} and dst host {dst}");
    let out = run("tcpdump", &["-nn", "-r", file.to_str().unwrap(), &filter]);
    assert!(out.status.success(), "tcpdump -r: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    let head = format!("ESP(spi={spi:#010x},seq=0x");
    let (mut wire, mut seen, mut firsts, mut top) =
        (Wire::default(), HashSet::new(), HashSet::new(), 0u64);
    for line in shown.lines() {
        let seq = line
            .split_once(&head)
            .and_then(|(_, rest)| rest.split_once(')'))
            .and_then(|(hex, _)| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("not ESP on SPI {spi:#x}: {line}"));
        wire.arrived += 1;
        if !firsts.insert(seq) {
            wire.duplicates += 1;
        } else if seq < top {
            wire.reordered += 1;
        }
        // As ipsec_engine::replay checks: too old, then seen.
        if seq + WINDOW <= top || !seen.insert(seq) {
            wire.refused += 1;
            continue;
        }
        top = top.max(seq);
    }
    wire
}

/// A number that follows `key` in a JSON text (the first after `from`).
fn number_after(json: &str, from: usize, key: &str) -> Option<u64> {
    let key = format!("\"{key}\":");
    let at = from + json[from..].find(&key)? + key.len();
    json[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// An SA's `packets_in` and `drops_in`, from `ipsecctl -s sa --json`.
fn sa_inbound(lab: &Lab, ns: &str, socket: &Path, spi: u32) -> (u64, u64) {
    let json = lab.ipsecctl(ns, socket, &["-s", "sa", "--json"]);
    let at = json
        .find(&format!("\"spi\":\"{spi:#010x}\""))
        .unwrap_or_else(|| panic!("{ns}: no SA {spi:#x} in {json}"));
    // The members of one SA are numbers and strings: its object ends at
    // the next brace.
    let end = at + json[at..].find('}').unwrap();
    let sa = &json[..end];
    let count = |key| number_after(sa, at, key).unwrap_or_else(|| panic!("no {key} in {json}"));
    (count("packets_in"), count("drops_in"))
}

/// Captures the IPv4 that arrives on an interface: all of it but what
/// `me` sends (tcpdump's `-Q in` would count what it leaves out as
/// received and not captured). Each packet is handed over as it comes
/// (the capture of [`Lab::capture`] hands them over in blocks, and loses
/// the last one when it stops): the order of a capture is the order in
/// which the daemon's socket received them. Only the headers, up to the
/// ESP sequence number, into a large buffer: in immediate mode each
/// packet takes a slot of the snapshot length, and a buffer that fills
/// up (the gateways, the transfer and impair.py share few CPUs) drops
/// packets, which [`whole`] then refuses.
fn capture(lab: &mut Lab, ns: &str, ifname: &str, me: &str) -> (usize, PathBuf) {
    let filter = format!("ip and not src host {me}");
    let options = ["--immediate-mode", "-s", "96", "-B", "32768"];
    lab.capture_with(ns, ifname, &options, Some(&filter))
}

/// Whether a stopped capture kept every packet it was given: its count
/// of packets captured, received by the filter and dropped by the kernel.
fn whole(log: &str) -> bool {
    let count = |what: &str| {
        log.lines()
            .find_map(|l| l.strip_suffix(what))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let captured = count(" packets captured");
    captured.is_some()
        && captured == count(" packets received by filter")
        && count(" packets dropped by kernel") == Some(0)
}

/// The bytes of `part` ("sum_sent" or "sum_received") in iperf3's JSON
/// report.
fn iperf_bytes(report: &str, part: &str) -> Option<u64> {
    let at = report.rfind(&format!("\"{part}\""))?;
    number_after(report, at, "bytes")
}

#[test]
fn esp_survives_reordering_duplication_and_loss() {
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let started = Instant::now();
    let (a, b) = lab.gateways();
    let Some(impairment) = impair(&mut lab, &a, &b) else {
        return;
    };
    let sock_a = lab.daemon(&a);
    let daemon_a = lab.last_spawned();
    let sock_b = lab.daemon(&b);
    let daemon_b = lab.last_spawned();
    // Flows from ipsec.conf, SAs from keymgr.
    let flow = |mine: &str, theirs: &str, peer: &str| {
        format!("flow esp from {mine} to {theirs} peer {peer}\n")
    };
    lab.load(&a, &sock_a, &flow("10.61.1.0/24", "10.61.2.0/24", GW_B));
    lab.load(&b, &sock_b, &flow("10.61.2.0/24", "10.61.1.0/24", GW_A));
    key(&lab, &a, &sock_a);
    key(&lab, &b, &sock_b);
    // What arrives on each outer interface, from the first packet on.
    let (dump_a, file_a) = capture(&mut lab, &a, "wa", GW_A);
    let (dump_b, file_b) = capture(&mut lab, &b, "wb", GW_B);
    lab.ping(&a, HOST_A, HOST_B);

    // A burst of pings: a duplicate that got through would be a reply
    // marked DUP!.
    let count = PINGS.to_string();
    let out = lab.try_exec(
        &a,
        &[
            "ping", "-c", &count, "-i", "0.01", "-W", "1", "-I", HOST_A, HOST_B,
        ],
    );
    let said = text(&out.stdout);
    let received: u64 = said
        .lines()
        .find_map(|l| l.split_once(" packets transmitted, ")?.1.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary from ping: {said}{}", text(&out.stderr)));
    assert!(
        received * 5 >= PINGS * 4,
        "{received} of {PINGS} replies: {said}"
    );
    assert!(!said.contains("DUP!"), "a duplicate got through: {said}");

    // A TCP transfer, which must recover from what the wire does: from B
    // to A (-R), since the receiving end counts every byte it read, while
    // a sending client stops counting at its last write, with segments
    // still to be sent again.
    let server = lab.spawn(
        "iperf3 server",
        &b,
        &["iperf3", "-s", "-1", "-B", HOST_B, "-J"],
        "iperf3-server.json",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&lab.exec(&b, &["ss", "-Hltn", "sport = :5201"]).stdout).contains("5201") {
        assert!(Instant::now() < deadline, "iperf3 -s did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let bytes = BYTES.to_string();
    let out = lab.try_exec(
        &a,
        &[
            "iperf3",
            "-c",
            HOST_B,
            "-B",
            HOST_A,
            "-n",
            &bytes,
            "-R",
            "-J",
            "--connect-timeout",
            "5000",
        ],
    );
    let report = text(&out.stdout);
    assert!(
        out.status.success() && !report.contains("\"error\""),
        "the transfer failed: {report}{}",
        text(&out.stderr)
    );
    let _ = lab.wait(server);
    // All that was asked for arrived. In reverse mode iperf3's sender
    // may write one more block (128 KiB) before it sees the count
    // reached, and the receiver count a little of it (one CI run: 4 MiB
    // + 128 KiB sent, 4 MiB + 6440 bytes received).
    const BLOCK: u64 = 128 << 10;
    let sent = iperf_bytes(&report, "sum_sent").expect("bytes sent");
    let got = iperf_bytes(&report, "sum_received").expect("bytes received");
    assert!((BYTES..=BYTES + BLOCK).contains(&sent), "{report}");
    assert!((BYTES..=sent).contains(&got), "{report}");
    let retransmits = report
        .rfind("\"sum_sent\"")
        .and_then(|at| number_after(&report, at, "retransmits"));
    eprintln!(
        "{TEST}: {received} of {PINGS} ping replies; {BYTES} bytes by TCP, \
         retransmissions {retransmits:?}"
    );

    // Let the last packets held arrive, then count.
    std::thread::sleep(Duration::from_millis(200));
    if let Impairment::Relay(relay) = impairment {
        // Nothing crosses the wire any more.
        lab.stop(relay);
    }
    lab.stop(dump_a);
    lab.stop(dump_b);
    let sa_b = sa_inbound(&lab, &b, &sock_b, SPI_AB);
    let sa_a = sa_inbound(&lab, &a, &sock_a, SPI_BA);
    lab.stop(daemon_a);
    lab.stop(daemon_b);
    // What impair.py handed to each gateway's interface: (to B, to A).
    let relayed = match impairment {
        Impairment::Netem => {
            let qdisc = |ns: &str, ifname| {
                text(
                    &lab.exec(ns, &["tc", "-s", "qdisc", "show", "dev", ifname])
                        .stdout,
                )
            };
            eprintln!(
                "{TEST}: netem in A:\n{}netem in B:\n{}",
                qdisc(&a, "wa"),
                qdisc(&b, "wb")
            );
            None
        }
        Impairment::Relay(_) => {
            let log = lab.log("impair.log");
            eprintln!("{TEST}: impair.py:\n{log}");
            let ways = relayed(&log);
            let way = |name: &str| {
                let counts = &ways
                    .iter()
                    .find(|(way, _)| way == name)
                    .unwrap_or_else(|| panic!("impair.py said nothing of {name}: {log}"))
                    .1;
                let count = |what: &str| {
                    counts
                        .iter()
                        .find(|(w, _)| w == what)
                        .map(|&(_, n)| n)
                        .unwrap_or_else(|| panic!("impair.py, {name}: no {what}: {log}"))
                };
                // It did what it was asked to.
                for what in ["duplicated", "lost", "at once", "delayed"] {
                    assert!(count(what) > 0, "impair.py, {name}: none {what}: {log}");
                }
                count("sent")
            };
            Some((way("qa>qb"), way("qb>qa")))
        }
    };

    for (ns, to, file, (src, dst, spi), (packets_in, drops_in), sent) in [
        (
            &b,
            "B",
            &file_b,
            (GW_A, GW_B, SPI_AB),
            sa_b,
            relayed.map(|(to_b, _)| to_b),
        ),
        (
            &a,
            "A",
            &file_a,
            (GW_B, GW_A, SPI_BA),
            sa_a,
            relayed.map(|(_, to_a)| to_a),
        ),
    ] {
        let dump = lab.log(&format!("{ns}-tcpdump.log"));
        assert!(whole(&dump), "{ns}: the capture is not whole: {dump}");
        // The capture has every IPv4 packet that reached the interface.
        if let Some(sent) = sent {
            let captured = lab.count(file, "ip") as u64;
            assert_eq!(captured, sent, "to {to}: captured, of those impair.py sent");
        }
        let log = lab.log(&format!("{ns}-ipsecd.log"));
        assert!(!log.contains("panicked"), "{log}");
        let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary in:\n{log}"));
        let wire = wire(file, src, dst, spi);
        let replay = summary.dropped_in("replay");
        eprintln!(
            "{TEST}: to {to}: {wire:?}; SA {spi:#x}: {packets_in} in, {drops_in} dropped; \
             ipsecd: {summary:?}"
        );
        // The wire did what it was asked to.
        assert!(wire.duplicates > 0, "to {to}: no duplicate on the wire");
        assert!(wire.reordered > 0, "to {to}: nothing reordered on the wire");
        // The window caught each duplicate, and let through each packet
        // that was only late.
        assert!(replay > 0, "to {to}: no replay counted: {log}");
        assert_eq!(replay, wire.refused, "to {to}: {wire:?}, {summary:?}");
        assert!(replay * 5 < wire.arrived, "to {to}: {wire:?}");
        assert_eq!(drops_in, replay, "to {to}: SA {spi:#x}");
        assert_eq!(packets_in, wire.arrived - wire.refused, "to {to}: {wire:?}");
        assert_eq!(summary.protected_in, packets_in, "to {to}: {summary:?}");
        // Nothing else went wrong on the way in.
        for reason in [
            "malformed",
            "authentication failed",
            "bad padding",
            "no SA",
            "policy mismatch",
            "no policy",
        ] {
            assert_eq!(summary.dropped_in(reason), 0, "to {to}: {reason}: {log}");
        }
    }
    eprintln!("{TEST}: {:?}", started.elapsed());
}
