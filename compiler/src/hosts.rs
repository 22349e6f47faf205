//! Turning host text into address entries, in OpenBSD's order: interface
//! (or interface group) name, IPv4 literal, IPv6 literal, then DNS.

use crate::addr::{self, Address, ntop6};
use crate::resolve::Resolver;
use std::net::IpAddr;

/// An entry of a host list before expansion: `any` stands for both
/// families until the rule is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Any,
    Addr(Address),
}

impl Entry {
    pub fn is_v4(&self) -> bool {
        matches!(self, Entry::Addr(a) if !a.is_v6())
    }

    pub fn is_v6(&self) -> bool {
        matches!(self, Entry::Addr(a) if a.is_v6())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The `/N` suffix is not a prefix length (fatal in OpenBSD).
    BadNetmask(String),
    /// Nothing matched.
    NotFound,
}

/// Parses a C `strtol(..., 0)` style number: decimal, `0x` hex or `0` octal.
fn strtol0(text: &str) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -value } else { value })
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Resolves one host specification.
pub fn resolve(text: &str, resolver: &dyn Resolver) -> Result<Vec<Address>, HostError> {
    let (base, mask) = match text.rfind('/') {
        Some(slash) => {
            let suffix = &text[slash..];
            let mask = strtol0(&suffix[1..])
                .filter(|m| (0..=128).contains(m))
                .ok_or_else(|| HostError::BadNetmask(suffix.to_owned()))?;
            (&text[..slash], Some(mask as u8))
        }
        None => (text, None),
    };

    if let Some(ips) = resolver.interface(base) {
        let found: Vec<Address> = ips
            .into_iter()
            .filter(|ip| !is_link_local(ip))
            .map(|ip| Address::host(ip, base))
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
    }

    let v4 = match mask {
        Some(_) => addr::parse_v4_network(text),
        None => addr::parse_v4(text).map(|ip| (ip, 32)),
    };
    if let Some((ip, bits)) = v4 {
        return Ok(vec![Address {
            ip: IpAddr::V4(ip),
            bits,
            network: mask.is_some(),
            name: text.to_owned(),
            nat: None,
        }]);
    }

    if let Some(ip) = addr::parse_v6(base) {
        let bits = mask.unwrap_or(128).min(128);
        let numeric = ntop6(&ip);
        let (network, name) = if bits == 128 {
            (false, numeric)
        } else {
            (true, format!("{numeric}/{bits}"))
        };
        return Ok(vec![Address {
            ip: IpAddr::V6(ip),
            bits,
            network,
            name,
            nat: None,
        }]);
    }

    if mask.is_none() {
        // Unlike OpenBSD, IPv6 answers get /128 rather than /0: a host
        // name must never stand for the whole address space.
        let found: Vec<Address> = resolver
            .host(text)
            .into_iter()
            .map(|ip| {
                let name = match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => ntop6(&v6),
                };
                Address::host(ip, name)
            })
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Err(HostError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Fixed;

    fn one(text: &str) -> Address {
        resolve(text, &Fixed::standard()).unwrap().remove(0)
    }

    #[test]
    fn literals_networks_and_names() {
        let a = one("10.0.0.1");
        assert_eq!(
            (a.bits, a.network, a.name.as_str()),
            (32, false, "10.0.0.1")
        );
        let n = one("10.0.0.1/32");
        assert_eq!((n.bits, n.network), (32, true));
        let v6 = one("3ffe:1::0/24");
        assert_eq!(
            (v6.bits, v6.network, v6.name.as_str()),
            (24, true, "3ffe:1::/24")
        );
        let h6 = one("3ffe::1/128");
        assert_eq!((h6.network, h6.name.as_str()), (false, "3ffe::1"));
        let lo = resolve("lo0", &Fixed::standard()).unwrap();
        assert_eq!(lo.len(), 2);
        assert!(lo.iter().all(|a| a.name == "lo0" && !a.network));
        assert_eq!(one("localhost").name, "127.0.0.1");
    }

    #[test]
    fn failures() {
        let fixed = Fixed::standard();
        assert_eq!(resolve("nowhere", &fixed), Err(HostError::NotFound));
        assert_eq!(resolve("1.2.3.4/33", &fixed), Err(HostError::NotFound));
        assert_eq!(
            resolve("1.2.3.4/129", &fixed),
            Err(HostError::BadNetmask("/129".into()))
        );
        assert_eq!(resolve("localhost/8", &fixed), Err(HostError::NotFound));
    }
}
