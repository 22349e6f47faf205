//! A bridge port: an Ethernet interface read and written whole frames at
//! a time through a packet socket (`AF_PACKET`, every EtherType).
//!
//! What Linux gives, and what is done about it:
//! - the interface is put in promiscuous mode for as long as the socket
//!   is open (a membership, which the kernel drops with the socket), so
//!   frames for the stations behind the other port arrive too;
//! - `PACKET_IGNORE_OUTGOING`: the frames the bridge sends on a port are
//!   not read back from it, so nothing the bridge emitted comes back
//!   through its own socket (what a loop brings back is the switch's
//!   business);
//! - `PACKET_VNET_HDR`: every read and write starts with a virtio-net
//!   header, because an interface that joins segments (GRO) or a host
//!   that hands runs to its veth (TSO) gives frames longer than the MTU,
//!   which the header describes so they can be cut again.

use super::socket::{check, set_int};
use ipsec_engine::offload;
use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An open bridge port.
#[derive(Debug)]
pub struct Port {
    fd: OwnedFd,
    name: String,
    index: u32,
}

impl Port {
    /// Opens the Ethernet interface `name` as a bridge port. It must
    /// exist; it need not be up yet, nor have an address.
    pub fn open(name: &str) -> io::Result<Port> {
        let c_name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the name"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: a plain socket(2); the descriptor is owned at once.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(all),
            )
        })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if set_int(&fd, libc::SOL_SOCKET, force, BUFFER).is_err() {
                let _ = set_int(&fd, libc::SOL_SOCKET, plain, BUFFER);
            }
        }
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = all;
        addr.sll_ifindex = index as libc::c_int;
        // SAFETY: addr is a whole sockaddr_ll of its size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: packet_mreq is plain data; zero is a valid start.
        let mut promisc: libc::packet_mreq = unsafe { std::mem::zeroed() };
        promisc.mr_ifindex = index as libc::c_int;
        promisc.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: setsockopt reads the packet_mreq we own, of its size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&raw const promisc).cast(),
                size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(Port {
            fd,
            name: name.to_owned(),
            index,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// Reads one waiting frame, its virtio-net header first, into `buf`;
    /// `None` when nothing waits. A frame longer than `buf` is cut, and
    /// then refused by what parses it.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: recv(2) into a buffer we own, at most its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Sends one frame (no segmentation asked of the kernel).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let header = [0u8; offload::HEADER_LEN];
        let iov = [
            libc::iovec {
                iov_base: header.as_ptr().cast_mut().cast(),
                iov_len: header.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast(),
                iov_len: frame.len(),
            },
        ];
        // SAFETY: writev(2) from two buffers that outlive the call.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Socket buffer size asked for, in bytes (the kernel doubles it).
const BUFFER: libc::c_int = 4 << 20;
