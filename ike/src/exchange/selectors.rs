//! Traffic selector narrowing (RFC 7296 §2.9): the responder answers
//! with the part of what the initiator proposed that its own policy
//! allows, and the initiator accepts only a part of what it proposed.

use crate::wire::TrafficSelector;
use std::net::IpAddr;

/// The selectors of `proposed` that `allowed` admits, each cut to what
/// both cover; empty when nothing is in common.
pub fn narrow(proposed: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(both) = intersect(p, a)
                && !out.contains(&both)
            {
                out.push(both);
            }
        }
    }
    out
}

/// Whether every selector of `answer` lies within one of `proposed`.
pub fn within(answer: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !answer.is_empty()
        && answer
            .iter()
            .all(|s| proposed.iter().any(|p| intersect(s, p).as_ref() == Some(s)))
}

/// What two selectors both cover.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let (
        TrafficSelector::Range {
            protocol: pa,
            start_port: sa,
            end_port: ea,
            start: a0,
            end: a1,
        },
        TrafficSelector::Range {
            protocol: pb,
            start_port: sb,
            end_port: eb,
            start: b0,
            end: b1,
        },
    ) = (a, b)
    else {
        return None;
    };
    let protocol = match (*pa, *pb) {
        (0, p) | (p, 0) => p,
        (x, y) if x == y => x,
        _ => return None,
    };
    let (start_port, end_port) = ((*sa).max(*sb), (*ea).min(*eb));
    if start_port > end_port {
        return None;
    }
    let start = max_addr(*a0, *b0)?;
    let end = min_addr(*a1, *b1)?;
    if key(start) > key(end) {
        return None;
    }
    Some(TrafficSelector::Range {
        protocol,
        start_port,
        end_port,
        start,
        end,
    })
}

fn key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn max_addr(a: IpAddr, b: IpAddr) -> Option<IpAddr> {
    same_family(a, b).then(|| if key(a) >= key(b) { a } else { b })
}

fn min_addr(a: IpAddr, b: IpAddr) -> Option<IpAddr> {
    same_family(a, b).then(|| if key(a) <= key(b) { a } else { b })
}

/// A selector for a network and prefix, a protocol (0: any) and a port
/// (0: any).
pub fn of_net(addr: IpAddr, prefix: u8, protocol: u8, port: u16) -> TrafficSelector {
    let (start, end) = match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            (
                IpAddr::from((bits & mask).to_be_bytes()),
                IpAddr::from((bits | !mask).to_be_bytes()),
            )
        }
    };
    let (start_port, end_port) = if port == 0 { (0, 65535) } else { (port, port) };
    TrafficSelector::Range {
        protocol,
        start_port,
        end_port,
        start,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, protocol: u8, port: u16) -> TrafficSelector {
        let (a, p) = s.split_once('/').unwrap();
        of_net(a.parse().unwrap(), p.parse().unwrap(), protocol, port)
    }

    #[test]
    fn narrowing_keeps_what_both_allow() {
        let proposed = [net("10.0.0.0/8", 0, 0)];
        let allowed = [net("10.1.0.0/16", 6, 22), net("192.168.0.0/16", 0, 0)];
        assert_eq!(narrow(&proposed, &allowed), [net("10.1.0.0/16", 6, 22)]);
        assert!(within(&[net("10.1.0.0/16", 6, 22)], &proposed));
        assert!(!within(&[net("11.0.0.0/8", 0, 0)], &proposed));
        assert!(!within(&[], &proposed), "an empty answer is no answer");
        // Different protocols, families or ports: nothing in common.
        assert_eq!(
            intersect(&net("10.0.0.0/8", 6, 0), &net("10.0.0.0/8", 17, 0)),
            None
        );
        assert_eq!(
            intersect(&net("10.0.0.0/8", 0, 0), &net("::/0", 0, 0)),
            None
        );
        assert_eq!(
            intersect(&net("10.0.0.0/8", 6, 22), &net("10.0.0.0/8", 6, 80)),
            None
        );
        assert_eq!(narrow(&proposed, &[net("172.16.0.0/12", 0, 0)]), []);
        // A host, and everything.
        assert_eq!(
            net("192.0.2.1/32", 0, 0),
            TrafficSelector::Range {
                protocol: 0,
                start_port: 0,
                end_port: 65535,
                start: "192.0.2.1".parse().unwrap(),
                end: "192.0.2.1".parse().unwrap(),
            }
        );
        assert_eq!(
            intersect(&net("0.0.0.0/0", 0, 0), &net("192.0.2.1/32", 0, 0)),
            Some(net("192.0.2.1/32", 0, 0))
        );
    }
}
