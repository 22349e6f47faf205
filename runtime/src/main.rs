//! ipsecd: the userspace IPsec runtime. It keeps the SPD and SAD and
//! answers PF_KEY v2 on its control socket, as OpenBSD's kernel does.

use ipsec_runtime::engine::{ClientId, Engine, Send};
use ipsec_runtime::sys::control::{Client, Listener, Received};
use ipsec_runtime::sys::dataplane::Dataplane;
use ipsec_runtime::sys::{log, memory::Trimmer, privileges, saved, signals::Signals};
use sd_notify::NotifyState;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str =
    "usage: ipsecd [-dv] [-s socket] [-e ifname] [-p rules] [-w pcap] [-b ifname -b ifname]";
const DEFAULT_SOCKET: &str = "/run/ipsecd/ipsecd.sock";

#[derive(Debug)]
struct Args {
    foreground: bool,
    verbose: u8,
    socket: PathBuf,
    enc: String,
    capture: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        foreground: false,
        verbose: 0,
        socket: PathBuf::from(DEFAULT_SOCKET),
        enc: "enc0".to_string(),
        capture: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unknown command line argument: {arg}"));
        };
        let mut chars = flags.chars();
        while let Some(flag) = chars.next() {
            match flag {
                'd' => args.foreground = true,
                'v' => args.verbose = args.verbose.saturating_add(1),
                's' | 'e' | 'p' | 'w' | 'b' => {
                    let rest: String = chars.by_ref().collect();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("option requires an argument -- {flag}"));
                    };
                    match flag {
                        's' => args.socket = PathBuf::from(value),
                        'e' => args.enc = value,
                        'w' => args.capture = Some(PathBuf::from(value)),
                        'p' => {
                            return Err("-p: the enc filter is not in this version".into());
                        }
                        _ => {
                            return Err("-b: bridge mode is not in this version".into());
                        }
                    }
                }
                other => return Err(format!("unknown option -- {other}")),
            }
        }
    }
    Ok(args)
}

/// How much may wait for a client that does not read before it is let go.
const MAX_QUEUED: usize = 256 << 20;

/// A client and what waits to be sent to it.
#[derive(Debug)]
struct Conn {
    client: Client,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            queue: VecDeque::new(),
            queued: 0,
        }
    }

    /// Queues a message and sends what the socket takes; false when the
    /// client has fallen too far behind.
    fn push(&mut self, bytes: Vec<u8>) -> bool {
        self.queued += bytes.len();
        self.queue.push_back(bytes);
        self.flush();
        self.queued <= MAX_QUEUED
    }

    /// Sends queued messages until the socket is full.
    fn flush(&mut self) {
        while let Some(front) = self.queue.front() {
            match self.client.send(front) {
                Ok(()) => {
                    self.queued -= front.len();
                    self.queue.pop_front();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The client is gone; its hang-up will be noticed.
                    self.queue.clear();
                    self.queued = 0;
                    return;
                }
            }
        }
    }
}

/// The header of a refused client's message, with `errno` EACCES.
fn refusal(bytes: &[u8]) -> [u8; 16] {
    let mut header = [0u8; 16];
    let n = bytes.len().min(16);
    header[..n].copy_from_slice(&bytes[..n]);
    header[0] = pfkey::PF_KEY_V2;
    header[2] = pfkey::validate::Errno::EACCES.0;
    header[4..6].copy_from_slice(&2u16.to_ne_bytes());
    header
}

