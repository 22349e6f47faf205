//! Arrivals from peers: datagrams read many per system call, a run the
//! kernel joined (`UDP_GRO`) cut up again, and each made a whole IP
//! packet for the core.

use super::ancillary::{Ancillary, ControlBuffer};
use super::{Arrival, DEFAULT_TTL, IPPROTO_ESP, IPV4_HEADER, IPV6_HEADER, Kind, Peers};
use ipsec_engine::packet::PacketBuf;
use ipsec_engine::wire::{ipv4, ipv6};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, RawFd};

/// Where arrivals from the peer sockets are read and made packets, one
/// at a time (see [`Peers::next_arrival`]).
#[derive(Debug)]
pub struct Inbox {
    /// One buffer per datagram of a read, each with room for a whole run.
    slots: Vec<PacketBuf>,
    /// What the last read left in each slot.
    datagrams: Vec<Datagram>,
    /// The next datagram to make a packet of, and how far into its run.
    at: usize,
    offset: usize,
    /// Where a datagram of a run is copied to be made a packet.
    piece: PacketBuf,
}

impl Inbox {
    /// An inbox that reads up to `datagrams` datagrams at a time.
    pub fn new(datagrams: usize) -> Inbox {
        let datagrams = datagrams.max(1);
        Inbox {
            slots: (0..datagrams).map(|_| PacketBuf::new()).collect(),
            datagrams: Vec::with_capacity(datagrams),
            at: 0,
            offset: 0,
            piece: PacketBuf::new(),
        }
    }
}

/// What one recvmmsg needs, kept for the next.
#[derive(Default)]
pub(super) struct Scratch {
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<ControlBuffer>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

/// One datagram as recvmmsg left it, before it is made packets.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    kind: Kind,
    headroom: usize,
    len: usize,
    truncated: bool,
    sender: Sender,
    ancillary: Ancillary,
}

impl Peers {
    /// Reads what waits on `fd` into a fresh inbox, as [`Peers::recv_many`]
    /// does, and returns the first packet with where it came from.
    #[cfg(test)]
    pub fn recv(&self, fd: RawFd) -> io::Result<Option<(Vec<u8>, Arrival)>> {
        let mut inbox = Inbox::new(1);
        self.recv_many(fd, &mut inbox)?;
        Ok(self
            .next_arrival(&mut inbox)
            .map(|(buf, arrival)| (buf.as_slice().to_vec(), arrival)))
    }

