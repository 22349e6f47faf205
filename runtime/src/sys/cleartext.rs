//! Refusing cleartext that should have been protected: packets that an
//! inbound `require` flow selects but that did not come through the enc
//! interface are dropped by an nftables table of the daemon's own (DESIGN
//! §"The data path", step 4). ESP, AH and UDP to the IKE and NAT-T ports
//! stay allowed: they are how protected traffic arrives. So does IPv6
//! neighbour discovery, without which the peer could not be reached at all.

use crate::spd::{self, Selector};
use std::io::{self, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The nftables table the daemon owns.
pub const TABLE: &str = "ipsecd";

/// The daemon's nftables table.
#[derive(Debug)]
pub struct Cleartext {
    dev: String,
    installed: Vec<Selector>,
}

impl Cleartext {
    /// Removes what an earlier run left.
    pub fn install(dev: &str) -> Cleartext {
        let _ = nft(&format!("delete table inet {TABLE}\n"));
        Cleartext {
            dev: dev.to_string(),
            installed: Vec::new(),
        }
    }

    /// Drops cleartext that the `selectors` (inbound flows that require
    /// protection) select, replacing the rules of the last call at once.
    pub fn sync(&mut self, selectors: Vec<Selector>) -> io::Result<()> {
        if selectors == self.installed {
            return Ok(());
        }
        let mut script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        if !selectors.is_empty() {
            script.push_str(&ruleset(&self.dev, &selectors));
        }
        self.installed = selectors;
        nft(&script)
    }
}

impl Drop for Cleartext {
    fn drop(&mut self) {
        let _ = nft(&format!("delete table inet {TABLE}\n"));
    }
}

/// The table: accept what came through `dev` or is protected, drop what
/// a selector covers.
fn ruleset(dev: &str, selectors: &[Selector]) -> String {
    let mut s = format!(
        "table inet {TABLE} {{\n\
         \tchain cleartext {{\n\
         \t\ttype filter hook prerouting priority -140; policy accept;\n\
         \t\tiifname \"{dev}\" accept\n\
         \t\tmeta l4proto {{ esp, ah }} accept\n\
         \t\tudp dport {{ 500, 4500 }} accept\n\
         \t\ticmpv6 type {{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
         nd-neighbor-advert, nd-redirect }} accept\n"
    );
    for sel in selectors {
        s.push_str("\t\t");
        s.push_str(&rule(sel));
        s.push_str(" counter drop\n");
    }
    s.push_str("\t}\n}\n");
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

fn nft(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
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
    use crate::spd::{Direction, prefix_mask};

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
