//! `iked` end to end: two gateways, each running `ipsecd` and `iked` in a
//! namespace of its own; `ipsecctl -i` hands each its `ike` rule, one
//! active and one passive, with a shared key. The tunnel comes up by
//! itself, ping and TCP cross, `ipsecctl -s` shows the SAs iked keyed,
//! and removing the rule on one side (`ipsecctl -d`) ends the SAs on both.
//!
//! ```text
//! [a] 10.1.0.1 (lo) 192.0.2.1 wa ==== wb 192.0.2.2 10.2.0.1 (lo) [b]
//! ```

use crate::datapath::{Lab, run, text};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The test's traffic, were it in the clear (an ICMP error about IKE
/// is not).
const CLEAR: &str = "tcp or icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply";
const KEY: &str = "a key for iked and iked";

/// Starts iked beside the ipsecd at `ipsecd`; returns its socket.
pub(crate) fn iked(lab: &mut Lab, ns: &str, ipsecd: &std::path::Path) -> PathBuf {
    iked_with(lab, ns, ipsecd, &[])
}

/// [`iked`] with more arguments.
pub(crate) fn iked_with(
    lab: &mut Lab,
    ns: &str,
    ipsecd: &std::path::Path,
    more: &[&str],
) -> PathBuf {
    let socket = lab.dir.join(format!("{ns}-iked.sock"));
    let mut args = vec![
        env!("CARGO_BIN_EXE_iked"),
        "-dv",
        "-s",
        socket.to_str().unwrap(),
        "-S",
        ipsecd.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    lab.spawn("iked", ns, &args, &format!("{ns}-iked.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "iked in {ns} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    socket
}

/// Runs `ipsecctl` in `ns` against both daemons.
pub(crate) fn ipsecctl(
    lab: &Lab,
    ns: &str,
    ipsecd: &std::path::Path,
    iked: &std::path::Path,
    args: &[&str],
) -> String {
    let mut all = vec![
        env!("CARGO_BIN_EXE_ipsecctl"),
        "-S",
        ipsecd.to_str().unwrap(),
        "-i",
        iked.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    text(&lab.exec(ns, &all).stdout)
}

/// Waits until `ipsecctl -s sa` in `ns` lists `n` SAs.
pub(crate) fn wait_for_sas(
    lab: &Lab,
    ns: &str,
    ipsecd: &std::path::Path,
    iked: &std::path::Path,
    n: usize,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sas = ipsecctl(lab, ns, ipsecd, iked, &["-s", "sa"]);
        if sas.lines().count() == n {
            return sas;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}: {n} SAs awaited, have:\n{sas}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Namespaces `a` and `b` joined by a veth pair, 192.0.2.1 and
/// 192.0.2.2, with 10.1.0.1 and 10.2.0.1 on their loopbacks (the hosts
/// the tunnel joins).
pub(crate) fn two_hosts(lab: &mut Lab) -> (String, String) {
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    lab.link((&a, "wa", &["192.0.2.1/24"]), (&b, "wb", &["192.0.2.2/24"]));
    lab.exec(&a, &["ip", "addr", "add", "10.1.0.1/32", "dev", "lo"]);
    lab.exec(&b, &["ip", "addr", "add", "10.2.0.1/32", "dev", "lo"]);
    (a, b)
}

#[test]
fn two_ikeds_key_a_tunnel_and_take_it_down() {
    const TEST: &str = "two_ikeds_key_a_tunnel_and_take_it_down";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (a, b) = two_hosts(&mut lab);
    let (da, db) = (lab.daemon(&a), lab.daemon(&b));
    let (ia, ib) = (iked(&mut lab, &a, &da), iked(&mut lab, &b, &db));
    let conf_a = lab.config_file(
        "a.conf",
        &format!(
            "ike active esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 \
             srcid a.example dstid b.example psk \"{KEY}\"\n"
        ),
    );
    let conf_b = lab.config_file(
        "b.conf",
        &format!(
            "ike passive esp from 10.2.0.1 to 10.1.0.1 local 192.0.2.2 peer 192.0.2.1 \
             srcid b.example dstid a.example psk \"{KEY}\"\n"
        ),
    );
    let (dump, file) = lab.capture(&a, "wa");
    let started = Instant::now();
    ipsecctl(&lab, &b, &db, &ib, &["-f", conf_b.to_str().unwrap()]);
    ipsecctl(&lab, &a, &da, &ia, &["-f", conf_a.to_str().unwrap()]);
    let sas = wait_for_sas(&lab, &a, &da, &ia, 2);
    eprintln!(
        "{TEST}: tunnel up {} ms after the rules went in",
        started.elapsed().as_millis()
    );
    assert!(
        sas.contains("esp tunnel from 192.0.2.1 to 192.0.2.2"),
        "{sas}"
    );
    assert!(
        sas.contains("enc aes-256-gcm"),
        "the default offer's first: {sas}"
    );
    wait_for_sas(&lab, &b, &db, &ib, 2);

    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    lab.stop(dump);
    assert!(lab.count(&file, "esp") > 100, "too little ESP");
    assert_eq!(lab.count(&file, CLEAR), 0, "clear text on the wire");
    // IKE_SA_INIT and IKE_AUTH, a request and a response each.
    assert_eq!(
        lab.count(&file, "udp port 500"),
        4,
        "the exchanges on the wire"
    );

    // The rule goes on A: A tells B, and both delete their SAs.
    ipsecctl(&lab, &a, &da, &ia, &["-d", "-f", conf_a.to_str().unwrap()]);
    wait_for_sas(&lab, &a, &da, &ia, 0);
    wait_for_sas(&lab, &b, &db, &ib, 0);
    let log_b = lab.log(&format!("{b}-iked.log"));
    assert!(log_b.contains("deleted the IKE SA"), "{log_b}");
    // A's flows went with its rule; B's stay, holding its traffic back.
    let flows_a = ipsecctl(&lab, &a, &da, &ia, &["-s", "flow"]);
    assert!(flows_a.trim().is_empty(), "{flows_a}");
    let flows_b = ipsecctl(&lab, &b, &db, &ib, &["-s", "flow"]);
    assert_eq!(flows_b.lines().count(), 2, "{flows_b}");
    // -F takes iked's rules too.
    ipsecctl(&lab, &b, &db, &ib, &["-F"]);
    let flows_b = ipsecctl(&lab, &b, &db, &ib, &["-s", "flow"]);
    assert!(flows_b.trim().is_empty(), "{flows_b}");
}

/// A gateway: its namespace, `ipsecd`'s socket and `iked`'s.
type Gateway = (String, PathBuf, PathBuf);

/// Two gateways with `ipsecd` and `iked`, each loaded with its rule:
/// A's starts as `a_mode` says, B's is passive; `extra` goes into both
/// (a `quick` block, say). B reads the pre-shared key from a file, A
/// from its rule. Returns the lab and, for A then B, the
/// namespace and the two sockets.
fn two_gateways(test: &str, a_mode: &str, extra: &str) -> Option<(Lab, [Gateway; 2])> {
    let mut lab = Lab::new(test)?;
    let (a, b) = two_hosts(&mut lab);
    let (da, db) = (lab.daemon(&a), lab.daemon(&b));
    let (ia, ib) = (iked(&mut lab, &a, &da), iked(&mut lab, &b, &db));
    for (ns, me, peer, mine, theirs, mode, d, i) in [
        (
            &b,
            "192.0.2.2",
            "192.0.2.1",
            "10.2.0.1",
            "10.1.0.1",
            "passive",
            &db,
            &ib,
        ),
        (
            &a,
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.1",
            "10.2.0.1",
            a_mode,
            &da,
            &ia,
        ),
    ] {
        // B reads its key from a file, A from the rule: both must agree.
        let psk = if *ns == b {
            let file = lab.config_file(&format!("{ns}.psk"), &format!("{KEY}\n"));
            format!("psk file \"{}\"", file.display())
        } else {
            format!("psk \"{KEY}\"")
        };
        let conf = lab.config_file(
            &format!("{ns}.conf"),
            &format!(
                "ike {mode} esp from {mine} to {theirs} local {me} peer {peer} {extra} {psk}\n"
            ),
        );
        ipsecctl(&lab, ns, d, i, &["-f", conf.to_str().unwrap()]);
    }
    Some((lab, [(a, da, ia), (b, db, ib)]))
}

#[test]
fn a_child_sa_is_rekeyed_under_a_tcp_transfer() {
    const TEST: &str = "a_child_sa_is_rekeyed_under_a_tcp_transfer";
    let Some((mut lab, [(a, da, ia), (b, db, ib)])) =
        two_gateways(TEST, "active", "quick lifetime 8")
    else {
        return;
    };
    let first = wait_for_sas(&lab, &a, &da, &ia, 2);
    wait_for_sas(&lab, &b, &db, &ib, 2);
    // TCP for 14 seconds: the SAs' soft lifetime (6 or 7 s) and their
    // hard one (8 s) fall inside it.
    lab.spawn(
        "iperf3 server",
        &b,
        &["iperf3", "-s", "-1", "-B", "10.2.0.1"],
        &format!("{b}-iperf3.log"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.try_exec(
        &a,
        &[
            "iperf3",
            "-c",
            "10.2.0.1",
            "-B",
            "10.1.0.1",
            "-t",
            "14",
            "--connect-timeout",
            "2000",
        ],
    );
    assert!(
        out.status.success(),
        "the transfer broke: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for (ns, d, i) in [(&a, &da, &ia), (&b, &db, &ib)] {
        let log = lab.log(&format!("{ns}-iked.log"));
        assert!(log.contains("rekeyed"), "{ns}: {log}");
        // The old SAs went: two remain, new ones.
        let sas = wait_for_sas(&lab, ns, d, i, 2);
        assert_ne!(sas, first, "{ns}: the same SAs after the rekey");
    }
}

#[test]
fn a_dynamic_rule_keys_the_tunnel_when_the_first_packet_asks() {
    const TEST: &str = "a_dynamic_rule_keys_the_tunnel_when_the_first_packet_asks";
    let Some((mut lab, [(a, da, ia), (b, db, ib)])) = two_gateways(TEST, "dynamic", "") else {
        return;
    };
    // Nothing is negotiated until traffic comes; the flows are in.
    std::thread::sleep(Duration::from_millis(500));
    let sas = ipsecctl(&lab, &a, &da, &ia, &["-s", "sa"]);
    assert!(sas.trim().is_empty(), "keyed before any traffic: {sas}");
    let flows = ipsecctl(&lab, &a, &da, &ia, &["-s", "flow"]);
    assert_eq!(flows.lines().count(), 2, "{flows}");
    // The first packet is held back: ipsecd asks iked (SADB_ACQUIRE).
    let (dump, file) = lab.capture(&a, "wa");
    let started = Instant::now();
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    eprintln!(
        "{TEST}: traffic crossed {} ms after the first packet",
        started.elapsed().as_millis()
    );
    wait_for_sas(&lab, &a, &da, &ia, 2);
    wait_for_sas(&lab, &b, &db, &ib, 2);
    lab.stop(dump);
    let esp = lab.count(&file, "esp");
    let ike = lab.count(&file, "udp port 500");
    assert!(esp >= 3, "the pings went in ESP: {esp} ESP, {ike} IKE");
    assert_eq!(lab.count(&file, CLEAR), 0, "clear text on the wire");
    let log = lab.log(&format!("{a}-iked.log"));
    assert!(log.contains("IKE SA with 192.0.2.2 up"), "{log}");
}

/// Runs `ikectl` in `ns` against the iked at `iked`.
pub(crate) fn ikectl(
    lab: &Lab,
    ns: &str,
    iked: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec![env!("CARGO_BIN_EXE_ikectl"), "-s", iked.to_str().unwrap()];
    all.extend_from_slice(args);
    lab.try_exec(ns, &all)
}

#[test]
fn ikectl_shows_the_sas_and_takes_a_rule_down_and_up() {
    const TEST: &str = "ikectl_shows_the_sas_and_takes_a_rule_down_and_up";
    let Some((lab, [(a, da, ia), (b, db, ib)])) =
        two_gateways(TEST, "active", "quick lifetime 600")
    else {
        return;
    };
    wait_for_sas(&lab, &a, &da, &ia, 2);
    wait_for_sas(&lab, &b, &db, &ib, 2);
    let shown = text(&ikectl(&lab, &a, &ia, &["show"]).stdout);
    assert!(
        shown.starts_with("rule 1: ike active esp tunnel from 10.1.0.1 to 10.2.0.1"),
        "{shown}"
    );
    assert!(shown.contains(": up\n"), "{shown}");
    assert!(
        shown.contains("with 192.0.2.2:500 (up, initiator)"),
        "{shown}"
    );
    assert!(shown.contains("enc aes-256-gcm"), "{shown}");
    assert!(shown.contains("Child SA 0x"), "{shown}");
    assert!(shown.contains(", rekeyed in "), "{shown}");
    assert!(!shown.contains("psk"), "the key is not shown: {shown}");
    let json = text(&ikectl(&lab, &a, &ia, &["-j", "show"]).stdout);
    assert!(json.starts_with("{\"rules\":[{\"number\":1,"), "{json}");
    assert!(json.contains("\"state\":\"up\""), "{json}");
    let shown_b = text(&ikectl(&lab, &b, &ib, &["show"]).stdout);
    assert!(shown_b.contains("(up, responder)"), "{shown_b}");

    // Down on A: both ends delete their SAs, and A's flows hold its
    // traffic back.
    assert!(ikectl(&lab, &a, &ia, &["down", "1"]).status.success());
    wait_for_sas(&lab, &a, &da, &ia, 0);
    wait_for_sas(&lab, &b, &db, &ib, 0);
    let shown = text(&ikectl(&lab, &a, &ia, &["show"]).stdout);
    assert!(shown.contains(": down (by hand)\n"), "{shown}");
    assert!(
        !lab.try_exec(
            &a,
            &["ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"]
        )
        .status
        .success(),
        "a rule taken down lets nothing through"
    );
    let flows = ipsecctl(&lab, &a, &da, &ia, &["-s", "flow"]);
    assert_eq!(flows.lines().count(), 2, "{flows}");
    // Up again.
    assert!(ikectl(&lab, &a, &ia, &["up", "1"]).status.success());
    wait_for_sas(&lab, &a, &da, &ia, 2);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    let wrong = ikectl(&lab, &a, &ia, &["up", "7"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("no rule 7"),
        "{}",
        text(&wrong.stderr)
    );
}

#[test]
fn the_ike_sa_is_rekeyed_and_the_tunnel_carries_on() {
    const TEST: &str = "the_ike_sa_is_rekeyed_and_the_tunnel_carries_on";
    let Some((mut lab, [(a, da, ia), (b, db, ib)])) =
        two_gateways(TEST, "active", "main lifetime 5")
    else {
        return;
    };
    let first = wait_for_sas(&lab, &a, &da, &ia, 2);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    // Each end rekeys within 4 to 4.5 seconds of the IKE SA's making,
    // unless the other did first; the new SA is rekeyed in its turn.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rekeys = |ns: &str| {
        lab.log(&format!("{ns}-iked.log"))
            .matches("rekeyed, now")
            .count()
    };
    while rekeys(&a) < 2 || rekeys(&b) < 2 {
        assert!(
            Instant::now() < deadline,
            "{}",
            lab.log(&format!("{a}-iked.log"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The Child SA went over to the new IKE SAs untouched, the old ones
    // are gone, and traffic crosses.
    assert_eq!(wait_for_sas(&lab, &a, &da, &ia, 2), first);
    wait_for_sas(&lab, &b, &db, &ib, 2);
    for (ns, i) in [(&a, &ia), (&b, &ib)] {
        let shown = text(&ikectl(&lab, ns, i, &["show"]).stdout);
        assert_eq!(shown.matches("IKE SA ").count(), 1, "{shown}");
    }
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    for ns in [&a, &b] {
        let log = lab.log(&format!("{ns}-iked.log"));
        assert!(!log.contains("failed") && !log.contains("refused"), "{log}");
    }
}

/// A directory as `iked -c` reads it, with `who`'s key and certificate
/// from the test certificates and the test authority.
pub(crate) fn pki_dir(lab: &Lab, who: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ike/testdata/pki");
    let dir = lab.dir.join(format!("{who}-pki"));
    for (from, to, mode) in [
        (format!("{who}.key"), "private/local.key", 0o600),
        (format!("{who}.crt"), "certs/local.crt", 0o644),
        ("ca.crt".to_owned(), "ca/ca.crt", 0o644),
    ] {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(fixtures.join(from), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

#[test]
fn two_ikeds_key_a_tunnel_with_certificates() {
    const TEST: &str = "two_ikeds_key_a_tunnel_with_certificates";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (a, b) = two_hosts(&mut lab);
    let (da, db) = (lab.daemon(&a), lab.daemon(&b));
    // A's key is ECDSA P-256, B's RSA: each checks the other's signature.
    let (pa, pb) = (pki_dir(&lab, "a"), pki_dir(&lab, "b"));
    let ia = iked_with(&mut lab, &a, &da, &["-c", pa.to_str().unwrap()]);
    let ib = iked_with(&mut lab, &b, &db, &["-c", pb.to_str().unwrap()]);
    for (ns, d, i, rule) in [
        (
            &b,
            &db,
            &ib,
            "ike passive esp from 10.2.0.1 to 10.1.0.1 local 192.0.2.2 peer 192.0.2.1 \
             srcid b.example dstid a.example\n",
        ),
        (
            &a,
            &da,
            &ia,
            "ike active esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 \
             srcid a.example dstid b.example\n",
        ),
    ] {
        let conf = lab.config_file(&format!("{ns}.conf"), rule);
        let out = ipsecctl(&lab, ns, d, i, &["-f", conf.to_str().unwrap()]);
        assert!(!out.contains("error"), "{out}");
    }
    let (dump, file) = lab.capture(&a, "wa");
    wait_for_sas(&lab, &a, &da, &ia, 2);
    wait_for_sas(&lab, &b, &db, &ib, 2);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    lab.stop(dump);
    assert_eq!(lab.count(&file, CLEAR), 0, "clear text on the wire");
    // A rule that asks for another identity than B's certificate names
    // is refused: B's certificate is for b.example only.
    let wrong = lab.config_file(
        "wrong.conf",
        "ike active esp from 10.1.0.2 to 10.2.0.2 local 192.0.2.1 peer 192.0.2.2 \
         srcid a.example dstid c.example\n",
    );
    let rule_b = lab.config_file(
        "b2.conf",
        "ike passive esp from 10.2.0.2 to 10.1.0.2 local 192.0.2.2 peer 192.0.2.1 \
         srcid b.example dstid a.example\n",
    );
    ipsecctl(&lab, &b, &db, &ib, &["-f", rule_b.to_str().unwrap()]);
    ipsecctl(&lab, &a, &da, &ia, &["-f", wrong.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab
        .log(&format!("{a}-iked.log"))
        .contains("authentication failed")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            lab.log(&format!("{a}-iked.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(wait_for_sas(&lab, &a, &da, &ia, 2).lines().count(), 2);
}

#[test]
fn a_rule_without_a_shared_key_needs_the_certificates() {
    const TEST: &str = "a_rule_without_a_shared_key_needs_the_certificates";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let a = lab.namespace("a");
    let da = lab.daemon(&a);
    let missing = lab.dir.join("nothing-here");
    let ia = iked_with(&mut lab, &a, &da, &["-c", missing.to_str().unwrap()]);
    let conf = lab.config_file(
        "a.conf",
        "ike active esp from 10.1.0.1 to 10.2.0.1 local 127.0.0.1 peer 192.0.2.2\n",
    );
    let out = lab.try_exec(
        &a,
        &[
            env!("CARGO_BIN_EXE_ipsecctl"),
            "-S",
            da.to_str().unwrap(),
            "-i",
            ia.to_str().unwrap(),
            "-f",
            conf.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("nothing-here/private/local.key"), "{said}");
}

/// IKE_SA_INIT requests for `rule` (as A would send them), one for each
/// SPI in `spis`.
fn init_requests(rule: &str, spis: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    use ipsec_compiler::{Fixed, RuleKind, compile_text};
    use ipsec_ike::exchange::handshake::{Initiator, Path};
    let out = compile_text("flood", rule, &Fixed::standard(), &Default::default());
    let RuleKind::Ike(ike) = &out.rules[0].kind else {
        panic!("not an ike rule");
    };
    let none = || Err("no certificates".to_owned());
    let policy = ipsec_ike::policy::policy(ike, "flood".into(), &|_| None, &none).unwrap();
    let path = Path {
        local: "192.0.2.1:500".parse().unwrap(),
        remote: "192.0.2.2:500".parse().unwrap(),
    };
    let mut rng = rand_core::OsRng;
    spis.map(|spi| {
        Initiator::start(policy.config.clone(), path, spi, &mut rng)
            .unwrap()
            .1
    })
    .collect()
}

/// The drops line of `ikectl show`, as numbers in its order.
fn drops(lab: &Lab, ns: &str, iked: &std::path::Path) -> Vec<u64> {
    let shown = text(&ikectl(lab, ns, iked, &["show"]).stdout);
    let line = shown
        .lines()
        .find(|l| l.starts_with("dropped:"))
        .unwrap()
        .to_owned();
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn a_flood_of_ike_sa_init_meets_cookies_and_the_peer_still_gets_through() {
    const TEST: &str = "a_flood_of_ike_sa_init_meets_cookies_and_the_peer_still_gets_through";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let (a, b) = two_hosts(&mut lab);
    // Addresses no rule of B's names, for forged sources.
    for n in 100..120 {
        lab.exec(
            &a,
            &["ip", "addr", "add", &format!("192.0.2.{n}/24"), "dev", "wa"],
        );
    }
    let db = lab.daemon(&b);
    let ib = iked(&mut lab, &b, &db);
    let iked_b = lab.pid(lab.last_spawned());
    let rule_b = lab.config_file(
        "b.conf",
        &format!(
            "ike passive esp from 10.2.0.1 to 10.1.0.1 local 192.0.2.2 peer 192.0.2.1 psk \"{KEY}\"\n"
        ),
    );
    ipsecctl(&lab, &b, &db, &ib, &["-f", rule_b.to_str().unwrap()]);
    // 400 requests under A's address, and among them 100 from addresses
    // of no rule.
    let rule_a = format!(
        "ike active esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 psk \"{KEY}\"\n"
    );
    let mut lines = String::new();
    for (i, request) in init_requests(&rule_a, 1..501).iter().enumerate() {
        let source = if i % 5 == 4 { 100 + i % 20 } else { 1 };
        let hex: String = request.iter().map(|b| format!("{b:02x}")).collect();
        lines.push_str(&format!("192.0.2.{source} {hex}\n"));
    }
    let flood = lab.config_file("flood.txt", &lines);
    let sender = "import socket, sys, time\n\
        socks = {}\n\
        for line in open(sys.argv[1]):\n\
        \x20   src, hexed = line.split()\n\
        \x20   if src not in socks:\n\
        \x20       s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        \x20       s.bind((src, 500))\n\
        \x20       socks[src] = s\n\
        \x20   socks[src].sendto(bytes.fromhex(hexed), ('192.0.2.2', 500))\n\
        \x20   time.sleep(0.001)\n";
    lab.exec(&a, &["python3", "-c", sender, flood.to_str().unwrap()]);
    // [malformed, unopened, unknown SPIs, no rule, cookies, refused,
    // expired]: all but a few (a socket's queue may overflow) counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let d = drops(&lab, &b, &ib);
        if d[4] >= 300 && d[3] >= 90 {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "cookies asked, from no rule: {d:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("{TEST}: dropped after the flood: {d:?}");
    let status = std::fs::read_to_string(format!("/proc/{iked_b}/status")).unwrap();
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    eprintln!("{TEST}: iked holds {rss} kB");
    assert!(rss < 64 * 1024, "iked holds {rss} kB after the flood");
    // The real A, while the flood's half-open SAs still stand, is asked
    // for a cookie, returns it, and gets its tunnel.
    let da = lab.daemon(&a);
    let ia = iked(&mut lab, &a, &da);
    let conf_a = lab.config_file("a.conf", &rule_a);
    ipsecctl(&lab, &a, &da, &ia, &["-f", conf_a.to_str().unwrap()]);
    wait_for_sas(&lab, &a, &da, &ia, 2);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    assert!(
        drops(&lab, &b, &ib)[4] > d[4],
        "A was asked for a cookie too"
    );
}

#[test]
fn a_dead_peer_is_noticed_and_its_sas_removed() {
    const TEST: &str = "a_dead_peer_is_noticed_and_its_sas_removed";
    let Some((lab, [(a, da, ia), (b, _, _)])) = two_gateways(TEST, "active", "") else {
        return;
    };
    wait_for_sas(&lab, &a, &da, &ia, 2);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    // B's iked dies without a word.
    let pids = text(&run("ip", &["netns", "pids", &b]).stdout);
    let iked_b = pids
        .split_whitespace()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "iked")
        })
        .expect("B's iked");
    run("kill", &["-KILL", iked_b]);
    // A asks after a silent minute, and gives up after its five tries
    // (31 s): about 91 s in all.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    while !lab
        .log(&format!("{a}-iked.log"))
        .contains("stopped answering")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            lab.log(&format!("{a}-iked.log"))
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "{TEST}: the dead peer noticed after {} s",
        started.elapsed().as_secs()
    );
    assert!(started.elapsed() >= Duration::from_secs(85));
    wait_for_sas(&lab, &a, &da, &ia, 0);
    // The flows stay: what they cover is held back, not sent in clear.
    let flows = ipsecctl(&lab, &a, &da, &ia, &["-s", "flow"]);
    assert_eq!(flows.lines().count(), 2, "{flows}");
}

#[test]
fn two_ikeds_key_a_tunnel_over_ipv6() {
    const TEST: &str = "two_ikeds_key_a_tunnel_over_ipv6";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    lab.link(
        (&a, "wa", &["2001:db8::1/64"]),
        (&b, "wb", &["2001:db8::2/64"]),
    );
    lab.exec(
        &a,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:1::1/128",
            "dev",
            "lo",
            "nodad",
        ],
    );
    lab.exec(
        &b,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:2::1/128",
            "dev",
            "lo",
            "nodad",
        ],
    );
    let (da, db) = (lab.daemon(&a), lab.daemon(&b));
    let (ia, ib) = (iked(&mut lab, &a, &da), iked(&mut lab, &b, &db));
    // Identities too: a host name on one side, an address on the other.
    for (ns, d, i, rule) in [
        (
            &b,
            &db,
            &ib,
            format!(
                "ike passive esp from fd00:2::/64 to fd00:1::/64 local 2001:db8::2 \
                 peer 2001:db8::1 srcid 2001:db8::2 dstid a.example psk \"{KEY}\"\n"
            ),
        ),
        (
            &a,
            &da,
            &ia,
            format!(
                "ike active esp from fd00:1::/64 to fd00:2::/64 local 2001:db8::1 \
                 peer 2001:db8::2 srcid a.example dstid 2001:db8::2 psk \"{KEY}\"\n"
            ),
        ),
    ] {
        let conf = lab.config_file(&format!("{ns}.conf"), &rule);
        ipsecctl(&lab, ns, d, i, &["-f", conf.to_str().unwrap()]);
    }
    let (dump, file) = lab.capture(&a, "wa");
    let sas = wait_for_sas(&lab, &a, &da, &ia, 2);
    assert!(
        sas.contains("esp tunnel from 2001:db8::1 to 2001:db8::2"),
        "{sas}"
    );
    wait_for_sas(&lab, &b, &db, &ib, 2);
    lab.ping(&a, "fd00:1::1", "fd00:2::1");
    lab.stop(dump);
    assert!(lab.count(&file, "ip6 proto 50") >= 3, "ESP over IPv6");
    assert_eq!(
        lab.count(&file, "icmp6 and ip6[40] == 128"),
        0,
        "echo in the clear"
    );
}
