//! The pf-style filter (`ipsecd -p`) end to end: on `enc0` in host mode,
//! between two gateways with a tunnel, and on a bridge's port. Rules
//! pass and block exactly what they say, with pf's semantics (the last
//! match decides unless a matching rule is `quick`), their counters move
//! in the log and in `ipsecctl -s all -v`, a bad file is refused whole
//! at start, and SIGHUP with a bad file keeps the rules in force.

use crate::datapath::{Lab, Proto, config};
use crate::interop::Summary;
use std::time::Duration;

/// Whether a TCP connection from `ns` to `host:port` is accepted within
/// two seconds.
fn connects(lab: &Lab, ns: &str, host: &str, port: u16) -> bool {
    let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
    lab.try_exec(ns, &["timeout", "2", "bash", "-c", &probe])
        .status
        .success()
}

/// A TCP listener on `port` in `ns`, for [`connects`].
fn listen(lab: &mut Lab, ns: &str, address: &str, port: u16) {
    let port = port.to_string();
    lab.spawn(
        "iperf3 server",
        ns,
        &["iperf3", "-s", "-B", address, "-p", &port],
        &format!("{ns}-iperf3-{port}.log"),
    );
    std::thread::sleep(Duration::from_millis(300));
}

/// `ipsecctl -s all` and its extra arguments, against `socket` in `ns`.
fn show(lab: &Lab, ns: &str, socket: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        env!("CARGO_BIN_EXE_ipsecctl"),
        "-S",
        socket.to_str().unwrap(),
        "-s",
        "all",
    ];
    args.extend_from_slice(extra);
    String::from_utf8(lab.exec(ns, &args).stdout).unwrap()
}

/// The packets in and out `ipsecctl -s all -v` shows for each rule.
fn shown_counters(text: &str) -> Vec<(u64, u64)> {
    let number = |s: &str| s.trim().split(' ').next().unwrap().parse::<u64>().unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("\tline "))
        .map(|l| {
            let (_, ways) = l.split_once(": in ").unwrap();
            let (inbound, outbound) = ways.split_once("; out ").unwrap();
            (number(inbound), number(outbound))
        })
        .collect()
}

/// The counters the daemon logged for its rules, by rule line.
fn counters(log: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("filter rule ") else {
            continue;
        };
        let Some((_, counts)) = rest.split_once(": ") else {
            continue;
        };
        let packets = counts.split(' ').next().and_then(|n| n.parse().ok());
        seen.push(packets.unwrap_or(u64::MAX));
    }
    seen
}

