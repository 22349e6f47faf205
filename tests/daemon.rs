//! ipsecctl against a real ipsecd on a socket of the test's own: loading,
//! showing, deleting, flushing, monitoring, refusing strangers and
//! surviving malformed messages.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEYS: &str = "authkey 0x1111111111111111111111111111111111111111111111111111111111111111:\
0x2222222222222222222222222222222222222222222222222222222222222222 \
enckey 0x33333333333333333333333333333333:0x44444444444444444444444444444444";

fn config() -> String {
    format!(
        "flow esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2\n\
         flow ah out proto tcp from 192.0.2.1 to 192.0.2.2 port 40000\n\
         esp transport from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 {KEYS}\n"
    )
}

const SHOWN: &str = "FLOWS:
flow esp out from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2 type require
flow esp in from 10.2.0.0/16 to 10.1.0.0/16 peer 192.0.2.2 type require
flow ah out proto tcp from 192.0.2.1 to 192.0.2.2 port 40000 peer 192.0.2.2 type require

SAD:
esp transport from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes
esp transport from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes
";

const EMPTY: &str = "FLOWS:\nNo flows\n\nSAD:\nNo entries\n";

/// A running ipsecd and its directory; both go when the test ends, even
/// when it fails.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        Daemon::start_with(tag, |_| {})
    }

    /// Starts ipsecd in a directory of its own, after `prepare` has had
    /// its way with the directory and the command.
    fn start_with(tag: &str, prepare: impl FnOnce(&mut Command)) -> Daemon {
        let dir = Daemon::dir(tag);
        let socket = dir.join("ipsecd.sock");
        // A network namespace of its own: the daemon makes enc0, routes and
        // filter rules, which must not touch the host's or another test's.
        let mut command = Command::new("unshare");
        command
            .arg("--net")
            .arg(crate::support::ipsecd())
            .args(["-d", "-s"])
            .arg(&socket)
            .stderr(Stdio::null());
        prepare(&mut command);
        let child = command.spawn().expect("ipsecd starts");
        let daemon = Daemon { child, dir };
        // Ready means the socket accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while raw_connect(&daemon.socket()).is_none() {
            assert!(Instant::now() < deadline, "ipsecd did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ipsecd-test-{tag}-{}", std::process::id()))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("ipsecd.sock")
    }

    fn ipsecctl(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipsecctl"));
        cmd.env("IPSECD_SOCKET", self.socket()).env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ipsecctl().args(args).output().expect("ipsecctl runs")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn show(&self) -> String {
        let out = self.run(&["-s", "all"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling the child we started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bare PF_KEY client socket.
pub(crate) fn raw_connect(path: &Path) -> Option<OwnedFd> {
    // SAFETY: socket(2); owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: fd is fresh.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path.to_str()?.bytes()) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: a valid sockaddr_un.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    (rc == 0).then_some(fd)
}

fn exchange(fd: &OwnedFd, bytes: &[u8]) -> Vec<u8> {
    // SAFETY: send and recv on our own socket and buffers.
    unsafe {
        libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0);
        let mut buf = vec![0u8; 65536];
        let n = libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
        buf.truncate(n.max(0) as usize);
        buf
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn systemd_hears_ready_once_the_socket_accepts_and_stopping_at_the_end() {
    let dir = Daemon::dir("notify");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notify = std::os::unix::net::UnixDatagram::bind(dir.join("notify")).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let path = dir.join("notify");
    let daemon = Daemon::start_with("notify", |cmd| {
        cmd.env("NOTIFY_SOCKET", &path);
    });
    let mut buf = [0u8; 512];
    let n = notify
        .recv(&mut buf)
        .expect("ipsecd tells systemd it is ready");
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(said.lines().any(|l| l == "READY=1"), "{said}");
    assert!(said.contains("STATUS=serving PF_KEY on "), "{said}");
    assert!(
        raw_connect(&daemon.socket()).is_some(),
        "ready means accepting"
    );
    // SAFETY: signalling the child we started, by its pid.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("and that it is stopping");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "STOPPING=1");
}

#[test]
fn load_show_delete_and_flush() {
    let d = Daemon::start("tables");
    let conf = d.file("ipsec.conf", &config());
    assert_eq!(d.show(), EMPTY);
    let out = d.run(&["-f", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(d.show(), SHOWN);
    // Keys only with -k; the extensions with -v.
    let sa = text(&d.run(&["-s", "sa"]).stdout);
    assert!(!sa.contains("authkey"));
    let keyed = text(&d.run(&["-s", "sa", "-k", "-v"]).stdout);
    assert!(keyed.contains("authkey 0x1111"), "{keyed}");
    assert!(
        keyed.contains("\tsa: spi 0x00001000 auth hmac-sha2-256 enc aes"),
        "{keyed}"
    );
    let json = text(&d.run(&["-s", "all", "--json"]).stdout);
    assert!(
        json.starts_with("{\"flows\":[{\"satype\":\"esp\",\"direction\":\"out\""),
        "{json}"
    );
    assert!(!json.contains("authkey"));

    // -c gathers flows that differ in one address.
    let collapsed = text(&d.run(&["-s", "flow", "-c"]).stdout);
    assert!(
        collapsed.starts_with(
            "flow esp out from { 10.1.0.0/16 } to { 10.2.0.0/16 } peer 192.0.2.2 type require\n"
        ),
        "{collapsed}"
    );

    // -d removes exactly what the file added.
    let other = d.file(
        "other.conf",
        "flow esp from 10.9.0.0/16 to 10.8.0.0/16 peer 192.0.2.9\n",
    );
    assert!(d.run(&["-f", &other]).status.success());
    assert!(d.run(&["-d", "-f", &conf]).status.success());
    assert_eq!(
        d.show(),
        "FLOWS:\nflow esp out from 10.9.0.0/16 to 10.8.0.0/16 peer 192.0.2.9 type require\n\
         flow esp in from 10.8.0.0/16 to 10.9.0.0/16 peer 192.0.2.9 type require\n\nSAD:\nNo entries\n"
    );
    // -F empties both tables.
    assert!(d.run(&["-f", &conf]).status.success());
    assert!(d.run(&["-F"]).status.success());
    assert_eq!(d.show(), EMPTY);
}

#[test]
fn a_failure_half_way_says_what_went_in() {
    let d = Daemon::start("halfway");
    // ipsecctl accepts a 20-byte aes key; the runtime's AES does not.
    let conf = d.file(
        "bad.conf",
        &format!(
            "flow esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2\n\
             esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey 0x{} enckey 0x{}\n\
             flow esp from 10.3.0.0/16 to 10.4.0.0/16 peer 192.0.2.3\n",
            "11".repeat(32),
            "22".repeat(20)
        ),
    );
    let out = d.run(&["-f", &conf]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("failed to add rule 2 (line 2): Invalid argument"),
        "{err}"
    );
    assert!(
        err.contains("2 of 5 rules were loaded before that"),
        "{err}"
    );
    assert!(!d.show().contains("10.3.0.0"));
}

#[test]
fn a_monitor_sees_every_message() {
    let d = Daemon::start("monitor");
    let mut monitor = d
        .ipsecctl()
        .arg("-m")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = monitor.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the monitor time to turn promiscuous.
    std::thread::sleep(Duration::from_millis(300));
    let conf = d.file("ipsec.conf", &config());
    assert!(d.run(&["-f", &conf]).status.success());
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && seen
            .iter()
            .filter(|l: &&String| l.starts_with("sadb_add:"))
            .count()
            < 4
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    // SAFETY: stopping the monitor we started.
    unsafe { libc::kill(monitor.id() as i32, libc::SIGTERM) };
    let _ = monitor.wait();
    let count = |prefix: &str| seen.iter().filter(|l| l.starts_with(prefix)).count();
    // Each message twice: the request as sent, and the reply.
    assert_eq!(count("sadb_addflow:"), 6, "{seen:#?}");
    assert_eq!(count("sadb_add:"), 4, "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l == "\tflow_type: type require direction out")
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("\tkey_auth: bits 256: <hidden"))
    );
}

#[test]
fn malformed_messages_get_errno_replies() {
    let d = Daemon::start("malformed");
    let fd = raw_connect(&d.socket()).unwrap();
    let pid = std::process::id();
    let header = |version: u8, len: u16| {
        let mut h = vec![version, pfkey::MsgType::FLUSH.0, 0, 0];
        h.extend_from_slice(&len.to_ne_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&1u32.to_ne_bytes());
        h.extend_from_slice(&pid.to_ne_bytes());
        h
    };
    let mut duplicate = header(2, 4);
    duplicate[1] = pfkey::MsgType::X_ASKPOLICY.0;
    for _ in 0..2 {
        duplicate.extend_from_slice(&[1, 0, 25, 0, 7, 0, 0, 0]);
    }
    let mut overrun = header(2, 3);
    overrun[1] = pfkey::MsgType::X_ASKPOLICY.0;
    overrun.extend_from_slice(&[9, 0, 25, 0, 7, 0, 0, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short", vec![2, 9, 0, 0, 1]),
        ("wrong length", header(2, 3)),
        ("unknown version", header(1, 2)),
        ("extension overrunning the message", overrun),
        ("duplicate extensions", duplicate),
    ];
    for (what, bytes) in cases {
        let reply = exchange(&fd, &bytes);
        assert_eq!(reply.len(), 16, "{what}");
        assert_eq!(reply[2], 22, "{what}: EINVAL");
    }
    // It goes on serving.
    let reply = exchange(&fd, &header(2, 2));
    assert_eq!((reply.len(), reply[2]), (16, 0));
    assert_eq!(d.show(), EMPTY);
}

#[test]
fn strangers_are_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("strangers_are_refused: skipped, it needs root to run a client as another user");
        return;
    }
    let d = Daemon::start("stranger");
    // Even if the socket were opened to all, the credentials decide.
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d
        .ipsecctl()
        .args(["-s", "all"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.show(), EMPTY, "and root is still served");
    let mut stdin_check = d
        .ipsecctl()
        .args(["-nf", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    stdin_check
        .stdin
        .take()
        .unwrap()
        .write_all(b"flow from 1.1.1.1 to 2.2.2.2\n")
        .unwrap();
    assert!(stdin_check.wait().unwrap().success());
}

fn is_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped, it needs root");
    }
    root
}

/// Runs ipsecd on `socket` until it exits; what it printed.
fn ipsecd_refuses(socket: &Path) -> String {
    let out = Command::new("unshare")
        .arg("--net")
        .arg(crate::support::ipsecd())
        .args(["-d", "-s"])
        .arg(socket)
        .output()
        .expect("ipsecd runs");
    assert_eq!(out.status.code(), Some(1), "ipsecd must refuse");
    text(&out.stderr)
}

#[test]
fn the_socket_directory_must_be_private_and_only_a_socket_is_replaced() {
    if !is_root("the_socket_directory_must_be_private") {
        return;
    }
    let dir = Daemon::dir("private");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A directory anyone may write: anyone could take the socket's name.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let said = ipsecd_refuses(&dir.join("ipsecd.sock"));
    assert!(said.contains("not writable by others"), "{said}");
    // A missing directory is made private.
    let fresh = dir.join("made");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg(crate::support::ipsecd())
        .args(["-d", "-s"])
        .arg(fresh.join("ipsecd.sock"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ipsecd starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_connect(&fresh.join("ipsecd.sock")).is_none() {
        assert!(Instant::now() < deadline, "ipsecd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Something that is not a socket is not removed to make room.
    let file = dir.join("precious");
    std::fs::write(&file, b"keep me").unwrap();
    let said = ipsecd_refuses(&file);
    assert!(said.contains("other than a socket"), "{said}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ipsecctl_sends_nothing_to_a_server_of_another_user() {
    if !is_root("ipsecctl_sends_nothing_to_a_server_of_another_user") {
        return;
    }
    let dir = Daemon::dir("impostor");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("ipsecd.sock");
    // nobody serves the socket, and would log whatever it is sent.
    let server = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
                  s.bind(sys.argv[1]); s.listen(1); print('ready', flush=True)\n\
                  c, _ = s.accept(); print('got', len(c.recv(65536)), flush=True)\n";
    let mut impostor = Command::new("/usr/bin/python3")
        .args(["-c", server])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(impostor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let conf = dir.join("keys.conf");
    std::fs::write(
        &conf,
        format!("esp transport from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 {KEYS}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .arg("-S")
        .arg(&socket)
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains("runs as uid 65534"), "{said}");
    // It got nothing: the connection closed before any message.
    assert_eq!(lines.next().unwrap().unwrap(), "got 0");
    let _ = impostor.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_running_daemon_keeps_only_what_it_needs() {
    if !is_root("the_running_daemon_keeps_only_what_it_needs") {
        return;
    }
    let d = Daemon::start("privileges");
    // An answer comes from the event loop, which starts only once the
    // privileges are reduced (the socket is bound before).
    assert_eq!(d.show(), EMPTY);
    let pid = d.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else, anywhere.
    assert_eq!(field("CapEff:"), "0000000000003000");
    assert_eq!(field("CapPrm:"), "0000000000003000");
    assert_eq!(field("CapBnd:"), "0000000000003000");
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
}

/// The CPU time a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: utime and stime are the
    // 12th and 13th fields.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn neither_a_client_that_never_reads_nor_a_lack_of_descriptors_stops_the_daemon() {
    if !is_root("neither_a_client_that_never_reads_nor_a_lack_of_descriptors") {
        return;
    }
    let log = std::env::temp_dir().join(format!("ipsecd-test-dos-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).unwrap();
    let d = Daemon::start_with("dos", |cmd| {
        cmd.stderr(log_file);
        // Few descriptors, so that clients can use them all up.
        // SAFETY: setrlimit in the child before exec, async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 40,
                    rlim_max: 40,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    });
    let pid = d.child.id();
    let mut hogs: Vec<OwnedFd> = (0..60).filter_map(|_| raw_connect(&d.socket())).collect();
    assert!(hogs.len() >= 40, "the backlog takes what is not accepted");
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(used < 30, "{used} ticks in a second: the daemon spins");
    hogs.clear();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.show(), EMPTY, "served again once descriptors are free");

    // A monitor that never reads: it loses messages, the daemon serves on.
    let monitor = raw_connect(&d.socket()).unwrap();
    let promisc = pfkey::Message::new(pfkey::Header::new(
        pfkey::MsgType::X_PROMISC,
        pfkey::SaType(1),
        1,
        std::process::id(),
    ));
    // SAFETY: send on our own socket.
    unsafe {
        let bytes = promisc.encode();
        libc::send(monitor.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0);
    }
    let mut conf = String::new();
    for n in 0..5000u32 {
        conf.push_str(&format!(
            "esp transport from 192.0.2.1 to 192.0.2.2 spi {:#x} authkey 0x{} enckey 0x{}\n",
            0x10000 + n,
            "ab".repeat(32),
            "cd".repeat(16)
        ));
    }
    let conf = d.file("many.conf", &conf);
    assert!(d.run(&["-f", &conf]).status.success());
    for _ in 0..6 {
        let out = d.run(&["-s", "sa"]);
        assert!(out.status.success());
        assert_eq!(text(&out.stdout).lines().count(), 5000);
    }
    // The daemon reports at its next tick; under load (CI runs the tests
    // side by side) that may be a few seconds off.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let said = loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains("does not read its messages") || std::time::Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(said.contains("does not read its messages"), "{said}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss < 96 * 1024, "{rss} KiB resident");
    drop(monitor);
    let _ = std::fs::remove_file(&log);
}
