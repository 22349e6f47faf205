//! Refusing cleartext that should have been protected: packets that an
//! inbound `require` flow selects but that did not come through the enc
//! interface are dropped by an nftables table of the daemon's own, as
//! OpenBSD's kernel drops them after its inbound policy check. ESP, AH and UDP to the IKE and NAT-T ports
//! stay allowed: they are how protected traffic arrives. So does IPv6
//! neighbour discovery, without which the peer could not be reached at all.

//!
//! The table is kernel state and outlives the daemon: it stays while the
//! daemon is down or restarting, and goes only with the flows (an empty
//! SPD at a clean stop, or [`Cleartext::teardown`]).

use ipsec_engine::spd::{self, Selector};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The nftables table the daemon owns.
pub const TABLE: &str = "ipsecd";

/// Where `nft` may be: never looked up through `PATH`.
const NFT: [&str; 2] = ["/usr/sbin/nft", "/sbin/nft"];

/// The daemon's nftables table.
#[derive(Debug)]
pub struct Cleartext {
    dev: String,
    /// What the table holds, when the daemon wrote it whole; `None` while
    /// it holds what an earlier run left.
    installed: Option<Vec<Selector>>,
    /// What was added behind an adopted table.
    added: Vec<Selector>,
}

impl Cleartext {
    /// Adopts whatever table an earlier run left: it keeps guarding until
    /// a sync replaces it, in one transaction.
    pub fn adopt(dev: &str) -> Cleartext {
        Cleartext {
            dev: dev.to_string(),
            installed: None,
            added: Vec::new(),
        }
    }

    /// Drops cleartext that the `selectors` (inbound flows that require
    /// protection) select, replacing the table at once. With `keep`, the
    /// table an earlier run left stays and only rules are added to it.
    /// Only what `nft` accepted is recorded as installed.
    pub fn sync(&mut self, selectors: Vec<Selector>, keep: bool) -> io::Result<()> {
        if keep {
            let new: Vec<Selector> = selectors
                .into_iter()
                .filter(|s| !self.added.contains(s))
                .collect();
            if new.is_empty() {
                return Ok(());
            }
            nft(&additions(&self.dev, &new))?;
            self.added.extend(new);
            return Ok(());
        }
        if self.installed.as_ref() == Some(&selectors) {
            return Ok(());
        }
        let mut script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        if !selectors.is_empty() {
            script.push_str(&ruleset(&self.dev, &selectors));
        }
        nft(&script)?;
        self.installed = Some(selectors);
        self.added.clear();
        Ok(())
    }

    /// Whether the table is there (an earlier run's, at start).
    pub fn exists() -> bool {
        nft(&format!("list table inet {TABLE}\n")).is_ok()
    }

    /// Removes the table: the documented teardown, once no flow is left.
    pub fn teardown(&mut self) -> io::Result<()> {
        nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))?;
        self.installed = Some(Vec::new());
        self.added.clear();
        Ok(())
    }
}

/// The chain's hook, and the rules that accept what may pass whatever
/// the selectors say: what came through `dev` or is protected.
fn chain(dev: &str) -> (&'static str, [String; 4]) {
    (
        "type filter hook prerouting priority -140; policy accept;",
        [
            format!("iifname \"{dev}\" accept"),
            "meta l4proto { esp, ah } accept".to_string(),
            "udp dport { 500, 4500 } accept".to_string(),
            "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
             nd-neighbor-advert, nd-redirect } accept"
                .to_string(),
        ],
    )
}

/// The table: accept what came through `dev` or is protected, drop what
/// a selector covers.
fn ruleset(dev: &str, selectors: &[Selector]) -> String {
    let (hook, accepts) = chain(dev);
    let mut s = format!("table inet {TABLE} {{\n\tchain cleartext {{\n\t\t{hook}\n");
    for accept in accepts {
        s.push_str(&format!("\t\t{accept}\n"));
    }
    for sel in selectors {
        s.push_str(&format!("\t\t{} counter drop\n", rule(sel)));
    }
    s.push_str("\t}\n}\n");
    s
}

/// Drops added behind whatever the table holds, creating the table if it
/// is gone. Accepts are added first so that a table made here lets the
/// protected traffic through; in an adopted one they are repeats.
fn additions(dev: &str, selectors: &[Selector]) -> String {
    let (hook, accepts) = chain(dev);
    let mut s = format!("add table inet {TABLE}\nadd chain inet {TABLE} cleartext {{ {hook} }}\n");
    for accept in accepts {
        s.push_str(&format!("add rule inet {TABLE} cleartext {accept}\n"));
    }
    for sel in selectors {
        s.push_str(&format!(
            "add rule inet {TABLE} cleartext {} counter drop\n",
            rule(sel)
        ));
    }
    s
}

/// The match for one selector.
fn rule(sel: &Selector) -> String {
    let family = if sel.src.is_ipv6() { "ip6" } else { "ip" };
    let mut m = format!(
        "{family} saddr {} {family} daddr {}",
        prefix(sel.src, sel.src_mask),
        prefix(sel.dst, sel.dst_mask)
    );
    if sel.proto != 0 {
        m.push_str(&format!(" meta l4proto {}", sel.proto));
        // Ports only mean something under TCP and UDP.
        if matches!(sel.proto, 6 | 17) {
            if sel.sport_mask != 0 {
                m.push_str(&format!(" th sport {}", sel.sport));
            }
            if sel.dport_mask != 0 {
                m.push_str(&format!(" th dport {}", sel.dport));
            }
        }
    }
    m
}

/// `addr/len`. Masks from ipsec.conf are prefixes; one with holes is cut
/// to its leading ones, which covers more, never less.
fn prefix(addr: IpAddr, mask: IpAddr) -> String {
    let len = spd::prefix_len(mask);
    format!("{}/{len}", spd::masked(addr, spd::prefix_mask(mask, len)))
}

/// Runs `nft -f -` on `script`, by its absolute path and with an empty
/// environment.
fn nft(script: &str) -> io::Result<()> {
    let path = NFT.iter().find(|p| Path::new(p).is_file()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("nft is not at {}", NFT.join(" or ")),
        )
    })?;
    let mut child = Command::new(path)
        .env_clear()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsec_engine::spd::{Direction, prefix_mask};

    fn sel(src: &str, sl: u8, dst: &str, dl: u8, proto: u8, dport: u16) -> Selector {
        let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Selector {
            direction: Direction::In,
            src: s,
            src_mask: prefix_mask(s, sl),
            dst: d,
            dst_mask: prefix_mask(d, dl),
            proto,
            sport: 0,
            sport_mask: 0,
            dport,
            dport_mask: if dport != 0 { 0xffff } else { 0 },
        }
    }

    #[test]
    fn rules_name_prefixes_protocols_and_ports() {
        assert_eq!(
            rule(&sel("10.2.3.4", 16, "10.1.0.0", 16, 0, 0)),
            "ip saddr 10.2.0.0/16 ip daddr 10.1.0.0/16"
        );
        assert_eq!(
            rule(&sel("2001:db8::1", 128, "2001:db8::2", 128, 6, 179)),
            "ip6 saddr 2001:db8::1/128 ip6 daddr 2001:db8::2/128 meta l4proto 6 th dport 179"
        );
        let text = ruleset("enc0", &[sel("0.0.0.0", 0, "0.0.0.0", 0, 1, 0)]);
        assert!(text.contains("iifname \"enc0\" accept"));
        assert!(text.contains("ip saddr 0.0.0.0/0 ip daddr 0.0.0.0/0 meta l4proto 1 counter drop"));
    }
}
