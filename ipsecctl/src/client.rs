//! Talking PF_KEY to ipsecd over its control socket: one message per
//! datagram, replies matched to requests by type, sequence number and pid.

use pfkey::validate::Errno;
use pfkey::{Message, MsgType};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

/// How long to wait for a reply before giving up on ipsecd.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    pid: u32,
    seq: u32,
}

/// What a request came to.
#[derive(Debug)]
pub enum Answer {
    Done(Message),
    Refused(Errno),
}

/// Refuses a server that is neither root nor this user: anyone who could
/// put a socket at the path (a directory others may write) would be sent
/// the keys otherwise.
fn check_server(fd: &OwnedFd, path: &str) -> io::Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    let (uid, pid) = (cred.uid.as_raw(), cred.pid.as_raw_nonzero());
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if uid != 0 && uid != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the process serving {path} (pid {pid}) runs as uid {uid}, neither root nor \
                 this user: not talking to it"
            ),
        ));
    }
    Ok(())
}

impl Client {
    /// Connects a `SOCK_SEQPACKET` socket to `path`, served by root or
    /// this user.
    pub fn connect(path: &str) -> io::Result<Client> {
        let c_path = CString::new(std::path::Path::new(path).as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: socket(2); the descriptor is owned at once.
        let raw =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_un is plain data.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = c_path.as_bytes();
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_un of length len.
        if unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        check_server(&fd, path)?;
        let timeout = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: setting a receive timeout on our socket.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Client {
            fd,
            pid: std::process::id(),
            seq: 0,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The socket, for a caller that polls it (a key manager).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// The next sequence number for a message of ours.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub fn send_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: send from a valid buffer.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The next message ipsecd sends us.
    /// One message; wiped when dropped, since dumps carry keys.
    pub fn recv(&self) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
        let mut buf = zeroize::Zeroizing::new(vec![0u8; 65536]);
        // SAFETY: recv into our buffer.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "ipsecd did not answer",
                    ));
                }
                Err(e)
            }
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ipsecd closed the connection",
            )),
            n => {
                buf.truncate(n as usize);
                Ok(buf)
            }
        }
    }

    /// Whether `bytes` answers the request with this header.
    fn answers(&self, bytes: &[u8], msg_type: MsgType, seq: u32) -> bool {
        bytes.len() >= 16
            && bytes[1] == msg_type.0
            && u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) == seq
            && u32::from_ne_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) == self.pid
    }

    /// Sends a request and waits for its answer, passing over what other
    /// clients' requests make ipsecd broadcast.
    pub fn request(&mut self, msg: &Message) -> io::Result<Answer> {
        self.send_bytes(&zeroize::Zeroizing::new(msg.encode()))?;
        loop {
            let bytes = self.recv()?;
            if !self.answers(&bytes, msg.header.msg_type, msg.header.seq) {
                continue;
            }
            if bytes[2] != 0 {
                return Ok(Answer::Refused(Errno(bytes[2])));
            }
            let reply = Message::decode(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok(Answer::Done(reply));
        }
    }

    /// Sends a dump request and gathers its records, up to the one with
    /// sequence number 0. An empty table answers `ENOENT`: no records.
    pub fn dump(&mut self, msg: &Message) -> io::Result<Result<Vec<Message>, Errno>> {
        self.send_bytes(&zeroize::Zeroizing::new(msg.encode()))?;
        let mut records = Vec::new();
        loop {
            let bytes = self.recv()?;
            let mine = bytes.len() >= 16
                && bytes[1] == msg.header.msg_type.0
                && u32::from_ne_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) == self.pid;
            if !mine {
                continue;
            }
            match Errno(bytes[2]) {
                Errno(0) => {}
                Errno::ENOENT => return Ok(Ok(records)),
                e => return Ok(Err(e)),
            }
            let record = Message::decode(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let last = record.header.seq == 0;
            records.push(record);
            if last {
                return Ok(Ok(records));
            }
        }
    }
}
