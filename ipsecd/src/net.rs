//! The daemon's sockets to its peers. The daemon builds every protected
//! packet whole, outer IP header (and UDP header for NAT traversal)
//! included, and sends it through an `IPPROTO_RAW` socket; it receives ESP
//! and AH through raw sockets of those protocols and ESP-in-UDP (RFC 3948)
//! through UDP sockets on port 4500, and hands every arrival to the core as
//! one whole IP packet, whatever the socket gave.
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
//!   kernel must not take ESP for itself;
//! - an `IPPROTO_RAW` socket implies "header included" for both families,
//!   sends the header as given (IPv4: the kernel fills the checksum and
//!   total length, and the identification when zero), and does not
//!   fragment: a packet longer than the route's MTU fails with `EMSGSIZE`;
//! - while a raw socket of protocol 50 or 51 is open, the kernel does not
//!   answer ESP or AH it has no handler for with an ICMP
//!   protocol-unreachable.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use ipsec_engine::packet::PacketBuf;
use ipsec_engine::wire::checksum;

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

/// One protected packet from a peer, read into the caller's buffer as a
/// whole IP packet. From an IPv4 raw socket it is what the kernel gave,
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
    /// Datagrams too long to be an IP packet once a header is put in
    /// front: no ESP could be in them.
    too_long: Cell<u64>,
    batch: RefCell<Batch>,
    received: RefCell<Received>,
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

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int we own.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A non-blocking, close-on-exec socket carrying [`MARK`].
fn socket(domain: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            domain,
            kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            protocol,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int(&fd, libc::SOL_SOCKET, libc::SO_MARK, MARK as libc::c_int)?;
    // Room for bursts while the daemon is busy: when a raw socket's queue
    // is full, Linux treats ESP as a protocol nobody handles and answers
    // with ICMP protocol-unreachable. FORCE passes the rmem_max limit
    // (root); the plain option is the fallback.
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int(&fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
            let _ = set_int(&fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
        }
    }
    Ok(fd)
}

/// Socket buffer size asked for, in bytes (the kernel doubles it).
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn sockaddr_in(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr),
        },
        sin_zero: [0; 8],
    }
}

fn sockaddr_in6(addr: [u8; 16], port: u16) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: addr },
        sin6_scope_id: 0,
    }
}

fn bind<T>(fd: &OwnedFd, addr: &T) -> io::Result<()> {
    // SAFETY: addr is a whole sockaddr of the socket's family, of its size.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The UDP socket for ESP-in-UDP on IPv4: the destination address, TTL
/// and TOS come as ancillary data for the rebuilt header. No
/// `SO_REUSEADDR`: with it Linux would let a later socket (a second
/// daemon, another IKE daemon) bind the port too and take its datagrams;
/// without it that socket's bind fails, which is the clear outcome.
fn udp4(port: u16) -> io::Result<OwnedFd> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)?;
    bind(&fd, &sockaddr_in([0; 4], port))?;
    Ok(fd)
}

/// The IPv6 options every IPv6 input socket needs for the rebuilt header.
fn recv_ancillary6(fd: &OwnedFd) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1)
}

/// The IPv6 sockets: inputs and the sending socket.
fn open6(port: u16) -> io::Result<(Vec<Input>, OwnedFd)> {
    let mut inputs = Vec::new();
    for protocol in PROTECTED {
        let fd = socket(libc::AF_INET6, libc::SOCK_RAW, protocol.into())?;
        recv_ancillary6(&fd)?;
        inputs.push(Input {
            fd,
            kind: Kind::Raw6(protocol),
        });
    }
    let fd = socket(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    recv_ancillary6(&fd)?;
    bind(&fd, &sockaddr_in6([0; 16], port))?;
    inputs.push(Input {
        fd,
        kind: Kind::Udp6,
    });
    let send = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    Ok((inputs, send))
}

/// What the ancillary data of one datagram said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ancillary {
    dst4: Option<[u8; 4]>,
    ttl: Option<u8>,
    tos: Option<u8>,
    dst6: Option<[u8; 16]>,
    hop_limit: Option<u8>,
    tclass: Option<u8>,
}

/// Linux's `CMSG_ALIGN`: to the size of a long.
const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<libc::c_long>() - 1) & !(size_of::<libc::c_long>() - 1)
}

