//! `--sync -f file`: make the running tables what the file says, without
//! a gap. The plan compares the file's messages with the daemon's dumps:
//!
//! 1. An SA whose SPI the file gives to a different SA is deleted first:
//!    one SPI cannot name two SAs (the only change that opens a gap).
//! 2. New SAs are added, inbound first (those to this host's addresses).
//!    A flow goes on sending on the SA it uses while that SA lasts, so
//!    the new outbound SA waits, ready, and the peer has time to add the
//!    matching inbound one.
//! 3. New flows are added and changed ones replaced in place (ADDFLOW on
//!    an existing selector replaces it in one step); bundles are grouped.
//! 4. Flows no longer in the file are deleted.
//! 5. SAs no longer in the file are retired: given a hard lifetime, so
//!    that ipsecd removes them itself (with SADB_EXPIRE) even if this
//!    command is gone by then. An outbound SA ends `grace` seconds from
//!    now, and traffic moves to the new one; an inbound SA ends after
//!    twice that, so that what the peer sends on it is accepted until the
//!    peer, reloaded up to `grace` seconds later, has moved too. Two ends
//!    reloaded within `grace` seconds of each other lose nothing.
//!
//! The plan is pure: messages and time in, steps and the `+`/`-` lines
//! out. [`apply`] sends it.

use crate::client::{Answer, Client};
use crate::system::strerror;
use ipsec_compiler::Resolver;
use ipsec_compiler::print::{flow_line, sa_line};
use ipsec_compiler::raise;
use pfkey::validate::Errno;
use pfkey::{Body, ExtType, Extension, Lifetime, Message, MsgType, SaType};
use std::net::IpAddr;

/// One change, in the order it is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub message: Message,
    /// Answers that mean the change is already made.
    pub done_if: Option<Errno>,
}

/// What `--sync` will change.
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// `+ rule` and `- rule` lines, for `-n` and `-v`.
    pub lines: Vec<String>,
}

/// The extensions that make a flow's selector: two flows with the same
/// ones are one flow in the SPD.
const SELECTOR: [ExtType; 6] = [
    ExtType::X_FLOW_TYPE,
    ExtType::X_PROTOCOL,
    ExtType::X_SRC_FLOW,
    ExtType::X_SRC_MASK,
    ExtType::X_DST_FLOW,
    ExtType::X_DST_MASK,
];

fn selector(msg: &Message) -> Vec<Option<Body>> {
    SELECTOR
        .iter()
        .map(|&t| match (t, msg.get(t)) {
            // The direction is the selector's; the type is what it does.
            (ExtType::X_FLOW_TYPE, Some(Body::Protocol(p))) => {
                Some(Body::Protocol(pfkey::Protocol {
                    direction: p.direction,
                    ..pfkey::Protocol::default()
                }))
            }
            (ExtType::X_PROTOCOL, Some(Body::Protocol(p))) => {
                Some(Body::Protocol(pfkey::Protocol {
                    proto: p.proto,
                    ..pfkey::Protocol::default()
                }))
            }
            (ExtType::X_PROTOCOL, None) => Some(Body::Protocol(pfkey::Protocol::default())),
            (_, body) => body.cloned(),
        })
        .collect()
}

/// An SA's identity: its type, destination and SPI.
fn sa_id(msg: &Message) -> Option<(SaType, Option<IpAddr>, u32)> {
    let Some(Body::Sa(sa)) = msg.get(ExtType::SA) else {
        return None;
    };
    let dst = match msg.get(ExtType::ADDRESS_DST) {
        Some(Body::Address(a)) => a.addr.addr(),
        _ => None,
    };
    Some((msg.header.satype, dst, sa.spi))
}

fn lifetime(msg: &Message, t: ExtType) -> Lifetime {
    match msg.get(t) {
        Some(Body::Lifetime(l)) => *l,
        _ => Lifetime::default(),
    }
}

fn to_local(msg: &Message, local: &[IpAddr]) -> bool {
    sa_id(msg)
        .and_then(|(_, dst, _)| dst)
        .is_some_and(|d| local.contains(&d))
}

fn step(message: Message) -> Step {
    Step {
        message,
        done_if: None,
    }
}

/// `record` as a request of type `msg_type`, with only `keep`'s
/// extensions.
fn request_from(record: &Message, msg_type: MsgType, keep: &[ExtType]) -> Message {
    let mut msg = Message::new(pfkey::Header {
        msg_type,
        errno: 0,
        ..record.header
    });
    msg.extensions = record
        .extensions
        .iter()
        .filter(|e| keep.contains(&e.ext_type))
        .cloned()
        .collect();
    msg
}

