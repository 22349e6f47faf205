//! The system calls behind the peer sockets: making, configuring and
//! binding them, and the socket addresses they take.

use super::{Input, Kind, MARK, PROTECTED};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(super) fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub(super) fn set_int(
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
pub(super) fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
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

pub(super) fn sockaddr_in(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr),
        },
        sin_zero: [0; 8],
    }
}

pub(super) fn sockaddr_in6(addr: [u8; 16], port: u16) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: addr },
        sin6_scope_id: 0,
    }
}

pub(super) fn bind<T>(fd: &OwnedFd, addr: &T) -> io::Result<()> {
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
/// and TOS come as ancillary data for the rebuilt header, and runs of
/// datagrams may come as one read (`UDP_GRO`). What leaves through it
/// carries DF and is not held to a learnt path MTU
/// (`IP_PMTUDISC_PROBE`), as the raw socket's packets are not: the core
/// sized them for the path. No
/// `SO_REUSEADDR`: with it Linux would let a later socket (a second
/// daemon, another IKE daemon) bind the port too and take its datagrams;
/// without it that socket's bind fails, which is the clear outcome.
pub(super) fn udp4(port: u16) -> io::Result<OwnedFd> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)?;
    set_int(&fd, libc::SOL_UDP, libc::UDP_GRO, 1)?;
    set_int(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_PROBE,
    )?;
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
pub(super) fn open6(port: u16) -> io::Result<(Vec<Input>, OwnedFd)> {
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
    set_int(&fd, libc::SOL_UDP, libc::UDP_GRO, 1)?;
    recv_ancillary6(&fd)?;
    bind(&fd, &sockaddr_in6([0; 16], port))?;
    inputs.push(Input {
        fd,
        kind: Kind::Udp6,
    });
    let send = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    Ok((inputs, send))
}

pub(super) fn sendto<T>(fd: &OwnedFd, packet: &[u8], addr: &T) -> io::Result<usize> {
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
