//! Interoperability with an IPsec implementation we did not write: scapy's
//! (`scapy.layers.ipsec`), driven by `tests/interop/esp_peer.py`. Two
//! namespaces on one wire; ipsecd runs only in B (or, for bridge mode, in
//! a third namespace that bridges A's wire to B's, with B's address in
//! its SAs). In A, scapy protects ICMP echo requests to B under the SA B
//! accepts, sends them through a raw socket, and checks B's protected
//! echo replies: scapy verifies their ICV (for AH over the IP header with
//! its mutable fields zeroed) and opens them into the echo reply of the
//! same payload. Needs root and
//! `/usr/bin/python3` with scapy (python3-scapy); skipped otherwise.

use crate::datapath::{Lab, text};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The Debian interpreter, which has python3-scapy; not whatever `python3`
/// comes first on the PATH.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/esp_peer.py");

/// Keys as ipsec.conf writes them: `ab` protects A to B, `ba` B to A.
pub(crate) const AUTH_AB: &str =
    "0x1111111111111111111111111111111111111111111111111111111111111111";
pub(crate) const AUTH_BA: &str =
    "0x2222222222222222222222222222222222222222222222222222222222222222";
pub(crate) const ENC_AB: &str = "0x33333333333333333333333333333333";
pub(crate) const ENC_BA: &str = "0x44444444444444444444444444444444";
/// AES-128-GCM keys with their salt (RFC 4106), for keymgr.
const GCM_AB: &str = "0x5555555555555555555555555555555566666666";
const GCM_BA: &str = "0x7777777777777777777777777777777788888888";
/// SPIs: A to B, and B to A.
pub(crate) const SPI_AB: &str = "0x1000";
pub(crate) const SPI_BA: &str = "0x1001";

pub(crate) const GW_A: &str = "192.0.2.1";
pub(crate) const GW_B: &str = "192.0.2.2";

/// How many echo round trips the peer makes.
const ROUNDS: usize = 3;

/// What an SA pair protects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suite {
    /// ESP, AES-128-CBC and HMAC-SHA2-256-128.
    EspCbc,
    /// ESP, AES-128-GCM with a 16-byte ICV (RFC 4106): keyed through
    /// PF_KEY by keymgr, as ipsec.conf refuses static GCM keys.
    EspGcm,
    /// AH, HMAC-SHA2-256-128.
    Ah,
}

impl Suite {
    /// The protocol's name in ipsec.conf and in tcpdump filters.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Suite::EspCbc | Suite::EspGcm => "esp",
            Suite::Ah => "ah",
        }
    }

    /// The scapy peer's name for it.
    fn peer_name(self) -> &'static str {
        match self {
            Suite::EspCbc => "esp",
            Suite::EspGcm => "gcm",
            Suite::Ah => "ah",
        }
    }
}

/// A transport-mode flow and SA pair between the two gateways, from
/// `me`'s side (for GCM, the flow alone). ipsec.conf writes SPIs and keys `out:in` for the SA from
/// `from` to `to` and its reverse (ipsec.conf(5), "spi out:in"): on A,
/// 0x1000 and the `ab` keys protect what A sends.
pub(crate) fn transport_config(suite: Suite, a_side: bool) -> String {
    let (me, peer, spis, auth, enc) = if a_side {
        (
            GW_A,
            GW_B,
            format!("{SPI_AB}:{SPI_BA}"),
            format!("{AUTH_AB}:{AUTH_BA}"),
            format!("{ENC_AB}:{ENC_BA}"),
        )
    } else {
        (
            GW_B,
            GW_A,
            format!("{SPI_BA}:{SPI_AB}"),
            format!("{AUTH_BA}:{AUTH_AB}"),
            format!("{ENC_BA}:{ENC_AB}"),
        )
    };
    let proto = suite.name();
    let flow = format!("flow {proto} from {me} to {peer} peer {peer}\n");
    let keys = match suite {
        Suite::EspCbc => format!("auth hmac-sha2-256 enc aes authkey {auth} enckey {enc}"),
        Suite::Ah => format!("auth hmac-sha2-256 authkey {auth}"),
        Suite::EspGcm => return flow,
    };
    format!("{flow}{proto} transport from {me} to {peer} spi {spis} {keys}\n")
}

