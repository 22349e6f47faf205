//! The file that carries the SPD from one run to the next (see
//! `engine::persist`): beside the control socket, in the daemon's own
//! directory, on the runtime file system, so that it lives exactly as
//! long as the kernel state it describes. It holds no keys, but it is
//! policy: only the daemon's user may read or write it, and it is opened
//! without following links and checked on the open descriptor.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// More than any real SPD needs (100,000 flows take about 15 MB).
const MAX_LEN: u64 = 256 << 20;

/// Where the flows of the daemon serving `socket` are kept.
pub fn path_for(socket: &Path) -> PathBuf {
    socket.with_extension("flows")
}

/// The saved stream, or `None` when there is none. A file that is not a
/// regular file of this user's, or that others may read or write, is an
/// error: starting from it could load someone else's policy.
pub fn load(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "not a regular file of uid {me} with mode 0600 (uid {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    if meta.len() > MAX_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "too large"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(MAX_LEN)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Replaces the saved stream with `bytes` at once (see
/// [`crate::private`]), flushed to the disk before it takes the name.
pub fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::private::replace(path, |file| {
        file.write_all(bytes)?;
        file.sync_all()
    })
    .map(drop)
}

/// Forgets the saved stream: there are no flows left.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipsecd-saved-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn saved_bytes_come_back_and_the_file_is_private() {
        let d = dir("roundtrip");
        let path = path_for(&d.join("ipsecd.sock"));
        assert_eq!(path, d.join("ipsecd.flows"));
        assert_eq!(load(&path).unwrap(), None);
        save(&path, b"first").unwrap();
        save(&path, b"second").unwrap();
        assert_eq!(load(&path).unwrap().as_deref(), Some(&b"second"[..]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(load(&path).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_readable_file_or_a_link_is_refused() {
        let d = dir("refused");
        let path = d.join("ipsecd.flows");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            load(&path).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        let target = d.join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(load(&path).is_err(), "a link is not followed");
        // Saving replaces the link itself, and the target is untouched.
        save(&path, b"mine").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert_eq!(load(&path).unwrap().as_deref(), Some(&b"mine"[..]));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
