//! The event loop: poll the signals, the control socket and its clients,
//! the PF_KEY connection to `ipsecd` and the IKE sockets; hand what came
//! to the key manager with the time; carry out what it returns. Once a
//! second the key manager is told that time passed.

use crate::args::{self, Args};
use crate::control::{self, Request};
use crate::pki_files;
use crate::status;
use crate::udp::{self, Sockets};
use ipsec_ike::keyer::{Action, Event, Keyer};
use ipsecctl::client::Client as Pfkey;
use ipsecd::control::{Client, Listener, Received};
use ipsecd::log;
use ipsecd::signals::Signals;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// The daemon's state besides the key manager.
struct Shell {
    pfkey: Pfkey,
    sockets: Sockets,
    rng: rand_core::OsRng,
    start: Instant,
    /// The directory of this host's key, certificate and authorities.
    pki: String,
}

impl Shell {
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// The wall clock's seconds since 1970 at `now` 0, for checking
    /// certificates' times (read again each round: the clock may be set).
    fn unix_epoch(&self) -> u64 {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        unix.saturating_sub(self.now())
    }

    /// Carries out what the key manager asked.
    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send {
                    local,
                    remote,
                    bytes,
                } => {
                    if let Err(e) = self.sockets.send(local, remote, &bytes) {
                        log::warn(&format!("sending to {remote}: {e}"));
                    }
                }
                Action::PfKey(bytes) => {
                    if let Err(e) = self.pfkey.send_bytes(&bytes) {
                        log::warn(&format!("PF_KEY to ipsecd: {e}"));
                    }
                }
                Action::Log(line) => log::info(&line),
            }
        }
    }

    /// Binds port 500 on the addresses the policies use.
    fn bind_for(&mut self, keyer: &Keyer) {
        for p in keyer.policies() {
            if let Err(e) = self.sockets.ensure(p.local) {
                log::warn(&format!("{}: UDP port 500 on {}: {e}", p.name, p.local));
            }
        }
    }
}

/// Answers one control request.
fn serve(request: &[u8], keyer: &mut Keyer, shell: &mut Shell) -> String {
    let request = match control::parse(request) {
        Ok(r) => r,
        Err(why) => return format!("error: {why}\n"),
    };
    let now = shell.now();
    match request {
        Request::Add(text) => match control::policies(&text, &udp::local_toward, &|| {
            pki_files::load(Path::new(&shell.pki))
        }) {
            Ok(policies) => {
                let n = policies.len();
                for p in policies {
                    if keyer.policies().iter().any(|q| q.name == p.name) {
                        continue;
                    }
                    let actions = keyer.add_policy(p, now, &mut shell.rng);
                    shell.bind_for(keyer);
                    shell.perform(actions);
                }
                format!("ok {n}\n")
            }
            Err(why) => format!("error: {why}\n"),
        },
        Request::Delete(text) => match control::names(&text) {
            Ok(names) => {
                let mut missing = Vec::new();
                for name in names {
                    match keyer.remove_policy(&name, &mut shell.rng) {
                        Some(actions) => shell.perform(actions),
                        None => missing.push(name),
                    }
                }
                if missing.is_empty() {
                    "ok\n".into()
                } else {
                    format!("error: no such rule: {}\n", missing.join("; "))
                }
            }
            Err(why) => format!("error: {why}\n"),
        },
        Request::Flush => {
            let actions = keyer.flush(&mut shell.rng);
            shell.perform(actions);
            "ok\n".into()
        }
        Request::Show { json } => {
            let rules = keyer.status(now);
            if json {
                status::json(&rules, &keyer.drops)
            } else {
                status::text(&rules, &keyer.drops)
            }
        }
        Request::Up(n) | Request::Down(n) => {
            let up = matches!(request, Request::Up(_));
            let done = if up {
                keyer.up(n, now, &mut shell.rng)
            } else {
                keyer.down(n, now, &mut shell.rng)
            };
            match done {
                Ok(actions) => {
                    shell.perform(actions);
                    "ok\n".into()
                }
                Err(_) => format!("error: no rule {n} (ikectl show numbers them)\n"),
            }
        }
    }
}

