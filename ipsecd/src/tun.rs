//! The enc interface as a Linux TUN device: what the routing table sends
//! to it is the cleartext the daemon protects, and what the daemon writes
//! to it is the cleartext it recovered, which the kernel then receives as
//! arriving on that interface.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const TUN_DEVICE: &std::ffi::CStr = c"/dev/net/tun";

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An `ifreq` naming the interface; the rest is zero.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data (a name and a union of plain data);
    // zero is a valid start.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    // The kernel wants the name NUL-terminated within IFNAMSIZ.
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The name the kernel wrote back into an `ifreq`.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A datagram socket for the interface ioctls, which Linux serves on any
/// socket of the interface's network namespace.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket(2); the descriptor is owned at once.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The enc interface: one TUN device without packet information, so that
/// every read and write is exactly one IP packet. The device goes away
/// when this is dropped, unless someone made it persistent beforehand.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

impl Tun {
    /// Opens `/dev/net/tun` and attaches to (creating if needed) the
    /// interface `name` with `IFF_TUN | IFF_NO_PI`; the descriptor is
    /// non-blocking and close-on-exec. An empty name lets the kernel pick
    /// one (`tun0`, ...); [`Tun::name`] tells which.
    pub fn open(name: &str) -> io::Result<Tun> {
        Tun::open_with(name, 0)
    }

    /// Like [`Tun::open`], with segmentation offload: every read and write
    /// starts with a virtio-net header ([`ipsec_engine::offload`]), and the host
    /// may hand over TCP runs of up to 64 KiB with their checksums left
    /// partial, and take such runs back.
    pub fn open_offloaded(name: &str) -> io::Result<Tun> {
        let tun = Tun::open_with(name, libc::IFF_VNET_HDR)?;
        let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        check(unsafe {
            libc::ioctl(
                tun.fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(features),
            )
        })?;
        Ok(tun)
    }

    fn open_with(name: &str, extra_flags: libc::c_int) -> io::Result<Tun> {
        let mut req = ifreq(name)?;
        // SAFETY: open(2) of a constant NUL-terminated path.
        let fd = check(unsafe {
            libc::open(
                TUN_DEVICE.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | extra_flags) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes back the ifreq we own.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut req) })?;
        Ok(Tun {
            fd,
            name: ifreq_name(&req),
        })
    }

    /// The interface's name, as the kernel has it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets the MTU (`SIOCSIFMTU` through an `AF_INET` datagram socket).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mut req = ifreq(&self.name)?;
        req.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let socket = ioctl_socket()?;
        // SAFETY: SIOCSIFMTU reads the ifreq we own.
        check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFMTU, &raw mut req) })?;
        Ok(())
    }

    /// Makes the interface outlive the descriptor (`TUNSETPERSIST`), or
    /// lets it go with the last one. A persistent enc interface keeps its
    /// routes when the daemon dies, and what they carry is dropped: the
    /// kernel has nobody to hand it to.
    pub fn set_persist(&self, persist: bool) -> io::Result<()> {
        // SAFETY: TUNSETPERSIST takes its argument by value.
        check(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETPERSIST,
                libc::c_ulong::from(persist),
            )
        })?;
        Ok(())
    }

    /// Brings the interface up (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with
    /// `IFF_UP` added), keeping the other flags as they are. Writing to a
    /// TUN device that is down fails with `EIO`.
    pub fn up(&self) -> io::Result<()> {
        let mut req = ifreq(&self.name)?;
        let socket = ioctl_socket()?;
        // SAFETY: SIOCGIFFLAGS fills the flags of the ifreq we own.
        check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) })?;
        // SAFETY: the kernel just wrote ifru_flags, a plain c_short.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
        check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &raw mut req) })?;
        Ok(())
    }

    /// The interface index (`if_nametoindex`), for routes and policy
    /// rules that name the interface.
    pub fn index(&self) -> io::Result<u32> {
        let name = CString::new(self.name.as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(index)
        }
    }

    /// One packet into `buf`, or `None` when nothing is waiting. `buf`
    /// should hold the MTU: the kernel does not split a packet.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: read(2) into our buffer, at most its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Writes one packet given in parts (with offload: the virtio-net
    /// header, then the IP packet), in one write.
    pub fn send_parts(&self, parts: &[&[u8]]) -> io::Result<()> {
        let iov: Vec<libc::iovec> = parts
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // SAFETY: writev(2) from buffers that outlive the call.
        let n =
            unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else if n as usize != total {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the TUN device took part of a packet",
            ))
        } else {
            Ok(())
        }
    }

    /// Writes one IP packet (the kernel tells IPv4 from IPv6 by the
    /// version nibble); the kernel receives it as arriving on the
    /// interface.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.send_parts(&[packet])
    }
}

