//! IP protocol numbers the data path cares about (IANA's "Assigned
//! Internet Protocol Numbers"; 0 is IPv6's hop-by-hop header).

pub const HOP_BY_HOP: u8 = 0;
pub const ICMP: u8 = 1;
pub const IPV4: u8 = 4;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const IPV6: u8 = 41;
pub const ESP: u8 = 50;
pub const AH: u8 = 51;
pub const ICMPV6: u8 = 58;
pub const ETHERIP: u8 = 97;
pub const IPCOMP: u8 = 108;
