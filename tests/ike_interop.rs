//! The IKEv2 core against strongSwan: charon 5.9 (Debian's, with its
//! userspace ESP, kernel-libipsec) answers in one namespace, `ikeprobe`
//! initiates from the other with a shared key, and both must come out
//! with the IKE SA authenticated and the Child SA agreed, for several
//! ciphers and groups. charon fakes a NAT to get ESP in UDP, so IKE_AUTH
//! goes over port 4500 with the non-ESP marker.
//!
//! ```text
//! [a] ikeprobe 192.0.2.1 wa ==== wb 192.0.2.2 charon [b] 10.2.0.1 (lo)
//! ```
//!
//! Needs charon (strongswan-charon, strongswan-swanctl,
//! libcharon-extra-plugins, libstrongswan-standard-plugins); skipped
//! without it.

use crate::datapath::{Lab, text};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHARON: &str = "/usr/lib/ipsec/charon";
/// The test's traffic, were it in the clear (an ICMP error about IKE
/// is not).
const CLEAR: &str = "tcp or icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply";
const KEY: &str = "a key for the interoperability test";

fn charon_or_skip(test: &str) -> bool {
    let here = Path::new(CHARON).exists();
    if !here {
        eprintln!(
            "{test}: skipped, no {CHARON} (apt install strongswan-charon strongswan-swanctl)"
        );
    }
    here
}

/// Starts charon in `ns` as the responder for 192.0.2.1, with `ike` and
/// `esp` proposals in its own syntax; returns its vici socket's URI.
fn charon(lab: &mut Lab, ns: &str, ike: &str, esp: &str) -> String {
    charon_with(lab, ns, ike, esp, "start_action = none", "", Auth::Psk)
}

