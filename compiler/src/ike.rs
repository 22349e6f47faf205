//! `ike` rules as isakmpd configuration commands (the lines ipsecctl
//! writes to isakmpd's FIFO), in isakmpd's own section vocabulary.

use crate::addr::Address;
use crate::rule::{ExchangeMode, IdType, Identity, Ike, IkeAuth, IkeMode, Mode, SaType};
use crate::xform::{Enc, Group};
use zeroize::Zeroizing;

/// The section names one rule uses.
struct Names {
    p1: String,
    p2: String,
    local_id: String,
    remote_id: String,
    nat_id: Option<String>,
}

fn names(r: &Ike) -> Names {
    let p1 = match (&r.peer, &r.local) {
        (Some(peer), Some(local)) => format!("peer-{}-local-{}", peer.name, local.name),
        (Some(peer), None) => format!("peer-{}", peer.name),
        (None, _) => "peer-default".to_owned(),
    };
    let proto = if r.proto != 0 {
        format!("={}", r.proto)
    } else {
        String::new()
    };
    let port = |p: u16| {
        if p != 0 {
            format!(":{p}")
        } else {
            String::new()
        }
    };
    let (local_id, remote_id) = match r.iface {
        Some(unit) => (format!("from-sec{unit}"), format!("to-sec{unit}")),
        None => (
            format!("from-{}{proto}{}", r.src.name, port(r.sport)),
            format!("to-{}{proto}{}", r.dst.name, port(r.dport)),
        ),
    };
    let nat_id = r
        .src
        .nat
        .as_ref()
        .map(|nat| format!("nat-{}{proto}{}", nat.name, port(r.sport)));
    Names {
        p2: format!("{local_id}-{remote_id}"),
        p1,
        local_id,
        remote_id,
        nat_id,
    }
}

/// Whether a script carries the pre-shared key itself or a marker in its
/// place: isakmpd needs it, a reader needs `-k` to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    Show,
    Hide,
}

/// What stands for a hidden pre-shared key in printed scripts.
pub const HIDDEN_PSK: &str = "(hidden; -k shows it)";

/// A script under construction; each line ends with a newline. It may hold
/// a pre-shared key, so it is wiped when dropped.
struct Script {
    text: Zeroizing<String>,
    secret: Secret,
}

impl Script {
    fn set(&mut self, section: &str, tag: &str, value: impl std::fmt::Display) {
        self.push(&[
            "C set [",
            section,
            "]:",
            tag,
            "=",
            &value.to_string(),
            " force\n",
        ]);
    }

    /// Appends a line made of `parts`. The text grows into a new buffer
    /// and the old one is wiped, so no copy of a key is left behind.
    fn push(&mut self, parts: &[&str]) {
        let extra: usize = parts.iter().map(|p| p.len()).sum();
        if self.text.capacity() - self.text.len() < extra {
            let wanted = (self.text.len() + extra).max(2 * self.text.capacity());
            let mut grown = Zeroizing::new(String::with_capacity(wanted));
            grown.push_str(&self.text);
            self.text = grown;
        }
        for part in parts {
            self.text.push_str(part);
        }
    }
}

/// A script that may hold a pre-shared key.
pub type ScriptText = Zeroizing<String>;

/// The add script. On failure, the lines written so far and OpenBSD's
/// message for the transform or type isakmpd cannot express.
pub fn add_script(
    r: &Ike,
    host_name: &str,
    secret: Secret,
) -> Result<ScriptText, (ScriptText, String)> {
    let n = names(r);
    let mut s = Script {
        text: Zeroizing::new(String::new()),
        secret,
    };
    match generate(r, &n, host_name, &mut s) {
        Ok(()) => Ok(s.text),
        Err(message) => Err((s.text, message)),
    }
}

fn generate(r: &Ike, n: &Names, host_name: &str, s: &mut Script) -> Result<(), String> {
    if r.mode == IkeMode::Dynamic {
        s.set("General", "Check-interval", 30);
        s.set("General", "DPD-check-interval", 5);
    }
    peer_section(r, n, s);
    phase1(r, n, s)?;
    identities(r, n, host_name, s);
    connection(r, n, s);
    phase2(r, n, s)?;
    phase2_ids(r, n, s);
    let connections = if r.mode == IkeMode::Passive {
        "Passive-Connections"
    } else {
        "Connections"
    };
    s.push(&["C add [Phase 2]:", connections, "=", &n.p2, "\n"]);
    Ok(())
}

fn peer_section(r: &Ike, n: &Names, s: &mut Script) {
    match &r.peer {
        Some(peer) => s.set("Phase 1", &peer.name, &n.p1),
        None => s.set("Phase 1", "Default", &n.p1),
    }
    s.set(&n.p1, "Phase", 1);
    if let Some(peer) = &r.peer {
        s.set(&n.p1, "Address", &peer.name);
    }
    if let Some(local) = &r.local {
        s.set(&n.p1, "Local-address", &local.name);
    }
    if let IkeAuth::Psk(psk) = &r.auth {
        let shown = match s.secret {
            Secret::Show => psk.as_str(),
            Secret::Hide => HIDDEN_PSK,
        };
        s.set(&n.p1, "Authentication", shown);
    }
}

