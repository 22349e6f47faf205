//! The pf-style filter's decision (`ipsecd -p`): rules as values, and
//! which of them a packet meets, with pf's semantics. Every rule is
//! tried in order and the last that matches decides, unless a matching
//! rule is `quick`, which decides at once; a packet no rule matches
//! passes. Each rule counts the packets and bytes it decided.
//!
//! Pure: the rules come from the filter's grammar, packets from the data
//! path; nothing here reads a file or a clock.

use crate::spd::PacketKey;
use std::net::IpAddr;

/// What a rule does with what it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pass,
    Block,
}

/// Which way a packet goes through an interface: in (toward the host, or
/// into the bridge from a port) or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    In,
    Out,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

/// A network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One item of an address list: a network, or its negation (`!net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrItem {
    pub net: Net,
    pub negated: bool,
}

/// Which addresses a rule's `from` or `to` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addrs {
    Any,
    /// A list (one item without braces): an address matches if some
    /// item does; a negated item matches every address outside it.
    List(Vec<AddrItem>),
    /// A table, by its index in the ruleset's tables.
    Table {
        index: usize,
        negated: bool,
    },
}

/// A port test, as pf writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortTest {
    Eq(u16),
    Ne(u16),
    Lt(u16),
    Le(u16),
    Gt(u16),
    Ge(u16),
    /// `a:b`: from a to b, both included.
    Range(u16, u16),
    /// `a >< b`: strictly between.
    Between(u16, u16),
    /// `a <> b`: outside, ends excluded.
    Outside(u16, u16),
}

impl PortTest {
    pub fn admits(self, port: u16) -> bool {
        match self {
            PortTest::Eq(p) => port == p,
            PortTest::Ne(p) => port != p,
            PortTest::Lt(p) => port < p,
            PortTest::Le(p) => port <= p,
            PortTest::Gt(p) => port > p,
            PortTest::Ge(p) => port >= p,
            PortTest::Range(a, b) => (a..=b).contains(&port),
            PortTest::Between(a, b) => port > a && port < b,
            PortTest::Outside(a, b) => port < a || port > b,
        }
    }
}

/// One side of a rule: addresses and, for TCP and UDP, ports (any one of
/// the tests; none means any port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addrs: Addrs,
    pub ports: Vec<PortTest>,
}

impl Endpoint {
    pub const ANY: Endpoint = Endpoint {
        addrs: Addrs::Any,
        ports: Vec::new(),
    };
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The line of the rules file it starts on.
    pub line: u32,
    /// The rule as written, for the operator.
    pub text: String,
    pub action: Action,
    /// `None`: both ways.
    pub way: Option<Way>,
    pub log: bool,
    pub quick: bool,
    /// The interface (`on IF`); `None`: any.
    pub on: Option<String>,
    pub family: Option<Family>,
    /// IP protocol numbers (`proto`); empty: any.
    pub protos: Vec<u8>,
    pub from: Endpoint,
    pub to: Endpoint,
}

/// What a packet is to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub interface: &'a str,
    pub way: Way,
    pub key: &'a PacketKey,
    pub len: usize,
}

/// What the filter decided, and by which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The deciding rule's index; `None` when no rule matched.
    pub rule: Option<usize>,
    /// The deciding rule asked for the packet in the capture.
    pub log: bool,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// What a rule decided so far, each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounters {
    pub inbound: Count,
    pub outbound: Count,
}

impl RuleCounters {
    /// Both ways together.
    pub fn total(&self) -> Count {
        Count {
            packets: self.inbound.packets + self.outbound.packets,
            bytes: self.inbound.bytes + self.outbound.bytes,
        }
    }
}

/// A loaded set of rules and the tables they name.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    file: String,
    rules: Vec<Rule>,
    tables: Vec<Vec<AddrItem>>,
    counters: Vec<RuleCounters>,
}

impl Ruleset {
    /// The rules read from `file`; `tables[i]` is the table
    /// `Addrs::Table { index: i, .. }` names.
    pub fn new(file: impl Into<String>, rules: Vec<Rule>, tables: Vec<Vec<AddrItem>>) -> Ruleset {
        let counters = vec![RuleCounters::default(); rules.len()];
        Ruleset {
            file: file.into(),
            rules,
            tables,
            counters,
        }
    }

