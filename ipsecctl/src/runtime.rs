//! Reaching the runtime, `ipsecd`, over its control socket.

use crate::system::strerror;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Connects a `SOCK_SEQPACKET` socket to `path`, as a PF_KEY client does.
fn connect(path: &str) -> io::Result<()> {
    let bytes = std::path::Path::new(path).as_os_str().as_bytes();
    let c_path = CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a plain socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_un is plain data; zero is a valid starting value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let raw = c_path.as_bytes();
    if raw.len() >= addr.sun_path.len() {
        // SAFETY: fd is ours and open.
        unsafe { libc::close(fd) };
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(raw) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of length `len`.
    let rc = unsafe { libc::connect(fd, (&raw const addr).cast(), len) };
    let result = if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    result
}

/// Reports that `what` needs the runtime, which cannot serve it; always
/// returns false (the command failed).
pub fn unavailable(socket: &str, what: &str) -> bool {
    match connect(socket) {
        Err(e) => eprintln!(
            "ipsecctl: cannot {what}: ipsecd is not reachable at {socket}: {}",
            strerror(&e)
        ),
        Ok(()) => eprintln!(
            "ipsecctl: cannot {what}: ipsecd answers at {socket}, but this ipsecctl has no PF_KEY client yet"
        ),
    }
    false
}