/// The part of a key length text before its first comma, for names.
fn short_length(kl: Option<&str>) -> &str {
    kl.map_or("", |kl| kl.split(',').next().unwrap_or(kl))
}

fn group_name(group: Option<Group>, default: &'static str) -> Result<Option<&'static str>, String> {
    match group {
        None => Ok(Some(default)),
        Some(Group::None) => Ok(None),
        Some(g) => match g.info().ike {
            Some(name) => Ok(Some(name)),
            None => Err(format!("illegal group {}", g.info().name)),
        },
    }
}

fn life(s: &mut Script, transform: &str, lifetime: Option<i64>, default: &str) {
    match lifetime {
        Some(seconds) => {
            let section = format!("{transform}-life");
            s.set(transform, "Life", &section);
            s.set(&section, "LIFE_TYPE", "SECONDS");
            s.set(&section, "LIFE_DURATION", seconds);
        }
        None => s.set(transform, "Life", default),
    }
}

fn phase1(r: &Ike, n: &Names, s: &mut Script) -> Result<(), String> {
    let exchange = if r.phase1.exchange == ExchangeMode::Aggressive {
        "AGGRESSIVE"
    } else {
        "ID_PROT"
    };
    s.set(&n.p1, "Configuration", format!("phase1-{}", n.p1));
    s.set(&format!("phase1-{}", n.p1), "EXCHANGE_TYPE", exchange);

    let xfs = &r.phase1.transforms;
    let (enc, key_length) = match xfs.enc {
        None => ("AES", Some("128,128:256")),
        Some(e) => match e.info().phase1 {
            Some(c) => (c.name, c.key_length),
            None => return Err(format!("illegal transform {}", e.info().name)),
        },
    };
    let hash = match xfs.auth {
        None => "SHA",
        Some(a) => a
            .info()
            .phase1
            .ok_or_else(|| format!("illegal transform {}", a.info().name))?,
    };
    let group = match group_name(xfs.group, "MODP_3072")? {
        Some(g) => g,
        None => return Err("illegal group none".into()),
    };
    let method = match r.auth {
        IkeAuth::Psk(_) => "PRE_SHARED",
        IkeAuth::Rsa => "RSA_SIG",
    };
    let transform = format!(
        "phase1-transform-{}-{method}-{hash}-{enc}{}-{group}",
        n.p1,
        short_length(key_length)
    );
    s.push(&[
        "C add [phase1-",
        &n.p1,
        "]:Transforms=",
        &transform,
        " force\n",
    ]);
    s.set(&transform, "AUTHENTICATION_METHOD", method);
    s.set(&transform, "HASH_ALGORITHM", hash);
    s.set(&transform, "ENCRYPTION_ALGORITHM", format!("{enc}_CBC"));
    if let Some(kl) = key_length {
        s.set(&transform, "KEY_LENGTH", kl);
    }
    s.set(&transform, "GROUP_DESCRIPTION", group);
    life(s, &transform, r.phase1.lifetime, "LIFE_MAIN_MODE");
    Ok(())
}

fn identity(s: &mut Script, p1: &str, tag: &str, id: &Identity) {
    let section = format!("id-{}", id.id);
    s.set(p1, tag, &section);
    s.set(&section, "ID-type", id.kind.isakmpd_name());
    match id.kind {
        IdType::Ipv4 | IdType::Ipv6 => s.set(&section, "Address", &id.id),
        IdType::Fqdn | IdType::UserFqdn => s.set(&section, "Name", &id.id),
    }
}

fn identities(r: &Ike, n: &Names, host_name: &str, s: &mut Script) {
    let srcid = match (&r.srcid, r.mode) {
        (None, IkeMode::Dynamic) => Some(Identity {
            id: host_name.to_owned(),
            kind: IdType::Fqdn,
        }),
        (id, _) => id.clone(),
    };
    if let Some(id) = &srcid {
        identity(s, &n.p1, "ID", id);
    }
    if let Some(id) = &r.dstid {
        identity(s, &n.p1, "Remote-ID", id);
    }
}

fn connection(r: &Ike, n: &Names, s: &mut Script) {
    s.set(&n.p2, "Phase", 2);
    s.set(&n.p2, "ISAKMP-peer", &n.p1);
    s.set(&n.p2, "Configuration", format!("phase2-{}", n.p2));
    s.set(&n.p2, "Local-ID", &n.local_id);
    if let Some(nat) = &n.nat_id {
        s.set(&n.p2, "NAT-ID", nat);
    }
    s.set(&n.p2, "Remote-ID", &n.remote_id);
    if let Some(tag) = &r.tag {
        s.set(&n.p2, "PF-Tag", tag);
    }
    if let Some(unit) = r.iface {
        s.set(&n.p2, "Interface", unit);
    }
}

fn phase2(r: &Ike, n: &Names, s: &mut Script) -> Result<(), String> {
    let protocol = match r.satype {
        SaType::Esp => "IPSEC_ESP",
        SaType::Ah => "IPSEC_AH",
        other => return Err(format!("illegal satype {}", satype_number(other))),
    };
    let mode = if r.tmode == Mode::Transport {
        "TRANSPORT"
    } else {
        "TUNNEL"
    };
    let phase2 = format!("phase2-{}", n.p2);
    let suite = format!("phase2-suite-{}", n.p2);
    let protocol_section = format!("phase2-protocol-{}", n.p2);
    s.set(&phase2, "EXCHANGE_TYPE", "QUICK_MODE");
    s.set(&phase2, "Suites", &suite);
    s.set(&suite, "Protocols", &protocol_section);
    s.set(&protocol_section, "PROTOCOL_ID", protocol);

    let xfs = &r.phase2.transforms;
    let mut needs_auth = true;
    let (enc, key_length) = match xfs.enc {
        Some(e) if r.satype == SaType::Esp => {
            let info = e.info();
            let cipher = info
                .phase2
                .ok_or_else(|| format!("illegal transform {}", info.name))?;
            if info.noauth || e == Enc::Null {
                needs_auth = false;
            }
            (Some(cipher.name), cipher.key_length)
        }
        Some(e) => return Err(format!("illegal transform {}", e.info().name)),
        None if r.satype == SaType::Esp => (Some("AES"), Some("128,128:256")),
        None => (None, None),
    };
    let auth = match xfs.auth {
        Some(a) => Some(
            a.info()
                .phase2
                .ok_or_else(|| format!("illegal transform {}", a.info().name))?,
        ),
        None if needs_auth => Some("SHA2_256"),
        None => None,
    };
    let group = group_name(xfs.group, "MODP_3072")?;
    let transform = format!(
        "phase2-transform-{}-{}{}-{}-{}-{mode}",
        n.p2,
        enc.unwrap_or("NONE"),
        short_length(key_length),
        auth.unwrap_or("NONE"),
        group.unwrap_or("NONE")
    );
    s.set(&protocol_section, "Transforms", &transform);
    let id = if r.satype == SaType::Esp { enc } else { auth };
    s.set(&transform, "TRANSFORM_ID", id.unwrap_or("NONE"));
    if let Some(kl) = key_length {
        s.set(&transform, "KEY_LENGTH", kl);
    }
    s.set(&transform, "ENCAPSULATION_MODE", mode);
    if let Some(a) = auth {
        s.set(&transform, "AUTHENTICATION_ALGORITHM", format!("HMAC_{a}"));
    }
    if let Some(g) = group {
        s.set(&transform, "GROUP_DESCRIPTION", g);
    }
    life(s, &transform, r.phase2.lifetime, "LIFE_QUICK_MODE");
    Ok(())
}

fn satype_number(t: SaType) -> u8 {
    match t {
        SaType::Esp => 1,
        SaType::Ah => 2,
        SaType::Ipcomp => 3,
        SaType::Tcpmd5 => 4,
        SaType::Ipip => 5,
    }
}

/// One phase 2 ID: a subnet for networks, an address for hosts. `v6`
/// comes from the rule's source, as in OpenBSD.
fn phase2_id(s: &mut Script, section: &str, a: &Address, v6: bool) {
    let family = if v6 { 6 } else { 4 };
    let name = a.name.rsplit_once('/').map_or(a.name.as_str(), |(n, _)| n);
    if a.network {
        s.set(section, "ID-type", format!("IPV{family}_ADDR_SUBNET"));
        s.set(section, "Network", name);
        s.set(section, "Netmask", a.netmask());
    } else {
        s.set(section, "ID-type", format!("IPV{family}_ADDR"));
        s.set(section, "Address", name);
    }
}

fn phase2_ids(r: &Ike, n: &Names, s: &mut Script) {
    phase2_id(s, &n.local_id, &r.src, r.src.is_v6());
    if let (Some(nat), Some(nat_id)) = (&r.src.nat, &n.nat_id) {
        phase2_id(s, nat_id, nat, r.src.is_v6());
    }
    phase2_id(s, &n.remote_id, &r.dst, r.dst.is_v6());
    if r.proto != 0 {
        s.set(&n.local_id, "Protocol", r.proto);
        s.set(&n.remote_id, "Protocol", r.proto);
    }
    if r.sport != 0 {
        s.set(&n.local_id, "Port", r.sport);
    }
    if r.dport != 0 {
        s.set(&n.remote_id, "Port", r.dport);
    }
}

/// The delete script (`-d`): the phase 2 connection goes; phase 1 stays.
pub fn delete_script(r: &Ike) -> ScriptText {
    let n = names(r);
    let connections = if r.mode == IkeMode::Passive {
        "Passive-Connections"
    } else {
        "Connections"
    };
    Zeroizing::new(format!(
        "t {p2}\nC rmv [Phase 2]:{connections}={p2}\nC rms [{p2}]\nC rms [phase2-{p2}]\n",
        p2 = n.p2
    ))
}