    /// Reads as many waiting datagrams from `fd`, one of [`Peers::fds`],
    /// as `inbox` has slots, with one system call (`recvmmsg`), for
    /// [`Peers::next_arrival`] to make packets of. Returns how many
    /// datagrams (or runs) were read; 0 when none waited.
    pub fn recv_many(&self, fd: RawFd, inbox: &mut Inbox) -> io::Result<usize> {
        inbox.datagrams.clear();
        inbox.at = 0;
        inbox.offset = 0;
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
        let Scratch {
            names,
            controls,
            iovs,
            msgs,
        } = &mut *scratch;
        let max = inbox.slots.len();
        // SAFETY: sockaddr_storage is plain data; zero is a valid start.
        names.resize(max, unsafe { std::mem::zeroed() });
        controls.resize_with(max, ControlBuffer::default);
        iovs.clear();
        msgs.clear();
        for slot in inbox.slots.iter_mut() {
            let room = &mut slot.space()[headroom..];
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
        let result = if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            }
        } else {
            Ok(n as usize)
        };
        let n = *result.as_ref().unwrap_or(&0);
        for i in 0..n {
            let hdr = &msgs[i].msg_hdr;
            let control_len = hdr.msg_controllen.min(controls[i].0.len());
            inbox.datagrams.push(Datagram {
                kind: input.kind,
                headroom,
                len: msgs[i].msg_len as usize,
                truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                sender: sender(&names[i], hdr.msg_namelen),
                ancillary: Ancillary::parse(&controls[i].0[..control_len]),
            });
        }
        // No pointer into the buffers outlives the call.
        iovs.clear();
        msgs.clear();
        result
    }

    /// The next packet of what [`Peers::recv_many`] read, as a whole IP
    /// packet, and where it came from: a datagram is made a packet in its
    /// slot, and each datagram of a run the kernel joined is copied out to
    /// be made one. A NAT-T keepalive, a non-ESP datagram on port 4500 or
    /// a datagram too long to hold an IP packet is counted and left out.
    /// `None` when all of it was taken.
    pub fn next_arrival<'a>(&self, inbox: &'a mut Inbox) -> Option<(&'a mut PacketBuf, Arrival)> {
        let (slot, piece, total, arrival) = loop {
            let at = inbox.at;
            let d = *inbox.datagrams.get(at)?;
            if d.truncated || inbox.offset >= d.len {
                if d.truncated {
                    self.too_long.set(self.too_long.get() + 1);
                }
                inbox.at += 1;
                inbox.offset = 0;
                continue;
            }
            let udp = matches!(d.kind, Kind::Udp4 | Kind::Udp6);
            let run = d.ancillary.segment.filter(|&size| udp && size < d.len);
            let slot = &mut inbox.slots[at];
            let (buf, one) = match run {
                None => {
                    inbox.offset = d.len;
                    (slot, d)
                }
                Some(size) => {
                    let from = d.headroom + inbox.offset;
                    let len = size.min(d.len - inbox.offset);
                    inbox.offset += len;
                    let payload = &slot.space()[from..from + len];
                    inbox.piece.space()[d.headroom..d.headroom + len].copy_from_slice(payload);
                    (&mut inbox.piece, Datagram { len, ..d })
                }
            };
            let total = one.headroom + one.len;
            match self.frame(&one, &mut buf.space()[..total]) {
                Ok(Some(udp_port)) => break (at, run.is_some(), total, Arrival { udp_port }),
                Ok(None) => {}
                Err(e) => crate::log::debug(format_args!("peer socket: {e}")),
            }
        };
        let buf = if piece {
            &mut inbox.piece
        } else {
            &mut inbox.slots[slot]
        };
        buf.filled(total);
        Some((buf, arrival))
    }

    /// Keeps an IKE message that came to the NAT traversal port for the
    /// key managers, with who sent it and to which address; a few
    /// hundred at most wait, the rest are only counted.
    fn keep_ike(&self, d: &Datagram, message: &[u8]) {
        let found = &d.ancillary;
        let (from, to) = match d.sender {
            Sender::V4(addr, port) => (
                std::net::SocketAddr::from((addr, port)),
                found.dst4.map(std::net::IpAddr::from),
            ),
            Sender::V6(addr, port) => (
                std::net::SocketAddr::from((addr, port)),
                found.dst6.map(std::net::IpAddr::from),
            ),
            Sender::Unknown => return,
        };
        let Some(to) = to else { return };
        let mut waiting = self.ike.borrow_mut();
        if waiting.len() < MAX_IKE_WAITING {
            waiting.push((
                from,
                std::net::SocketAddr::new(to, self.udp_port),
                message.to_vec(),
            ));
        }
    }

    /// Makes one datagram, its payload in `bytes` behind the headroom, a
    /// whole IP packet by writing the header in front; or counts it and
    /// leaves it out (`None`). Returns the sender's UDP port for ESP in
    /// UDP.
    fn frame(&self, d: &Datagram, bytes: &mut [u8]) -> io::Result<Option<Option<u16>>> {
        let (header, payload) = bytes.split_at_mut(d.headroom);
        if matches!(d.kind, Kind::Udp4 | Kind::Udp6) {
            if payload == [0xff] {
                self.keepalives.set(self.keepalives.get() + 1);
                return Ok(None);
            }
            if let Some(ike) = payload.strip_prefix(&[0; 4][..]) {
                self.non_esp.set(self.non_esp.get() + 1);
                self.keep_ike(d, ike);
                return Ok(None);
            }
        }
        let n = payload.len();
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
        Ok(Some(udp_port))
    }
}

/// The sender's address as family-specific bytes and port.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sender {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    Unknown,
}

pub(super) fn sender(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Sender {
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

/// Writes a 20-byte IPv4 header for `payload_len` bytes of ESP into `out`:
/// the TOS and TTL received (else 0 and 64), identification 0, no flags.
pub(super) fn ipv4_header(
    out: &mut [u8],
    payload_len: usize,
    src: [u8; 4],
    found: &Ancillary,
) -> io::Result<()> {
    let repr = ipv4::Repr {
        src: src.into(),
        dst: found.dst4.unwrap_or_default().into(),
        protocol: IPPROTO_ESP,
        payload_len,
        tos: found.tos.unwrap_or(0),
        ttl: found.ttl.unwrap_or(DEFAULT_TTL),
        ident: 0,
        dont_fragment: false,
    };
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut out[..IPV4_HEADER]))
        .map_err(|_| too_long())
}

/// Writes a fixed IPv6 header for `payload_len` bytes into `out`: the
/// traffic class and hop limit received (else 0 and 64), flow label 0.
pub(super) fn ipv6_header(
    out: &mut [u8],
    payload_len: usize,
    next_header: u8,
    src: [u8; 16],
    found: &Ancillary,
) -> io::Result<()> {
    let repr = ipv6::Repr {
        src: src.into(),
        dst: found.dst6.unwrap_or_default().into(),
        next_header,
        payload_len,
        traffic_class: found.tclass.unwrap_or(0),
        hop_limit: found.hop_limit.unwrap_or(DEFAULT_TTL),
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut out[..IPV6_HEADER]))
        .map_err(|_| too_long())
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "datagram too long for an IP packet",
    )
}

/// IKE messages kept for the key managers between two rounds, at most.
const MAX_IKE_WAITING: usize = 256;