/// UPDATE of a mature SA's hard and soft lifetimes.
fn relife(record: &Message, hard: Lifetime, soft: Lifetime) -> Message {
    let mut msg = request_from(
        record,
        MsgType::UPDATE,
        &[ExtType::SA, ExtType::ADDRESS_SRC, ExtType::ADDRESS_DST],
    );
    for (t, l) in [
        (ExtType::LIFETIME_HARD, hard),
        (ExtType::LIFETIME_SOFT, soft),
    ] {
        msg.extensions.push(Extension {
            ext_type: t,
            body: Body::Lifetime(l),
        });
    }
    msg
}

/// What is running, as the daemon and the host tell it.
#[derive(Debug)]
pub struct Live<'a> {
    /// The flow dump's records.
    pub flows: &'a [Message],
    /// The SA dump's records.
    pub sas: &'a [Message],
    /// This host's addresses.
    pub local: &'a [IpAddr],
    /// The time in the daemon's clock (seconds since 1970).
    pub now: u64,
}

/// The plan that takes the `live` tables to the file's `wanted` messages
/// (what `-f` would send); retired SAs stay `grace` seconds. Lines show
/// keys only with `keys`.
pub fn plan(
    wanted: &[Message],
    live: &Live<'_>,
    grace: u64,
    resolver: &dyn Resolver,
    keys: bool,
) -> Plan {
    let Live {
        flows,
        sas,
        local,
        now,
    } = *live;
    let mut plan = Plan::default();
    let flow_text = |m: &Message| raise::flow(m).map(|f| flow_line(&f, resolver));
    let sa_text = |m: &Message| raise::sa(m).map(|s| sa_line(&s, keys));
    let mut lines = Vec::new();
    let mut line = |sign: char, text: Option<String>| {
        if let Some(text) = text {
            lines.push(format!("{sign} {text}"));
        }
    };

    // SAs: kept, replaced (same SPI, another SA), added.
    let wanted_sas: Vec<&Message> = wanted
        .iter()
        .filter(|m| m.header.msg_type == MsgType::ADD)
        .collect();
    let mut deletes = Vec::new();
    let mut adds: Vec<&Message> = Vec::new();
    let mut relifes = Vec::new();
    for &want in &wanted_sas {
        let live = sas.iter().find(|r| sa_id(r) == sa_id(want));
        match live {
            Some(record) if raise::sa(record) == raise::sa(want) => {
                // The same SA; it may have been retired by an earlier sync,
                // or carry other lifetimes than the file's.
                let (hard, soft) = (
                    lifetime(want, ExtType::LIFETIME_HARD),
                    lifetime(want, ExtType::LIFETIME_SOFT),
                );
                if lifetime(record, ExtType::LIFETIME_HARD) != hard
                    || lifetime(record, ExtType::LIFETIME_SOFT) != soft
                {
                    relifes.push(step(relife(record, hard, soft)));
                }
            }
            Some(record) => {
                line('-', sa_text(record));
                deletes.push(step(request_from(
                    record,
                    MsgType::DELETE,
                    &[ExtType::SA, ExtType::ADDRESS_SRC, ExtType::ADDRESS_DST],
                )));
                adds.push(want);
            }
            None => adds.push(want),
        }
    }
    // Inbound first: the peer may switch before this host does.
    adds.sort_by_key(|m| !to_local(m, local));
    plan.steps.extend(deletes);
    for add in adds {
        line('+', sa_text(add));
        plan.steps.push(step(add.clone()));
    }
    plan.steps.extend(relifes);

    // Flows: added or replaced in place, then bundles.
    for want in wanted
        .iter()
        .filter(|m| m.header.msg_type == MsgType::X_ADDFLOW)
    {
        let live = flows.iter().find(|r| selector(r) == selector(want));
        match live {
            Some(record) if raise::flow(record) == raise::flow(want) => continue,
            Some(record) => line('-', flow_text(record)),
            None => {}
        }
        line('+', flow_text(want));
        plan.steps.push(step(want.clone()));
    }
    for group in wanted
        .iter()
        .filter(|m| m.header.msg_type == MsgType::X_GRPSPIS)
    {
        plan.steps.push(Step {
            message: group.clone(),
            done_if: Some(Errno::EEXIST),
        });
    }

    // What the file no longer has: flows now, SAs after the grace period.
    let wanted_flows: Vec<Vec<Option<Body>>> = wanted
        .iter()
        .filter(|m| m.header.msg_type == MsgType::X_ADDFLOW)
        .map(selector)
        .collect();
    for record in flows {
        if !wanted_flows.contains(&selector(record)) {
            line('-', flow_text(record));
            plan.steps.push(Step {
                // A flow is named by its selector alone.
                message: request_from(record, MsgType::X_DELFLOW, &SELECTOR),
                done_if: Some(Errno::ESRCH),
            });
        }
    }
    let wanted_ids: Vec<_> = wanted_sas.iter().map(|m| sa_id(m)).collect();
    for record in sas {
        if wanted_ids.contains(&sa_id(record)) {
            continue;
        }
        let added = lifetime(record, ExtType::LIFETIME_CURRENT).addtime;
        let mut hard = lifetime(record, ExtType::LIFETIME_HARD);
        let stay = if to_local(record, local) {
            2 * grace
        } else {
            grace
        };
        let ends = now.saturating_sub(added).saturating_add(stay).max(1);
        if hard.addtime != 0 && hard.addtime <= ends {
            // Going sooner already (a grace an earlier sync gave it).
            continue;
        }
        line('-', sa_text(record));
        hard.addtime = ends;
        let soft = lifetime(record, ExtType::LIFETIME_SOFT);
        plan.steps.push(Step {
            message: relife(record, hard, soft),
            done_if: Some(Errno::ESRCH),
        });
    }
    plan.lines = lines;
    plan
}