/// An `int` option value; Linux gives TTL, hop limit and traffic class so.
fn int_value(data: &[u8]) -> Option<u8> {
    let bytes: [u8; 4] = data.get(..4)?.try_into().ok()?;
    u8::try_from(i32::from_ne_bytes(bytes)).ok()
}

impl Ancillary {
    /// Walks the control messages in `control`, trusting none of the
    /// lengths in it; what does not fit or is not understood is skipped.
    fn parse(mut control: &[u8]) -> Ancillary {
        let mut found = Ancillary::default();
        let header = size_of::<libc::cmsghdr>();
        while control.len() >= header {
            // SAFETY: control holds at least a cmsghdr's bytes, which are
            // read unaligned into a plain-data copy.
            let cmsg: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control.as_ptr().cast()) };
            let len = cmsg.cmsg_len as usize;
            let Some(data) = control.get(cmsg_align(header)..len) else {
                break;
            };
            match (cmsg.cmsg_level, cmsg.cmsg_type) {
                // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
                // addr is the header's destination.
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    found.dst4 = data.get(8..12).and_then(|a| a.try_into().ok());
                }
                (libc::IPPROTO_IP, libc::IP_TTL) => found.ttl = int_value(data),
                // One byte, unlike the others.
                (libc::IPPROTO_IP, libc::IP_TOS) => found.tos = data.first().copied(),
                // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    found.dst6 = data.get(..16).and_then(|a| a.try_into().ok());
                }
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => found.hop_limit = int_value(data),
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => found.tclass = int_value(data),
                _ => {}
            }
            control = control.get(cmsg_align(len)..).unwrap_or_default();
        }
        found
    }
}

/// Room for the control messages of one datagram, aligned for cmsghdr.
#[repr(C, align(8))]
struct ControlBuffer([u8; 256]);

/// The sender's address as family-specific bytes and port.
enum Sender {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    Unknown,
}

fn sender(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Sender {
    let len = len as usize;
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: sockaddr_storage is big and aligned enough for any
            // sockaddr, and the kernel said it wrote a sockaddr_in.
            let sin =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Sender::V4(
                sin.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(sin.sin_port),
            )
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Sender::V6(sin6.sin6_addr.s6_addr, u16::from_be(sin6.sin6_port))
        }
        _ => Sender::Unknown,
    }
}

