//! The control socket: a Unix `SOCK_SEQPACKET` socket, one PF_KEY message
//! per datagram, served to root and to the socket's owner only.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Large enough to see that a message is too long (PF_KEY allows 4096).
const RECV_BUFFER: usize = 65536;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; zero is a valid start.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok((
        addr,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The listening socket; the file goes away when it is dropped.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// The socket file's device and inode: only that file is removed at
    /// the end, not whatever may have been put at the path since.
    file: (u64, u64),
    /// Whose clients are served besides root's.
    owner: libc::uid_t,
}

impl Listener {
    /// Creates the socket at `path`, mode 0600, in a directory only its
    /// owner may change (made, mode 0700, if it is missing; a directory
    /// others may write is refused unless it is sticky, where they cannot
    /// take the socket's name from under it). A socket nobody answers on
    /// is replaced; one that answers means another ipsecd is running;
    /// anything else at the path is left alone and refused.
    pub fn bind(path: &Path) -> io::Result<Listener> {
        Listener::bind_for(path, "ipsecd")
    }

    /// [`Listener::bind`] for the daemon called `daemon`, as messages
    /// name it.
    pub fn bind_for(path: &Path, daemon: &str) -> io::Result<Listener> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_directory(dir)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "something other than a socket is there; not removing it",
                ));
            }
            Ok(_) if connects(path) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another {daemon} is serving {}", path.display()),
                ));
            }
            Ok(_) => std::fs::remove_file(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let fd = seqpacket()?;
        let (addr, len) = sockaddr(path)?;
        // The socket is made 0600 by the umask, at once: no chmod by path
        // afterwards, which would follow a link put in its place.
        // SAFETY: the umask change covers only the bind below.
        let old = unsafe { libc::umask(0o177) };
        // SAFETY: addr is a valid sockaddr_un of length len.
        let bound = check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) });
        // SAFETY: restoring the umask we read.
        unsafe { libc::umask(old) };
        bound?;
        let meta = std::fs::symlink_metadata(path)?;
        // SAFETY: listen on our socket.
        check(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
        Ok(Listener {
            fd,
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            // SAFETY: geteuid cannot fail.
            owner: unsafe { libc::geteuid() },
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next waiting client, with its credentials; `Ok(None)` when none
    /// is waiting.
    pub fn accept(&self) -> io::Result<Option<Client>> {
        // SAFETY: accept4 on our listening socket; no address wanted.
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fd is the fresh descriptor accept4 returned.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cred = rustix::net::sockopt::socket_peercred(&fd)?;
        Ok(Some(Client {
            fd,
            pid: cred.pid.as_raw_nonzero().get() as u32,
            uid: cred.uid.as_raw(),
        }))
    }

    /// Only root and the socket's owner may talk to ipsecd.
    pub fn allows(&self, client: &Client) -> bool {
        client.uid == 0 || client.uid == self.owner
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes sure `dir` is a directory that only its owner (root or this
/// user) can change: made with mode 0700 if missing, checked on the
/// opened directory, without following a link in its place.
fn private_directory(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    let meta = opened.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let others_write = meta.mode() & 0o022 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if (meta.uid() != 0 && meta.uid() != me) || (others_write && !sticky) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: owned by uid {} with mode {:o}; the socket's directory must be \
                 root's or this user's, and not writable by others",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn connects(path: &Path) -> bool {
    let Ok(fd) = seqpacket() else { return false };
    let Ok((addr, len)) = sockaddr(path) else {
        return false;
    };
    // SAFETY: addr is a valid sockaddr_un of length len.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    pub pid: u32,
    pub uid: libc::uid_t,
}

/// What reading from a client gave.
#[derive(Debug)]
pub enum Received {
    /// Wiped when dropped: it may hold keys.
    Message(zeroize::Zeroizing<Vec<u8>>),
    /// Nothing more for now.
    Nothing,
    /// The client went away.
    Closed,
}

impl Client {
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn recv(&self) -> Received {
        let mut buf = zeroize::Zeroizing::new(vec![0u8; RECV_BUFFER]);
        // SAFETY: recv into our buffer, at most its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => Received::Closed,
            n if n > 0 => {
                buf.truncate(n as usize);
                Received::Message(buf)
            }
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Received::Nothing,
                _ => Received::Closed,
            },
        }
    }

    /// Sends one message without waiting; a client that does not read
    /// loses what does not fit.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: send from a valid buffer.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
