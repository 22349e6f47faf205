//! The IKE sockets: UDP port 500 on each address a policy uses, bound as
//! policies come (port 4500 stays `ipsecd`'s: IKE on it goes through
//! `ipsecd`'s control socket, as the key manager's PF_KEY messages).

use ipsec_ike::keyer::IKE_PORT;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Bytes the kernel may queue on each socket (it doubles the figure for
/// its bookkeeping, and caps it at net.core.rmem_max).
const RECEIVE_BUFFER: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct Sockets {
    bound: Vec<(IpAddr, UdpSocket)>,
}

impl Sockets {
    /// Binds port 500 on `addr`, unless it already is.
    pub fn ensure(&mut self, addr: IpAddr) -> io::Result<()> {
        if self.bound.iter().any(|(a, _)| *a == addr) {
            return Ok(());
        }
        let socket = UdpSocket::bind(SocketAddr::new(addr, IKE_PORT))?;
        socket.set_nonblocking(true)?;
        // Room for a burst (a flood's requests are each answered with a
        // cookie, cheaply, but one at a time): the default holds about a
        // hundred datagrams.
        rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER)?;
        self.bound.push((addr, socket));
        Ok(())
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.bound.iter().map(|(_, s)| s.as_raw_fd()).collect()
    }

    /// Every datagram waiting on the socket `fd`: (local, remote, bytes).
    pub fn read(&self, fd: RawFd, buf: &mut [u8]) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let Some((addr, socket)) = self.bound.iter().find(|(_, s)| s.as_raw_fd() == fd) else {
            return out;
        };
        // A burst at most, so that nothing else starves.
        for _ in 0..64 {
            match socket.recv_from(buf) {
                Ok((n, from)) => {
                    out.push((SocketAddr::new(*addr, IKE_PORT), from, buf[..n].to_vec()))
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Sends from `local`.
    pub fn send(&self, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        if local.port() != IKE_PORT {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "IKE over port 4500 (NAT traversal) is not in this version of iked",
            ));
        }
        let (_, socket) = self
            .bound
            .iter()
            .find(|(a, _)| *a == local.ip())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no socket on that address"))?;
        socket.send_to(bytes, remote).map(|_| ())
    }
}

/// This host's address toward `peer`, as the routing table has it: the
/// source a connected UDP socket is given.
pub fn local_toward(peer: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    s.connect(SocketAddr::new(peer, IKE_PORT)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}
