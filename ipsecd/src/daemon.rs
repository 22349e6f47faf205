//! The event loop: set up, then serve the control socket, the enc
//! interface and the peer sockets until a signal says stop.

use crate::args::{USAGE, parse_args};
use crate::clients::Clients;
use crate::clock::Clock;
use crate::control::Listener;
use crate::dataplane::Dataplane;
use crate::{log, memory::Trimmer, privileges, saved, signals::Signals};
use ipsec_engine::engine::{Delivery, Engine};
use sd_notify::NotifyState;
use std::path::Path;
use std::process::ExitCode;

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

/// Leaves the terminal: the parent exits once the socket is there.
pub fn daemonize() -> std::io::Result<()> {
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

/// Runs `ipsecd`: parses its arguments, sets up, and serves until told to
/// stop.
pub fn main() -> ExitCode {
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
    if let Some(path) = &args.filter {
        match crate::filter::load(path) {
            Ok(rules) => engine.filter = rules,
            Err(e) => {
                eprintln!("ipsecd: filter rules refused:\n{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let opened = Dataplane::open(
        &args.enc,
        args.capture.as_deref(),
        &args.bridge,
        &engine,
        restored,
    );
    let mut dataplane = match opened {
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
    if !dataplane.ipv6() {
        engine.refuse_ipv6_flows = true;
        let restored_v6 = engine.spd.iter().any(|(sel, _)| sel.dst.is_ipv6());
        log::warn(&format!(
            "no IPv6 policy rule could be installed: IPv6 flows are refused{}",
            if restored_v6 {
                "; IPv6 flows restored from the last run are NOT enforced"
            } else {
                ""
            }
        ));
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
    serve(
        &listener,
        &signals,
        &mut dataplane,
        &mut engine,
        &state,
        args.filter.as_deref(),
    );
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

fn pollfd(fd: std::os::fd::RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// SIGHUP: the filter's rules read again. A file with any problem is
/// refused whole, each problem logged at its place, and the rules in
/// force stay.
fn reload_filter(engine: &mut Engine, filter: Option<&Path>) {
    let Some(path) = filter else {
        log::info("SIGHUP: no filter rules (-p) to read again");
        return;
    };
    match crate::filter::load(path) {
        Ok(rules) => {
            let n = rules.rules().len();
            engine.filter = rules;
            log::info(&format!("filter: {n} rules read from {}", path.display()));
        }
        Err(e) => {
            for line in e.lines() {
                log::warn(&format!("filter: {line}"));
            }
            log::warn("filter: the rules in force stay");
        }
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
    filter: Option<&Path>,
) {
    engine.capture = dataplane.capturing();
    // Restored flows are what the file holds already.
    let mut saved_at = Some(engine.flow_changes);
    let mut trimmer = Trimmer::default();
    let mut clients = Clients::default();
    let clock = Clock::start();
    let now = || clock.now();
    let mut last_tick = now();
    let data_fds = dataplane.fds();
    // When the tables last changed in a round without PF_KEY messages,
    // routes and filter follow (a netlink change per message would make
    // loading a large file crawl).
    let mut quiet_rounds = 0;
    loop {
        let listening = clients.accepting(now());
        let mut fds = vec![
            pollfd(signals.fd(), libc::POLLIN),
            pollfd(listener.fd(), if listening { libc::POLLIN } else { 0 }),
        ];
        let peers = clients.descriptors();
        fds.extend(peers.iter().map(|&(_, fd, sending)| {
            pollfd(fd, libc::POLLIN | if sending { libc::POLLOUT } else { 0 })
        }));
        let first_data = fds.len();
        fds.extend(data_fds.iter().map(|&fd| pollfd(fd, libc::POLLIN)));
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
                    for line in dataplane.summaries(engine) {
                        log::info(&line);
                    }
                    return;
                }
                if signal == libc::SIGUSR1 {
                    for line in dataplane.summaries(engine) {
                        log::info(&line);
                    }
                } else {
                    reload_filter(engine, filter);
                }
            }
        }
        if fds[1].revents != 0 {
            clients.accept(listener, engine, now());
        }
        let mut out: Vec<Delivery> = Vec::new();
        for (i, &(id, _, _)) in peers.iter().enumerate() {
            let revents = fds[i + 2].revents;
            if revents & libc::POLLOUT != 0 {
                clients.flush(id);
            }
            if revents & !libc::POLLOUT != 0 {
                clients.read(id, engine, now(), &mut out);
            }
        }
        let messages_in = !out.is_empty();
        dataplane.send_relayed(engine);
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
            clients.report_drops();
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
        clients.deliver(out);
    }
}