/// Writes a 20-byte IPv4 header for `payload_len` bytes of ESP into `out`.
fn ipv4_header(
    out: &mut [u8],
    payload_len: usize,
    src: [u8; 4],
    found: &Ancillary,
) -> io::Result<()> {
    let total = u16::try_from(IPV4_HEADER + payload_len).map_err(|_| too_long())?;
    out[..IPV4_HEADER].fill(0);
    out[0] = 0x45;
    out[1] = found.tos.unwrap_or(0);
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[8] = found.ttl.unwrap_or(DEFAULT_TTL);
    out[9] = IPPROTO_ESP;
    out[12..16].copy_from_slice(&src);
    out[16..20].copy_from_slice(&found.dst4.unwrap_or_default());
    let sum = checksum::of(&out[..IPV4_HEADER]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Writes a fixed IPv6 header for `payload_len` bytes into `out`.
fn ipv6_header(
    out: &mut [u8],
    payload_len: usize,
    next_header: u8,
    src: [u8; 16],
    found: &Ancillary,
) -> io::Result<()> {
    let length = u16::try_from(payload_len).map_err(|_| too_long())?;
    let tclass = u32::from(found.tclass.unwrap_or(0));
    out[..4].copy_from_slice(&((6 << 28) | (tclass << 20)).to_be_bytes());
    out[4..6].copy_from_slice(&length.to_be_bytes());
    out[6] = next_header;
    out[7] = found.hop_limit.unwrap_or(DEFAULT_TTL);
    out[8..24].copy_from_slice(&src);
    out[24..40].copy_from_slice(&found.dst6.unwrap_or_default());
    Ok(())
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "datagram too long for an IP packet",
    )
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
            batch: RefCell::default(),
            received: RefCell::default(),
            keepalives: Cell::new(0),
            non_esp: Cell::new(0),
        })
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

    /// Datagrams with the non-ESP marker (IKE, RFC 3948 §2.2) received and
    /// dropped: there is no IKE daemon here to take them.
    pub fn non_esp(&self) -> u64 {
        self.non_esp.get()
    }

    /// Datagrams dropped for being too long to hold an IP packet.
    pub fn too_long(&self) -> u64 {
        self.too_long.get()
    }

    /// Reads one waiting packet from `fd` into `buf`, as
    /// [`Peers::recv_many`] does.
    #[cfg(test)]
    pub fn recv(&self, fd: RawFd, buf: &mut PacketBuf) -> io::Result<Option<Arrival>> {
        let mut arrivals = Vec::new();
        self.recv_many(fd, std::slice::from_mut(buf), &mut arrivals)?;
        Ok(arrivals.pop().flatten())
    }

    /// Reads up to `bufs.len()` waiting datagrams from `fd`, one of
    /// [`Peers::fds`], with one system call (`recvmmsg`): the n-th into
    /// `bufs[n]`, and where it came from as `arrivals[n]`. A NAT-T
    /// keepalive, a non-ESP datagram on port 4500 or a datagram too long
    /// to hold an IP packet is counted and left out (`None`, its buffer
    /// empty). Returns how many datagrams were read; 0 when none waited.
    pub fn recv_many(
        &self,
        fd: RawFd,
        bufs: &mut [PacketBuf],
        arrivals: &mut Vec<Option<Arrival>>,
    ) -> io::Result<usize> {
        arrivals.clear();
        let Some(input) = self.inputs.iter().find(|i| i.fd.as_raw_fd() == fd) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is not one of the peer sockets"),
            ));
        };
        let headroom = match input.kind {
            Kind::Raw4 => 0,
            Kind::Udp4 => IPV4_HEADER,
            Kind::Raw6(_) | Kind::Udp6 => IPV6_HEADER,
        };
        let mut scratch = self.received.borrow_mut();
        let Received {
            names,
            controls,
            iovs,
            msgs,
        } = &mut *scratch;
        let max = bufs.len();
        // SAFETY: sockaddr_storage is plain data; zero is a valid start.
        names.resize(max, unsafe { std::mem::zeroed() });
        controls.resize_with(max, || ControlBuffer([0; 256]));
        iovs.clear();
        msgs.clear();
        for buf in bufs.iter_mut() {
            let room = &mut buf.space()[headroom..];
            iovs.push(libc::iovec {
                iov_base: room.as_mut_ptr().cast(),
                iov_len: room.len(),
            });
        }
        // Only now, with every vector complete, do pointers into them
        // stay put.
        for ((name, control), iov) in names
            .iter_mut()
            .zip(controls.iter_mut())
            .zip(iovs.iter_mut())
        {
            // SAFETY: msghdr is plain data (pointers and lengths); zero is
            // a valid start.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_mut(name).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = std::ptr::from_mut(iov);
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = control.0.len() as _;
            msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        // SAFETY: every header points at an address, a control buffer and
        // a packet buffer of this call, each with its true length.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                max as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (i, buf) in bufs.iter_mut().enumerate().take(n) {
            let hdr = &msgs[i].msg_hdr;
            let control_len = hdr.msg_controllen.min(controls[i].0.len());
            let datagram = Datagram {
                kind: input.kind,
                headroom,
                len: msgs[i].msg_len as usize,
                truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                sender: sender(&names[i], hdr.msg_namelen),
                ancillary: Ancillary::parse(&controls[i].0[..control_len]),
            };
            let arrival = self.arrival(&datagram, buf).unwrap_or_else(|e| {
                crate::log::debug(format_args!("peer socket: {e}"));
                None
            });
            if arrival.is_none() {
                buf.filled(0);
            }
            arrivals.push(arrival);
        }
        // No pointer into the buffers outlives the call.
        iovs.clear();
        msgs.clear();
        Ok(n)
    }

    /// Makes a received datagram (in `buf`'s space, behind `headroom`) a
    /// whole IP packet, or counts and leaves it out.
    fn arrival(&self, d: &Datagram, buf: &mut PacketBuf) -> io::Result<Option<Arrival>> {
        if d.truncated {
            self.too_long.set(self.too_long.get() + 1);
            return Ok(None);
        }
        let (n, headroom) = (d.len, d.headroom);
        let buffer = buf.space();
        let payload = &buffer[headroom..headroom + n];
        if matches!(d.kind, Kind::Udp4 | Kind::Udp6) {
            if payload == [0xff] {
                self.keepalives.set(self.keepalives.get() + 1);
                return Ok(None);
            }
            if payload.starts_with(&[0; 4]) {
                self.non_esp.set(self.non_esp.get() + 1);
                return Ok(None);
            }
        }
        let header = &mut buffer[..headroom];
        let found = &d.ancillary;
        let udp_port = match (d.kind, &d.sender) {
            (Kind::Raw4, _) => None,
            (Kind::Raw6(protocol), Sender::V6(src, _)) => {
                ipv6_header(header, n, protocol, *src, found)?;
                None
            }
            (Kind::Raw6(protocol), _) => {
                ipv6_header(header, n, protocol, [0; 16], found)?;
                None
            }
            (Kind::Udp4, Sender::V4(src, port)) => {
                ipv4_header(header, n, *src, found)?;
                Some(*port)
            }
            (Kind::Udp6, Sender::V6(src, port)) => {
                ipv6_header(header, n, IPPROTO_ESP, *src, found)?;
                Some(*port)
            }
            (Kind::Udp4 | Kind::Udp6, _) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "UDP datagram without a sender address of its family",
                ));
            }
        };
        buf.filled(headroom + n);
        Ok(Some(Arrival { udp_port }))
    }

    /// Sends a whole IP packet, IPv4 or IPv6 by its version nibble, to the
    /// destination in its header, through the matching `IPPROTO_RAW`
    /// socket. A full socket buffer or queue (`EAGAIN`, `ENOBUFS`) is an
    /// error like any other, for the caller to count.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let version = packet.first().map(|b| b >> 4);
        let n = match version {
            Some(4) if packet.len() >= IPV4_HEADER => {
                let mut dst = [0; 4];
                dst.copy_from_slice(&packet[16..20]);
                let addr = sockaddr_in(dst, 0);
                sendto(&self.send4, packet, &addr)?
            }
            Some(6) if packet.len() >= IPV6_HEADER => {
                let Some(send6) = &self.send6 else {
                    return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
                };
                let mut dst = [0; 16];
                dst.copy_from_slice(&packet[24..40]);
                let addr = sockaddr_in6(dst, 0);
                sendto(send6, packet, &addr)?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a whole IPv4 or IPv6 header",
                ));
            }
        };
        if n != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the raw socket took part of a packet",
            ));
        }
        Ok(())
    }
}

