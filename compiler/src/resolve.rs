//! Everything the compiler needs to know about the host it runs on, behind
//! one trait: names of hosts, interfaces, protocols and services, the key
//! files rules refer to, and the host name. The command line implements it
//! with the system's databases; tests use [`Fixed`].

use std::collections::HashMap;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// `tcp` or `udp`, for service lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

pub trait Resolver {
    /// Addresses of the interface, or of every member of the interface
    /// group, with this name; `None` if there is no such interface.
    fn interface(&self, name: &str) -> Option<Vec<IpAddr>>;
    /// Addresses a host name resolves to (hosts file, then DNS), in order.
    fn host(&self, name: &str) -> Vec<IpAddr>;
    fn protocol_number(&self, name: &str) -> Option<u8>;
    fn protocol_name(&self, number: u8) -> Option<String>;
    fn service_port(&self, name: &str, transport: Transport) -> Option<u16>;
    fn service_name(&self, port: u16, transport: Transport) -> Option<String>;
    /// The contents of a key file, or why it could not be read.
    fn key_file(&self, path: &str) -> Result<Zeroizing<Vec<u8>>, String>;
    /// This host's name (the default identity of `dynamic` IKE rules).
    fn host_name(&self) -> String;
}

/// A resolver answering from fixed tables: deterministic, for tests.
#[derive(Debug, Clone, Default)]
pub struct Fixed {
    pub interfaces: HashMap<String, Vec<IpAddr>>,
    pub hosts: HashMap<String, Vec<IpAddr>>,
    pub protocols: Vec<(String, u8)>,
    pub services: Vec<(String, u16, Transport)>,
    pub key_files: HashMap<String, Vec<u8>>,
    pub host_name: String,
}

impl Fixed {
    /// The tables of a typical system: the usual protocols and services,
    /// `localhost`, and a loopback interface `lo0`.
    pub fn standard() -> Fixed {
        let ip = |s: &str| s.parse::<IpAddr>().expect("valid literal");
        let protocols = [
            ("ip", 0),
            ("icmp", 1),
            ("igmp", 2),
            ("ipencap", 4),
            ("tcp", 6),
            ("udp", 17),
            ("ipv6", 41),
            ("gre", 47),
            ("esp", 50),
            ("ah", 51),
            ("ipv6-icmp", 58),
            ("etherip", 97),
            ("ipcomp", 108),
            ("sctp", 132),
        ];
        let services = [
            ("ssh", 22),
            ("telnet", 23),
            ("smtp", 25),
            ("domain", 53),
            ("http", 80),
            ("ntp", 123),
            ("bgp", 179),
            ("https", 443),
            ("isakmp", 500),
            ("ipsec-nat-t", 4500),
        ];
        Fixed {
            interfaces: HashMap::from([("lo0".to_owned(), vec![ip("127.0.0.1"), ip("::1")])]),
            hosts: HashMap::from([("localhost".to_owned(), vec![ip("127.0.0.1")])]),
            protocols: protocols.iter().map(|&(n, p)| (n.to_owned(), p)).collect(),
            services: services
                .iter()
                .flat_map(|&(n, p)| {
                    [
                        (n.to_owned(), p, Transport::Tcp),
                        (n.to_owned(), p, Transport::Udp),
                    ]
                })
                .collect(),
            key_files: HashMap::new(),
            host_name: "gateway.example.org".to_owned(),
        }
    }
}

impl Resolver for Fixed {
    fn interface(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.interfaces.get(name).cloned()
    }

    fn host(&self, name: &str) -> Vec<IpAddr> {
        self.hosts.get(name).cloned().unwrap_or_default()
    }

    fn protocol_number(&self, name: &str) -> Option<u8> {
        self.protocols
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, p)| p)
    }

    fn protocol_name(&self, number: u8) -> Option<String> {
        self.protocols
            .iter()
            .find(|&&(_, p)| p == number)
            .map(|(n, _)| n.clone())
    }

    fn service_port(&self, name: &str, transport: Transport) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, _, t)| n == name && *t == transport)
            .map(|&(_, p, _)| p)
    }

    fn service_name(&self, port: u16, transport: Transport) -> Option<String> {
        self.services
            .iter()
            .find(|&&(_, p, t)| p == port && t == transport)
            .map(|(n, _, _)| n.clone())
    }

    fn key_file(&self, path: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        self.key_files
            .get(path)
            .map(|bytes| Zeroizing::new(bytes.clone()))
            .ok_or_else(|| "No such file or directory".to_owned())
    }

    fn host_name(&self) -> String {
        self.host_name.clone()
    }
}
