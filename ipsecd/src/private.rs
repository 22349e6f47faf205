//! Files that hold keys or traffic: only the daemon's user may read them,
//! and writing one must never write through a link another user put at
//! the path, nor into a file someone else owns, nor leave an old file's
//! wider mode on the new contents. So a file is always written new
//! (`O_CREAT | O_EXCL`, mode 0600, not following links) beside its name,
//! then renamed over it: whatever was at the name, a link included, is
//! replaced, never written into.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Puts a new private file at `path`, filled by `fill` before it takes
/// the name (so the name never shows half a file); returns it, open for
/// more writing.
pub fn replace(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<File> {
    let new = beside(path);
    // What a run that died while writing left.
    match std::fs::remove_file(&new) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&new)?;
    let written = fill(&mut file).and_then(|()| std::fs::rename(&new, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&new);
        return Err(e);
    }
    Ok(file)
}

/// `dir/.name.new`: in the same directory, so that renaming is atomic.
fn beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.new"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_link_or_a_readable_file_at_the_name_is_replaced_not_written_into() {
        let dir = std::env::temp_dir().join(format!("ipsecd-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"theirs").unwrap();
        let path = dir.join("capture");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut file = replace(&path, |f| f.write_all(b"mine")).unwrap();
        file.write_all(b", more").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert_eq!(std::fs::read(&path).unwrap(), b"mine, more");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A file others could read keeps nothing of its mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&path, |f| f.write_all(b"again")).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
