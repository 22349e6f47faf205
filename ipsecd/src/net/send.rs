//! What leaves for peers: whole IP packets through the `IPPROTO_RAW`
//! sockets, many per system call; and ESP in UDP over IPv4 as the
//! payload of the UDP socket, each run of equal datagrams to one peer in
//! one send that the kernel cuts up as late as it can (`UDP_SEGMENT`).

use super::ancillary::{ControlBuffer, Outgoing};
use super::socket::{sendto, sockaddr_in, sockaddr_in6};
use super::{IPV4_HEADER, IPV6_HEADER, Kind, Peers};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, RawFd};

/// The most datagrams one segmented send carries (the kernel's limit is
/// 64 or 128, by version).
const MAX_SEGMENTS: usize = 64;

/// The most payload one segmented send carries: what one IPv4 UDP
/// datagram could hold.
const MAX_RUN: usize = 65_535 - IPV4_HEADER - UDP_HEADER;

const UDP_HEADER: usize = 8;

impl Peers {
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
    /// Sends many whole packets: IPv4 through the raw socket with one
    /// system call per batch (`sendmmsg`), ESP in UDP over IPv4 from the
    /// UDP socket in runs, IPv6 and anything odd one by one through
    /// [`Peers::send`]. A run the UDP socket refuses goes through the
    /// raw socket instead. Returns how many packets could not be sent.
    /// The vectors the calls need are kept from one batch to the next.
    pub fn send_many<'a>(&self, packets: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut failed = 0;
        let mut outbox = self.outbox.borrow_mut();
        outbox.clear();
        let udp = self.input(Kind::Udp4).map(|input| input.fd.as_raw_fd());
        for p in packets {
            match (udp, esp_in_udp4(p, self.udp_port)) {
                (Some(_), Some(outer)) => outbox.add_to_run(p, outer),
                _ if p.first().map(|b| b >> 4) == Some(4) && p.len() >= IPV4_HEADER => {
                    outbox.add_raw(p);
                }
                _ => failed += usize::from(self.send(p).is_err()),
            }
        }
        if let Some(udp) = udp {
            outbox.send_runs(udp, |p| failed += usize::from(self.send(p).is_err()));
        }
        failed + outbox.send_raw(self.send4.as_raw_fd())
    }
}

/// The outer header of an ESP-in-UDP packet this host can send from its
/// UDP socket: IPv4 without options or fragmentation, DF set, from the
/// socket's port, lengths consistent. Others take the raw socket.
fn esp_in_udp4(p: &[u8], port: u16) -> Option<Outer> {
    let ip = p.get(..IPV4_HEADER + UDP_HEADER)?;
    let udp = &ip[IPV4_HEADER..];
    let word = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let whole = ip[0] == 0x45
        && usize::from(word(ip, 2)) == p.len()
        && word(ip, 6) & 0xbfff == 0
        && word(ip, 6) & 0x4000 != 0
        && ip[9] == 17
        && word(udp, 0) == port
        && usize::from(word(udp, 4)) == p.len() - IPV4_HEADER;
    whole.then(|| Outer {
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        port: word(udp, 2),
        tos: ip[1],
        ttl: ip[8],
    })
}

/// What the datagrams of one run share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outer {
    src: [u8; 4],
    dst: [u8; 4],
    port: u16,
    tos: u8,
    ttl: u8,
}

/// Consecutive ESP-in-UDP packets to one peer, each `size` bytes of
/// payload but the last, which may be shorter and then ends the run.
struct Run {
    outer: Outer,
    /// Where its packets start in [`Outbox::whole`] and [`Outbox::payloads`].
    first: usize,
    count: usize,
    size: usize,
    bytes: usize,
    closed: bool,
}

/// What one round of sends needs, kept for the next.
#[derive(Default)]
pub(super) struct Outbox {
    raw_addrs: Vec<libc::sockaddr_in>,
    raw: Vec<libc::iovec>,
    runs: Vec<Run>,
    /// The packets of the runs, whole (for the raw socket if the UDP
    /// socket refuses them) and as UDP payloads.
    whole: Vec<libc::iovec>,
    payloads: Vec<libc::iovec>,
    run_addrs: Vec<libc::sockaddr_in>,
    controls: Vec<ControlBuffer>,
    msgs: Vec<libc::mmsghdr>,
}