fn poll(fds: &[RawFd], timeout_ms: i32) -> Vec<RawFd> {
    let mut set: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll(2) over our array of its true length.
    let n = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, timeout_ms) };
    if n <= 0 {
        return Vec::new();
    }
    set.iter()
        .filter(|p| p.revents != 0)
        .map(|p| p.fd)
        .collect()
}

/// Runs `iked` until SIGTERM or SIGINT; every IKE SA is then ended, its
/// peer told, and its Child SAs deleted. The flows stay: what they cover
/// does not leave in clear text while `iked` is away.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args: Args = match args::parse(&argv) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("iked: {why}\n{}", args::USAGE);
            return ExitCode::FAILURE;
        }
    };
    log::init_as(c"iked", true, args.verbose);
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iked: signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pfkey = match Pfkey::connect(&args.ipsecd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iked: ipsecd at {}: {e}", args.ipsecd);
            return ExitCode::FAILURE;
        }
    };
    let listener = match Listener::bind_for(Path::new(&args.socket), "iked") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("iked: {}: {e}", args.socket);
            return ExitCode::FAILURE;
        }
    };
    let mut shell = Shell {
        pfkey,
        sockets: Sockets::default(),
        rng: rand_core::OsRng,
        start: Instant::now(),
        pki: args.pki.clone(),
    };
    if !args.foreground {
        if let Err(e) = ipsecd::daemonize() {
            eprintln!("iked: cannot become a daemon: {e}");
            return ExitCode::FAILURE;
        }
        log::init_as(c"iked", false, args.verbose);
    }
    let (mut keyer, actions) = Keyer::new(shell.pfkey.pid(), Vec::new(), 0, &mut shell.rng);
    shell.perform(actions);
    log::info(&format!("serving ike rules on {}", args.socket));
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut ticked = 0;
    loop {
        keyer.set_unix_epoch(shell.unix_epoch());
        let mut fds = vec![signals.fd(), listener.fd(), shell.pfkey.fd()];
        fds.extend(clients.iter().map(Client::fd));
        fds.extend(shell.sockets.fds());
        let ready = poll(&fds, 1000);
        let now = shell.now();
        for fd in ready {
            if fd == signals.fd() {
                let stop = signals
                    .take()
                    .iter()
                    .any(|&s| s == libc::SIGTERM || s == libc::SIGINT);
                if stop {
                    let actions = keyer.shutdown(&mut shell.rng);
                    shell.perform(actions);
                    log::info("stopped");
                    return ExitCode::SUCCESS;
                }
            } else if fd == listener.fd() {
                while let Ok(Some(client)) = listener.accept() {
                    if listener.allows(&client) {
                        clients.push(client);
                    }
                }
            } else if fd == shell.pfkey.fd() {
                match shell.pfkey.recv() {
                    Ok(bytes) => {
                        let actions = keyer.handle(Event::PfKey(&bytes), now, &mut shell.rng);
                        shell.perform(actions);
                    }
                    Err(e) => {
                        log::warn(&format!("ipsecd went away: {e}"));
                        return ExitCode::FAILURE;
                    }
                }
            } else if let Some(at) = clients.iter().position(|c| c.fd() == fd) {
                match clients[at].recv() {
                    Received::Message(request) => {
                        let answer = serve(&request, &mut keyer, &mut shell);
                        let _ = clients[at].send(answer.as_bytes());
                    }
                    Received::Nothing => {}
                    Received::Closed => {
                        clients.swap_remove(at);
                    }
                }
            } else {
                for (local, remote, bytes) in shell.sockets.read(fd, &mut buf) {
                    let event = Event::Datagram {
                        local,
                        remote,
                        bytes: &bytes,
                    };
                    let actions = keyer.handle(event, now, &mut shell.rng);
                    shell.perform(actions);
                }
            }
        }
        if now != ticked {
            ticked = now;
            let actions = keyer.handle(Event::Tick, now, &mut shell.rng);
            shell.perform(actions);
        }
    }
}