impl Peers {
    /// Sends many whole IPv4 packets with one system call per batch
    /// (sendmmsg); IPv6 and anything odd go one by one through
    /// [`Peers::send`]. Returns how many could not be sent. The vectors
    /// the call needs are kept from one batch to the next.
    pub fn send_many<'a>(&self, packets: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut failed = 0;
        let mut batch = self.batch.borrow_mut();
        let Batch { addrs, iovs, msgs } = &mut *batch;
        addrs.clear();
        iovs.clear();
        msgs.clear();
        for p in packets {
            if p.first().map(|b| b >> 4) == Some(4) && p.len() >= IPV4_HEADER {
                addrs.push(sockaddr_in([p[16], p[17], p[18], p[19]], 0));
                iovs.push(libc::iovec {
                    iov_base: p.as_ptr().cast_mut().cast(),
                    iov_len: p.len(),
                });
            } else if self.send(p).is_err() {
                failed += 1;
            }
        }
        // Only now, with both vectors complete, do pointers into them
        // stay put.
        for (iov, addr) in iovs.iter_mut().zip(addrs.iter()) {
            // SAFETY: an all-zero msghdr is valid; the fields set below
            // point into vectors that outlive the call.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_ref(addr).cast_mut().cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = std::ptr::from_mut(iov);
            hdr.msg_iovlen = 1;
            msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        let mut done = 0;
        while done < msgs.len() {
            let rest = &mut msgs[done..];
            // SAFETY: sendmmsg over `rest`, whose headers point at live
            // buffers and addresses.
            let n = unsafe {
                libc::sendmmsg(
                    self.send4.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                // The first of the rest failed: count it and go on.
                failed += 1;
                done += 1;
            } else {
                done += n as usize;
            }
        }
        // No pointer into the packets outlives the call.
        iovs.clear();
        msgs.clear();
        failed
    }
}

/// What one recvmmsg needs, kept for the next.
#[derive(Default)]
struct Received {
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<ControlBuffer>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

/// One datagram as recvmmsg left it, before it is made a packet.
struct Datagram {
    kind: Kind,
    headroom: usize,
    len: usize,
    truncated: bool,
    sender: Sender,
    ancillary: Ancillary,
}

/// What one sendmmsg needs, kept for the next.
#[derive(Default)]
struct Batch {
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

fn sendto<T>(fd: &OwnedFd, packet: &[u8], addr: &T) -> io::Result<usize> {
    // SAFETY: sendto from a valid buffer of its length, to a whole
    // sockaddr of the socket's family.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (addr as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tun::netns::{is_root, readable, run, sh};
    use std::net::{Ipv6Addr, UdpSocket};

    const LOOPBACK4: [u8; 4] = [127, 0, 0, 1];

    fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = (IPV4_HEADER + payload.len()) as u16;
        let mut p = vec![0x45, 0x08, 0, 0, 0xab, 0xcd, 0x40, 0, 37, protocol, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&LOOPBACK4);
        p.extend_from_slice(&LOOPBACK4);
        let sum = checksum::of(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// Traffic class 0x28 and hop limit 33, so that both are seen to come
    /// from the ancillary data; flow label 0, which is not carried.
    fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x62, 0x80, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next_header, 33]);
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(payload);
        p
    }

