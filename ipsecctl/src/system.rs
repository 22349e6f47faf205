//! The host's own databases behind the compiler's `Resolver`: interfaces
//! (getifaddrs), host names (the system resolver), `/etc/protocols`,
//! `/etc/services`, key files and the host name. Each database is read at
//! most once per run.

use ipsec_compiler::{Resolver, Transport};
use ipsec_grammar::{Loaded, Loader};
use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// An I/O error as C's `strerror` words it (no "(os error N)").
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<String, u32>,
    by_number: HashMap<u32, String>,
}

impl Table {
    fn add(&mut self, names: &[&str], number: u32) {
        for name in names {
            self.by_name.entry((*name).to_owned()).or_insert(number);
        }
        if let Some(first) = names.first() {
            self.by_number
                .entry(number)
                .or_insert_with(|| (*first).to_owned());
        }
    }
}

/// `/etc/protocols`: `name number [aliases]`.
fn read_protocols(path: &str) -> Table {
    let mut table = Table::default();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let line = line.split('#').next().unwrap_or("");
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        if let Ok(number) = fields[1].parse::<u32>() {
            let mut names = vec![fields[0]];
            names.extend(&fields[2..]);
            table.add(&names, number);
        }
    }
    table
}

/// `/etc/services`: `name port/proto [aliases]`, one table per transport.
fn read_services(path: &str) -> HashMap<&'static str, Table> {
    let mut tables: HashMap<&'static str, Table> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let line = line.split('#').next().unwrap_or("");
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let Some((port, proto)) = fields[1].split_once('/') else {
            continue;
        };
        let transport = match proto {
            "tcp" => "tcp",
            "udp" => "udp",
            _ => continue,
        };
        if let Ok(port) = port.parse::<u32>() {
            let mut names = vec![fields[0]];
            names.extend(&fields[2..]);
            tables.entry(transport).or_default().add(&names, port);
        }
    }
    tables
}

/// Writes `bytes` (keys, often) to `path` so that only this user can
/// read them: a regular file is written new (`O_EXCL`, mode 0600, links
/// not followed) beside the name and renamed over it, so that neither a
/// link another user planted nor an old file's wider mode or owner
/// decides where the keys go. A FIFO or a device (`/dev/null`) is
/// written into, if it is root's or this user's.
pub fn write_private(path: &str, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let path = std::path::Path::new(path);
    let kind = match std::fs::symlink_metadata(path) {
        Ok(meta) => Some(meta.file_type()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if kind.is_some_and(|k| k.is_fifo() || k.is_char_device()) {
        let mut target = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let owner = target.metadata()?.uid();
        if owner != 0 && owner != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("owned by uid {owner}: not writing keys to it"),
            ));
        }
        return target.write_all(bytes);
    }
    if kind.is_some_and(|k| !k.is_file() && !k.is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "not a regular file, a FIFO or a device",
        ));
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let new = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&new)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&new, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&new);
    }
    written
}

/// This host's addresses, on every interface.
pub fn local_addresses() -> Vec<IpAddr> {
    read_interfaces().into_values().flatten().collect()
}

/// Every interface's addresses, by interface name.
fn read_interfaces() -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return map;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cursor };
        cursor = ifa.ifa_next;
        if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr points to a sockaddr whose family says its type.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => {
                map.entry(name).or_default();
                continue;
            }
        };
        map.entry(name).or_default().push(ip);
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    map
}

/// Answers from this host's databases.
#[derive(Debug, Default)]
pub struct System {
    interfaces: OnceLock<HashMap<String, Vec<IpAddr>>>,
    protocols: OnceLock<Table>,
    services: OnceLock<HashMap<&'static str, Table>>,
    /// Key files read that others may read: warned about, not refused,
    /// since OpenBSD reads them (and its regress suite relies on it).
    pub readable_keys: std::sync::Mutex<Vec<String>>,
}

impl System {
    fn services(&self, transport: Transport) -> Option<&Table> {
        self.services
            .get_or_init(|| read_services("/etc/services"))
            .get(transport.as_str())
    }
}

impl Resolver for System {
    fn interface(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.interfaces
            .get_or_init(read_interfaces)
            .get(name)
            .cloned()
    }

    fn host(&self, name: &str) -> Vec<IpAddr> {
        let Ok(found) = (name, 0u16).to_socket_addrs() else {
            return Vec::new();
        };
        let mut out: Vec<IpAddr> = Vec::new();
        for addr in found {
            // Scoped IPv6 answers cannot be written in a rule; skip them.
            if let SocketAddr::V6(v6) = addr
                && v6.scope_id() != 0
            {
                continue;
            }
            if !out.contains(&addr.ip()) {
                out.push(addr.ip());
            }
        }
        out
    }

    fn protocol_number(&self, name: &str) -> Option<u8> {
        let table = self
            .protocols
            .get_or_init(|| read_protocols("/etc/protocols"));
        table.by_name.get(name).and_then(|&n| u8::try_from(n).ok())
    }

    fn protocol_name(&self, number: u8) -> Option<String> {
        let table = self
            .protocols
            .get_or_init(|| read_protocols("/etc/protocols"));
        table.by_number.get(&u32::from(number)).cloned()
    }