    /// Where the rules were read from.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn counters(&self) -> &[RuleCounters] {
        &self.counters
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides `packet`, and counts it on the deciding rule.
    pub fn decide(&mut self, packet: &Packet<'_>) -> Decision {
        let mut decided = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if self.matches(rule, packet) {
                decided = Some(i);
                if rule.quick {
                    break;
                }
            }
        }
        let Some(i) = decided else {
            return Decision {
                action: Action::Pass,
                rule: None,
                log: false,
            };
        };
        let counters = &mut self.counters[i];
        let count = match packet.way {
            Way::In => &mut counters.inbound,
            Way::Out => &mut counters.outbound,
        };
        count.packets += 1;
        count.bytes += packet.len as u64;
        let rule = &self.rules[i];
        Decision {
            action: rule.action,
            rule: Some(i),
            log: rule.log,
        }
    }

    fn matches(&self, rule: &Rule, packet: &Packet<'_>) -> bool {
        let key = packet.key;
        let family = if key.src.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        };
        rule.way.is_none_or(|w| w == packet.way)
            && rule.on.as_deref().is_none_or(|on| on == packet.interface)
            && rule.family.is_none_or(|f| f == family)
            && (rule.protos.is_empty() || rule.protos.contains(&key.proto))
            && self.endpoint(&rule.from, key.src, key.sport, key.proto)
            && self.endpoint(&rule.to, key.dst, key.dport, key.proto)
    }

    fn endpoint(&self, end: &Endpoint, addr: IpAddr, port: u16, proto: u8) -> bool {
        let addrs = match &end.addrs {
            Addrs::Any => true,
            Addrs::List(items) => list_admits(items, addr),
            Addrs::Table { index, negated } => {
                let inside = self
                    .tables
                    .get(*index)
                    .is_some_and(|t| t.iter().any(|i| i.net.contains(addr)));
                inside != *negated
            }
        };
        // Ports mean something for TCP and UDP only: a rule with ports
        // matches nothing else, as in pf.
        let ports = end.ports.is_empty()
            || (matches!(proto, 6 | 17) && end.ports.iter().any(|t| t.admits(port)));
        addrs && ports
    }
}

