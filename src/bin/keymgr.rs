//! keymgr: a minimal PF_KEY key manager for ipsecd, keying SAs the way
//! isakmpd does after a quick mode: `SADB_GETSPI` to reserve the SPI,
//! then `SADB_UPDATE` with the algorithms, keys and flags. For benchmarks
//! and tests that need SAs ipsecctl will not make (AES-GCM and
//! ChaCha20-Poly1305 are "disallowed with static keys" in ipsec.conf).
//!
//! ```text
//! keymgr [-s socket] add --src A --dst B --spi SPI --enc ALG [--enckey HEX]
//!        [--auth ALG --authkey HEX] [--ah] [--tunnel] [--replay N] [--esn]
//!        [--udpencap PORT]
//! keymgr [-s socket] delete --src A --dst B --spi SPI [--ah]
//! ```
//!
//! `--udpencap PORT` makes an ESP SA whose packets travel in UDP (RFC
//! 3948), to the peer's UDP port PORT (4500 when it sits behind no NAT),
//! as isakmpd keys one after NAT detection.
//!
//! Flows need no keys: load them with `ipsecctl -f`, e.g.
//! `flow esp from 10.78.0.1 to 10.78.0.2 peer 10.77.0.2`.
//!
//! Algorithm names are pfkey's: enc `aes`, `aesctr`, `aes-gcm`,
//! `chacha20-poly1305`, `3des-cbc`, `null`, ...; auth `hmac-sha1`,
//! `hmac-sha2-256`, `hmac-sha2-512`, ... Combined ciphers need no auth:
//! their key is the cipher key and a 4-byte salt (AES-128-GCM 20 bytes,
//! ChaCha20-Poly1305 36).
//!
//! Build and run: `cargo build --release --bin keymgr`, then
//! `target/release/keymgr -s /run/ipsecd/ipsecd.sock add ...`.

use pfkey::validate::Errno;
use pfkey::{
    Address, AuthAlg, Body, EncAlg, ExtType, Header, Key, Message, MsgType, Sa, SaState, SaType,
    SockAddr, SpiRange, UdpEncap, sa_flags,
};
use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

const USAGE: &str = "\
usage: keymgr [-s socket] add --src A --dst B --spi SPI --enc ALG [--enckey HEX]
              [--auth ALG --authkey HEX] [--ah] [--tunnel] [--replay N] [--esn]
              [--udpencap PORT]
       keymgr [-s socket] delete --src A --dst B --spi SPI [--ah]";
const DEFAULT_SOCKET: &str = "/run/ipsecd/ipsecd.sock";
/// How long to wait for ipsecd's answer.
const REPLY_TIMEOUT_SECS: libc::time_t = 10;

#[derive(Debug)]
enum Command {
    Add,
    Delete,
}

#[derive(Debug)]
struct Args {
    socket: String,
    command: Command,
    satype: SaType,
    src: IpAddr,
    dst: IpAddr,
    spi: u32,
    enc: EncAlg,
    enc_key: Option<Vec<u8>>,
    auth: AuthAlg,
    auth_key: Option<Vec<u8>>,
    flags: u32,
    /// For ESP in UDP, the peer's UDP port.
    udpencap: Option<u16>,
    replay: u8,
}

