//! Two of iked's key managers, each over a real PF_KEY engine, talking
//! through a network the input controls: each command delivers, drops,
//! repeats, reorders or damages the next datagram, lets time pass (so
//! that SAs expire and are rekeyed, requests are sent again, peers are
//! found dead), injects bytes of its own as a datagram or as a message
//! from `ipsecd`, or acts as the operator: takes a rule down, brings it
//! up, or removes it. Each side's first and third rules share an IKE SA;
//! B's last rule answers any peer, and A's last one reaches it.
//! Nothing may panic, whatever the order of events.

#![no_main]

use ipsec_compiler::{Fixed, RuleKind, compile_text};
use ipsec_engine::engine::Engine;
use ipsec_ike::keyer::{Action, Event, Keyer, Policy};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::VecDeque;
use std::net::SocketAddr;

const CLIENT: u64 = 1;
const A: &str = "\
ike active esp from 10.1.0.0/16 to 10.2.0.0/16 local 192.0.2.1 peer 192.0.2.2 \
  main lifetime 20 quick lifetime 10 psk \"k\"
ike passive esp from 10.3.0.0/16 to 10.4.0.0/16 local 192.0.2.1 peer 192.0.2.2 psk \"k\"
ike active esp from 10.5.0.0/16 to 10.6.0.0/16 local 192.0.2.1 peer 192.0.2.2 \
  main lifetime 20 quick lifetime 12 psk \"k\"
ike active esp from 10.9.0.0/16 to 10.8.0.0/16 local 192.0.2.1 peer 192.0.2.2 psk \"k2\"
";
const B: &str = "\
ike passive esp from 10.2.0.0/16 to 10.1.0.0/16 local 192.0.2.2 peer 192.0.2.1 \
  main lifetime 30 quick lifetime 15 psk \"k\"
ike active esp from 10.4.0.0/16 to 10.3.0.0/16 local 192.0.2.2 peer 192.0.2.1 psk \"k\"
ike passive esp from 10.6.0.0/16 to 10.5.0.0/16 local 192.0.2.2 peer 192.0.2.1 \
  main lifetime 30 quick lifetime 15 psk \"k\"
ike passive esp from 10.8.0.0/16 to any local 192.0.2.2 psk \"k2\"
";

fn policies(rules: &str) -> Vec<Policy> {
    let out = compile_text("fuzz", rules, &Fixed::standard(), &Default::default());
    let none = || Err("no certificates".to_owned());
    out.rules
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Ike(ike) => Some(
                ipsec_ike::policy::policy(ike, format!("rule {}", r.nr), &|_| None, &none).unwrap(),
            ),
            _ => None,
        })
        .collect()
}

struct Side {
    keyer: Keyer,
    engine: Engine,
    pid: u32,
}

/// A datagram on the wire: to which side, between which addresses.
struct Datagram {
    to: usize,
    local: SocketAddr,
    remote: SocketAddr,
    bytes: Vec<u8>,
}

struct World {
    sides: [Side; 2],
    wire: VecDeque<Datagram>,
    now: u64,
    rng: rand_chacha::ChaCha20Rng,
}

impl World {
    /// Carries out side `i`'s actions: PF_KEY requests go to its engine
    /// and the answers come back; datagrams go on the wire.
    fn settle(&mut self, i: usize, actions: Vec<Action>) {
        let mut queue = actions;
        let mut rounds = 0;
        while let Some(action) = queue.pop() {
            rounds += 1;
            if rounds > 10_000 {
                return;
            }
            match action {
                Action::PfKey(bytes) => {
                    let side = &mut self.sides[i];
                    for d in side.engine.handle(CLIENT, side.pid, &bytes, self.now) {
                        if d.to == CLIENT {
                            let more =
                                side.keyer
                                    .handle(Event::PfKey(&d.bytes), self.now, &mut self.rng);
                            queue.extend(more);
                        }
                    }
                }
                Action::Send {
                    local,
                    remote,
                    bytes,
                } => {
                    if self.wire.len() < 256 {
                        self.wire.push_back(Datagram {
                            to: 1 - i,
                            local: remote,
                            remote: local,
                            bytes,
                        });
                    }
                }
                Action::Log(_) => {}
            }
        }
    }

    fn deliver(&mut self, d: &Datagram) {
        let side = &mut self.sides[d.to];
        let event = Event::Datagram {
            local: d.local,
            remote: d.remote,
            bytes: &d.bytes,
        };
        let actions = side.keyer.handle(event, self.now, &mut self.rng);
        self.settle(d.to, actions);
    }