/// The keymgr binary cargo built for these tests.
fn keymgr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keymgr"))
}

/// Whether `/usr/bin/python3` can load scapy's IPsec layer and the
/// cryptography it needs; if not, says the test is skipped.
fn scapy_or_skip(test: &str) -> bool {
    let loads = Command::new(PYTHON)
        .args([
            "-c",
            "import scapy.layers.ipsec, cryptography.hazmat.primitives.ciphers.aead",
        ])
        .output();
    match loads {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "{test}: skipped, {PYTHON} cannot import scapy (apt install python3-scapy): {}",
                text(&out.stderr).lines().last().unwrap_or_default()
            );
            false
        }
        Err(e) => {
            eprintln!("{test}: skipped, no {PYTHON}: {e}");
            false
        }
    }
}

/// The line ipsecd logs when it stops: packets by fate, drops by reason
/// (`Dataplane::summary`).
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) protected_out: u64,
    pub(crate) protected_in: u64,
    /// NAT-T keepalives and non-ESP datagrams on port 4500, dropped
    /// without a reason.
    pub(crate) keepalives: u64,
    pub(crate) non_esp: u64,
    /// Reason to (in, out).
    pub(crate) drops: BTreeMap<String, (u64, u64)>,
}

impl Summary {
    /// The last summary in a daemon's log.
    pub(crate) fn of(log: &str) -> Option<Summary> {
        let line = log.lines().rev().find(|l| l.contains(" protected in, "))?;
        let line = line.strip_prefix("ipsecd: ").unwrap_or(line);
        let mut parts = line.split("; ");
        let mut summary = Summary::default();
        for field in parts.next()?.split(", ") {
            let (n, what) = field.split_once(' ')?;
            match what {
                "protected out" => summary.protected_out = n.parse().ok()?,
                "protected in" => summary.protected_in = n.parse().ok()?,
                "NAT-T keepalives" => summary.keepalives = n.parse().ok()?,
                "non-ESP datagrams" => summary.non_esp = n.parse().ok()?,
                _ => {}
            }
        }
        for part in parts {
            let (reason, counts) = part.strip_prefix("dropped ")?.split_once(": ")?;
            let (inbound, outbound) = counts.split_once(" in, ")?;
            let outbound = outbound.strip_suffix(" out")?;
            summary.drops.insert(
                reason.to_string(),
                (inbound.parse().ok()?, outbound.parse().ok()?),
            );
        }
        Some(summary)
    }

    /// Inbound drops for one reason (its name in `DropReason::name`).
    pub(crate) fn dropped_in(&self, reason: &str) -> u64 {
        self.drops.get(reason).map_or(0, |&(i, _)| i)
    }
}

/// Where ipsecd stands for B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// In B itself, in host mode.
    Host,
    /// In a bridge between A and B (`ipsecd -b`), whose SAs use B's
    /// address: B runs nothing but its own stack.
    Bridge,
}

