//! Addresses as ipsecctl keeps them: an address, a prefix length, whether
//! the user wrote a network, and the name the user used for it (which ends
//! up in isakmpd section names).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address entry of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    /// Prefix length; hosts have 32 or 128 (IPv6 names from DNS have 0).
    pub bits: u8,
    /// Written with a `/`, or `any`: a network even at /32.
    pub network: bool,
    /// The text this entry is known by: what the user wrote, the numeric
    /// form of a DNS answer, or an interface's name.
    pub name: String,
    /// The real address behind a source NAT, `fictional (real)`.
    pub nat: Option<Box<Address>>,
}

impl Address {
    pub fn host(ip: IpAddr, name: impl Into<String>) -> Address {
        Address {
            ip,
            bits: max_bits(ip),
            network: false,
            name: name.into(),
            nat: None,
        }
    }

    /// `0.0.0.0/0` or `::/0`, the two halves of `any`.
    pub fn any(v6: bool) -> Address {
        let (ip, name) = if v6 {
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), "::/0")
        } else {
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), "0.0.0.0/0")
        };
        Address {
            ip,
            bits: 0,
            network: true,
            name: name.into(),
            nat: None,
        }
    }

    pub fn is_v6(&self) -> bool {
        self.ip.is_ipv6()
    }

    /// The netmask in numeric form, as isakmpd wants it.
    pub fn netmask(&self) -> String {
        match self.ip {
            IpAddr::V4(_) => Ipv4Addr::from(mask_v4(self.bits)).to_string(),
            IpAddr::V6(_) => ntop6(&Ipv6Addr::from(mask_v6(self.bits))),
        }
    }
}

/// Prints like ipsecctl: the numeric address, then `/bits` unless it is a
/// full-length prefix.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}")?,
            IpAddr::V6(ip) => f.write_str(&ntop6(&ip))?,
        }
        if self.bits < max_bits(self.ip) {
            write!(f, "/{}", self.bits)?;
        }
        Ok(())
    }
}

pub fn max_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask_v4(bits: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(bits.min(32)))
        .unwrap_or(0)
}

fn mask_v6(bits: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(bits.min(128)))
        .unwrap_or(0)
}

/// IPv6 text as BSD's `inet_ntop` writes it: the longest run of two or more
/// zero groups becomes `::`, and IPv4-compatible and -mapped addresses end
/// in dotted quads.
pub fn ntop6(ip: &Ipv6Addr) -> String {
    let words = ip.segments();
    let mut best: Option<(usize, usize)> = None;
    let mut run: Option<(usize, usize)> = None;
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            run = Some(run.map_or((i, 1), |(start, len)| (start, len + 1)));
            if let Some((start, len)) = run
                && best.is_none_or(|(_, blen)| len > blen)
            {
                best = Some((start, len));
            }
        } else {
            run = None;
        }
    }
    let best = best.filter(|&(_, len)| len >= 2);
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some((start, len)) = best
            && i == start
        {
            out.push(':');
            i += len;
            if i == 8 {
                out.push(':');
            }
            continue;
        }
        if i > 0 {
            out.push(':');
        }
        if i == 6
            && best.is_some_and(|(start, len)| {
                start == 0 && (len == 6 || (len == 5 && words[5] == 0xffff))
            })
        {
            let o = ip.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            break;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    out
}

/// BSD `inet_net_pton(AF_INET, ...)` for text with a `/bits` suffix:
/// `10.0.2/24` is 10.0.2.0/24, and host bits are kept.
pub fn parse_v4_network(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (net, bits) = text.rsplit_once('/')?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok().filter(|&b| b <= 32)?;
    let mut octets = [0u8; 4];
    let mut count = 0;
    for part in net.split('.') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || count == 4 {
            return None;
        }
        // Leading zeros are fine here; each part must stay within a byte.
        let value: u32 = part.bytes().try_fold(0u32, |acc, b| {
            Some(acc * 10 + u32::from(b - b'0')).filter(|&v| v <= 255)
        })?;
        octets[count] = value as u8;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    Some((Ipv4Addr::from(octets), bits as u8))
}

/// A strict dotted quad, as `inet_pton(AF_INET, ...)` accepts.
pub fn parse_v4(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

/// A numeric IPv6 address.
pub fn parse_v6(text: &str) -> Option<Ipv6Addr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_ntop6_matches_bsd() {
        let cases = [
            ("::", "::"),
            ("::1", "::1"),
            ("3ffe:1::0", "3ffe:1::"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("fe80::1:2", "fe80::1:2"),
            ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
            ("1:2:3:4:5:6:0:0", "1:2:3:4:5:6::"),
        ];
        for (input, want) in cases {
            assert_eq!(ntop6(&input.parse().unwrap()), want, "{input}");
        }
    }

    #[test]
    fn classless_v4() {
        assert_eq!(
            parse_v4_network("10.0.2/24"),
            Some((Ipv4Addr::new(10, 0, 2, 0), 24))
        );
        assert_eq!(
            parse_v4_network("1.2.3.4/16"),
            Some((Ipv4Addr::new(1, 2, 3, 4), 16))
        );
        assert_eq!(
            parse_v4_network("010.1.1.1/8"),
            Some((Ipv4Addr::new(10, 1, 1, 1), 8))
        );
        assert_eq!(parse_v4_network("1.2.3.4/33"), None);
        assert_eq!(parse_v4_network("1.2.3.256/8"), None);
        assert_eq!(parse_v4_network("1.2.3.4.5/8"), None);
        assert_eq!(parse_v4_network("::1/8"), None);
    }

    #[test]
    fn printing_and_masks() {
        let mut a = Address::host("10.1.0.0".parse().unwrap(), "x");
        assert_eq!(a.to_string(), "10.1.0.0");
        a.bits = 16;
        assert_eq!(a.to_string(), "10.1.0.0/16");
        assert_eq!(a.netmask(), "255.255.0.0");
        let mut b = Address::host("3ffe::".parse().unwrap(), "y");
        b.bits = 64;
        assert_eq!(b.netmask(), "ffff:ffff:ffff:ffff::");
        assert_eq!(Address::any(false).to_string(), "0.0.0.0/0");
        assert_eq!(Address::any(true).to_string(), "::/0");
    }
}