impl Outbox {
    fn clear(&mut self) {
        self.raw_addrs.clear();
        self.raw.clear();
        self.runs.clear();
        self.whole.clear();
        self.payloads.clear();
        self.run_addrs.clear();
        self.msgs.clear();
    }

    fn add_raw(&mut self, p: &[u8]) {
        self.raw_addrs
            .push(sockaddr_in([p[16], p[17], p[18], p[19]], 0));
        self.raw.push(iovec(p));
    }

    /// Adds `p` to the last run if it can join it, else starts a run.
    fn add_to_run(&mut self, p: &[u8], outer: Outer) {
        let payload = &p[IPV4_HEADER + UDP_HEADER..];
        let len = payload.len();
        let joins = self.runs.last().is_some_and(|run| {
            run.outer == outer
                && !run.closed
                && run.count < MAX_SEGMENTS
                && len <= run.size
                && run.bytes + len <= MAX_RUN
        });
        if joins && let Some(run) = self.runs.last_mut() {
            run.count += 1;
            run.bytes += len;
            run.closed = len < run.size;
        } else {
            self.runs.push(Run {
                outer,
                first: self.whole.len(),
                count: 1,
                size: len,
                bytes: len,
                closed: false,
            });
        }
        self.whole.push(iovec(p));
        self.payloads.push(iovec(payload));
    }

    /// Sends the runs from the UDP socket `fd`; gives each packet of a run
    /// it refused to `refused`.
    fn send_runs(&mut self, fd: RawFd, mut refused: impl FnMut(&[u8])) {
        if self.runs.is_empty() {
            return;
        }
        self.msgs.clear();
        self.run_addrs.clear();
        self.controls.resize_with(
            self.controls.len().max(self.runs.len()),
            ControlBuffer::default,
        );
        for run in &self.runs {
            let o = run.outer;
            self.run_addrs.push(sockaddr_in(o.dst, o.port));
        }
        // Only now, with every vector complete, do pointers into them
        // stay put.
        for ((run, addr), control) in self
            .runs
            .iter()
            .zip(&self.run_addrs)
            .zip(self.controls.iter_mut())
        {
            let o = run.outer;
            let outgoing = Outgoing {
                src: o.src,
                tos: o.tos,
                ttl: o.ttl,
                segment: (run.count > 1).then_some(run.size as u16),
            };
            let control_len = outgoing.write(control);
            // SAFETY: an all-zero msghdr is valid; the fields set below
            // point into vectors that outlive the call.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_ref(addr).cast_mut().cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = self.payloads[run.first..].as_ptr().cast_mut();
            hdr.msg_iovlen = run.count;
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = control_len as _;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        send_all(fd, &mut self.msgs, |i| {
            let run = &self.runs[i];
            for iov in &self.whole[run.first..run.first + run.count] {
                // SAFETY: each vector was made from a packet slice that
                // the caller's iterator lent for this whole call.
                refused(unsafe { std::slice::from_raw_parts(iov.iov_base.cast(), iov.iov_len) });
            }
        });
        self.msgs.clear();
    }

    /// Sends the raw packets from `fd`; returns how many failed.
    fn send_raw(&mut self, fd: RawFd) -> usize {
        self.msgs.clear();
        for (iov, addr) in self.raw.iter_mut().zip(&self.raw_addrs) {
            // SAFETY: an all-zero msghdr is valid; the fields set below
            // point into vectors that outlive the call.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_ref(addr).cast_mut().cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = std::ptr::from_mut(iov);
            hdr.msg_iovlen = 1;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        let mut failed = 0;
        send_all(fd, &mut self.msgs, |_| failed += 1);
        // No pointer into the packets outlives the call.
        self.clear();
        failed
    }
}

fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    }
}

/// `sendmmsg` until every message went or failed; `failed(i)` for each
/// message `i` the kernel refused, after which the rest are tried.
fn send_all(fd: RawFd, msgs: &mut [libc::mmsghdr], mut failed: impl FnMut(usize)) {
    let mut done = 0;
    while done < msgs.len() {
        let rest = &mut msgs[done..];
        // SAFETY: sendmmsg over `rest`, whose headers point at live
        // buffers, addresses and control messages.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
        if n <= 0 {
            failed(done);
            done += 1;
        } else {
            done += n as usize;
        }
    }
}