    fn input(peers: &Peers, kind: Kind) -> RawFd {
        peers
            .inputs
            .iter()
            .find(|i| i.kind == kind)
            .map(|i| i.fd.as_raw_fd())
            .unwrap()
    }

    /// An arrival and the packet read with it.
    #[derive(Debug)]
    struct Got {
        packet: Vec<u8>,
        udp_port: Option<u16>,
    }

    /// The next arrival on `fd`, within two seconds.
    fn arrival(peers: &Peers, fd: RawFd) -> Option<Got> {
        assert!(readable(fd, 2000), "nothing arrived on {fd}");
        let mut buf = PacketBuf::new();
        let arrival = peers.recv(fd, &mut buf).unwrap()?;
        Some(Got {
            packet: buf.as_slice().to_vec(),
            udp_port: arrival.udp_port,
        })
    }

    /// Nothing else is waiting on any input.
    fn all_quiet(peers: &Peers) {
        let mut buf = PacketBuf::new();
        for fd in peers.fds() {
            let stray = peers.recv(fd, &mut buf).unwrap();
            assert!(stray.is_none(), "stray packet on {fd}");
        }
    }

    fn esp_payload(spi: u32) -> Vec<u8> {
        let mut p = spi.to_be_bytes().to_vec();
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(b"opaque ciphertext, odd length");
        p
    }

    #[test]
    fn cmsg_parsing_trusts_no_length() {
        assert_eq!(Ancillary::parse(&[]), Ancillary::default());
        assert_eq!(Ancillary::parse(&[0xff; 7]), Ancillary::default());
        let header = size_of::<libc::cmsghdr>();
        let data_at = cmsg_align(header);
        let cmsg = |len: usize, level: libc::c_int, kind: libc::c_int, data: &[u8]| {
            // SAFETY: cmsghdr is plain data; zero is a valid start.
            let mut c: libc::cmsghdr = unsafe { std::mem::zeroed() };
            c.cmsg_len = len as _;
            c.cmsg_level = level;
            c.cmsg_type = kind;
            // SAFETY: viewing a local plain-data struct as its bytes.
            let raw = unsafe { std::slice::from_raw_parts((&raw const c).cast::<u8>(), header) };
            let mut bytes = raw.to_vec();
            bytes.resize(data_at, 0);
            bytes.extend_from_slice(data);
            bytes.resize(cmsg_align(bytes.len()), 0);
            bytes
        };
        let ttl = cmsg(
            data_at + 4,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            &200i32.to_ne_bytes(),
        );
        let tos = cmsg(data_at + 1, libc::IPPROTO_IP, libc::IP_TOS, &[0xb8]);
        let mut both = ttl.clone();
        both.extend_from_slice(&tos);
        let found = Ancillary::parse(&both);
        assert_eq!((found.ttl, found.tos), (Some(200), Some(0xb8)));
        // Lengths that lie: past the end, shorter than a header, zero.
        for len in [both.len() + 1, header - 1, 0, usize::MAX >> 1] {
            let lie = cmsg(len, libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes());
            assert_eq!(Ancillary::parse(&lie), Ancillary::default(), "{len}");
        }
        // Data too short for what the type says, and values out of range.
        let short = cmsg(data_at + 2, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[1; 2]);
        assert_eq!(Ancillary::parse(&short), Ancillary::default());
        let big = cmsg(
            data_at + 4,
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &300i32.to_ne_bytes(),
        );
        assert_eq!(Ancillary::parse(&big), Ancillary::default());
    }