/// Secret bytes from the kernel for the engine's IVs and SPIs.
fn entropy() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // Without entropy IVs would be predictable: better not to run.
            eprintln!("ipsecd: getrandom: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
    }
    bytes
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Leaves the terminal: the parent exits once the socket is there.
fn daemonize() -> std::io::Result<()> {
    // SAFETY: fork in a single-threaded process.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()),
        0 => {}
        // The parent must not remove the socket: exit without destructors.
        _ => std::process::exit(0),
    }
    // SAFETY: plain process-state calls in the child.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("ipsecd: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    log::init(true, args.verbose);
    let listener = match Listener::bind(&args.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ipsecd: {}: {e}", args.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let mut engine = Engine::new(entropy());
    let state = saved::path_for(&args.socket);
    let restored = match restore(&mut engine, &state) {
        Ok(restored) => restored,
        Err(e) => {
            eprintln!(
                "ipsecd: {}: {e}; refusing to start without the flows it holds \
                 (remove it to start afresh)",
                state.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut dataplane = match Dataplane::open(&args.enc, args.capture.as_deref(), &engine, restored)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ipsecd: data path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipsecd: signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.foreground {
        if let Err(e) = daemonize() {
            eprintln!("ipsecd: cannot become a daemon: {e}");
            return ExitCode::FAILURE;
        }
        log::init(false, args.verbose);
    }
    if let Err(e) = privileges::reduce() {
        log::warn(&format!("cannot give up privileges: {e}"));
        return ExitCode::FAILURE;
    }
    if restored {
        log::info(&format!(
            "restored {} flows from {}",
            engine.spd.len(),
            state.display()
        ));
    }
    log::info(&format!("serving PF_KEY on {}", args.socket.display()));
    // Under systemd (Type=notify): ready, since the socket accepts now.
    let status = format!("serving PF_KEY on {}", args.socket.display());
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]) {
        log::warn(&format!("telling systemd we are ready: {e}"));
    }
    serve(&listener, &signals, &mut dataplane, &mut engine, &state);
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    if dataplane.stop(&engine) {
        if let Err(e) = saved::remove(&state) {
            log::warn(&format!("{}: {e}", state.display()));
        }
        log::info("stopped; no flows were left, so nothing is left installed");
    } else {
        log::info(&format!(
            "stopped; {} flows stay guarded until ipsecd is back \
             (ipsecctl -F before stopping removes them)",
            engine.spd.len()
        ));
    }
    ExitCode::SUCCESS
}

/// Loads the flows an earlier run saved into `engine`; whether there
/// were any.
fn restore(engine: &mut Engine, state: &Path) -> Result<bool, String> {
    let Some(bytes) = saved::load(state).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    engine.restore_flows(&bytes).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Saves the flows when they changed since `saved_at`.
fn save(engine: &Engine, state: &Path, saved_at: &mut Option<u64>) {
    if *saved_at == Some(engine.flow_changes) {
        return;
    }
    let result = if engine.spd.is_empty() {
        saved::remove(state)
    } else {
        saved::save(state, &engine.saved_flows())
    };
    match result {
        Ok(()) => *saved_at = Some(engine.flow_changes),
        // Tried again next round; the guard in the kernel does not
        // depend on it.
        Err(e) => log::warn(&format!("{}: {e}", state.display())),
    }
}

/// The event loop: clients' messages into the engine, its messages out,
/// time passing once a second, until SIGTERM or SIGINT.
fn serve(
    listener: &Listener,
    signals: &Signals,
    dataplane: &mut Dataplane,
    engine: &mut Engine,
    state: &Path,
) {
    engine.capture = dataplane.capturing();
    // Restored flows are what the file holds already.
    let mut saved_at = Some(engine.flow_changes);
    let mut trimmer = Trimmer::default();
    let mut clients: BTreeMap<ClientId, Conn> = BTreeMap::new();
    let mut next_id: ClientId = 1;
    // Clients that may not talk PF_KEY: their first message is answered
    // with EACCES, and then they are let go.
    let mut refused: BTreeSet<ClientId> = BTreeSet::new();
    let mut last_tick = now();
    let data_fds = dataplane.fds();
    // When the tables last changed in a round without PF_KEY messages,
    // routes and filter follow (spawning `ip` and `nft` per message would
    // make loading a large file crawl).
    let mut quiet_rounds = 0;
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: listener.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ids: Vec<ClientId> = clients.keys().copied().collect();
        fds.extend(clients.values().map(|c| libc::pollfd {
            fd: c.client.fd(),
            events: libc::POLLIN | if c.queue.is_empty() { 0 } else { libc::POLLOUT },
            revents: 0,
        }));
        let first_data = fds.len();
        fds.extend(data_fds.iter().map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        let timeout = if quiet_rounds == 0 { 20 } else { 1000 };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            log::warn(&format!("poll: {}", std::io::Error::last_os_error()));
            return;
        }
        if fds[0].revents != 0 {
            for signal in signals.take() {
                if signal == libc::SIGTERM || signal == libc::SIGINT {
                    log::info(&dataplane.summary(engine));
                    return;
                }
                if signal == libc::SIGUSR1 {
                    log::info(&dataplane.summary(engine));
                } else {
                    log::info("SIGHUP: nothing to reload yet");
                }
            }
        }
        if fds[1].revents != 0 {
            while let Ok(Some(client)) = listener.accept() {
                if listener.allows(&client) {
                    log::debug(&format!(
                        "client {next_id}: pid {} uid {}",
                        client.pid, client.uid
                    ));
                    engine.connect(next_id);
                } else {
                    log::info(&format!(
                        "refusing pid {} uid {}: not root or the socket's owner",
                        client.pid, client.uid
                    ));
                    refused.insert(next_id);
                }
                clients.insert(next_id, Conn::new(client));
                next_id += 1;
            }
        }
        let mut out: Vec<Send> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let revents = fds[i + 2].revents;
            if revents == 0 {
                continue;
            }
            if revents & libc::POLLOUT != 0
                && let Some(conn) = clients.get_mut(id)
            {
                conn.flush();
            }
            if revents & !libc::POLLOUT == 0 {
                continue;
            }
            while let Some(conn) = clients.get(id) {
                match conn.client.recv() {
                    Received::Message(bytes) if refused.contains(id) => {
                        let _ = conn.client.send(&refusal(&bytes));
                        clients.remove(id);
                        refused.remove(id);
                    }
                    Received::Message(bytes) => {
                        log::debug(&format!("client {id}: {} bytes", bytes.len()));
                        out.extend(engine.handle(*id, conn.client.pid, &bytes, now()));
                    }
                    Received::Nothing => break,
                    Received::Closed => {
                        log::debug(&format!("client {id}: gone"));
                        engine.disconnect(*id);
                        clients.remove(id);
                        refused.remove(id);
                    }
                }
            }
        }
        let messages_in = !out.is_empty();
        for pfd in &fds[first_data..] {
            if pfd.revents != 0 {
                out.extend(dataplane.ready(pfd.fd, engine, now()));
            }
        }
        let t = now();
        if t != last_tick {
            last_tick = t;
            out.extend(engine.tick(t));
            for complaint in engine.complaints.report(t) {
                log::warn(&complaint);
            }
            dataplane.tick(engine, t);
            trimmer.observe(engine.sad.len());
        }
        if messages_in {
            quiet_rounds = 0;
        } else {
            quiet_rounds += 1;
            dataplane.sync(engine);
            save(engine, state, &mut saved_at);
        }
        for send in out {
            let Some(conn) = clients.get_mut(&send.to) else {
                continue;
            };
            if !conn.push(send.bytes) {
                log::warn(&format!(
                    "client {}: does not read its messages; letting it go",
                    send.to
                ));
                engine.disconnect(send.to);
                clients.remove(&send.to);
            }
        }
    }
}
