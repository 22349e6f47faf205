//! Steering plaintext into the enc interface, and keeping it from leaving
//! any other way. For each destination of the outbound flows, a route
//! through `enc0` in a routing table of the daemon's own, which a policy
//! rule consults for every packet that does not carry the daemon's mark.
//! The daemon's own packets carry it ([`crate::net::MARK`]), so they are
//! routed normally: that is what stops a protected packet from looping
//! back into `enc0`, even when the peer's own address is covered by a flow.
//!
//! Fail closed: this state is the kernel's and outlives the process. The
//! enc interface is persistent, so its routes stay when the daemon dies
//! and what they carry is dropped (nobody reads the device). Behind each
//! route of a flow that must never send clear text there is a second
//! one, a blackhole at a worse metric, which holds even if the interface
//! goes. A starting daemon finds both and changes only what differs from
//! the flows it restored; only an empty SPD at a clean stop, or
//! [`Steering::teardown`], removes them.

use crate::net::MARK;
use crate::netlink::Rtnl;
use ipsec_engine::engine::EncRoute;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The daemon's routing table, and the priority of the rule that picks
/// it: after the local table (0), before main (32766).
pub const TABLE: u32 = 1950;
pub const RULE_PRIORITY: u32 = 1950;

/// Metrics in the daemon's table: the route into the enc interface wins;
/// the guard behind it only answers when that route is gone.
const ENC_METRIC: u32 = 1;
const GUARD_METRIC: u32 = 1_950_000;

/// One route of the daemon's table, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRoute {
    pub dst: IpAddr,
    pub len: u8,
    pub metric: u32,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// Into the interface with this index, naming a source address.
    Dev { index: u32, src: Option<IpAddr> },
    /// Dropped.
    Blackhole,
    /// Anything else somebody put in the table.
    Other,
}

impl TableRoute {
    /// The kernel identifies a route by these: adding one with the same
    /// key replaces it.
    fn key(&self) -> (IpAddr, u8, u32) {
        (self.dst, self.len, self.metric)
    }
}

/// The routes the flows want: into `index`, with a source that is one of
/// `local` when a flow names one (the smallest, so that the choice does
/// not depend on which flow came first), and the guards.
pub fn wanted(routes: &[EncRoute], index: u32, local: &[IpAddr]) -> BTreeSet<TableRoute> {
    let mut out = BTreeSet::new();
    for r in routes {
        let src = r.sources.iter().find(|s| local.contains(s)).copied();
        out.insert(TableRoute {
            dst: r.dst,
            len: r.len,
            metric: ENC_METRIC,
            via: Via::Dev { index, src },
        });
        if r.guard {
            out.insert(TableRoute {
                dst: r.dst,
                len: r.len,
                metric: GUARD_METRIC,
                via: Via::Blackhole,
            });
        }
    }
    out
}

/// The changes that take the table from `present` to `wanted`: what to
/// add (or replace) first, then what to remove. With `keep`, nothing is
/// removed (a guard whose flows are not known yet stays).
pub fn plan(
    present: &BTreeSet<TableRoute>,
    wanted: &BTreeSet<TableRoute>,
    keep: bool,
) -> (Vec<TableRoute>, Vec<TableRoute>) {
    let add: Vec<TableRoute> = wanted.difference(present).copied().collect();
    let replaced: BTreeSet<_> = add.iter().map(TableRoute::key).collect();
    let remove = if keep {
        Vec::new()
    } else {
        present
            .difference(wanted)
            .filter(|r| !replaced.contains(&r.key()))
            .copied()
            .collect()
    };
    (add, remove)
}

/// The policy rules and the daemon's routing table.
#[derive(Debug)]
pub struct Steering {
    rtnl: Rtnl,
    /// The IPv6 policy rule is in place: IPv6 can be steered.
    pub ipv6: bool,
}

impl Steering {
    /// Makes sure the policy rules are there, leaving in place whatever an
    /// earlier run installed.
    pub fn adopt() -> io::Result<Steering> {
        let mut steering = Steering {
            rtnl: Rtnl::open()?,
            ipv6: false,
        };
        if let Err(e) = steering.ensure_rule(AddressFamily::Inet) {
            return Err(io::Error::new(e.kind(), format!("policy rule: {e}")));
        }
        // IPv6 may be off; then IPv6 flows cannot be enforced, and are
        // refused.
        steering.ipv6 = steering.ensure_rule(AddressFamily::Inet6).is_ok();
        Ok(steering)
    }

    fn ensure_rule(&mut self, family: AddressFamily) -> io::Result<()> {
        let mut probe = RuleMessage::default();
        probe.header.family = family;
        let found = self
            .rtnl
            .dump(RouteNetlinkMessage::GetRule(probe))?
            .into_iter()
            .any(|m| matches!(m, RouteNetlinkMessage::NewRule(r) if is_ours(&r)));
        if found {
            return Ok(());
        }
        self.rtnl
            .request(RouteNetlinkMessage::NewRule(rule(family)), NLM_F_CREATE)
    }