    #[test]
    fn peers_carry_esp_ah_and_esp_in_udp() {
        const TEST: &str = "peers_carry_esp_ah_and_esp_in_udp";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            sh(&["ip", "link", "set", "lo", "up"]);
            let peers = Peers::open(4500).unwrap();
            let v6 = peers.send6.is_some();
            assert_eq!(peers.fds().len(), if v6 { 8 } else { 4 });
            for input in &peers.inputs {
                let fd = input.fd.as_raw_fd();
                // SAFETY: the descriptor is ours and open.
                let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
                assert_ne!(fl & libc::O_NONBLOCK, 0);
                // SAFETY: as above.
                assert_ne!(
                    unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC,
                    0
                );
                let mut mark: libc::c_int = 0;
                let mut len = size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: getsockopt fills one c_int we own.
                check(unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_MARK,
                        (&raw mut mark).cast(),
                        &mut len,
                    )
                })
                .unwrap();
                assert_eq!(mark as u32, MARK);
            }
            all_quiet(&peers);

            // Raw IPv4 ESP and AH come back byte for byte: the kernel gives
            // the header as sent, total length in network order.
            for (protocol, spi) in [(IPPROTO_ESP, 0x1000_0001), (IPPROTO_AH, 0x1000_0002)] {
                let sent = ipv4(protocol, &esp_payload(spi));
                peers.send(&sent).unwrap();
                let raw4: Vec<RawFd> = peers
                    .inputs
                    .iter()
                    .filter(|i| i.kind == Kind::Raw4)
                    .map(|i| i.fd.as_raw_fd())
                    .collect();
                let fd = raw4[usize::from(protocol == IPPROTO_AH)];
                let got = arrival(&peers, fd).unwrap();
                assert_eq!(got.udp_port, None);
                assert_eq!(got.packet, sent, "protocol {protocol}");
                all_quiet(&peers);
            }
            // The kernel fills a zero identification and checksum.
            let mut unfilled = ipv4(IPPROTO_ESP, &esp_payload(3));
            unfilled[4..6].fill(0);
            unfilled[10..12].fill(0);
            peers.send(&unfilled).unwrap();
            let got = arrival(&peers, input(&peers, Kind::Raw4)).unwrap();
            assert_eq!(checksum::of(&got.packet[..IPV4_HEADER]), 0);
            assert_eq!(got.packet[..4], unfilled[..4]);
            assert_eq!(got.packet[12..], unfilled[12..]);