/// Test support: a body run in a network namespace of its own.
#[cfg(test)]
pub(crate) mod netns {
    /// Whether tests that need root may run; prints why not otherwise.
    pub(crate) fn is_root(test: &str) -> bool {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            true
        } else {
            eprintln!("{test}: skipped, needs root");
            false
        }
    }

    /// Runs `body` on a thread of its own that first unshares its network
    /// namespace: the namespace (with every interface made in it) goes
    /// away when the thread ends and the descriptors opened in it are
    /// closed, so there is nothing to delete afterwards, even on a panic.
    /// Child processes the body starts inherit the thread's namespace.
    /// Returns false (after saying why) when namespaces are not allowed.
    pub(crate) fn run(test: &str, body: impl FnOnce() + Send + 'static) -> bool {
        let handle = std::thread::spawn(move || {
            // SAFETY: unshare(2) affects only this thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            body();
            Ok(())
        });
        match handle.join() {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                eprintln!("{test}: skipped, cannot make a network namespace: {e}");
                false
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs a command (in the calling thread's namespace) and insists
    /// that it succeeds.
    pub(crate) fn sh(args: &[&str]) {
        let status = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(status.success(), "{args:?}: {status}");
    }

    /// Waits up to `ms` milliseconds for `fd` to be readable.
    pub(crate) fn readable(fd: std::os::fd::RawFd, ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::netns::{is_root, readable, run, sh};
    use super::*;
    use ipsec_engine::offload;
    use ipsec_engine::wire::checksum;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    fn mtu_of(name: &str) -> i32 {
        let mut req = ifreq(name).unwrap();
        let socket = ioctl_socket().unwrap();
        // SAFETY: SIOCGIFMTU fills the ifreq we own.
        check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &raw mut req) }).unwrap();
        // SAFETY: the kernel just wrote ifru_mtu, a plain c_int.
        unsafe { req.ifr_ifru.ifru_mtu }
    }

    /// Reads packets from the TUN until one satisfies `want`, for up to
    /// two seconds (the kernel also sends its own, such as IPv6 router
    /// solicitations).
    fn wait_for(tun: &Tun, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 65536];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !readable(tun.fd(), left.as_millis() as i32 + 1) {
                continue;
            }
            if let Some(n) = tun.recv(&mut buf).unwrap()
                && want(&buf[..n])
            {
                return buf[..n].to_vec();
            }
        }
        panic!("no such packet came out of {}", tun.name());
    }

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, protocol, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let sum = checksum::of(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel() {
        assert_eq!(
            ifreq("a-name-far-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            ifreq("nul\0").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn tun_carries_packets_both_ways() {
        const TEST: &str = "tun_carries_packets_both_ways";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            let tun = Tun::open("enctest0").unwrap();
            assert_eq!(tun.name(), "enctest0");
            tun.set_mtu(1400).unwrap();
            assert_eq!(mtu_of("enctest0"), 1400);
            tun.up().unwrap();
            let index = tun.index().unwrap();
            assert!(index > 1, "lo is 1, enctest0 comes after: {index}");
            // SAFETY: the descriptor is ours and stays open during the call.
            let fl = unsafe { libc::fcntl(tun.fd(), libc::F_GETFL) };
            assert_ne!(fl & libc::O_NONBLOCK, 0);
            // SAFETY: as above.
            let fdfl = unsafe { libc::fcntl(tun.fd(), libc::F_GETFD) };
            assert_ne!(fdfl & libc::FD_CLOEXEC, 0);
            // Nothing waits yet that we did not ask for: recv must not block.
            let mut buf = [0u8; 2048];
            while tun.recv(&mut buf).unwrap().is_some() {}

            sh(&["ip", "addr", "add", "10.99.0.1/24", "dev", "enctest0"]);
            sh(&["ip", "route", "add", "10.99.1.0/24", "dev", "enctest0"]);

            // Out through the interface: the routing table sends to the TUN.
            let local = Ipv4Addr::new(10, 99, 0, 1);
            let peer = Ipv4Addr::new(10, 99, 0, 2);
            for dst in [peer, Ipv4Addr::new(10, 99, 1, 7)] {
                let socket = UdpSocket::bind((local, 0)).unwrap();
                socket.send_to(b"cleartext", (dst, 9999)).unwrap();
                let sport = socket.local_addr().unwrap().port();
                let packet = wait_for(&tun, |p| {
                    p.len() >= 28 && p[0] >> 4 == 4 && p[9] == 17 && p[16..20] == dst.octets()
                });
                assert_eq!(&packet[12..16], &local.octets());
                assert_eq!(u16::from_be_bytes([packet[20], packet[21]]), sport);
                assert_eq!(u16::from_be_bytes([packet[22], packet[23]]), 9999);
                assert_eq!(&packet[28..], b"cleartext");
            }

            // In through the interface: the kernel answers an echo request.
            let mut icmp = vec![8, 0, 0, 0, 0xbe, 0xef, 0, 1];
            icmp.extend_from_slice(b"ping payload");
            let sum = checksum::of(&icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            tun.send(&ipv4(peer, local, 1, &icmp)).unwrap();
            let reply = wait_for(&tun, |p| p.len() >= 28 && p[0] >> 4 == 4 && p[9] == 1);
            assert_eq!(&reply[12..16], &local.octets());
            assert_eq!(&reply[16..20], &peer.octets());
            assert_eq!(checksum::of(&reply[..20]), 0, "IPv4 header checksum");
            assert_eq!(checksum::of(&reply[20..]), 0, "ICMP checksum");
            assert_eq!(reply[20], 0, "echo reply");
            assert_eq!(&reply[24..], &icmp[4..], "same id, sequence and data");

            // A packet the kernel cannot take is an error, not a panic.
            assert!(tun.send(&[0xff; 3]).is_err());
        });
    }

    #[test]
    fn a_run_of_datagrams_reaches_the_host_as_datagrams() {
        const TEST: &str = "a_run_of_datagrams_reaches_the_host_as_datagrams";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            let tun = Tun::open_offloaded("enctest1").unwrap();
            tun.up().unwrap();
            sh(&["ip", "addr", "add", "10.98.0.1/24", "dev", "enctest1"]);
            let local = Ipv4Addr::new(10, 98, 0, 1);
            let peer = Ipv4Addr::new(10, 98, 0, 2);
            let socket = UdpSocket::bind((local, 0)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let port = socket.local_addr().unwrap().port();
            // Ten datagrams of 64 bytes and a shorter one, as the
            // coalescer joins them for the host.
            let mut coalescer = offload::Coalescer::default();
            let mut sent = Vec::new();
            for i in 0..11u8 {
                let data = vec![i; if i < 10 { 64 } else { 9 }];
                let mut udp = 4242u16.to_be_bytes().to_vec();
                udp.extend_from_slice(&port.to_be_bytes());
                udp.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
                udp.extend_from_slice(&[0, 0]);
                udp.extend_from_slice(&data);
                coalescer.push(&ipv4(peer, local, 17, &udp), |_, _| {
                    panic!("delivered before the flush")
                });
                sent.push(data);
            }
            let mut writes = 0;
            coalescer.flush(|header, packet| {
                assert_eq!(header.gso_type, offload::GSO_UDP_L4);
                let mut bytes = [0u8; offload::HEADER_LEN];
                header.write(&mut bytes);
                tun.send_parts(&[&bytes, packet]).unwrap();
                writes += 1;
            });
            assert_eq!(writes, 1);
            let mut buf = [0u8; 2048];
            for data in &sent {
                let (n, from) = socket.recv_from(&mut buf).unwrap();
                assert_eq!(from, (peer, 4242).into());
                assert_eq!(&buf[..n], &data[..]);
            }
        });
    }

    #[test]
    fn tun_write_when_down_fails() {
        const TEST: &str = "tun_write_when_down_fails";
        if !is_root(TEST) {
            return;
        }
        run(TEST, || {
            let tun = Tun::open("").unwrap();
            assert!(tun.name().starts_with("tun"), "{}", tun.name());
            let packet = ipv4(
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 0, 0, 1),
                1,
                &[],
            );
            let e = tun.send(&packet).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            let mut buf = [0u8; 64];
            assert_eq!(tun.recv(&mut buf).unwrap(), None);
        });
    }
}