/// [`charon`], with more settings for the Child SA (`start_action =
/// start`: charon initiates as soon as its configuration is loaded;
/// `rekey_time`: when it rekeys) and for the connection (its own
/// `rekey_time`: when it rekeys the IKE SA), authenticating as `auth`
/// says: with certificates, charon is b.example (RSA) and takes
/// a.example, both from the test authority.
fn charon_with(
    lab: &mut Lab,
    ns: &str,
    ike: &str,
    esp: &str,
    child: &str,
    conn: &str,
    auth: Auth,
) -> String {
    let dir = lab.dir.join("charon");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    // Its credentials' directories, as swanctl reads them.
    let creds = dir.join("swanctl");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ike/testdata/pki");
    for (from, to) in [
        ("b.crt", "x509"),
        ("ca.crt", "x509ca"),
        ("b.key", "private"),
    ] {
        std::fs::create_dir_all(creds.join(to)).unwrap();
        std::fs::copy(fixtures.join(from), creds.join(to).join(from)).unwrap();
    }
    let (local, remote) = match auth {
        Auth::Psk => ("auth = psk\n id = 192.0.2.2", "auth = psk\n id = 192.0.2.1"),
        Auth::Certificates => (
            "auth = pubkey\n certs = b.crt\n id = b.example",
            "auth = pubkey\n id = a.example",
        ),
    };
    let vici = format!("unix://{}", dir.join("charon.vici").display());
    let conf = lab.config_file(
        "strongswan.conf",
        &format!(
            "charon {{\n\
             load_modular = no\n\
             load = random nonce openssl kdf gcm aes sha2 hmac pem pkcs1 x509 pubkey \
             kernel-libipsec kernel-netlink socket-default vici\n\
             install_virtual_ip = no\n\
             filelog {{ log {{\n path = {}\n default = 1\n ike = 2\n append = no\n flush_line = yes\n }} }}\n\
             plugins {{ vici {{ socket = {vici} }} }}\n\
             }}\n",
            dir.join("charon.log").display()
        ),
    );
    // In the credentials' directory: swanctl reads them beside it.
    let swanctl = lab.config_file(
        "charon/swanctl/swanctl.conf",
        &format!(
            "connections {{ probe {{\n version = 2\n local_addrs = 192.0.2.2\n remote_addrs = 192.0.2.1\n\
             proposals = {ike}\n {conn}\n\
             local {{ {local} }}\n\
             remote {{ {remote} }}\n\
             children {{ net {{ mode = tunnel\n local_ts = 10.2.0.1/32\n remote_ts = 10.1.0.1/32\n\
             esp_proposals = {esp}\n {child} }} }} }} }}\n\
             secrets {{ ike-probe {{ id-a = 192.0.2.1\n id-b = 192.0.2.2\n secret = \"{KEY}\" }} }}\n"
        ),
    );
    // Its pid file's place is fixed: a private /run of its own.
    let start = format!(
        "mount --bind {} /run && exec {CHARON}",
        dir.join("run").display()
    );
    lab.spawn(
        "charon",
        ns,
        &[
            "env",
            &format!("STRONGSWAN_CONF={}", conf.display()),
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &start,
        ],
        "charon.out",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("charon.vici").exists() {
        assert!(Instant::now() < deadline, "charon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.exec(
        ns,
        &[
            "swanctl",
            "--load-all",
            "--noprompt",
            "--uri",
            &vici,
            "--file",
            swanctl.to_str().unwrap(),
        ],
    );
    vici
}

/// Runs ikeprobe in `ns` with `key` on its standard input.
fn probe(ns: &str, ike: &str, child: &str, key: &str) -> (bool, String) {
    let mut p = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_ikeprobe")])
        .args([
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.1/32",
            "10.2.0.1/32",
            ike,
            child,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ikeprobe starts");
    p.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.success(), said)
}

/// The lab for a test with charon, and its two hosts (see
/// [`crate::iked::two_hosts`]); `None` when it is skipped.
fn charon_lab(test: &str) -> Option<(Lab, String, String)> {
    let mut lab = Lab::new(test)?;
    if !charon_or_skip(test) {
        return None;
    }
    let (a, b) = crate::iked::two_hosts(&mut lab);
    Some((lab, a, b))
}

/// The two namespaces with charon answering in `b` with `ike` and `esp`
/// proposals: the lab, `a`, `b` and charon's vici socket.
fn lab(test: &str, ike: &str, esp: &str) -> Option<(Lab, String, String, String)> {
    let mut lab = Lab::new(test)?;
    if !charon_or_skip(test) {
        return None;
    }
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    lab.link((&a, "wa", &["192.0.2.1/24"]), (&b, "wb", &["192.0.2.2/24"]));
    // charon routes the Child SA's traffic from its side's address.
    lab.exec(&b, &["ip", "addr", "add", "10.2.0.1/32", "dev", "lo"]);
    let vici = charon(&mut lab, &b, ike, esp);
    Some((lab, a, b, vici))
}

/// One negotiation: charon's proposals and the probe's, then what both
/// ends say.
fn negotiate(test: &str, charon_ike: &str, charon_esp: &str, ours: (&str, &str)) {
    let Some((lab, a, b, vici)) = lab(test, charon_ike, charon_esp) else {
        return;
    };
    let (ok, said) = probe(&a, ours.0, ours.1, KEY);
    let log = lab.log("charon/charon.log");
    assert!(ok, "ikeprobe: {said}\ncharon:\n{log}");
    assert!(said.starts_with("established"), "{said}");
    assert!(said.contains("nat true"), "charon fakes a NAT: {said}");
    let sas = text(
        &lab.exec(&b, &["swanctl", "--list-sas", "--uri", &vici])
            .stdout,
    );
    assert!(
        sas.contains("ESTABLISHED") && sas.contains("INSTALLED"),
        "charon's view:\n{sas}\n{log}"
    );
    assert!(
        log.contains("authentication of '192.0.2.1' with pre-shared key successful"),
        "{log}"
    );
}

#[test]
fn strongswan_refuses_a_wrong_key_and_says_so() {
    const TEST: &str = "strongswan_refuses_a_wrong_key_and_says_so";
    let Some((lab, a, _, _)) = lab(TEST, "aes256-sha256-ecp256", "aes128gcm16") else {
        return;
    };
    let (ok, said) = probe(&a, "aes256-ecp256", "aes128gcm", "not the key");
    assert!(!ok, "{said}");
    assert!(said.contains("AUTHENTICATION_FAILED"), "{said}");
    let log = lab.log("charon/charon.log");
    assert!(log.contains("but MAC mismatched"), "{log}");
}

#[test]
fn strongswan_takes_aes_cbc_and_ecp256_with_an_aes_gcm_child() {
    negotiate(
        "strongswan_takes_aes_cbc_and_ecp256_with_an_aes_gcm_child",
        "aes256-sha256-ecp256",
        "aes128gcm16",
        ("aes256-ecp256", "aes128gcm"),
    );
}

#[test]
fn strongswan_takes_aes_gcm_and_curve25519_with_an_aes_cbc_child() {
    negotiate(
        "strongswan_takes_aes_gcm_and_curve25519_with_an_aes_cbc_child",
        "aes256gcm16-prfsha256-x25519",
        "aes128-sha256",
        ("aes256gcm-x25519", "aes128"),
    );
}

#[test]
fn strongswan_takes_chacha20_poly1305_and_modp2048() {
    negotiate(
        "strongswan_takes_chacha20_poly1305_and_modp2048",
        "chacha20poly1305-prfsha256-modp2048",
        "chacha20poly1305",
        ("chacha20poly1305-modp2048", "chacha20poly1305"),
    );
}

#[test]
fn strongswan_takes_ecp384_with_an_aes256_gcm_child() {
    negotiate(
        "strongswan_takes_ecp384_with_an_aes256_gcm_child",
        "aes256-sha256-ecp384",
        "aes256gcm16",
        ("aes256-ecp384", "aes256gcm"),
    );
}

/// Who starts the tunnel, and who rekeys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Us,
    Them,
}

/// How the two ends authenticate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Psk,
    Certificates,
}

/// What is rekeyed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sa {
    Child,
    Ike,
}