    fn tick(&mut self, seconds: u64) {
        self.now += seconds;
        for i in 0..2 {
            let side = &mut self.sides[i];
            let mut actions = Vec::new();
            for d in side.engine.tick(self.now) {
                if d.to == CLIENT {
                    actions.extend(side.keyer.handle(
                        Event::PfKey(&d.bytes),
                        self.now,
                        &mut self.rng,
                    ));
                }
            }
            actions.extend(side.keyer.handle(Event::Tick, self.now, &mut self.rng));
            let _ = side.keyer.status(self.now);
            self.settle(i, actions);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut starts = Vec::new();
    let sides = [(A, 100u32), (B, 200u32)].map(|(rules, pid)| {
        let mut engine = Engine::new([pid as u8; 32]);
        engine.connect(CLIENT);
        let (keyer, actions) = Keyer::new(pid, policies(rules), 0, &mut rng);
        starts.push(actions);
        Side { keyer, engine, pid }
    });
    let mut world = World {
        sides,
        wire: VecDeque::new(),
        now: 0,
        rng,
    };
    for (i, actions) in starts.into_iter().enumerate() {
        world.settle(i, actions);
    }
    let mut rest = data;
    while let Some((&command, tail)) = rest.split_first() {
        rest = tail;
        let arg = |rest: &mut &[u8]| {
            let (&b, t) = rest.split_first().unwrap_or((&0, &[]));
            *rest = t;
            b
        };
        match command % 10 {
            0 => {
                if let Some(d) = world.wire.pop_front() {
                    world.deliver(&d);
                }
            }
            1 => {
                world.wire.pop_front();
            }
            2 => {
                if let Some(d) = world.wire.front() {
                    let d = Datagram {
                        bytes: d.bytes.clone(),
                        ..*d
                    };
                    world.deliver(&d);
                }
            }
            3 => {
                if let Some(d) = world.wire.pop_front() {
                    world.wire.push_back(d);
                }
            }
            4 => {
                let (at, bit) = (arg(&mut rest), arg(&mut rest));
                if let Some(mut d) = world.wire.pop_front() {
                    if !d.bytes.is_empty() {
                        let i = usize::from(at) % d.bytes.len();
                        d.bytes[i] ^= 1 << (bit % 8);
                    }
                    world.deliver(&d);
                }
            }
            5 => {
                let seconds = u64::from(arg(&mut rest) % 40);
                world.tick(seconds);
            }
            6 => {
                let len = usize::from(arg(&mut rest)).min(rest.len());
                let (bytes, tail) = rest.split_at(len);
                rest = tail;
                let to = usize::from(command / 8 % 2);
                let port = if command & 0x80 != 0 { 4500 } else { 500 };
                let d = Datagram {
                    to,
                    local: SocketAddr::new(["192.0.2.1", "192.0.2.2"][to].parse().unwrap(), port),
                    remote: SocketAddr::new(["192.0.2.2", "192.0.2.1"][to].parse().unwrap(), port),
                    bytes: bytes.to_vec(),
                };
                world.deliver(&d);
            }
            8 => {
                // The operator takes a rule down, or brings it up.
                let side = usize::from(command / 10 % 2);
                let now = world.now;
                let keyer = &mut world.sides[side].keyer;
                let number = usize::from(arg(&mut rest)) % 5 + 1;
                let down = keyer.status(now).get(number - 1).is_some_and(|r| r.down);
                let actions = if down {
                    keyer.up(number, now, &mut world.rng)
                } else {
                    keyer.down(number, now, &mut world.rng)
                };
                world.settle(side, actions.unwrap_or_default());
            }
            9 => {
                // The operator removes a rule.
                let side = usize::from(command / 10 % 2);
                let keyer = &mut world.sides[side].keyer;
                let count = keyer.policies().len().max(1);
                let name = keyer
                    .policies()
                    .get(usize::from(arg(&mut rest)) % count)
                    .map(|p| p.name.clone());
                if let Some(actions) = name.and_then(|n| keyer.remove_policy(&n, &mut world.rng)) {
                    world.settle(side, actions);
                }
            }
            _ => {
                let len = usize::from(arg(&mut rest)).min(rest.len());
                let (bytes, tail) = rest.split_at(len);
                rest = tail;
                let to = usize::from(command / 8 % 2);
                let now = world.now;
                let actions =
                    world.sides[to]
                        .keyer
                        .handle(Event::PfKey(bytes), now, &mut world.rng);
                world.settle(to, actions);
            }
        }
    }
    for i in 0..2 {
        let actions = world.sides[i].keyer.shutdown(&mut world.rng);
        world.settle(i, actions);
    }
});
