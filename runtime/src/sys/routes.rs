//! Steering plaintext into the enc interface: for each outbound flow, a
//! route to its destination through `enc0` in a routing table of the
//! daemon's own, which a policy rule consults for every packet that does
//! not carry the daemon's mark. The daemon's own packets carry it
//! ([`super::net::MARK`]), so they are routed normally: that is what stops
//! a protected packet from looping back into `enc0`, even when the peer's
//! own address is covered by a flow (transport mode).
//!
//! Changes go through `ip -batch`, one process per change set. Whatever a
//! previous run left (after a crash) is removed at start.

use super::net::MARK;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The daemon's routing table, and the priority of the rule that picks
/// it: after the local table (0), before main (32766).
pub const TABLE: u32 = 1950;
pub const RULE_PRIORITY: u32 = 1950;

/// A route into the enc interface: a destination prefix and, for flows
/// from one of this host's addresses, that address as the source to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: IpAddr,
    pub len: u8,
    pub src: Option<IpAddr>,
}

/// The routes and rules the daemon installed.
#[derive(Debug)]
pub struct Routes {
    dev: String,
    installed: BTreeSet<Route>,
}

impl Routes {
    /// Clears what an earlier run left and adds the policy rules.
    pub fn install(dev: &str) -> io::Result<Routes> {
        remove_all();
        let mark = format!("{MARK:#x}");
        let table = TABLE.to_string();
        let priority = RULE_PRIORITY.to_string();
        for family in ["-4", "-6"] {
            let rule = [
                family, "rule", "add", "not", "fwmark", &mark, "table", &table, "priority",
                &priority,
            ];
            // IPv6 may be off; IPv4 may not.
            if let Err(e) = run(&rule, None)
                && family == "-4"
            {
                return Err(e);
            }
        }
        Ok(Routes {
            dev: dev.to_string(),
            installed: BTreeSet::new(),
        })
    }

    /// Makes the installed routes the `wanted` ones. A source that is not
    /// one of this host's addresses is left out (the kernel would refuse
    /// the route).
    pub fn sync(&mut self, wanted: BTreeSet<Route>) -> io::Result<()> {
        let local = local_addresses();
        let wanted: BTreeSet<Route> = wanted
            .into_iter()
            .map(|r| Route {
                src: r.src.filter(|s| local.contains(s)),
                ..r
            })
            .collect();
        let mut script = String::new();
        for r in self.installed.difference(&wanted) {
            script.push_str(&format!("route del {}/{} table {TABLE}\n", r.dst, r.len));
        }
        for r in wanted.difference(&self.installed) {
            script.push_str(&format!(
                "route replace {}/{} dev {} table {TABLE}",
                r.dst, r.len, self.dev
            ));
            if let Some(src) = r.src {
                script.push_str(&format!(" src {src}"));
            }
            script.push('\n');
        }
        if script.is_empty() {
            return Ok(());
        }
        // -force: one route the kernel refuses does not stop the others.
        let result = run(&["-force", "-batch", "-"], Some(&script));
        self.installed = wanted;
        result
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        remove_all();
    }
}

/// The addresses of this host's interfaces.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            match i32::from(unsafe { (*entry.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: an AF_INET address is a sockaddr_in.
                    let a = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                    found.push(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()));
                }
                libc::AF_INET6 => {
                    // SAFETY: an AF_INET6 address is a sockaddr_in6.
                    let a = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                    found.push(IpAddr::from(a.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Removes the rules and routes of this or an earlier run.
fn remove_all() {
    let priority = RULE_PRIORITY.to_string();
    let table = TABLE.to_string();
    for family in ["-4", "-6"] {
        // One rule per family, but a crashed run may have left several.
        for _ in 0..16 {
            if run(&[family, "rule", "del", "priority", &priority], None).is_err() {
                break;
            }
        }
        let _ = run(&[family, "route", "flush", "table", &table], None);
    }
}

/// Runs `ip` with `args`, feeding it `input`; an error carries its
/// complaint.
fn run(args: &[&str], input: Option<&str>) -> io::Result<()> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            why.trim()
        )))
    }
}
