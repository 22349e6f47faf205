//! This host's key, certificate and trusted authorities, from the
//! directory `iked -c` names (`/etc/iked` by default):
//! `private/local.key`, `certs/local.crt`, and every file in `ca/`. Each
//! is opened without following links and checked on the descriptor: a
//! regular file owned by root or this user that no one else may change;
//! the key no one else may read either. The key's bytes are wiped once
//! parsed.

use ipsec_ike::crypto::pki::{Pki, PrivateKey};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The largest file read: certificates and keys are a few kilobytes.
const MAX_FILE: u64 = 1 << 20;

/// Loads what certificate authentication needs, or says what is wrong
/// with which file.
pub fn load(dir: &Path) -> Result<Arc<Pki>, String> {
    let key_path = dir.join("private/local.key");
    let key = read(&key_path, true)?;
    let key = PrivateKey::from_bytes(&key).map_err(|e| format!("{}: {e:?}", key_path.display()))?;
    let cert_path = dir.join("certs/local.crt");
    let cert = read(&cert_path, false)?;
    let ca_dir = dir.join("ca");
    let mut authorities = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&ca_dir)
        .map_err(|e| format!("{}: {e}", ca_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    for path in names {
        authorities.push(read(&path, false)?);
    }
    if authorities.is_empty() {
        return Err(format!(
            "{}: no authority's certificate in it",
            ca_dir.display()
        ));
    }
    let refs: Vec<&[u8]> = authorities.iter().map(|a| a.as_slice()).collect();
    Pki::new(key, &cert, &refs)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e:?}", cert_path.display()))
}

/// Reads `path` if it is safe to: see the module's comment.
fn read(path: &Path, secret: bool) -> Result<Zeroizing<Vec<u8>>, String> {
    let fail = |why: String| format!("{}: {why}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(fail(format!(
            "owned by uid {}, not root or this user",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(fail(format!("mode {mode:o}: others may change it")));
    }
    if secret && mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:o}: others may read the key (chmod 600)"
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(fail(format!("larger than {MAX_FILE} bytes")));
    }
    read_all(file, meta.len() as usize).map_err(|e| fail(e.to_string()))
}

/// The file's bytes, in a buffer wiped when dropped and never grown (so
/// no copy is left behind).
fn read_all(file: File, len: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    let mut file = file.take(len as u64);
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fixture(name: &str) -> Vec<u8> {
        let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read(top.join("ike/testdata/pki").join(name)).unwrap()
    }

    fn put(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_files_load_only_when_no_one_else_may_read_the_key_or_change_any() {
        let dir = std::env::temp_dir().join(format!("iked-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        put(&dir.join("private/local.key"), &fixture("a.key"), 0o600);
        put(&dir.join("certs/local.crt"), &fixture("a.crt"), 0o644);
        put(&dir.join("ca/ca.crt"), &fixture("ca.crt"), 0o644);
        let pki = load(&dir).unwrap();
        assert_eq!(pki.authorities().len(), 20);
        // A key others may read is refused, and says how to mend it.
        std::fs::set_permissions(
            dir.join("private/local.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let err = load(&dir).unwrap_err();
        assert!(
            err.contains("local.key") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(
            dir.join("private/local.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // An authority others may change, too.
        std::fs::set_permissions(
            dir.join("ca/ca.crt"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        assert!(load(&dir).unwrap_err().contains("others may change it"));
        std::fs::set_permissions(
            dir.join("ca/ca.crt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // A link is not followed.
        std::fs::remove_file(dir.join("certs/local.crt")).unwrap();
        put(&dir.join("elsewhere.crt"), &fixture("a.crt"), 0o644);
        std::os::unix::fs::symlink(dir.join("elsewhere.crt"), dir.join("certs/local.crt")).unwrap();
        assert!(load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
