//! The control socket's clients: accepted up to a limit, read a bounded
//! number of messages per round, each sent what the engine has for it
//! through a bounded queue. A client that floods, one that never reads (a
//! stalled `ipsecctl -m`), or a host out of descriptors must not starve
//! the data path or grow the daemon without end: past the limits,
//! messages are dropped and counted, as PF_KEY drops them with `ENOBUFS`.
//! Messages may hold keys: every buffer that carries them is wiped when
//! it goes.

use crate::control::{Client, Listener, Received};
use crate::log;
use ipsec_engine::engine::{ClientId, Delivery, Engine};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use zeroize::Zeroizing;

/// Clients served at once; past this the listener waits.
pub const MAX_CLIENTS: usize = 256;
/// What may wait for one client, and for all of them together.
pub const MAX_QUEUED_PER_CLIENT: usize = 8 << 20;
pub const MAX_QUEUED: usize = 64 << 20;
/// Messages read from one client in one round of the event loop.
pub const READS_PER_ROUND: usize = 64;

/// One client and what waits to be sent to it.
#[derive(Debug)]
struct Connection {
    client: Client,
    queue: VecDeque<Zeroizing<Vec<u8>>>,
    queued: usize,
    /// Not root nor the socket's owner: its first message is answered
    /// with `EACCES`, then it is let go.
    refused: bool,
    /// Messages dropped because its queue was full, not yet logged.
    dropped: u64,
}

/// The clients, and the listener's state.
#[derive(Debug, Default)]
pub struct Clients {
    connections: BTreeMap<ClientId, Connection>,
    next_id: ClientId,
    queued: usize,
    /// Out of descriptors: no accepting before this second.
    paused_until: u64,
}

impl Clients {
    /// Whether the listener should be polled now.
    pub fn accepting(&self, now: u64) -> bool {
        self.connections.len() < MAX_CLIENTS && now >= self.paused_until
    }

    /// Accepts who waits, up to the limit. When the host or the process
    /// is out of descriptors, the listener rests a second: it would be
    /// readable at once again, and the loop would spin.
    pub fn accept(&mut self, listener: &Listener, engine: &mut Engine, now: u64) {
        while self.connections.len() < MAX_CLIENTS {
            let client = match listener.accept() {
                Ok(Some(client)) => client,
                Ok(None) => return,
                Err(e) => {
                    log::warn(&format!("accepting a client: {e}; pausing for a second"));
                    self.paused_until = now + 1;
                    return;
                }
            };
            self.next_id += 1;
            let id = self.next_id;
            let refused = !listener.allows(&client);
            if refused {
                log::info(&format!(
                    "refusing pid {} uid {}: not root or the socket's owner",
                    client.pid, client.uid
                ));
            } else {
                log::debug(format_args!(
                    "client {id}: pid {} uid {}",
                    client.pid, client.uid
                ));
                engine.connect(id);
            }
            self.connections.insert(
                id,
                Connection {
                    client,
                    queue: VecDeque::new(),
                    queued: 0,
                    refused,
                    dropped: 0,
                },
            );
        }
    }

    /// Each client's descriptor and whether it has something to send.
    pub fn descriptors(&self) -> Vec<(ClientId, std::os::fd::RawFd, bool)> {
        self.connections
            .iter()
            .map(|(id, c)| (*id, c.client.fd(), !c.queue.is_empty()))
            .collect()
    }

    /// Sends what waits for `id` until its socket is full.
    pub fn flush(&mut self, id: ClientId) {
        let Some(c) = self.connections.get_mut(&id) else {
            return;
        };
        while let Some(front) = c.queue.front() {
            match c.client.send(front) {
                Ok(()) => {
                    c.queued -= front.len();
                    self.queued -= front.len();
                    c.queue.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // Gone; its hang-up will be noticed.
                    self.queued -= c.queued;
                    c.queued = 0;
                    c.queue.clear();
                    return;
                }
            }
        }
    }

    /// Reads up to [`READS_PER_ROUND`] messages from `id` into the engine.
    pub fn read(&mut self, id: ClientId, engine: &mut Engine, now: u64, out: &mut Vec<Delivery>) {
        for _ in 0..READS_PER_ROUND {
            let Some(c) = self.connections.get(&id) else {
                return;
            };
            match c.client.recv() {
                Received::Message(bytes) if c.refused => {
                    let _ = c.client.send(&refusal(&bytes));
                    self.remove(id, engine);
                    return;
                }
                Received::Message(bytes) => {
                    log::debug(format_args!("client {id}: {} bytes", bytes.len()));
                    out.extend(engine.handle(id, c.client.pid, &bytes, now));
                }
                Received::Nothing => return,
                Received::Closed => {
                    log::debug(format_args!("client {id}: gone"));
                    self.remove(id, engine);
                    return;
                }
            }
        }
    }

    fn remove(&mut self, id: ClientId, engine: &mut Engine) {
        if let Some(c) = self.connections.remove(&id) {
            self.queued -= c.queued;
            engine.disconnect(id);
        }
    }

    /// Queues the engine's messages for their clients and sends what the
    /// sockets take. A message that would take a client's queue, or all
    /// queues together, past their limit is dropped and counted.
    pub fn deliver(&mut self, sends: Vec<Delivery>) {
        for send in sends {
            let bytes = Zeroizing::new(send.bytes);
            let Some(c) = self.connections.get_mut(&send.to) else {
                continue;
            };
            let len = bytes.len();
            if c.queued + len > MAX_QUEUED_PER_CLIENT || self.queued + len > MAX_QUEUED {
                c.dropped += 1;
                continue;
            }
            c.queued += len;
            self.queued += len;
            c.queue.push_back(bytes);
            self.flush(send.to);
        }
    }

    /// Logs, once a second at most, the clients that lost messages.
    pub fn report_drops(&mut self) {
        for (id, c) in &mut self.connections {
            if c.dropped > 0 {
                log::warn(&format!(
                    "client {id} (pid {}) does not read its messages: {} dropped",
                    c.client.pid, c.dropped
                ));
                c.dropped = 0;
            }
        }
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
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
