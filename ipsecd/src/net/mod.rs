//! The daemon's sockets to its peers. It receives ESP and AH through raw
//! sockets of those protocols and ESP-in-UDP (RFC 3948) through UDP
//! sockets on port 4500, and hands every arrival to the core as one whole
//! IP packet, whatever the socket gave ([`receive`]). The core builds
//! every protected packet whole, outer IP header (and UDP header for NAT
//! traversal) included; it leaves through an `IPPROTO_RAW` socket, or, for
//! ESP in UDP over IPv4, as the payload of the port-4500 socket, runs of
//! equal datagrams in one segmentation-offloaded send ([`send`]).
//!
//! What Linux gives, and what is done about it:
//! - an `AF_INET` raw socket delivers the IPv4 header as received, total
//!   length in network order (BSDs convert it; Linux does not), and after
//!   reassembly;
//! - an `AF_INET6` raw socket delivers only what follows the header of its
//!   protocol, so a fixed header is rebuilt from the ancillary data (the
//!   extension headers that came before are lost);
//! - a UDP socket delivers the payload, so an IP header is rebuilt as if
//!   the packet had not been encapsulated. `UDP_ENCAP` is not set: the
//!   kernel must not take ESP for itself. With `UDP_GRO` it may deliver a
//!   run of datagrams of one flow as one read, with their size beside it;
//!   the run is cut up again here;
//! - an `IPPROTO_RAW` socket implies "header included" for both families,
//!   sends the header as given (IPv4: the kernel fills the checksum and
//!   total length, and the identification when zero), and does not
//!   fragment: a packet longer than the route's MTU fails with `EMSGSIZE`;
//! - `UDP_SEGMENT` sends a run of payloads of one size (the last may be
//!   shorter) as one packet through the stack, cut into datagrams as late
//!   as the device allows; the kernel then picks the identification and
//!   fills the UDP checksum, which a UDP socket cannot send as zero;
//! - while a raw socket of protocol 50 or 51 is open, the kernel does not
//!   answer ESP or AH it has no handler for with an ICMP
//!   protocol-unreachable.

mod ancillary;
mod port;
mod receive;
mod send;
mod socket;
#[cfg(test)]
mod tests;

pub use port::{Outbox, Port};
pub use receive::Inbox;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use socket::{open6, socket, udp4};

/// The firewall mark on every packet the daemon sends: policy routing
/// skips the daemon's own table for it, so that the protected packet is
/// not routed back into the enc interface.
///
/// The low 16 bits are clear because others match their own bits there
/// under a mask, whatever the rest of the mark: Kubernetes 0x4000 and
/// 0x8000, Cilium 0x0f00 (0x0a00 is its ingress proxy), Istio's ambient
/// mode 0x0040 and 0x0200. Tailscale (0x40000 and 0x80000 under
/// 0xff0000) and WireGuard's wg-quick (51820) do not match it either.
pub const MARK: u32 = 0x1950_0000;

const IPPROTO_ESP: u8 = 50;
const IPPROTO_AH: u8 = 51;
const IPPROTO_COMP: u8 = 108;

/// The protocols read from raw sockets: ESP, AH, and IPComp, which a
/// transport-mode IPComp SA sends on its own.
const PROTECTED: [u8; 3] = [IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP];
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// The TTL of a rebuilt IPv4 header when the kernel gave none.
const DEFAULT_TTL: u8 = 64;

/// Where one protected packet from a peer came from; the packet is read
/// into an [`Inbox`] as a whole IP packet. From an IPv4 raw socket it is what the kernel gave,
/// header included. From an IPv6 raw socket, which gives only the
/// payload, a fixed IPv6 header is put in front: version 6, the traffic
/// class received (`IPV6_RECVTCLASS`, else 0), flow label 0, the payload
/// length, the socket's protocol as next header, the hop limit received
/// (`IPV6_RECVHOPLIMIT`, else 64), the sender's address and the
/// destination address (`IPV6_PKTINFO`). From UDP port 4500, the packet
/// as if it had not been encapsulated: a 20-byte IPv4 header (the TOS and
/// TTL received, else 0 and 64; protocol 50; identification 0; a correct
/// total length and checksum) or the IPv6 header as above with next
/// header 50, then the UDP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// For UDP-encapsulated arrivals, the peer's source UDP port; `None`
    /// for raw ESP/AH.
    pub udp_port: Option<u16>,
}

