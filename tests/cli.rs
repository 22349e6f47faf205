//! The command line as users run it: flags, exit codes, files and their
//! permissions, and what happens when the runtime is not there.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SA: &str = "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 \
    authkey 0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
    enckey 0x0123456789abcdef0123456789abcdef\n";

fn ipsecctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipsecctl"));
    // Never reach a real ipsecd from the tests.
    cmd.env("IPSECD_SOCKET", "/nonexistent/ipsecd.sock");
    cmd.env("NO_COLOR", "1");
    cmd
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = ipsecctl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipsecctl starts");
    // A command that does not read its input may exit before taking it.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().expect("ipsecctl finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A directory removed when the test ends, however it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ipsecctl-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn usage_and_exit_codes() {
    let out = run(&[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("usage: ipsecctl [-cdFkmnv]"));

    let out = run(&["-q"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("ipsecctl: unknown option -- q\nusage:"));

    let out = run(&["-n", "stray"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("unknown command line argument: stray\n"));

    let out = run(&["-s", "bogus"], "");
    assert!(text(&out.stderr).starts_with("ipsecctl: Unknown show modifier 'bogus'\n"));

    let out = run(&["--help"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("-f file"));
}

#[test]
fn stdin_parse_only() {
    let out = run(&["-nvf", "-"], "flow from 10.0.0.1 to 10.0.0.2\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "flow esp out from 10.0.0.1 to 10.0.0.2 peer 10.0.0.2 type require\n\
         flow esp in from 10.0.0.2 to 10.0.0.1 peer 10.0.0.2 type require\n"
    );
    // -n without -v prints nothing and succeeds.
    let out = run(&["-nf", "-"], SA);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn keys_only_with_k() {
    let out = run(&["-nvf", "-"], SA);
    assert!(!text(&out.stdout).contains("0123456789"));
    let out = run(&["-nkvf", "-"], SA);
    assert!(text(&out.stdout).contains("authkey 0x0123456789abcdef"));
}

#[test]
fn errors_in_both_formats() {
    let bad = "flow from 10.0.0.1 to 10.1.0.0/24\nesp from 1.1.1.1 to 2.2.2.2 spi 7\n";
    let out = run(&["--error-format=openbsd", "-nf", "-"], bad);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "stdin: 1: no peer specified for destination 10.1.0.0/24\n\
         stdin: 2: 7 within reserved spi range\n\
         ipsecctl: Syntax error in config file: ipsec rules not loaded\n"
    );
    let out = run(&["-nf", "-"], bad);
    let err = text(&out.stderr);
    assert!(err.contains("┌─ stdin:1:23"), "{err}");
    assert!(
        err.contains("ipsecctl: 2 errors in stdin: ipsec rules not loaded"),
        "{err}"
    );
    let out = run(&["--error-format=short", "-nf", "-"], bad);
    assert!(text(&out.stderr).starts_with("stdin:1:23: error: no peer specified"));
}

#[test]
fn command_line_macros_win() {
    let conf = "peer_addr = \"192.0.2.9\"\nflow from 10.0.0.0/8 to 10.1.0.0/16 peer $peer_addr\n";
    let out = run(&["-nvf", "-", "-D", "peer_addr=192.0.2.1"], conf);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("peer 192.0.2.1 type"), "{stdout}");
    assert!(!stdout.contains("peer 192.0.2.9 type"));
    // -vv warns about macros never used.
    let out = run(
        &["-nvvf", "-", "-D", "unused=1"],
        "flow from 1.1.1.1 to 2.2.2.2\n",
    );
    assert!(text(&out.stderr).contains("warning: macro 'unused' not used"));
    assert!(text(&out.stdout).starts_with("@0 flow esp out"));
}

#[test]
fn files_with_keys_must_be_private() {
    let dir = TempDir::new("secrecy");
    let open = dir.file("open.conf", SA, 0o644);
    let out = run(&["-nf", path(&open)], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("group writable or world read/writable"));

    let private = dir.file("private.conf", SA, 0o600);
    assert_eq!(run(&["-nf", path(&private)], "").status.code(), Some(0));

    // Without secrets, a readable file is fine; a writable one never is.
    let flows = "flow from 10.0.0.1 to 10.0.0.2\n";
    let readable = dir.file("readable.conf", flows, 0o644);
    assert_eq!(run(&["-nf", path(&readable)], "").status.code(), Some(0));
    let writable = dir.file("writable.conf", flows, 0o666);
    assert_eq!(run(&["-nf", path(&writable)], "").status.code(), Some(1));

    let out = run(&["-nf", path(&dir.0.join("missing.conf"))], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such file or directory"));
}

#[test]
fn includes_share_macros() {
    let dir = TempDir::new("include");
    let inner = dir.file("inner.conf", "flow from $a to 10.9.9.9\n", 0o600);
    let outer = format!("a = \"10.0.0.1\"\ninclude \"{}\"\n", path(&inner));
    let out = run(&["-nvf", "-"], &outer);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("flow esp out from 10.0.0.1 to 10.9.9.9"));

    let out = run(
        &["--error-format=openbsd", "-nf", "-"],
        "include \"/nonexistent.conf\"\n",
    );
    assert_eq!(
        text(&out.stderr),
        "pushfile: /nonexistent.conf: No such file or directory\n\
         stdin: 1: failed to include file /nonexistent.conf\n\
         ipsecctl: Syntax error in config file: ipsec rules not loaded\n"
    );
}

#[test]
fn runtime_commands_fail_clearly_without_ipsecd() {
    for args in [&["-f", "-"][..], &["-s", "all"], &["-F"], &["-m"]] {
        let out = run(args, SA);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("ipsecd is not reachable at /nonexistent/ipsecd.sock"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // With -n, -F has nothing to do.
    assert_eq!(run(&["-nF"], "").status.code(), Some(0));
}

#[test]
fn ike_rules_go_to_the_isakmpd_fifo() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("isakmpd.fifo");
    let c_path = std::ffi::CString::new(path(&fifo)).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Like isakmpd, hold the FIFO open for reading and writing, so it
    // always has a reader.
    let mut held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while text.matches("Connections=").count() < 2 && std::time::Instant::now() < deadline {
            match held.read(&mut buf) {
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        text
    });
    let conf = "ike esp from 10.0.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 psk s3cret\n\
                ike passive esp from 10.0.0.0/24 to 10.2.0.0/24 peer 192.0.2.3\n";
    let out = run(&["-i", path(&fifo), "-f", "-"], conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sent = reader.join().unwrap();
    assert!(sent.contains("C set [Phase 1]:192.0.2.2=peer-192.0.2.2 force\n"));
    // isakmpd gets the pre-shared key itself.
    assert!(sent.contains("C set [peer-192.0.2.2]:Authentication=s3cret force\n"));
    assert!(
        sent.ends_with("C add [Phase 2]:Passive-Connections=from-10.0.0.0/24-to-10.2.0.0/24\n")
    );

    // Not a FIFO: refused.
    let plain = dir.file("plain", "", 0o600);
    let out = run(&["-i", path(&plain), "-f", "-"], conf);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a fifo"));
}

#[test]
fn verbose_output_shows_a_pre_shared_key_only_with_k() {
    let conf = "ike esp from 10.0.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 psk s3cret\n";
    let out = run(&["-nvf", "-"], conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("Authentication=(hidden; -k shows it) force\n"));
    let out = run(&["-nvkf", "-"], conf);
    assert!(text(&out.stdout).contains("Authentication=s3cret force\n"));
}

#[test]
fn write_the_pfkey_messages() {
    let dir = TempDir::new("write");
    let out_path = dir.0.join("load.bin");
    let conf = format!("flow esp from 192.0.2.1 to 192.0.2.2\n{SA}");
    let out = run(&["-nf", "-", "-w", path(&out_path)], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let meta = std::fs::metadata(&out_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let messages = pfkey::decode_stream(&std::fs::read(&out_path).unwrap()).unwrap();
    let kinds: Vec<pfkey::MsgType> = messages.iter().map(|m| m.header.msg_type).collect();
    assert_eq!(
        kinds,
        [
            pfkey::MsgType::X_ADDFLOW,
            pfkey::MsgType::X_ADDFLOW,
            pfkey::MsgType::ADD
        ]
    );
    let seqs: Vec<u32> = messages.iter().map(|m| m.header.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for m in &messages {
        assert_eq!(pfkey::validate::check_request(m, m.header.pid), Ok(()));
    }

    // -d writes what deleting would send; a file with errors writes nothing.
    let out = run(&["-dnf", "-", "-w", path(&out_path)], &conf);
    assert_eq!(out.status.code(), Some(0));
    let messages = pfkey::decode_stream(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(messages[2].header.msg_type, pfkey::MsgType::DELETE);
    let bad_path = dir.0.join("bad.bin");
    let out = run(
        &["-nf", "-", "-w", path(&bad_path)],
        "flow from nowhere.invalid to 1.2.3.4\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!bad_path.exists());
}

#[test]
fn the_keys_written_never_go_through_a_link_or_keep_a_wider_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("write-safely");
    let conf = format!("flow esp from 192.0.2.1 to 192.0.2.2\n{SA}");
    let mode =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    // A file others can read: after -w it is 0600, whatever it was.
    let open = dir.0.join("open.bin");
    std::fs::write(&open, b"").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["-nf", "-", "-w", path(&open)], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(mode(&open), 0o600);
    // A link planted at the name: the link is replaced, its target is
    // not written.
    let target = dir.0.join("target");
    std::fs::write(&target, b"someone else's").unwrap();
    let link = dir.0.join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = run(&["-nf", "-", "-w", path(&link)], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(mode(&link), 0o600);
    // A device is written into: /dev/null takes it.
    let out = run(&["-nf", "-", "-w", "/dev/null"], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `ipsecctl -nf main.conf` in `dir`, where includes are read from.
fn check_in(dir: &TempDir) -> (Option<i32>, String) {
    let out = ipsecctl()
        .args(["-nf", "main.conf"])
        .current_dir(&dir.0)
        .output()
        .expect("ipsecctl runs");
    (out.status.code(), text(&out.stderr))
}

#[test]
fn every_file_read_is_checked_not_only_the_main_one() {
    let dir = TempDir::new("included");
    let flow = "flow esp from 192.0.2.1 to 192.0.2.2\n";
    dir.file("main.conf", "include \"./part.conf\"\n", 0o600);
    // An include others can write: they could change root's policy.
    dir.file("part.conf", flow, 0o666);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("main.conf:1:9"), "{said}");
    assert!(said.contains("others could change this policy"), "{said}");
    // An include with keys that others can read.
    dir.file("part.conf", &format!("{flow}{SA}"), 0o644);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(
        said.contains("./part.conf: group writable or world read/writable"),
        "{said}"
    );
    assert!(
        said.contains("it holds keys that others can read"),
        "{said}"
    );
    dir.file("part.conf", &format!("{flow}{SA}"), 0o600);
    assert_eq!(check_in(&dir).0, Some(0));
    // A key file others can change is refused; one they can read is
    // read, as OpenBSD does, with a warning.
    dir.file("auth.key", &"ab".repeat(32), 0o666);
    dir.file("enc.key", &"cd".repeat(16), 0o600);
    dir.file(
        "main.conf",
        "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 auth hmac-sha2-256 enc aes \
         authkey file \"auth.key\" enckey file \"enc.key\"\n",
        0o600,
    );
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("others could change the key"), "{said}");
    dir.file("auth.key", &"ab".repeat(32), 0o644);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("auth.key: key file readable by group or others"),
        "{said}"
    );
    assert!(!said.contains("enc.key"), "{said}");
}

#[test]
fn a_pre_shared_key_file_is_checked_as_a_key_file_is() {
    let dir = TempDir::new("pskfile");
    let rule = "ike esp from 192.0.2.1 to 192.0.2.2 peer 192.0.2.2 psk file \"peer.psk\"\n";
    dir.file("main.conf", rule, 0o600);
    dir.file("peer.psk", "not from the configuration\n", 0o666);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("others could change the key"), "{said}");
    // A link is refused even to a file that would do.
    dir.file("real.psk", "not from the configuration\n", 0o600);
    std::fs::remove_file(dir.0.join("peer.psk")).unwrap();
    std::os::unix::fs::symlink("real.psk", dir.0.join("peer.psk")).unwrap();
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("peer.psk: a symbolic link"), "{said}");
    std::fs::remove_file(dir.0.join("peer.psk")).unwrap();
    dir.file("peer.psk", "not from the configuration\n", 0o600);
    let out = ipsecctl()
        .args(["-nvkf", "main.conf"])
        .current_dir(&dir.0)
        .output()
        .expect("ipsecctl runs");
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        said.contains("Authentication=not from the configuration force"),
        "{said}"
    );
    // Without -k the secret is not shown.
    let out = ipsecctl()
        .args(["-nvf", "main.conf"])
        .current_dir(&dir.0)
        .output()
        .expect("ipsecctl runs");
    assert!(
        !text(&out.stdout).contains("not from the configuration"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn includes_cannot_loop_under_other_names_or_read_without_end() {
    let dir = TempDir::new("loops");
    // Eight includes of itself, each under another spelling of its name:
    // compared by name, this multiplied eightfold per level.
    let mut main = String::new();
    for n in 0..8 {
        main.push_str(&format!("include \"{}main.conf\"\n", "./".repeat(n + 1)));
    }
    dir.file("main.conf", &main, 0o600);
    let started = std::time::Instant::now();
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("a file already being read"), "{said}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A device is not a configuration file.
    dir.file("main.conf", "include \"/dev/zero\"\n", 0o600);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("not a regular file"), "{said}");
}

#[test]
fn macros_that_multiply_are_stopped_where_they_start() {
    let dir = TempDir::new("bomb");
    // Eight levels of sixteen: 16^9 tokens if nothing stopped them.
    let mut conf = format!("m0 = \"{}\"\n", vec!["x"; 16].join(" "));
    for level in 1..9 {
        conf.push_str(&format!("m{level} ="));
        for _ in 0..16 {
            conf.push_str(&format!(" $m{}", level - 1));
        }
        conf.push('\n');
    }
    conf.push_str("flow esp from $m8 to 10.0.0.0/8\n");
    dir.file("main.conf", &conf, 0o600);
    let started = std::time::Instant::now();
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(said.contains("main.conf:4:1"), "{said}");
    assert!(
        said.contains("line too long: more than 65536 tokens"),
        "{said}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // One value too long by itself, made of long words.
    let words = format!("s = \"{}\"\nbig = {}\n", "y".repeat(8000), "$s ".repeat(10));
    dir.file("main.conf", &words, 0o600);
    let (code, said) = check_in(&dir);
    assert_eq!(code, Some(1));
    assert!(
        said.contains("macro value longer than 65536 bytes"),
        "{}",
        &said[..said.len().min(300)]
    );
}