#[test]
fn rules_on_enc0_pass_and_block_what_they_say() {
    const TEST: &str = "rules_on_enc0_pass_and_block_what_they_say";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (a, b) = lab.gateways();
    let rules = lab.config_file(
        "b.rules",
        "# what comes out of the tunnel to B's host\n\
         block in on enc0 proto icmp\n\
         block in on enc0 proto tcp to any port 5201\n\
         pass in quick on enc0 proto tcp from 10.61.1.0/24 to 10.61.2.1 port 5202\n\
         block in on enc0 proto tcp to any port 5202\n",
    );
    let sock_a = lab.daemon(&a);
    let sock_b = lab.daemon_with(&b, &["-p", rules.to_str().unwrap()]);
    let daemon_b = lab.last_spawned();
    let (mine, theirs) = ("10.61.1.0/24", "10.61.2.0/24");
    let (gw_a, gw_b) = ("192.0.2.1", "192.0.2.2");
    let tunnel_a = config(Proto::Esp, gw_a, gw_b, Some((mine, theirs)), true);
    let tunnel_b = config(Proto::Esp, gw_b, gw_a, Some((theirs, mine)), false);
    lab.load(&a, &sock_a, &tunnel_a);
    lab.load(&b, &sock_b, &tunnel_b);
    listen(&mut lab, &b, "10.61.2.1", 5201);
    listen(&mut lab, &b, "10.61.2.1", 5202);

    // The quick pass wins over the block after it; port 5201 and ICMP
    // are blocked; B's own traffic out is not filtered.
    assert!(connects(&lab, &a, "10.61.2.1", 5202), "5202 refused");
    assert!(!connects(&lab, &a, "10.61.2.1", 5201), "5201 got through");
    let ping = ["ping", "-c", "2", "-W", "1", "-I", "10.61.1.1", "10.61.2.1"];
    assert!(
        !lab.try_exec(&a, &ping).status.success(),
        "ICMP got through"
    );
    // ICMP from B's side goes out: only what comes in is blocked, and
    // the echo replies coming back in are blocked too.
    let ping_b = ["ping", "-c", "1", "-W", "1", "-I", "10.61.2.1", "10.61.1.1"];
    assert!(!lab.try_exec(&b, &ping_b).status.success());

    // The rules and what each decided, live: in the text after the SAs,
    // and in the JSON.
    let text = show(&lab, &b, &sock_b, &["-v"]);
    let (_, filter) = text
        .split_once("\nFILTER:\n")
        .unwrap_or_else(|| panic!("no filter section:\n{text}"));
    let written: Vec<&str> = filter.lines().filter(|l| !l.starts_with('\t')).collect();
    assert_eq!(
        written,
        [
            "block in on enc0 proto icmp",
            "block in on enc0 proto tcp to any port 5201",
            "pass in quick on enc0 proto tcp from 10.61.1.0/24 to 10.61.2.1 port 5202",
            "block in on enc0 proto tcp to any port 5202",
        ],
        "{text}"
    );
    assert!(filter.contains("\tline 2: in "), "{text}");
    let live = shown_counters(filter);
    assert_eq!(live.len(), 4, "{text}");
    assert!(live[0].0 >= 2 && live[1].0 > 0 && live[2].0 > 0, "{live:?}");
    assert_eq!(live[3], (0, 0), "{live:?}");
    assert!(live.iter().all(|&(_, out)| out == 0), "only rules for in");
    let json = show(&lab, &b, &sock_b, &["--json"]);
    let first = "\"filter\":[{\"number\":0,\"line\":2,\"rule\":\"block in on enc0 proto icmp\",\
                 \"packets_in\":";
    let (_, rest) = json.split_once(first).unwrap_or_else(|| panic!("{json}"));
    let packets: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert!(packets.parse::<u64>().unwrap() >= live[0].0, "{json}");
    // Without -v, the rules alone; without -p, no filter section at all.
    assert!(!show(&lab, &b, &sock_b, &[]).contains("\tline "));
    assert!(!show(&lab, &a, &sock_a, &["-v"]).contains("FILTER:"));

    // A bad file on SIGHUP: refused, at its place, and the rules stay.
    std::fs::write(&rules, "block in on enc0 proto frob\n").unwrap();
    // SAFETY: signalling a daemon this test started, by its pid.
    unsafe { libc::kill(lab.pid(daemon_b) as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        connects(&lab, &a, "10.61.2.1", 5202),
        "the rules in force went"
    );
    assert!(
        !connects(&lab, &a, "10.61.2.1", 5201),
        "the rules in force went"
    );

    lab.stop(daemon_b);
    let log = lab.log(&format!("{b}-ipsecd.log"));
    assert!(
        log.contains("b.rules:1:") && log.contains("unknown protocol frob"),
        "{log}"
    );
    assert!(log.contains("the rules in force stay"), "{log}");
    // Rule 1 (ICMP) and 2 (5201) blocked, 3 passed, 4 decided nothing:
    // the quick rule before it did.
    let counts = counters(&log);
    assert_eq!(counts.len(), 4, "{log}");
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] > 0,
        "{counts:?}"
    );
    assert_eq!(counts[3], 0, "{counts:?}");
    let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary:\n{log}"));
    assert!(summary.dropped_in("filtered") > 0, "{log}");
}