    /// The routes in the daemon's table now.
    pub fn present(&mut self) -> io::Result<BTreeSet<TableRoute>> {
        let mut out = BTreeSet::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut probe = RouteMessage::default();
            probe.header.address_family = family;
            probe.attributes.push(RouteAttribute::Table(TABLE));
            let dumped = match self.rtnl.dump(RouteNetlinkMessage::GetRoute(probe)) {
                Ok(d) => d,
                Err(e) if family == AddressFamily::Inet6 => {
                    // No IPv6 in this kernel: no IPv6 routes either.
                    if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            for m in dumped {
                if let RouteNetlinkMessage::NewRoute(r) = m
                    && let Some(route) = parse(&r)
                {
                    out.insert(route);
                }
            }
        }
        Ok(out)
    }

    /// Adds, then removes; returns how many changes failed and the first
    /// reason, having tried every one.
    pub fn apply(
        &mut self,
        add: &[TableRoute],
        remove: &[TableRoute],
    ) -> Result<(), (usize, io::Error)> {
        let mut failed = 0;
        let mut first = None;
        let mut note = |e: io::Error, r: &TableRoute| {
            failed += 1;
            first.get_or_insert_with(|| {
                io::Error::new(
                    e.kind(),
                    format!("{}/{} metric {}: {e}", r.dst, r.len, r.metric),
                )
            });
        };
        for r in add {
            let msg = RouteNetlinkMessage::NewRoute(message(r));
            if let Err(e) = self.rtnl.request(msg, NLM_F_CREATE | NLM_F_REPLACE) {
                note(e, r);
            }
        }
        for r in remove {
            let msg = RouteNetlinkMessage::DelRoute(message(r));
            match self.rtnl.request(msg, 0) {
                // Gone already: what was wanted.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => note(e, r),
                Ok(()) => {}
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err((failed, e)),
        }
    }

    /// Removes the rules and every route of the daemon's table: the
    /// documented teardown, once no flow is left to guard.
    pub fn teardown(&mut self) -> io::Result<()> {
        let present = self.present()?;
        let all: Vec<TableRoute> = present.into_iter().collect();
        self.apply(&[], &all).map_err(|(_, e)| e)?;
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut probe = RuleMessage::default();
            probe.header.family = family;
            let Ok(rules) = self.rtnl.dump(RouteNetlinkMessage::GetRule(probe)) else {
                continue;
            };
            for m in rules {
                if let RouteNetlinkMessage::NewRule(r) = m
                    && is_ours(&r)
                {
                    self.rtnl.request(RouteNetlinkMessage::DelRule(r), 0)?;
                }
            }
        }
        Ok(())
    }
}

/// `not fwmark MARK lookup TABLE priority RULE_PRIORITY`.
fn rule(family: AddressFamily) -> RuleMessage {
    let mut r = RuleMessage::default();
    r.header.family = family;
    r.header.action = RuleAction::ToTable;
    r.header.flags = RuleFlags::Invert;
    r.attributes = vec![
        RuleAttribute::Priority(RULE_PRIORITY),
        RuleAttribute::FwMark(MARK),
        RuleAttribute::FwMask(u32::MAX),
        RuleAttribute::Table(TABLE),
    ];
    r
}

fn is_ours(r: &RuleMessage) -> bool {
    let has = |a: RuleAttribute| r.attributes.contains(&a);
    has(RuleAttribute::Priority(RULE_PRIORITY)) && has(RuleAttribute::Table(TABLE))
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// The message that adds (or, as RTM_DELROUTE, removes) a route.
fn message(r: &TableRoute) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family_of(r.dst);
    m.header.destination_prefix_length = r.len;
    // Tables above 255 are named by attribute alone.
    m.header.table = RouteHeader::RT_TABLE_UNSPEC;
    m.header.protocol = RouteProtocol::Static;
    m.attributes = vec![
        RouteAttribute::Table(TABLE),
        RouteAttribute::Destination(RouteAddress::from(r.dst)),
        RouteAttribute::Priority(r.metric),
    ];
    match r.via {
        Via::Dev { index, src } => {
            m.header.kind = RouteType::Unicast;
            m.header.scope = RouteScope::Link;
            m.attributes.push(RouteAttribute::Oif(index));
            if let Some(src) = src {
                m.attributes
                    .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
            }
        }
        Via::Blackhole => {
            m.header.kind = RouteType::BlackHole;
            m.header.scope = RouteScope::Universe;
        }
        Via::Other => {
            m.header.kind = RouteType::Unspec;
            m.header.scope = RouteScope::NoWhere;
        }
    }
    m
}

/// A route of the daemon's table, from a dump; none for other tables.
fn parse(m: &RouteMessage) -> Option<TableRoute> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut metric = 0;
    let mut index = None;
    let mut src = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip(d),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => index = Some(*i),
            RouteAttribute::PrefSource(s) => src = ip(s),
            _ => {}
        }
    }
    if table != TABLE {
        return None;
    }
    let dst = dst.unwrap_or(match m.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let via = match (m.header.kind, index) {
        (RouteType::BlackHole, _) => Via::Blackhole,
        (RouteType::Unicast, Some(index)) => Via::Dev { index, src },
        _ => Via::Other,
    };
    Some(TableRoute {
        dst,
        len: m.header.destination_prefix_length,
        metric,
        via,
    })
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The addresses of this host's interfaces.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            match i32::from(unsafe { (*entry.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: an AF_INET address is a sockaddr_in.
                    let a = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                    found.push(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()));
                }
                libc::AF_INET6 => {
                    // SAFETY: an AF_INET6 address is a sockaddr_in6.
                    let a = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                    found.push(IpAddr::from(a.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(dst: &str, len: u8, sources: &[&str], guard: bool) -> EncRoute {
        EncRoute {
            dst: dst.parse().unwrap(),
            len,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            guard,
        }
    }

    #[test]
    fn a_guarded_prefix_gets_a_blackhole_behind_its_route() {
        let local: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.7".parse().unwrap()];
        let routes = wanted(
            &[
                enc(
                    "10.2.0.0",
                    24,
                    &["192.0.2.9", "192.0.2.7", "192.0.2.1"],
                    true,
                ),
                enc("10.3.0.0", 16, &[], false),
            ],
            5,
            &local,
        );
        let want: BTreeSet<TableRoute> = [
            TableRoute {
                dst: "10.2.0.0".parse().unwrap(),
                len: 24,
                metric: ENC_METRIC,
                // The smallest of the flows' sources that is this host's.
                via: Via::Dev {
                    index: 5,
                    src: Some("192.0.2.1".parse().unwrap()),
                },
            },
            TableRoute {
                dst: "10.2.0.0".parse().unwrap(),
                len: 24,
                metric: GUARD_METRIC,
                via: Via::Blackhole,
            },
            TableRoute {
                dst: "10.3.0.0".parse().unwrap(),
                len: 16,
                metric: ENC_METRIC,
                via: Via::Dev {
                    index: 5,
                    src: None,
                },
            },
        ]
        .into();
        assert_eq!(routes, want);
    }

    #[test]
    fn the_plan_adds_before_it_removes_and_replaces_in_place() {
        let r = |dst: &str, metric, via| TableRoute {
            dst: dst.parse().unwrap(),
            len: 24,
            metric,
            via,
        };
        let dev = |src: Option<&str>| Via::Dev {
            index: 3,
            src: src.map(|s| s.parse().unwrap()),
        };
        let present: BTreeSet<_> = [
            r("10.1.0.0", ENC_METRIC, dev(None)),
            r("10.1.0.0", GUARD_METRIC, Via::Blackhole),
            r("10.9.0.0", ENC_METRIC, dev(None)),
        ]
        .into();
        let wanted: BTreeSet<_> = [
            r("10.1.0.0", ENC_METRIC, dev(Some("192.0.2.1"))),
            r("10.1.0.0", GUARD_METRIC, Via::Blackhole),
            r("10.2.0.0", ENC_METRIC, dev(None)),
        ]
        .into();
        let (add, remove) = plan(&present, &wanted, false);
        assert_eq!(
            add,
            vec![
                r("10.1.0.0", ENC_METRIC, dev(Some("192.0.2.1"))),
                r("10.2.0.0", ENC_METRIC, dev(None)),
            ]
        );
        // 10.1.0.0's old route is replaced by the new one, not removed.
        assert_eq!(remove, vec![r("10.9.0.0", ENC_METRIC, dev(None))]);
        let (_, kept) = plan(&present, &wanted, true);
        assert!(kept.is_empty());
    }

    #[test]
    fn messages_round_trip_through_the_dump_parser() {
        for route in [
            TableRoute {
                dst: "2001:db8::".parse().unwrap(),
                len: 32,
                metric: GUARD_METRIC,
                via: Via::Blackhole,
            },
            TableRoute {
                dst: "10.0.0.0".parse().unwrap(),
                len: 8,
                metric: ENC_METRIC,
                via: Via::Dev {
                    index: 9,
                    src: Some("10.0.0.1".parse().unwrap()),
                },
            },
        ] {
            assert_eq!(parse(&message(&route)), Some(route));
        }
    }
}