    fn service_port(&self, name: &str, transport: Transport) -> Option<u16> {
        self.services(transport)?
            .by_name
            .get(name)
            .and_then(|&p| u16::try_from(p).ok())
    }

    fn service_name(&self, port: u16, transport: Transport) -> Option<String> {
        self.services(transport)?
            .by_number
            .get(&u32::from(port))
            .cloned()
    }

    /// A key file that others could change (or that belongs to someone
    /// else), or a symbolic link, is refused; one they could only read is
    /// read, and noted.
    fn key_file(&self, path: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        let file = read_key_file(path)?;
        if let Some(why) = exposure(&file.meta, false) {
            return Err(format!("{why}: others could change the key"));
        }
        if exposure(&file.meta, true).is_some()
            && let Ok(mut seen) = self.readable_keys.lock()
        {
            seen.push(path.to_owned());
        }
        Ok(file.bytes)
    }

    fn host_name(&self) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is writable for its whole length.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
            return String::from("localhost");
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

/// The largest file ipsecctl reads as configuration or keys.
pub const MAX_FILE: u64 = 16 << 20;

/// A file read for the configuration, with what `fstat` said of the
/// descriptor it was read from (not of the path, which could have been
/// changed in between).
#[derive(Debug)]
pub struct ReadFile {
    /// Wiped when dropped: the file may hold keys.
    pub bytes: Zeroizing<Vec<u8>>,
    pub meta: std::fs::Metadata,
}

/// Reads a regular file of at most [`MAX_FILE`] bytes: a device
/// (`/dev/zero`) or a FIFO is refused, not read for ever.
pub fn read_file(path: &str) -> Result<ReadFile, String> {
    read_opened(std::fs::File::open(path))
}

/// As [`read_file`], but a symbolic link in the last place is refused: a
/// key file is named by root's configuration, and a link swapped in under
/// that name must not make root read (and use, or print with `-k`)
/// another file. Opening does not wait (a FIFO is then refused as not a
/// regular file).
pub fn read_key_file(path: &str) -> Result<ReadFile, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match opened {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err("a symbolic link".into()),
        opened => read_opened(opened),
    }
}

fn read_opened(opened: std::io::Result<std::fs::File>) -> Result<ReadFile, String> {
    let file = opened.map_err(|e| strerror(&e))?;
    let meta = file.metadata().map_err(|e| strerror(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let bytes = read_wiped(file, meta.len() as usize)?;
    Ok(ReadFile { bytes, meta })
}

/// Reads at most [`MAX_FILE`] bytes into a buffer that is wiped when
/// dropped; growing it wipes the old one, so no copy of a key is left in
/// freed memory. `expected` is the size to start with.
pub fn read_wiped(
    mut from: impl std::io::Read,
    expected: usize,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let limit = MAX_FILE as usize;
    let mut bytes = Zeroizing::new(vec![0u8; expected.clamp(4096, limit + 1)]);
    let mut len = 0;
    loop {
        if len == bytes.len() {
            if len > limit {
                return Err(format!("larger than {MAX_FILE} bytes"));
            }
            let mut grown = Zeroizing::new(vec![0u8; (2 * len).min(limit + 1)]);
            grown[..len].copy_from_slice(&bytes[..len]);
            bytes = grown;
        }
        match from.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(strerror(&e)),
        }
    }
    if len > limit {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// Why another user could change this file's policy, or read the keys in
/// it (`secret`), if one could: OpenBSD's checks, on the opened file.
pub fn exposure(meta: &std::fs::Metadata, secret: bool) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != 0 && meta.uid() != uid {
        return Some("owner not root or current user");
    }
    let mode = meta.mode();
    if mode & (libc::S_IWGRP | libc::S_IWOTH) != 0 {
        return Some("group writable or world read/writable");
    }
    if secret && mode & (libc::S_IRGRP | libc::S_IXGRP | libc::S_IRWXO) != 0 {
        return Some("group writable or world read/writable");
    }
    None
}

/// Reads included files from the file system, relative to the current
/// directory, as OpenBSD does; each must be a regular file that only root
/// or this user can change. What it read is kept, for the check of files
/// that turn out to hold keys.
#[derive(Debug, Default)]
pub struct Files {
    pub read: Vec<(String, std::fs::Metadata)>,
}

impl Loader for Files {
    fn load(&mut self, path: &str) -> Result<Loaded, String> {
        use std::os::unix::fs::MetadataExt;
        let file = read_file(path)?;
        if let Some(why) = exposure(&file.meta, false) {
            return Err(format!("{why}; others could change this policy"));
        }
        let identity = Some((file.meta.dev(), file.meta.ino()));
        self.read.push((path.to_owned(), file.meta));
        Ok(Loaded {
            bytes: file.bytes,
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn reading_grows_to_the_whole_input_and_stops_at_the_limit() {
        let text: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let read = read_wiped(&text[..], 0).unwrap();
        assert_eq!(&read[..], &text[..]);
        let too_big = io::repeat(b'#').take(MAX_FILE + 1);
        assert!(read_wiped(too_big, 0).unwrap_err().contains("larger than"));
        let just_fits = io::repeat(b'#').take(MAX_FILE);
        assert_eq!(read_wiped(just_fits, 0).unwrap().len() as u64, MAX_FILE);
    }
}