/// Whether an address list takes `addr`: some item matches it, where a
/// negated item matches what is outside its network.
fn list_admits(items: &[AddrItem], addr: IpAddr) -> bool {
    items
        .iter()
        .any(|item| item.net.contains(addr) != item.negated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spd::Direction;

    fn net(s: &str) -> Net {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.parse().unwrap();
        let full = if addr.is_ipv4() { 32 } else { 128 };
        Net {
            addr,
            prefix: prefix.parse().unwrap_or(full),
        }
    }

    fn item(s: &str) -> AddrItem {
        let (negated, s) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        AddrItem {
            net: net(s),
            negated,
        }
    }

    fn rule(action: Action) -> Rule {
        Rule {
            line: 0,
            text: String::new(),
            action,
            way: None,
            log: false,
            quick: false,
            on: None,
            family: None,
            protos: Vec::new(),
            from: Endpoint::ANY,
            to: Endpoint::ANY,
        }
    }

    fn key(src: &str, dst: &str, proto: u8, dport: u16) -> PacketKey {
        PacketKey {
            direction: Direction::In,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            sport: 40000,
            dport,
        }
    }

    fn decide(rules: &mut Ruleset, interface: &str, way: Way, key: &PacketKey) -> Decision {
        rules.decide(&Packet {
            interface,
            way,
            key,
            len: 100,
        })
    }

    #[test]
    fn the_last_match_decides_unless_one_is_quick() {
        // block in on enc0 all
        // pass in quick on enc0 inet proto tcp from 192.168.2.0/24 to 192.168.1.10 port 22
        // pass out on enc0 proto icmp
        // block in on enc0 proto tcp to port 22
        let mut rules = Ruleset::new(
            "rules",
            vec![
                Rule {
                    way: Some(Way::In),
                    on: Some("enc0".into()),
                    ..rule(Action::Block)
                },
                Rule {
                    way: Some(Way::In),
                    quick: true,
                    on: Some("enc0".into()),
                    family: Some(Family::Inet),
                    protos: vec![6],
                    from: Endpoint {
                        addrs: Addrs::List(vec![item("192.168.2.0/24")]),
                        ports: vec![],
                    },
                    to: Endpoint {
                        addrs: Addrs::List(vec![item("192.168.1.10")]),
                        ports: vec![PortTest::Eq(22)],
                    },
                    ..rule(Action::Pass)
                },
                Rule {
                    way: Some(Way::Out),
                    on: Some("enc0".into()),
                    protos: vec![1],
                    ..rule(Action::Pass)
                },
                Rule {
                    way: Some(Way::In),
                    on: Some("enc0".into()),
                    protos: vec![6],
                    to: Endpoint {
                        addrs: Addrs::Any,
                        ports: vec![PortTest::Eq(22)],
                    },
                    ..rule(Action::Block)
                },
            ],
            vec![],
        );
        let ssh = key("192.168.2.7", "192.168.1.10", 6, 22);
        // The quick rule decides, though a later one would block.
        let d = decide(&mut rules, "enc0", Way::In, &ssh);
        assert_eq!((d.action, d.rule), (Action::Pass, Some(1)));
        // From elsewhere: the last match (rule 3) blocks.
        let other = key("10.0.0.1", "192.168.1.10", 6, 22);
        let d = decide(&mut rules, "enc0", Way::In, &other);
        assert_eq!((d.action, d.rule), (Action::Block, Some(3)));
        // Something else in: rule 0.
        let http = key("192.168.2.7", "192.168.1.10", 6, 80);
        assert_eq!(decide(&mut rules, "enc0", Way::In, &http).rule, Some(0));
        // ICMP out passes by rule 2; on another interface nothing matches.
        let ping = key("192.168.1.10", "192.168.2.7", 1, 0);
        assert_eq!(decide(&mut rules, "enc0", Way::Out, &ping).rule, Some(2));
        let d = decide(&mut rules, "em0", Way::In, &http);
        assert_eq!((d.action, d.rule), (Action::Pass, None));
        // Each rule counted what it decided.
        let packets: Vec<u64> = rules.counters().iter().map(|c| c.total().packets).collect();
        assert_eq!(packets, [1, 1, 1, 1]);
        assert_eq!(rules.counters()[3].inbound.bytes, 100);
        assert_eq!(rules.counters()[2].outbound.bytes, 100);
        assert_eq!(rules.counters()[2].inbound, Count::default());
    }

    #[test]
    fn lists_tables_negation_families_and_ports() {
        let mut rules = Ruleset::new(
            "rules",
            vec![
                Rule {
                    from: Endpoint {
                        addrs: Addrs::List(vec![item("10.0.0.0/8"), item("!10.1.0.0/16")]),
                        ports: vec![],
                    },
                    ..rule(Action::Block)
                },
                Rule {
                    quick: true,
                    to: Endpoint {
                        addrs: Addrs::Table {
                            index: 0,
                            negated: false,
                        },
                        ports: vec![PortTest::Range(1000, 2000), PortTest::Eq(53)],
                    },
                    ..rule(Action::Pass)
                },
                Rule {
                    family: Some(Family::Inet6),
                    ..rule(Action::Block)
                },
            ],
            vec![vec![item("192.0.2.0/24"), item("2001:db8::/32")]],
        );
        // As in pf, a list is an "or": "!10.1.0.0/16" takes everything
        // outside that network, so 172.16.0.1 matches, though it is not
        // in 10.0.0.0/8.
        let d = decide(
            &mut rules,
            "enc0",
            Way::In,
            &key("172.16.0.1", "198.51.100.1", 17, 9),
        );
        assert_eq!(d.rule, Some(0));
        // Into the table on a port in range: the quick pass.
        let d = decide(
            &mut rules,
            "enc0",
            Way::In,
            &key("10.0.0.1", "192.0.2.9", 6, 1500),
        );
        assert_eq!((d.action, d.rule), (Action::Pass, Some(1)));
        let d = decide(
            &mut rules,
            "enc0",
            Way::In,
            &key("10.0.0.1", "192.0.2.9", 17, 53),
        );
        assert_eq!(d.rule, Some(1));
        // Ports never match what has none.
        let d = decide(
            &mut rules,
            "enc0",
            Way::In,
            &key("10.0.0.1", "192.0.2.9", 1, 0),
        );
        assert_eq!(d.rule, Some(0));
        // IPv6 meets the inet6 rule last.
        let d = decide(
            &mut rules,
            "enc0",
            Way::In,
            &key("2001:db8::1", "2001:db8::2", 1, 0),
        );
        assert_eq!((d.action, d.rule), (Action::Block, Some(2)));
        // Port tests as pf writes them.
        assert!(PortTest::Between(10, 20).admits(11) && !PortTest::Between(10, 20).admits(10));
        assert!(PortTest::Outside(10, 20).admits(9) && !PortTest::Outside(10, 20).admits(20));
        assert!(PortTest::Ne(22).admits(23) && PortTest::Ge(1024).admits(1024));
        assert!(net("0.0.0.0/0").contains("203.0.113.5".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("2001:db8::1".parse().unwrap()));
    }
}