/// `iked` beside `ipsecd` in `a`, charon in `b`: the tunnel comes up
/// whoever starts it (charon fakes a NAT, so IKE_AUTH and ESP go over
/// port 4500, IKE relayed by `ipsecd` to `iked`), and ping and TCP cross;
/// with `rekey`, that side rekeys the Child SA or the IKE SA within
/// seconds, and the traffic still crosses afterwards.
fn iked_and_charon(test: &str, starts: Who, rekey: Option<(Who, Sa)>, auth: Auth) {
    iked_and_charon_with(test, starts, rekey, auth, GCM);
}

/// What charon proposes for the IKE SA and the Child SA, and what
/// `ipsecctl -s sa` then shows of the Child SA's SAs.
struct Offer {
    ike: &'static str,
    esp: &'static str,
    shows: &'static str,
}

const GCM: Offer = Offer {
    ike: "aes256gcm16-prfsha256-x25519",
    esp: "aes128gcm16",
    shows: "enc aes-128-gcm",
};

/// [`iked_and_charon`] with charon proposing `offer`.
fn iked_and_charon_with(
    test: &str,
    starts: Who,
    rekey: Option<(Who, Sa)>,
    auth: Auth,
    offer: Offer,
) {
    let Some((mut lab, a, b)) = charon_lab(test) else {
        return;
    };
    let ipsecd = lab.daemon(&a);
    let pki = crate::iked::pki_dir(&lab, "a");
    let iked = crate::iked::iked_with(&mut lab, &a, &ipsecd, &["-c", pki.to_str().unwrap()]);
    let mode = if starts == Who::Us {
        "active"
    } else {
        "passive"
    };
    let lifetime = match rekey {
        Some((Who::Us, Sa::Child)) => "quick lifetime 8 ",
        Some((Who::Us, Sa::Ike)) => "main lifetime 6 ",
        _ => "",
    };
    let conf = lab.config_file(
        "a.conf",
        &format!(
            "ike {mode} esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 \
             {lifetime}{}\n",
            match auth {
                Auth::Psk => format!("psk \"{KEY}\""),
                Auth::Certificates => "srcid a.example dstid b.example".into(),
            }
        ),
    );
    let (dump, file) = lab.capture(&a, "wa");
    crate::iked::ipsecctl(&lab, &a, &ipsecd, &iked, &["-f", conf.to_str().unwrap()]);
    let mut child = String::from(if starts == Who::Us {
        "start_action = none"
    } else {
        "start_action = start"
    });
    let mut conn = "";
    match rekey {
        Some((Who::Them, Sa::Child)) => {
            child.push_str("\n rekey_time = 4s\n life_time = 60s\n rand_time = 0s")
        }
        Some((Who::Them, Sa::Ike)) => conn = "rekey_time = 4s\n over_time = 60s\n rand_time = 0s",
        _ => {}
    }
    let vici = charon_with(&mut lab, &b, offer.ike, offer.esp, &child, conn, auth);
    // An active rule that found no charon yet tries again within seconds.
    let sas = crate::iked::wait_for_sas(&lab, &a, &ipsecd, &iked, 2);
    if auth == Auth::Certificates {
        // Both sides signed with RFC 7427's method: our ECDSA, their RSA
        // with SHA-256 (not RSA with SHA-1, which needs no negotiation).
        // When charon starts, our SAs may be in before it has checked our
        // answer and said so: its log is awaited.
        let signed = |log: &str| {
            log.contains("authentication of 'a.example' with ECDSA_WITH_SHA256_DER successful")
                && log
                    .contains("authentication of 'b.example' (myself) with RSA_EMSA_PKCS1_SHA2_256")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !signed(&lab.log("charon/charon.log")) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                lab.log("charon/charon.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(sas.contains(offer.shows), "{sas}");
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    if let Some((who, what)) = rekey {
        let said = match what {
            Sa::Child => "Child SA rekeyed",
            Sa::Ike => "IKE SA with 192.0.2.2 rekeyed",
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !lab.log(&format!("{a}-iked.log")).contains(said) {
            assert!(std::time::Instant::now() < deadline, "no rekey");
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = lab.log("charon/charon.log");
        let (request, response) = if who == Who::Them {
            (
                "generating CREATE_CHILD_SA request",
                "parsed CREATE_CHILD_SA response",
            )
        } else {
            (
                "parsed CREATE_CHILD_SA request",
                "generating CREATE_CHILD_SA response",
            )
        };
        // An IKE SA's rekey carries no traffic selectors.
        let ike = |l: &&str| l.contains("[ SA No KE ]");
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| (what == Sa::Ike) == ike(l))
            .collect();
        assert!(
            lines.iter().any(|l| l.contains(request)) && lines.iter().any(|l| l.contains(response)),
            "{log}"
        );
        if what == Sa::Ike {
            // The old IKE SA is deleted, by the end that asked.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !lab.log("charon/charon.log").contains("[ D ]") {
                assert!(std::time::Instant::now() < deadline, "the old IKE SA stays");
                std::thread::sleep(Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_millis(300));
            let theirs = text(
                &lab.exec(&b, &["swanctl", "--list-sas", "--uri", &vici])
                    .stdout,
            );
            assert_eq!(theirs.matches("ESTABLISHED").count(), 1, "{theirs}");
        }
        crate::iked::wait_for_sas(&lab, &a, &ipsecd, &iked, 2);
    }
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    lab.stop(dump);
    let theirs = text(
        &lab.exec(&b, &["swanctl", "--list-sas", "--uri", &vici])
            .stdout,
    );
    assert!(theirs.contains("TUNNEL-in-UDP"), "{theirs}");
    assert!(lab.count(&file, "udp port 4500") > 100, "ESP in UDP");
    assert_eq!(lab.count(&file, CLEAR), 0, "clear text on the wire");
}

/// A passive rule without a peer answers charon as a road warrior: the
/// flows go in with the Child SA, toward charon, and out with it.
#[test]
fn strongswan_reaches_a_rule_for_any_peer() {
    let Some((mut lab, a, b)) = charon_lab("strongswan_reaches_a_rule_for_any_peer") else {
        return;
    };
    let ipsecd = lab.daemon(&a);
    let iked = crate::iked::iked(&mut lab, &a, &ipsecd);
    let conf = lab.config_file(
        "a.conf",
        &format!("ike passive esp from 10.1.0.1 to any local 192.0.2.1 psk \"{KEY}\"\n"),
    );
    crate::iked::ipsecctl(&lab, &a, &ipsecd, &iked, &["-f", conf.to_str().unwrap()]);
    let flows = |lab: &Lab| crate::iked::ipsecctl(lab, &a, &ipsecd, &iked, &["-s", "flow"]);
    assert_eq!(flows(&lab), "", "no flows before a peer comes");
    let (dump, file) = lab.capture(&a, "wa");
    let vici = charon_with(
        &mut lab,
        &b,
        GCM.ike,
        GCM.esp,
        "start_action = start",
        "",
        Auth::Psk,
    );
    crate::iked::wait_for_sas(&lab, &a, &ipsecd, &iked, 2);
    // The flows of the selectors charon asked for, toward charon.
    let shown = flows(&lab);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(
        shown.contains("out from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2"),
        "{shown}"
    );
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    lab.transfer(&a, &b, "10.1.0.1", "10.2.0.1");
    lab.stop(dump);
    assert!(lab.count(&file, "udp port 4500") > 100, "ESP in UDP");
    assert_eq!(lab.count(&file, CLEAR), 0, "clear text on the wire");
    // charon leaves: the SAs and the flows go; the rule stays.
    lab.exec(
        &b,
        &["swanctl", "--terminate", "--ike", "probe", "--uri", &vici],
    );
    crate::iked::wait_for_sas(&lab, &a, &ipsecd, &iked, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !flows(&lab).is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", flows(&lab));
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = text(&crate::iked::ikectl(&lab, &a, &iked, &["-j", "show"]).stdout);
    assert!(shown.contains("\"peer\":null"), "{shown}");
}

#[test]
fn iked_starts_a_tunnel_with_strongswan() {
    iked_and_charon(
        "iked_starts_a_tunnel_with_strongswan",
        Who::Us,
        None,
        Auth::Psk,
    );
}

#[test]
fn strongswan_starts_a_tunnel_with_iked() {
    iked_and_charon(
        "strongswan_starts_a_tunnel_with_iked",
        Who::Them,
        None,
        Auth::Psk,
    );
}

#[test]
fn iked_rekeys_a_child_sa_with_strongswan() {
    iked_and_charon(
        "iked_rekeys_a_child_sa_with_strongswan",
        Who::Us,
        Some((Who::Us, Sa::Child)),
        Auth::Psk,
    );
}

#[test]
fn strongswan_rekeys_a_child_sa_with_iked() {
    iked_and_charon(
        "strongswan_rekeys_a_child_sa_with_iked",
        Who::Us,
        Some((Who::Them, Sa::Child)),
        Auth::Psk,
    );
}

#[test]
fn iked_rekeys_the_ike_sa_with_strongswan() {
    iked_and_charon(
        "iked_rekeys_the_ike_sa_with_strongswan",
        Who::Us,
        Some((Who::Us, Sa::Ike)),
        Auth::Psk,
    );
}

#[test]
fn strongswan_rekeys_the_ike_sa_with_iked() {
    iked_and_charon(
        "strongswan_rekeys_the_ike_sa_with_iked",
        Who::Us,
        Some((Who::Them, Sa::Ike)),
        Auth::Psk,
    );
}

#[test]
fn iked_and_strongswan_key_a_tunnel_with_certificates() {
    iked_and_charon(
        "iked_and_strongswan_key_a_tunnel_with_certificates",
        Who::Us,
        None,
        Auth::Certificates,
    );
}

#[test]
fn strongswan_starts_a_tunnel_with_iked_with_certificates() {
    iked_and_charon(
        "strongswan_starts_a_tunnel_with_iked_with_certificates",
        Who::Them,
        None,
        Auth::Certificates,
    );
}

#[test]
fn iked_and_strongswan_with_aes_cbc_hmac_sha2_and_modp2048() {
    iked_and_charon_with(
        "iked_and_strongswan_with_aes_cbc_hmac_sha2_and_modp2048",
        Who::Us,
        None,
        Auth::Psk,
        Offer {
            ike: "aes256-sha256-modp2048",
            esp: "aes256-sha256",
            shows: "auth hmac-sha2-256 enc aes-256",
        },
    );
}

#[test]
fn strongswan_and_iked_with_ecp256_and_aes_gcm_256() {
    iked_and_charon_with(
        "strongswan_and_iked_with_ecp256_and_aes_gcm_256",
        Who::Them,
        None,
        Auth::Psk,
        Offer {
            ike: "aes128gcm16-prfsha384-ecp256",
            esp: "aes256gcm16",
            shows: "enc aes-256-gcm",
        },
    );
}

#[test]
fn strongswan_adds_a_second_child_sa_under_one_ike_sa() {
    two_child_sas(
        "strongswan_adds_a_second_child_sa_under_one_ike_sa",
        Who::Them,
    );
}

#[test]
fn iked_adds_a_second_child_sa_under_one_ike_sa_with_strongswan() {
    two_child_sas(
        "iked_adds_a_second_child_sa_under_one_ike_sa_with_strongswan",
        Who::Us,
    );
}

/// Two rules for one peer on our side, one connection of two children on
/// charon's; `starts` sets up the IKE SA with the first and adds the
/// second with CREATE_CHILD_SA.
fn two_child_sas(test: &str, starts: Who) {
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    if !charon_or_skip(test) {
        return;
    }
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    lab.link((&a, "wa", &["192.0.2.1/24"]), (&b, "wb", &["192.0.2.2/24"]));
    for (ns, net) in [(&a, "10.1.0"), (&b, "10.2.0")] {
        for host in [1, 2] {
            lab.exec(
                ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{net}.{host}/32"),
                    "dev",
                    "lo",
                ],
            );
        }
    }
    let ipsecd = lab.daemon(&a);
    let iked = crate::iked::iked(&mut lab, &a, &ipsecd);
    let mode = match starts {
        Who::Us => "active",
        Who::Them => "passive",
    };
    let conf = lab.config_file(
        "a.conf",
        &format!(
            "ike {mode} esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 psk \"{KEY}\"\n\
             ike {mode} esp from 10.1.0.2 to 10.2.0.2 local 192.0.2.1 peer 192.0.2.2 psk \"{KEY}\"\n"
        ),
    );
    // One connection of two children (the settings close the first
    // child's section and open the second), both started when charon
    // starts.
    let start = match starts {
        Who::Us => "",
        Who::Them => "start_action = start",
    };
    let second = format!(
        "{start}\n }}\n net2 {{ mode = tunnel\n local_ts = 10.2.0.2/32\n \
         remote_ts = 10.1.0.2/32\n esp_proposals = aes128gcm16\n {start}"
    );
    if starts == Who::Them {
        crate::iked::ipsecctl(&lab, &a, &ipsecd, &iked, &["-f", conf.to_str().unwrap()]);
    }
    let vici = charon_with(
        &mut lab,
        &b,
        "aes256gcm16-prfsha256-x25519",
        "aes128gcm16",
        &second,
        "",
        Auth::Psk,
    );
    if starts == Who::Us {
        crate::iked::ipsecctl(&lab, &a, &ipsecd, &iked, &["-f", conf.to_str().unwrap()]);
    }
    crate::iked::wait_for_sas(&lab, &a, &ipsecd, &iked, 4);
    lab.ping(&a, "10.1.0.1", "10.2.0.1");
    lab.ping(&a, "10.1.0.2", "10.2.0.2");
    let theirs = text(
        &lab.exec(&b, &["swanctl", "--list-sas", "--uri", &vici])
            .stdout,
    );
    assert_eq!(
        theirs.matches("ESTABLISHED").count(),
        1,
        "one IKE SA: {theirs}"
    );
    assert_eq!(
        theirs.matches("INSTALLED").count(),
        2,
        "two Child SAs: {theirs}"
    );
    let shown = text(&crate::iked::ikectl(&lab, &a, &iked, &["show"]).stdout);
    assert_eq!(shown.matches("IKE SA ").count(), 1, "{shown}");
    assert!(
        shown.contains("(rule 1)") && shown.contains("(rule 2)"),
        "{shown}"
    );
    let log = lab.log(&format!("{a}-iked.log"));
    assert!(log.contains("Child SA added"), "{log}");
}