/// Sends the plan's steps in order, each as its own request; the first
/// failure stops it and says which.
pub fn apply(client: &mut Client, plan: &Plan) -> Result<(), String> {
    for (n, s) in plan.steps.iter().enumerate() {
        let mut msg = s.message.clone();
        msg.header.seq = client.next_seq();
        msg.header.pid = client.pid();
        match client.request(&msg) {
            Ok(Answer::Done(_)) => {}
            Ok(Answer::Refused(e)) if Some(e) == s.done_if => {}
            Ok(Answer::Refused(e)) => {
                return Err(format!(
                    "step {} of {} ({}): {}",
                    n + 1,
                    plan.steps.len(),
                    msg.header.msg_type.name().unwrap_or("?"),
                    e.description()
                ));
            }
            Err(e) => return Err(strerror(&e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsec_compiler::Fixed;
    use ipsec_compiler::lower::Action;
    use ipsec_engine::engine::Engine;

    const PID: u32 = 77;
    const ME: u64 = 1;
    const K1: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
    const E1: &str = "0x33333333333333333333333333333333";
    const E2: &str = "0x44444444444444444444444444444444";

    fn conf(spis: &str, keys: (&str, &str), flows: &[&str]) -> String {
        let mut text = String::new();
        for f in flows {
            text.push_str(&format!(
                "flow esp from 10.1.0.0/24 to {f} peer 192.0.2.2\n"
            ));
        }
        text.push_str(&format!(
            "esp tunnel from 192.0.2.1 to 192.0.2.2 spi {spis} auth hmac-sha2-256 enc aes \
             authkey {}:{} enckey {}:{}\n",
            keys.0, keys.1, E1, E2
        ));
        text
    }

    /// What `-f` would send for `text`.
    fn wanted(text: &str) -> Vec<Message> {
        ipsec_compiler::load_messages(text, &Fixed::standard(), Action::Add, PID).unwrap()
    }

    fn dump(engine: &mut Engine, msg_type: MsgType) -> Vec<Message> {
        let msg = Message::new(pfkey::Header::new(msg_type, SaType::UNSPEC, 1, PID));
        engine
            .handle(ME, PID, &msg.encode(), 0)
            .into_iter()
            .filter(|s| s.to == ME)
            .map(|s| Message::decode(&s.bytes).unwrap())
            .filter(|m| m.header.errno == 0)
            .collect()
    }

    /// Plans the way to `text` at time `now` and carries it out in
    /// `engine`, as `apply` would; returns the plan's lines.
    fn sync(engine: &mut Engine, text: &str, now: u64) -> Vec<String> {
        let (flows, sas) = (
            dump(engine, MsgType::X_SPDDUMP),
            dump(engine, MsgType::DUMP),
        );
        let local: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        let live = Live {
            flows: &flows,
            sas: &sas,
            local: &local,
            now,
        };
        let plan = plan(&wanted(text), &live, 5, &Fixed::standard(), false);
        for s in &plan.steps {
            let mut msg = s.message.clone();
            msg.header.pid = PID;
            let reply = engine.handle(ME, PID, &msg.encode(), now);
            let errno = reply.iter().find(|r| r.to == ME).map_or(0, |r| r.bytes[2]);
            assert!(
                errno == 0 || s.done_if.is_some_and(|e| e.0 == errno),
                "{:?} refused with {errno}",
                msg.header.msg_type
            );
        }
        engine.tick(now);
        plan.lines
    }

    fn spis(engine: &mut Engine) -> Vec<u32> {
        let mut spis: Vec<u32> = dump(engine, MsgType::DUMP)
            .iter()
            .filter_map(|m| sa_id(m).map(|(_, _, spi)| spi))
            .collect();
        spis.sort();
        spis
    }

    fn engine() -> Engine {
        let mut e = Engine::new([3; 32]);
        e.connect(ME);
        e
    }

    #[test]
    fn a_new_generation_comes_in_and_the_old_goes_after_the_grace() {
        let mut e = engine();
        let first = conf("0x100:0x101", (K1, K2), &["10.2.0.0/24", "10.3.0.0/24"]);
        let second = conf("0x200:0x201", (K2, K1), &["10.2.0.0/24", "10.4.0.0/24"]);
        sync(&mut e, &first, 1000);
        assert_eq!(spis(&mut e), [0x100, 0x101]);
        assert!(sync(&mut e, &first, 1001).is_empty(), "nothing to do");

        let lines = sync(&mut e, &second, 1002);
        // The new SAs first, inbound (to this host) before outbound.
        assert!(lines[0].starts_with("+ esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00000201"));
        assert!(lines[1].starts_with("+ esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00000200"));
        assert!(
            lines.contains(
                &"- flow esp out from 10.1.0.0/24 to 10.3.0.0/24 peer 192.0.2.2 type require"
                    .to_string()
            )
        );
        assert!(
            lines.contains(
                &"+ flow esp out from 10.1.0.0/24 to 10.4.0.0/24 peer 192.0.2.2 type require"
                    .to_string()
            )
        );
        assert!(lines.last().unwrap().starts_with("- esp tunnel"));
        // Both generations during the grace.
        assert_eq!(spis(&mut e), [0x100, 0x101, 0x200, 0x201]);
        assert!(sync(&mut e, &second, 1003).is_empty(), "retiring already");
        e.tick(1006);
        assert_eq!(spis(&mut e), [0x100, 0x101, 0x200, 0x201]);
        // Outbound goes after the grace, inbound after twice as long.
        e.tick(1007);
        assert_eq!(spis(&mut e), [0x101, 0x200, 0x201]);
        e.tick(1011);
        assert_eq!(spis(&mut e), [0x101, 0x200, 0x201]);
        e.tick(1012);
        assert_eq!(spis(&mut e), [0x200, 0x201]);
        let flows = dump(&mut e, MsgType::X_SPDDUMP);
        assert_eq!(flows.len(), 4);
        assert!(sync(&mut e, &second, 1008).is_empty());
    }

    #[test]
    fn a_retired_sa_brought_back_stays() {
        let mut e = engine();
        let first = conf("0x100:0x101", (K1, K2), &["10.2.0.0/24"]);
        let second = conf("0x200:0x201", (K1, K2), &["10.2.0.0/24"]);
        sync(&mut e, &first, 1000);
        sync(&mut e, &second, 1000);
        // Back within the grace: the old SAs lose their end.
        let lines = sync(&mut e, &first, 1002);
        assert!(
            lines.iter().all(|l| !l.contains("spi 0x00000100")),
            "{lines:?}"
        );
        e.tick(1100);
        assert_eq!(spis(&mut e), [0x100, 0x101]);
    }

    #[test]
    fn an_spi_given_to_another_sa_is_replaced() {
        let mut e = engine();
        sync(
            &mut e,
            &conf("0x100:0x101", (K1, K2), &["10.2.0.0/24"]),
            1000,
        );
        let lines = sync(
            &mut e,
            &conf("0x100:0x101", (K2, K1), &["10.2.0.0/24"]),
            1001,
        );
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("- esp") && lines[2].starts_with("+ esp"));
        assert_eq!(spis(&mut e), [0x100, 0x101]);
        // The SA now holds the file's new key.
        let out = dump(&mut e, MsgType::DUMP)
            .iter()
            .filter_map(raise::sa)
            .find(|sa| sa.spi == 0x100)
            .unwrap();
        assert_eq!(out.authkey.unwrap().hex(), K2);
    }
}