fn parse_number(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("not a number: {s}"))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !hex.is_ascii() || !hex.len().is_multiple_of(2) {
        return Err(format!("not an even number of hex digits: {s}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| format!("not hex: {s}")))
        .collect()
}

fn parse_enc(name: &str) -> Result<EncAlg, String> {
    EncAlg::KNOWN
        .iter()
        .copied()
        .find(|a| a.name() == Some(name))
        .ok_or_else(|| {
            let known: Vec<&str> = EncAlg::KNOWN.iter().filter_map(|a| a.name()).collect();
            format!("unknown cipher {name} (one of: {})", known.join(", "))
        })
}

fn parse_auth(name: &str) -> Result<AuthAlg, String> {
    AuthAlg::KNOWN
        .iter()
        .copied()
        .find(|a| a.name() == Some(name))
        .ok_or_else(|| {
            let known: Vec<&str> = AuthAlg::KNOWN.iter().filter_map(|a| a.name()).collect();
            format!(
                "unknown authentication {name} (one of: {})",
                known.join(", ")
            )
        })
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut socket = std::env::var("IPSECD_SOCKET").unwrap_or_else(|_| DEFAULT_SOCKET.into());
    let mut i = 0;
    let mut command = None;
    let (mut src, mut dst, mut spi): (Option<IpAddr>, Option<IpAddr>, _) = (None, None, None);
    let (mut enc, mut enc_key, mut auth, mut auth_key) = (None, None, None, None);
    let (mut satype, mut flags, mut replay) = (SaType::ESP, 0, 64u8);
    let mut udpencap = None;
    while i < argv.len() {
        let arg = argv[i].as_str();
        i += 1;
        let mut value = || {
            i += 1;
            argv.get(i - 1)
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg {
            "-h" | "--help" => return Err(String::new()),
            "-s" => socket = value()?,
            "add" if command.is_none() => command = Some(Command::Add),
            "delete" if command.is_none() => command = Some(Command::Delete),
            "flow" if command.is_none() => {
                return Err("keymgr keys SAs only; load flows (they need no keys) with \
                     ipsecctl, e.g.\n  echo 'flow esp from 10.78.0.1 to 10.78.0.2 peer \
                     10.77.0.2' | ipsecctl -S SOCKET -f -"
                    .into());
            }
            "--src" => src = Some(value()?.parse().map_err(|_| "--src: not an address")?),
            "--dst" => dst = Some(value()?.parse().map_err(|_| "--dst: not an address")?),
            "--spi" => spi = Some(parse_number(&value()?)?),
            "--enc" => enc = Some(parse_enc(&value()?)?),
            "--enckey" => enc_key = Some(parse_hex(&value()?)?),
            "--auth" => auth = Some(parse_auth(&value()?)?),
            "--authkey" => auth_key = Some(parse_hex(&value()?)?),
            "--ah" => satype = SaType::AH,
            "--tunnel" => flags |= sa_flags::TUNNEL,
            "--esn" => flags |= sa_flags::ESN,
            "--udpencap" => {
                let n = parse_number(&value()?)?;
                let port = u16::try_from(n)
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or("--udpencap: a port from 1 to 65535")?;
                udpencap = Some(port);
                flags |= sa_flags::UDPENCAP;
            }
            "--replay" => {
                let n = parse_number(&value()?)?;
                replay = u8::try_from(n).map_err(|_| "--replay: at most 255")?;
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    let command = command.ok_or("no command (add or delete)")?;
    let src = src.ok_or("--src is required")?;
    let dst = dst.ok_or("--dst is required")?;
    let spi = spi.ok_or("--spi is required")?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err("--src and --dst are of different families".into());
    }
    let auth = auth.unwrap_or(AuthAlg::NONE);
    let enc = enc.unwrap_or(EncAlg::NONE);
    if let Command::Add = command {
        if satype == SaType::ESP && enc == EncAlg::NONE && auth == AuthAlg::NONE {
            return Err("add: an ESP SA needs --enc (and/or --auth)".into());
        }
        if satype == SaType::AH && (auth == AuthAlg::NONE || enc != EncAlg::NONE) {
            return Err("add --ah: needs --auth and no --enc".into());
        }
        if auth != AuthAlg::NONE && auth_key.is_none() && !combined(enc) {
            return Err("--auth needs --authkey".into());
        }
        if !matches!(enc, EncAlg::NONE | EncAlg::NULL) && enc_key.is_none() {
            return Err("--enc needs --enckey".into());
        }
        if satype == SaType::AH && udpencap.is_some() {
            return Err("--udpencap: only ESP travels in UDP".into());
        }
    }
    Ok(Args {
        socket,
        command,
        satype,
        src,
        dst,
        spi,
        enc,
        enc_key,
        auth,
        auth_key,
        flags,
        udpencap,
        replay,
    })
}

/// Ciphers that authenticate by themselves.
fn combined(enc: EncAlg) -> bool {
    matches!(
        enc,
        EncAlg::X_AESGCM8
            | EncAlg::X_AESGCM12
            | EncAlg::X_AESGCM16
            | EncAlg::X_AESGMAC
            | EncAlg::X_CHACHA20POLY1305
    )
}

/// A `SOCK_SEQPACKET` connection to ipsecd's control socket.
#[derive(Debug)]
struct Control {
    fd: OwnedFd,
    pid: u32,
    seq: u32,
}

impl Control {
    fn connect(path: &str) -> io::Result<Control> {
        let c_path =
            CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: socket(2); the descriptor is owned at once.
        let raw =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_un is plain data; all zeroes is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = c_path.as_bytes();
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        for (d, &s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_un of length len.
        if unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let timeout = libc::timeval {
            tv_sec: REPLY_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: a receive timeout on our own socket, from a valid timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Control {
            fd,
            pid: std::process::id(),
            seq: 0,
        })
    }

    /// A header for our next request (the pid must be ours: ipsecd checks
    /// it against the socket's peer credentials).
    fn header(&mut self, msg_type: MsgType, satype: SaType) -> Header {
        self.seq += 1;
        Header::new(msg_type, satype, self.seq, self.pid)
    }

    /// Sends a request and waits for its answer (same type, sequence
    /// number and pid), passing over what ipsecd broadcasts for others.
    fn request(&self, msg: &Message) -> io::Result<Result<Message, Errno>> {
        let bytes = msg.encode();
        // SAFETY: send from a valid buffer of the given length.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv into our own buffer of the given length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "ipsecd did not answer",
                    ));
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "ipsecd closed the connection",
                ));
            }
            let reply = &buf[..n as usize];
            let word = |at: usize| {
                u32::from_ne_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]])
            };
            if reply.len() < 16
                || reply[1] != msg.header.msg_type.0
                || word(8) != msg.header.seq
                || word(12) != self.pid
            {
                continue;
            }
            if reply[2] != 0 {
                return Ok(Err(Errno(reply[2])));
            }
            return Message::decode(reply)
                .map(Ok)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
        }
    }
}

