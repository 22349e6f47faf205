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
//!   which the header describes so they can be cut again;
//! - the kernel takes an 802.1Q tag off a frame before the socket sees
//!   it; `PACKET_AUXDATA` says that it did, so a tagged frame is known as
//!   one and is not bridged as if it had never had a tag;
//! - a packet socket sees the frames for the interface's own address
//!   too, which its host's stack takes: the packet type the kernel gives
//!   with each frame says which they are, so they are not bridged.

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
    /// The interface's own Ethernet address.
    address: [u8; 6],
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
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
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
        let address = hardware_address(&fd)?;
        Ok(Port {
            fd,
            name: name.to_owned(),
            index,
            address,
        })
    }

    /// The interface's own Ethernet address.
    pub fn address(&self) -> [u8; 6] {
        self.address
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
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Frame>> {
        let mut control = Control([0; 64]);
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zero is a valid start.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: recvmsg(2) into a buffer and a control buffer we own,
        // each with its true length.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let control_len = (msg.msg_controllen as usize).min(control.0.len());
        Ok(Some(Frame {
            len: n as usize,
            tagged: was_tagged(&control.0[..control_len]),
            for_host: from.sll_pkttype == libc::PACKET_HOST,
        }))
    }

    /// Sends the frames waiting in `outbox` (no segmentation asked of the
    /// kernel) with one system call per batch (`sendmmsg`), and empties
    /// it. Returns how many could not be
    /// sent.
    pub fn flush(&self, outbox: &mut Outbox) -> usize {
        let header = [0u8; offload::HEADER_LEN];
        let Outbox {
            frames,
            len,
            iovs,
            msgs,
        } = outbox;
        iovs.clear();
        msgs.clear();
        for frame in &frames[..*len] {
            iovs.push(iovec(&header));
            iovs.push(iovec(frame));
        }
        // Only now, with the vector complete, do pointers into it stay put.
        for pair in iovs.chunks_exact_mut(2) {
            // SAFETY: an all-zero msghdr is valid; the vectors it points
            // at outlive the call.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = pair.as_mut_ptr();
            hdr.msg_iovlen = 2;
            msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        let mut failed = 0;
        let mut done = 0;
        while done < msgs.len() {
            let rest = &mut msgs[done..];
            // SAFETY: sendmmsg over `rest`, whose headers point at the
            // header and frames above.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                failed += 1;
                done += 1;
            } else {
                done += n as usize;
            }
        }
        // No pointer into the frames outlives the call.
        iovs.clear();
        msgs.clear();
        *len = 0;
        failed
    }
}

/// The Ethernet address of the interface the packet socket `fd` is
/// bound to, which the kernel gives as the socket's own address.
fn hardware_address(fd: &OwnedFd) -> io::Result<[u8; 6]> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: getsockname(2) writes at most `len` bytes into addr.
    check(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut addr).cast(), &raw mut len) })?;
    if addr.sll_halen != 6 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an Ethernet interface",
        ));
    }
    let mut address = [0u8; 6];
    address.copy_from_slice(&addr.sll_addr[..6]);
    Ok(address)
}

/// Socket buffer size asked for, in bytes (the kernel doubles it).
const BUFFER: libc::c_int = 4 << 20;

fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    }
}

/// Frames waiting to be sent on one port, in buffers kept for reuse, and
/// what one `sendmmsg` needs.
#[derive(Default)]
pub struct Outbox {
    frames: Vec<Vec<u8>>,
    len: usize,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("len", &self.len).finish()
    }
}

impl Outbox {
    /// Frames an outbox holds before it must be flushed.
    pub const CAPACITY: usize = 64;

    /// Adds a copy of `frame`.
    pub fn push(&mut self, frame: &[u8]) {
        if self.len == self.frames.len() {
            self.frames.push(Vec::with_capacity(frame.len().max(2048)));
        }
        let slot = &mut self.frames[self.len];
        slot.clear();
        slot.extend_from_slice(frame);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One frame read from a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes read: the virtio-net header and the frame.
    pub len: usize,
    /// The frame carried a VLAN tag, which the kernel took off.
    pub tagged: bool,
    /// The frame is for the interface's own address.
    pub for_host: bool,
}

/// Room for the control messages of one frame, aligned for cmsghdr.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Whether the `PACKET_AUXDATA` among the control messages says the
/// kernel took a VLAN tag off the frame. Trusts no length in them.
fn was_tagged(mut control: &[u8]) -> bool {
    let header = size_of::<libc::cmsghdr>();
    let align = |n: usize| (n + size_of::<libc::c_long>() - 1) & !(size_of::<libc::c_long>() - 1);
    while control.len() >= header {
        // SAFETY: control holds at least a cmsghdr's bytes, read unaligned
        // into a plain-data copy.
        let cmsg: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control.as_ptr().cast()) };
        let len = cmsg.cmsg_len as usize;
        let Some(data) = control.get(align(header)..len) else {
            return false;
        };
        if cmsg.cmsg_level == libc::SOL_PACKET
            && cmsg.cmsg_type == libc::PACKET_AUXDATA
            && let Some(status) = data.get(..4)
        {
            let status = u32::from_ne_bytes([status[0], status[1], status[2], status[3]]);
            return status & libc::TP_STATUS_VLAN_VALID != 0;
        }
        control = control.get(align(len)..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PACKET_AUXDATA control message with `status`.
    fn auxdata(status: u32) -> Vec<u8> {
        let header = size_of::<libc::cmsghdr>();
        let data = size_of::<libc::tpacket_auxdata>();
        let mut bytes = vec![0u8; header + data];
        // SAFETY: an all-zero cmsghdr is valid plain data.
        let mut cmsg: libc::cmsghdr = unsafe { std::mem::zeroed() };
        cmsg.cmsg_len = (header + data) as _;
        cmsg.cmsg_level = libc::SOL_PACKET;
        cmsg.cmsg_type = libc::PACKET_AUXDATA;
        // SAFETY: bytes holds a cmsghdr's bytes; the write is unaligned.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast(), cmsg) };
        bytes[header..header + 4].copy_from_slice(&status.to_ne_bytes());
        bytes
    }

    #[test]
    fn a_tag_the_kernel_took_off_is_seen_and_lengths_are_not_trusted() {
        assert!(!was_tagged(&[]));
        assert!(!was_tagged(&auxdata(0)));
        assert!(was_tagged(&auxdata(libc::TP_STATUS_VLAN_VALID)));
        let mut lying = auxdata(libc::TP_STATUS_VLAN_VALID);
        lying[0] = 0xff;
        assert!(!was_tagged(&lying));
        assert!(!was_tagged(&auxdata(libc::TP_STATUS_VLAN_VALID)[..10]));
    }
}
