//! Handing `ike` rules to isakmpd through its FIFO.

use crate::system::strerror;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

/// Opens isakmpd's FIFO for one rule's commands. Fails at once, rather
/// than waiting, when no isakmpd is reading it. The commands may hold
/// pre-shared keys: a link is not followed, and the FIFO must be root's
/// or this user's.
pub fn open(path: &str) -> Result<std::fs::File, String> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => format!("ike_ipsec_establish: no isakmpd is reading {path}"),
            _ => format!("ike_ipsec_establish: open({path}): {}", strerror(&e)),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("ike_ipsec_establish: fstat({path}): {}", strerror(&e)))?;
    if !meta.file_type().is_fifo() {
        return Err(format!("ike_ipsec_establish: {path} not a fifo"));
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "ike_ipsec_establish: {path} belongs to uid {}, neither root nor this user: \
             not sending it keys",
            meta.uid()
        ));
    }
    // A reader is there; from now on, writes may wait for it.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) & !libc::O_NONBLOCK,
        )
    };
    Ok(file)
}

/// Writes one rule's script.
pub fn send(path: &str, script: &str) -> Result<(), String> {
    let mut fifo = open(path)?;
    write_all(&mut fifo, script.as_bytes())
        .map_err(|e| format!("ike_ipsec_establish: {}", strerror(&e)))
}

fn write_all(fifo: &mut std::fs::File, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match fifo.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
