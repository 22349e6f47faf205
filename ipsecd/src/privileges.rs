//! What the daemon keeps once it is set up. Its sockets, the enc
//! interface and the control socket are open by then; from there on it
//! only changes routes, rules, the interface's MTU and nftables (and runs
//! `nft` to do the last), which is `CAP_NET_ADMIN`, and sends on raw
//! sockets, `CAP_NET_RAW`. Everything else goes, from the bounding set
//! too, so that neither the daemon nor anything it runs can get it back;
//! no new privileges on exec; and no core dump, which would hold keys.

use caps::{CapSet, Capability, CapsHashSet};
use std::io;

/// The capabilities the running daemon uses.
pub fn kept() -> CapsHashSet {
    [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW]
        .into_iter()
        .collect()
}

/// Drops what the daemon no longer needs. Capabilities it never had are
/// no error (systemd may have bounded it already).
pub fn reduce() -> io::Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| io::Error::other(format!("{what}: {e}"));
    // SAFETY: plain process-state calls with constant arguments.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0
            || libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    let keep = kept();
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| fail("bounding set", e))?;
    for cap in bounding.difference(&keep) {
        // Needs CAP_SETPCAP, which goes last, with the others below.
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| fail("bounding set", e))?;
    }
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail("permitted set", e))?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient set", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable set", e))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| fail("effective set", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail("permitted set", e))?;
    // SAFETY: a plain process-state call with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