#[test]
fn rules_on_a_bridge_port_pass_and_block_what_they_say() {
    const TEST: &str = "rules_on_a_bridge_port_pass_and_block_what_they_say";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (host, peer) = ("10.9.0.1", "10.9.0.2");
    let h = lab.namespace("h");
    let br = lab.namespace("br");
    let p = lab.namespace("p");
    lab.link((&h, "wh", &["10.9.0.1/24"]), (&br, "ba", &[]));
    lab.link((&br, "bb", &[]), (&p, "wp", &["10.9.0.2/24"]));
    let rules = lab.config_file(
        "br.rules",
        "table <peers> { 10.9.0.2 }\n\
         block in on ba proto tcp to <peers> port 5201\n\
         block in on ba proto icmp\n\
         pass out on bb proto esp\n\
         block out on bb proto icmp   # never: what leaves is protected\n",
    );
    let sock_br = lab.daemon_with(
        &br,
        &["-p", rules.to_str().unwrap(), "-b", "ba", "-b", "bb"],
    );
    let bridge = lab.last_spawned();
    let sock_p = lab.daemon(&p);
    lab.load(&br, &sock_br, &config(Proto::Esp, host, peer, None, true));
    lab.load(&p, &sock_p, &config(Proto::Esp, peer, host, None, false));
    listen(&mut lab, &p, peer, 5201);
    listen(&mut lab, &p, peer, 5202);

    assert!(connects(&lab, &h, peer, 5202), "5202 refused");
    assert!(!connects(&lab, &h, peer, 5201), "5201 got through");
    let ping = ["ping", "-c", "2", "-W", "1", "-I", host, peer];
    assert!(
        !lab.try_exec(&h, &ping).status.success(),
        "ICMP got through"
    );

    // Live, each rule counts the way it judges: the ESP that left by
    // rule 3 went out, what rules 1 and 2 blocked came in.
    let live = shown_counters(&show(&lab, &br, &sock_br, &["-v"]));
    assert_eq!(live.len(), 4, "{live:?}");
    assert!(live[0].0 > 0 && live[1].0 > 0, "{live:?}");
    assert!(live[2].0 == 0 && live[2].1 > 0, "{live:?}");

    lab.stop(bridge);
    let log = lab.log(&format!("{br}-ipsecd.log"));
    // "in" on a port sees the packet as it came, "out" as it leaves,
    // protected.
    let counts = counters(&log);
    assert_eq!(counts.len(), 4, "{log}");
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] > 0,
        "{counts:?}"
    );
    assert_eq!(counts[3], 0, "{counts:?}");
}

/// Two segments joined by two bridges over EtherIP
/// ([`crate::bridge::TwoBridges`]), the first with rules on its LAN port
/// and on its tunnel: what comes out of the tunnel, and what goes into
/// it, is judged as on an Ethernet port, and a packet blocked coming in
/// on the LAN port does not go into the tunnel either.
#[test]
fn rules_on_an_etherip_tunnel_pass_and_block_what_they_say() {
    const TEST: &str = "rules_on_an_etherip_tunnel_pass_and_block_what_they_say";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let rules = lab.config_file(
        "b1.rules",
        "block in on etherip:192.0.2.2 proto icmp from 10.5.0.2\n\
         block out on etherip:192.0.2.2 proto tcp to any port 5201\n\
         block in on la proto tcp to any port 5203\n",
    );
    let two = crate::bridge::two_bridges(&mut lab, &["-p", rules.to_str().unwrap()]);
    let (a, b) = ("10.5.0.1", "10.5.0.2");
    for port in [5201, 5202, 5203] {
        listen(&mut lab, &two.hb, b, port);
    }
    assert!(connects(&lab, &two.ha, b, 5202), "5202 refused");
    assert!(
        !connects(&lab, &two.ha, b, 5201),
        "5201 went into the tunnel"
    );
    assert!(
        !connects(&lab, &two.ha, b, 5203),
        "5203 got past the LAN port"
    );
    // ARP crossed (or nothing would have), but B's ICMP does not come out.
    let ping = ["ping", "-c", "2", "-W", "1", "-I", a, b];
    assert!(
        !lab.try_exec(&two.ha, &ping).status.success(),
        "ICMP got through"
    );

    let live = shown_counters(&show(&lab, &two.b1, &two.sock1, &["-v"]));
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live[0].0 >= 2 && live[0].1 == 0, "{live:?}");
    assert!(live[1].0 == 0 && live[1].1 > 0, "{live:?}");
    assert!(live[2].0 > 0 && live[2].1 == 0, "{live:?}");
    lab.stop(two.daemon1);
}

#[test]
fn a_bad_rules_file_stops_the_start() {
    const TEST: &str = "a_bad_rules_file_stops_the_start";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let ns = lab.namespace("x");
    let rules = lab.config_file("bad.rules", "pass all\nblock in on enc0 from 10.0.0.300\n");
    let socket = lab.dir.join("x.sock");
    let out = lab.try_exec(
        &ns,
        &[
            env!("CARGO_BIN_EXE_ipsecd"),
            "-d",
            "-s",
            socket.to_str().unwrap(),
            "-p",
            rules.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("bad.rules:2:") && said.contains("10.0.0.300: not an address"),
        "{said}"
    );
}