/// Which socket an input descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw4,
    /// With the protocol, which the rebuilt header names.
    Raw6(u8),
    Udp4,
    Udp6,
}

#[derive(Debug)]
struct Input {
    fd: OwnedFd,
    kind: Kind,
}

/// The sockets to the peers.
pub struct Peers {
    inputs: Vec<Input>,
    send4: OwnedFd,
    /// `None` when the kernel has no IPv6.
    send6: Option<OwnedFd>,
    keepalives: Cell<u64>,
    non_esp: Cell<u64>,
    /// IKE that came on the NAT traversal port, for the key managers:
    /// (sender, receiver, message after the marker).
    ike: RefCell<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>,
    /// Datagrams too long to be an IP packet once a header is put in
    /// front: no ESP could be in them.
    too_long: Cell<u64>,
    /// The port of the UDP sockets, which ESP in UDP leaves from too.
    udp_port: u16,
    outbox: RefCell<send::Outbox>,
    received: RefCell<receive::Scratch>,
}

impl fmt::Debug for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peers")
            .field("inputs", &self.inputs)
            .field("send4", &self.send4)
            .field("send6", &self.send6)
            .field("keepalives", &self.keepalives.get())
            .field("non_esp", &self.non_esp.get())
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// Opens the receiving raw sockets (`AF_INET` and `AF_INET6`, protocols
    /// 50 and 51), the UDP sockets bound to `udp_port` on 0.0.0.0 and [::]
    /// (`IPV6_V6ONLY`), and the sending `IPPROTO_RAW`
    /// sockets; every socket carries [`MARK`] and is non-blocking and
    /// close-on-exec. Without IPv6 in the kernel (`EAFNOSUPPORT`), carries
    /// on with IPv4 only.
    pub fn open(udp_port: u16) -> io::Result<Peers> {
        let mut inputs = Vec::new();
        for protocol in PROTECTED {
            inputs.push(Input {
                fd: socket(libc::AF_INET, libc::SOCK_RAW, protocol.into())?,
                kind: Kind::Raw4,
            });
        }
        inputs.push(Input {
            fd: udp4(udp_port)?,
            kind: Kind::Udp4,
        });
        let send4 = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        let send6 = match open6(udp_port) {
            Ok((more, send)) => {
                inputs.extend(more);
                Some(send)
            }
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => None,
            Err(e) => return Err(e),
        };
        Ok(Peers {
            inputs,
            send4,
            send6,
            too_long: Cell::new(0),
            udp_port,
            outbox: RefCell::default(),
            received: RefCell::default(),
            keepalives: Cell::new(0),
            non_esp: Cell::new(0),
            ike: RefCell::new(Vec::new()),
        })
    }

    /// The input socket of `kind`, if the kernel gave one.
    fn input(&self, kind: Kind) -> Option<&Input> {
        self.inputs.iter().find(|input| input.kind == kind)
    }

    /// The descriptors to poll for input.
    pub fn fds(&self) -> Vec<RawFd> {
        self.inputs
            .iter()
            .map(|input| input.fd.as_raw_fd())
            .collect()
    }

    /// NAT-T keepalives (a lone 0xFF, RFC 3948 §2.3) received and dropped.
    pub fn keepalives(&self) -> u64 {
        self.keepalives.get()
    }

    /// The IKE messages that came on the NAT traversal port since the
    /// last call.
    pub fn take_ike(&self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.ike.borrow_mut())
    }

    /// Datagrams with the non-ESP marker (IKE, RFC 3948 §2.2) received:
    /// handed to the key managers (`X_DATAGRAM`), or dropped when too
    /// many wait.
    pub fn non_esp(&self) -> u64 {
        self.non_esp.get()
    }

    /// Datagrams dropped for being too long to hold an IP packet.
    pub fn too_long(&self) -> u64 {
        self.too_long.get()
    }
}