            // UDP 4500 over IPv4: a rebuilt header of protocol 50.
            let udp4 = input(&peers, Kind::Udp4);
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = socket.local_addr().unwrap().port();
            let payload = esp_payload(0x2000_0001);
            socket.send_to(&payload, "127.0.0.1:4500").unwrap();
            let got = arrival(&peers, udp4).unwrap();
            assert_eq!(got.udp_port, Some(port));
            let p = &got.packet;
            assert_eq!(p.len(), IPV4_HEADER + payload.len());
            assert_eq!(p[0], 0x45);
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(p[8], 64, "the default TTL of a UDP socket");
            assert_eq!(p[9], IPPROTO_ESP);
            assert_eq!(checksum::of(&p[..IPV4_HEADER]), 0);
            assert_eq!(p[12..16], LOOPBACK4);
            assert_eq!(p[16..20], LOOPBACK4);
            assert_eq!(&p[IPV4_HEADER..], &payload[..]);
            // The TOS and TTL received are the ones in the rebuilt header.
            let marked = UdpSocket::bind("127.0.0.1:0").unwrap();
            marked.set_ttl(9).unwrap();
            // SAFETY: setsockopt reads one c_int we own.
            check(unsafe {
                let tos: libc::c_int = 0x2e;
                libc::setsockopt(
                    marked.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_TOS,
                    (&raw const tos).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            })
            .unwrap();
            marked.send_to(&payload, "127.0.0.1:4500").unwrap();
            let p = arrival(&peers, udp4).unwrap().packet;
            assert_eq!((p[1], p[8]), (0x2e, 9));
            assert_eq!(checksum::of(&p[..IPV4_HEADER]), 0);

            // A keepalive and a non-ESP marker are consumed and counted.
            socket.send_to(&[0xff], "127.0.0.1:4500").unwrap();
            assert!(arrival(&peers, udp4).is_none());
            assert_eq!(peers.keepalives(), 1);
            socket
                .send_to(&[0, 0, 0, 0, 0x21, 0x20], "127.0.0.1:4500")
                .unwrap();
            assert!(arrival(&peers, udp4).is_none());
            assert_eq!(peers.non_esp(), 1);
            all_quiet(&peers);

            // A descriptor that is not ours, and packets that are not IP.
            assert_eq!(
                peers.recv(-1, &mut PacketBuf::new()).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            for junk in [&[][..], &[0x45; 19], &[0x60; 39], &[0x12; 64]] {
                assert_eq!(
                    peers.send(junk).unwrap_err().kind(),
                    io::ErrorKind::InvalidInput
                );
            }

            if !v6 {
                eprintln!("{TEST}: no IPv6 in this kernel, IPv6 not tested");
                return;
            }
            // Raw IPv6: the kernel gives the payload; the rebuilt header
            // is the one sent, traffic class and hop limit included.
            for (protocol, spi) in [(IPPROTO_ESP, 0x3000_0001), (IPPROTO_AH, 0x3000_0002)] {
                let sent = ipv6(protocol, &esp_payload(spi));
                peers.send(&sent).unwrap();
                let got = arrival(&peers, input(&peers, Kind::Raw6(protocol))).unwrap();
                assert_eq!(got.udp_port, None);
                assert_eq!(got.packet, sent, "protocol {protocol}");
                all_quiet(&peers);
            }

            // UDP 4500 over IPv6.
            let socket = UdpSocket::bind("[::1]:0").unwrap();
            let port = socket.local_addr().unwrap().port();
            let payload = esp_payload(0x4000_0001);
            socket.send_to(&payload, "[::1]:4500").unwrap();
            let got = arrival(&peers, input(&peers, Kind::Udp6)).unwrap();
            assert_eq!(got.udp_port, Some(port));
            let mut expected = ipv6(IPPROTO_ESP, &payload);
            expected[..2].copy_from_slice(&[0x60, 0]); // traffic class 0
            expected[7] = 64; // the loopback's default hop limit
            assert_eq!(got.packet, expected);
            socket.send_to(&[0xff], "[::1]:4500").unwrap();
            assert!(arrival(&peers, input(&peers, Kind::Udp6)).is_none());
            assert_eq!(peers.keepalives(), 2);
            all_quiet(&peers);
        });
    }

    /// A second daemon cannot take the NAT-T port from the first.
    #[test]
    fn a_second_binder_is_refused() {
        const TEST: &str = "a_second_binder_is_refused";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            sh(&["ip", "link", "set", "lo", "up"]);
            let first = Peers::open(4500).unwrap();
            let err = Peers::open(4500).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.send_to(&esp_payload(5), "127.0.0.1:4500").unwrap();
            assert!(arrival(&first, input(&first, Kind::Udp4)).is_some());
        });
    }

    /// Every ICMP (or ICMPv6) message that arrives within 300 ms after
    /// `packet` is sent from a socket without the mark, as (type, code).
    fn icmp_errors_after(packet: &[u8]) -> Vec<(u8, u8)> {
        let v6 = packet[0] >> 4 == 6;
        let (family, protocol, header) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6, 0)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP, IPV4_HEADER)
        };
        let listener = socket(family, libc::SOCK_RAW, protocol).unwrap();
        let sender = socket(family, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap();
        let n = if v6 {
            sendto(
                &sender,
                packet,
                &sockaddr_in6(Ipv6Addr::LOCALHOST.octets(), 0),
            )
        } else {
            sendto(&sender, packet, &sockaddr_in(LOOPBACK4, 0))
        };
        assert_eq!(n.unwrap(), packet.len());
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while readable(listener.as_raw_fd(), 300) {
            // SAFETY: recv(2) into a local buffer, at most its length.
            let n =
                unsafe { libc::recv(listener.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if let Some(icmp) = usize::try_from(n)
                .ok()
                .and_then(|n| buf[..n].get(header..header + 2))
            {
                seen.push((icmp[0], icmp[1]));
            }
        }
        seen
    }

    /// Linux answers a protocol it has no handler for with ICMP protocol
    /// unreachable (ICMPv6 parameter problem, unrecognized next header),
    /// unless a raw socket took the packet: the open Peers keep the kernel
    /// quiet about ESP and AH (on a kernel without esp4/ah4 it would
    /// answer). Protocol 99 shows that the listener hears what is sent.
    #[test]
    fn open_peers_keep_the_kernel_from_refusing_what_they_read() {
        const TEST: &str = "open_peers_keep_the_kernel_from_refusing_what_they_read";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            sh(&["ip", "link", "set", "lo", "up"]);
            let peers = Peers::open(4500).unwrap();
            for protocol in PROTECTED {
                assert_eq!(icmp_errors_after(&ipv4(protocol, &esp_payload(1))), []);
            }
            assert_eq!(icmp_errors_after(&ipv4(99, &esp_payload(1))), [(3, 2)]);
            if peers.send6.is_some() {
                for protocol in PROTECTED {
                    assert_eq!(icmp_errors_after(&ipv6(protocol, &esp_payload(1))), []);
                }
                assert_eq!(icmp_errors_after(&ipv6(99, &esp_payload(1))), [(4, 1)]);
            }
            // The raw sockets got them all; nothing else is left over.
            let mut got = 0;
            for fd in peers.fds() {
                while peers.recv(fd, &mut PacketBuf::new()).unwrap().is_some() {
                    got += 1;
                }
            }
            assert_eq!(got, if peers.send6.is_some() { 6 } else { 3 });
        });
    }

    /// The mark is what the routing lookup of a send sees: a destination
    /// only a `fwmark MARK` rule can route is reached by `send` and not by
    /// an unmarked raw socket.
    #[test]
    fn the_mark_steers_the_route_of_what_is_sent() {
        const TEST: &str = "the_mark_steers_the_route_of_what_is_sent";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            let mark = format!("{MARK:#x}");
            sh(&["ip", "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "route",
                "add",
                "10.88.0.0/16",
                "dev",
                "lo",
                "table",
                "300",
            ]);
            sh(&["ip", "rule", "add", "fwmark", &mark, "lookup", "300"]);
            let peers = Peers::open(4500).unwrap();
            let mut packet = ipv4(IPPROTO_ESP, &esp_payload(1));
            packet[16..20].copy_from_slice(&[10, 88, 0, 1]);
            peers.send(&packet).unwrap();
            let unmarked = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap();
            set_int(&unmarked, libc::SOL_SOCKET, libc::SO_MARK, 0).unwrap();
            let e = sendto(&unmarked, &packet, &sockaddr_in([10, 88, 0, 1], 0)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH), "{e}");
            if peers.send6.is_some() {
                sh(&[
                    "ip",
                    "-6",
                    "route",
                    "add",
                    "fd88::/16",
                    "dev",
                    "lo",
                    "table",
                    "300",
                ]);
                sh(&["ip", "-6", "rule", "add", "fwmark", &mark, "lookup", "300"]);
                let mut packet = ipv6(IPPROTO_ESP, &esp_payload(1));
                packet[24..26].copy_from_slice(&[0xfd, 0x88]);
                peers.send(&packet).unwrap();
            }
        });
    }
}