fn address(ip: IpAddr) -> Body {
    Body::Address(Address {
        reserved: 0,
        addr: SockAddr::ip(ip, 0),
    })
}

fn push(m: &mut Message, t: ExtType, body: Body) -> Result<(), String> {
    m.push(t, body)
        .map(|_| ())
        .map_err(|e| format!("cannot build {t}: {e}"))
}

fn describe(e: Errno) -> String {
    format!("{}", io::Error::from_raw_os_error(i32::from(e.0)))
}

fn add(ctl: &mut Control, a: &Args) -> Result<(), String> {
    // Reserve exactly the SPI asked for, as isakmpd does for the
    // inbound SA (and, here, for the outbound one too).
    let mut getspi = Message::new(ctl.header(MsgType::GETSPI, a.satype));
    push(&mut getspi, ExtType::ADDRESS_SRC, address(a.src))?;
    push(&mut getspi, ExtType::ADDRESS_DST, address(a.dst))?;
    let range = SpiRange {
        min: a.spi,
        max: a.spi,
        reserved: 0,
    };
    push(&mut getspi, ExtType::SPIRANGE, Body::SpiRange(range))?;
    let reply = ctl
        .request(&getspi)
        .map_err(|e| format!("GETSPI: {e}"))?
        .map_err(|e| format!("GETSPI spi {:#x}: {}", a.spi, describe(e)))?;
    match reply.get(ExtType::SA) {
        Some(Body::Sa(sa)) if sa.spi == a.spi => {}
        other => return Err(format!("GETSPI: unexpected answer {other:?}")),
    }

    let mut update = Message::new(ctl.header(MsgType::UPDATE, a.satype));
    let sa = Sa {
        spi: a.spi,
        replay: a.replay,
        state: SaState::MATURE,
        auth: a.auth,
        encrypt: a.enc.0,
        flags: a.flags,
    };
    push(&mut update, ExtType::SA, Body::Sa(sa))?;
    push(&mut update, ExtType::ADDRESS_SRC, address(a.src))?;
    push(&mut update, ExtType::ADDRESS_DST, address(a.dst))?;
    if let Some(k) = &a.auth_key {
        push(&mut update, ExtType::KEY_AUTH, Body::Key(Key::new(k)))?;
    }
    if let Some(k) = &a.enc_key {
        push(&mut update, ExtType::KEY_ENCRYPT, Body::Key(Key::new(k)))?;
    }
    if let Some(port) = a.udpencap {
        let encap = UdpEncap { port, reserved: 0 };
        push(&mut update, ExtType::X_UDPENCAP, Body::UdpEncap(encap))?;
    }
    let result = ctl
        .request(&update)
        .map_err(|e| format!("UPDATE: {e}"))?
        .map_err(|e| format!("UPDATE spi {:#x}: {}", a.spi, describe(e)));
    if result.is_err() {
        // Do not leave the larval SA holding the SPI until it times out.
        let _ = delete(ctl, a);
    }
    result.map(|_| ())
}

fn delete(ctl: &mut Control, a: &Args) -> Result<(), String> {
    let mut m = Message::new(ctl.header(MsgType::DELETE, a.satype));
    let sa = Sa {
        spi: a.spi,
        state: SaState::MATURE,
        ..Sa::default()
    };
    push(&mut m, ExtType::SA, Body::Sa(sa))?;
    push(&mut m, ExtType::ADDRESS_SRC, address(a.src))?;
    push(&mut m, ExtType::ADDRESS_DST, address(a.dst))?;
    ctl.request(&m)
        .map_err(|e| format!("DELETE: {e}"))?
        .map_err(|e| format!("DELETE spi {:#x}: {}", a.spi, describe(e)))?;
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("keymgr: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut ctl = match Control::connect(&args.socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keymgr: {}: {e}", args.socket);
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        Command::Add => add(&mut ctl, &args),
        Command::Delete => delete(&mut ctl, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keymgr: {e}");
            ExitCode::FAILURE
        }
    }
}