/// ipsecd for B, loaded with `suite`'s SAs; the scapy peer in A talks to
/// B with the same keys. Checks what the peer says, what the wire
/// carried and what the daemon counted.
fn scapy_peer(test: &str, suite: Suite, via: Via) {
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    if !scapy_or_skip(test) {
        return;
    }
    let a = lab.namespace("a");
    let b = lab.namespace("b");
    let (addr_a, addr_b) = (format!("{GW_A}/24"), format!("{GW_B}/24"));
    let (ns, socket) = match via {
        Via::Host => {
            lab.link((&a, "wa", &[&addr_a]), (&b, "wb", &[&addr_b]));
            let socket = lab.daemon(&b);
            (b.clone(), socket)
        }
        Via::Bridge => {
            let br = lab.namespace("br");
            lab.link((&a, "wa", &[&addr_a]), (&br, "ba", &[]));
            lab.link((&br, "bb", &[]), (&b, "wb", &[&addr_b]));
            let socket = lab.daemon_with(&br, &["-b", "ba", "-b", "bb"]);
            (br, socket)
        }
    };
    let daemon = lab.last_spawned();
    lab.load(&ns, &socket, &transport_config(suite, false));
    if suite == Suite::EspGcm {
        let keymgr = keymgr();
        let sock = socket.to_str().unwrap();
        for (src, dst, spi, key) in [(GW_A, GW_B, SPI_AB, GCM_AB), (GW_B, GW_A, SPI_BA, GCM_BA)] {
            lab.exec(
                &ns,
                &[
                    keymgr.to_str().unwrap(),
                    "-s",
                    sock,
                    "add",
                    "--src",
                    src,
                    "--dst",
                    dst,
                    "--spi",
                    spi,
                    "--enc",
                    "aes-gcm",
                    "--enckey",
                    key,
                ],
            );
        }
    }

    let (dump, file) = lab.capture(&a, "wa");
    // The peer's view: what it sends is A's SA (to B), what it opens B's.
    let rounds = ROUNDS.to_string();
    let mut args = vec![
        PYTHON,
        PEER,
        "--proto",
        suite.peer_name(),
        "--local",
        GW_A,
        "--remote",
        GW_B,
        "--spi-out",
        SPI_AB,
        "--spi-in",
        SPI_BA,
        "--auth-out",
        AUTH_AB,
        "--auth-in",
        AUTH_BA,
        "--count",
        &rounds,
    ];
    match suite {
        Suite::EspCbc => args.extend(["--enc-out", ENC_AB, "--enc-in", ENC_BA]),
        Suite::EspGcm => args.extend(["--enc-out", GCM_AB, "--enc-in", GCM_BA]),
        Suite::Ah => {}
    }
    let out = lab.try_exec(&a, &args);
    lab.stop(dump);
    assert!(lab.running(daemon), "ipsecd for B died");
    lab.stop(daemon);
    let log = lab.log(&format!("{ns}-ipsecd.log"));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("{test}: the scapy peer says:\n{said}");
    assert!(
        out.status.success(),
        "the scapy peer failed ({}):\n{said}\nipsecd for B:\n{log}",
        out.status
    );
    assert!(said.contains("PASS"), "{said}");

    // On the wire: the requests and replies protected, none in the clear.
    let proto = suite.name();
    assert!(
        lab.count(&file, proto) > 2 * ROUNDS,
        "too little {proto} on the wire"
    );
    let clear = "icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply";
    assert_eq!(lab.count(&file, clear), 0, "cleartext echo on the wire");

    // B opened each request and protected each reply; the forged request
    // failed its ICV.
    assert!(!log.contains("panicked"), "{log}");
    let summary = Summary::of(&log).unwrap_or_else(|| panic!("no summary in:\n{log}"));
    assert_eq!(summary.protected_in, ROUNDS as u64, "{log}");
    assert_eq!(summary.protected_out, ROUNDS as u64, "{log}");
    assert_eq!(summary.dropped_in("authentication failed"), 1, "{log}");
}

#[test]
fn esp_aes_cbc_hmac_sha256_with_scapy() {
    scapy_peer(
        "esp_aes_cbc_hmac_sha256_with_scapy",
        Suite::EspCbc,
        Via::Host,
    );
}

#[test]
fn a_bridge_protects_a_host_to_scapy() {
    scapy_peer(
        "a_bridge_protects_a_host_to_scapy",
        Suite::EspCbc,
        Via::Bridge,
    );
}

#[test]
fn a_bridge_authenticates_a_host_to_scapy_with_ah() {
    scapy_peer(
        "a_bridge_authenticates_a_host_to_scapy_with_ah",
        Suite::Ah,
        Via::Bridge,
    );
}

#[test]
fn ah_hmac_sha256_with_scapy() {
    scapy_peer("ah_hmac_sha256_with_scapy", Suite::Ah, Via::Host);
}

#[test]
fn esp_aes_gcm_with_scapy() {
    scapy_peer("esp_aes_gcm_with_scapy", Suite::EspGcm, Via::Host);
}
