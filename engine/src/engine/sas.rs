//! SA messages: GETSPI, ADD, UPDATE, DELETE, GET, REGISTER, FLUSH, DUMP,
//! X_GRPSPIS, and the SAs the engine exports and expires.

use super::*;
use crate::crypto::facts;
use crate::sad::{SaId, State};
use crate::xform::Live;
use pfkey::{AuthAlg, CompAlg, EncAlg, Key, Lifetime, sa_flags};

/// The SA types the runtime keeps SAs of.
fn supported(t: SaType) -> bool {
    matches!(
        t,
        SaType::AH | SaType::ESP | SaType::X_IPCOMP | SaType::X_TCPSIGNATURE | SaType::X_IPIP
    )
}

fn key_len(k: &Option<Key>) -> usize {
    k.as_ref().map_or(0, |k| k.material().len())
}

/// The algorithm and key checks OpenBSD makes when it sets an SA up:
/// exact sizes for authentication keys, the cipher's range for
/// encryption keys.
fn check_algorithms(sa: &SecurityAssociation) -> Result<(), Errno> {
    let enc = EncAlg(sa.encrypt);
    let enc_len = key_len(&sa.enc_key);
    // Combined ciphers make their own ICV. OpenBSD's ipsecctl and isakmpd
    // still name it in the auth field (GMAC of the cipher's key size, or
    // Poly1305), with no key of its own.
    let own_icv = match sa.auth {
        AuthAlg::X_AES128GMAC => enc_len == 20,
        AuthAlg::X_AES192GMAC => enc_len == 28,
        AuthAlg::X_AES256GMAC => enc_len == 36,
        AuthAlg::X_CHACHA20POLY1305 => enc == EncAlg::X_CHACHA20POLY1305,
        _ => false,
    };
    // Unlike OpenBSD, GCM with 8- and 12-byte ICVs too (RFC 4106).
    let cipher = facts::cipher(enc);
    let combined = cipher.is_some_and(|c| c.icv > 0);
    let auth_len = match (sa.auth, facts::mac(sa.auth)) {
        (AuthAlg::NONE, _) => 0,
        (_, Some(mac)) => mac.key,
        _ if combined && own_icv => 0,
        _ => return Err(Errno::EINVAL),
    };
    let enc_ok = |len: usize| cipher.is_some_and(|c| c.keys.allows(len));
    let ok = match sa.id.satype {
        SaType::ESP => {
            key_len(&sa.auth_key) == auth_len
                && enc_ok(enc_len)
                && (sa.encrypt != EncAlg::NONE.0 || sa.auth != AuthAlg::NONE)
        }
        SaType::AH => {
            sa.auth != AuthAlg::NONE && key_len(&sa.auth_key) == auth_len && sa.enc_key.is_none()
        }
        SaType::X_IPCOMP => CompAlg(sa.encrypt) == CompAlg::DEFLATE,
        SaType::X_TCPSIGNATURE => sa.auth_key.is_some() || sa.encrypt == 0,
        _ => true,
    };
    if !ok {
        return Err(Errno::EINVAL);
    }
    // What OpenBSD accepts but this host cannot key (Blowfish, CAST,
    // RIPEMD-160) is refused now, not found out by the first packet.
    // The keyed state is made again on the SA's first use, so that SAs
    // that carry nothing cost no key schedules.
    match sa.state {
        State::Mature => Live::new(sa).map(drop).map_err(|_| Errno::EINVAL),
        State::Larval => Ok(()),
    }
}

/// An SA as an ADD or UPDATE describes it.
fn from_message(msg: &Message, now: u64) -> Result<SecurityAssociation, Errno> {
    let Some(Body::Sa(ext)) = msg.get(ExtType::SA) else {
        return Err(Errno::EINVAL);
    };
    let dst = ip(msg, ExtType::ADDRESS_DST).ok_or(Errno::EINVAL)?;
    let src = ip(msg, ExtType::ADDRESS_SRC).unwrap_or(match dst {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    let id = SaId {
        dst,
        spi: ext.spi,
        satype: msg.header.satype,
    };
    let mut sa = SecurityAssociation::new(id, src, now);
    sa.replay = ext.replay;
    sa.auth = ext.auth;
    sa.encrypt = ext.encrypt;
    sa.flags = ext.flags;
    let key = |t| match msg.get(t) {
        Some(Body::Key(k)) => Some(k.clone()),
        _ => None,
    };
    sa.auth_key = key(ExtType::KEY_AUTH);
    sa.enc_key = key(ExtType::KEY_ENCRYPT);
    let lifetime = |t| match msg.get(t) {
        Some(Body::Lifetime(l)) => Some(*l),
        _ => None,
    };
    sa.hard = lifetime(ExtType::LIFETIME_HARD);
    sa.soft = lifetime(ExtType::LIFETIME_SOFT);
    sa.src_id = identity(msg, ExtType::IDENTITY_SRC);
    sa.dst_id = identity(msg, ExtType::IDENTITY_DST);
    if let Some(Body::UdpEncap(u)) = msg.get(ExtType::X_UDPENCAP) {
        if id.satype != SaType::ESP {
            return Err(Errno::EINVAL);
        }
        sa.udpencap_port = Some(u.port);
    }
    if let Some(Body::Tag(t)) = msg.get(ExtType::X_TAG) {
        sa.tag = Some(t.name());
    }
    if let Some(Body::Tap { unit }) = msg.get(ExtType::X_TAP) {
        sa.tap = Some(*unit);
    }
    // Flow extensions come all together or not at all.
    let flow = [
        ExtType::X_SRC_FLOW,
        ExtType::X_DST_FLOW,
        ExtType::X_SRC_MASK,
        ExtType::X_DST_MASK,
        ExtType::X_FLOW_TYPE,
    ];
    let present = flow.iter().filter(|t| msg.get(**t).is_some()).count();
    if present != 0 && present != flow.len() {
        return Err(Errno::EINVAL);
    }
    if present != 0 {
        sa.flow = Some(super::flows::selector(msg)?.0);
    }
    Ok(sa)
}

/// The request without what may not go back: keys, counters, replay state.
fn reply_of(msg: &Message) -> Message {
    let mut reply = msg.clone();
    reply.extensions.retain(|e| {
        !matches!(
            e.ext_type,
            ExtType::KEY_AUTH
                | ExtType::KEY_ENCRYPT
                | ExtType::X_COUNTER
                | ExtType::X_REPLAY
                | ExtType::X_LIFETIME_LASTUSE
        )
    });
    reply
}

fn sa_id(msg: &Message, sa_ext: ExtType, dst_ext: ExtType, satype: SaType) -> Result<SaId, Errno> {
    let Some(Body::Sa(sa)) = msg.get(sa_ext) else {
        return Err(Errno::EINVAL);
    };
    let dst = ip(msg, dst_ext).ok_or(Errno::EINVAL)?;
    Ok(SaId {
        dst,
        spi: sa.spi,
        satype,
    })
}

impl Engine {
    pub(super) fn getspi(&mut self, msg: &Message, now: u64) -> Handled {
        let satype = msg.header.satype;
        if !supported(satype) {
            return Err(Errno::EOPNOTSUPP);
        }
        let src = ip(msg, ExtType::ADDRESS_SRC).ok_or(Errno::EINVAL)?;
        let dst = ip(msg, ExtType::ADDRESS_DST).ok_or(Errno::EINVAL)?;
        let Some(Body::SpiRange(range)) = msg.get(ExtType::SPIRANGE) else {
            return Err(Errno::EINVAL);
        };
        let range = (range.min, range.max);
        if self.sad.len() >= self.limits.sas || self.sad.larval() >= self.limits.larval {
            return Err(Errno::ENOBUFS);
        }
        let Engine { sad, random, .. } = self;
        let id = sad.reserve_spi(satype, src, dst, range, now, || random.next_u32())?;
        let mut reply = Message::new(msg.header);
        let sa = pfkey::Sa {
            spi: id.spi,
            state: pfkey::SaState::LARVAL,
            ..pfkey::Sa::default()
        };
        push(&mut reply, ExtType::SA, Body::Sa(sa));
        push(&mut reply, ExtType::ADDRESS_SRC, sockaddr(src));
        push(&mut reply, ExtType::ADDRESS_DST, sockaddr(dst));
        Ok(Outcome::Reply(reply, Mode::Broadcast))
    }

    pub(super) fn add(&mut self, msg: &Message, now: u64) -> Handled {
        if !supported(msg.header.satype) {
            return Err(Errno::EOPNOTSUPP);
        }
        let sa = from_message(msg, now)?;
        if self.sad.get(&sa.id).is_some() {
            return Err(Errno::EEXIST);
        }
        check_algorithms(&sa)?;
        if self.sad.len() >= self.limits.sas {
            return Err(Errno::ENOBUFS);
        }
        self.sad.add(sa, now)?;
        Ok(Outcome::Reply(reply_of(msg), Mode::Broadcast))
    }

    pub(super) fn update(&mut self, msg: &Message, now: u64) -> Handled {
        if !supported(msg.header.satype) {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut sa = from_message(msg, now)?;
        let existing = self.sad.get(&sa.id).ok_or(Errno::ESRCH)?;
        if existing.state == State::Larval {
            // A key manager names the identities from its own side.
            std::mem::swap(&mut sa.src_id, &mut sa.dst_id);
            check_algorithms(&sa)?;
        }
        self.sad.update(sa, now)?;
        Ok(Outcome::Reply(reply_of(msg), Mode::Broadcast))
    }

    pub(super) fn delete(&mut self, msg: &Message) -> Handled {
        let id = sa_id(msg, ExtType::SA, ExtType::ADDRESS_DST, msg.header.satype)?;
        self.sad.delete(&id).ok_or(Errno::ESRCH)?;
        Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
    }

    pub(super) fn get(&mut self, msg: &Message) -> Handled {
        let id = sa_id(msg, ExtType::SA, ExtType::ADDRESS_DST, msg.header.satype)?;
        let sa = self.sad.get(&id).ok_or(Errno::ESRCH)?;
        let mut reply = Message::new(msg.header);
        export(&mut reply, sa, self.sad.replay_count(&id), false);
        Ok(Outcome::Reply(reply, Mode::Broadcast))
    }

    pub(super) fn register(&mut self, from: ClientId, msg: &Message) -> Handled {
        let satype = msg.header.satype;
        if satype != SaType::UNSPEC && !supported(satype) {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(client) = self.clients.get_mut(&from) {
            client.registered |= 1 << satype.0;
        }
        let mut reply = Message::new(msg.header);
        let list = |algs: &[(u8, u8, u16, u16)]| {
            Body::Supported(pfkey::Supported {
                reserved: 0,
                algs: algs
                    .iter()
                    .map(|&(id, ivlen, minbits, maxbits)| pfkey::Alg {
                        id,
                        ivlen,
                        minbits,
                        maxbits,
                        reserved: 0,
                    })
                    .collect(),
            })
        };
        push(
            &mut reply,
            ExtType::SUPPORTED_AUTH,
            list(&[
                (AuthAlg::SHA1HMAC.0, 0, 160, 160),
                (AuthAlg::MD5HMAC.0, 0, 128, 128),
                (AuthAlg::X_RIPEMD160HMAC.0, 0, 160, 160),
                (AuthAlg::X_SHA2_256.0, 0, 256, 256),
                (AuthAlg::X_SHA2_384.0, 0, 384, 384),
                (AuthAlg::X_SHA2_512.0, 0, 512, 512),
            ]),
        );
        push(
            &mut reply,
            ExtType::SUPPORTED_ENCRYPT,
            list(&[
                (EncAlg::TRIPLE_DES_CBC.0, 64, 192, 192),
                (EncAlg::X_BLF.0, 64, 40, 448),
                (EncAlg::X_CAST.0, 64, 40, 128),
                (EncAlg::X_AES.0, 128, 128, 256),
                (EncAlg::X_AESCTR.0, 128, 160, 288),
            ]),
        );
        push(
            &mut reply,
            ExtType::X_SUPPORTED_COMP,
            list(&[(CompAlg::DEFLATE.0, 0, 0, 0)]),
        );
        Ok(Outcome::Reply(reply, Mode::Broadcast))
    }

    pub(super) fn flush(&mut self, msg: &Message) -> Handled {
        match msg.header.satype {
            SaType::UNSPEC => {
                self.sad.flush(None);
                self.spd.clear();
            }
            t if supported(t) => self.sad.flush(Some(t)),
            _ => return Err(Errno::EINVAL),
        }
        Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
    }

    /// Every SA of the message's type (or all), sorted by SPI, as dump
    /// records with their keys.
    pub(super) fn dump(&mut self, from: ClientId, msg: &Message) -> Handled {
        let satype = msg.header.satype;
        let mut sas: Vec<&SecurityAssociation> = self
            .sad
            .iter()
            .filter(|sa| satype == SaType::UNSPEC || sa.id.satype == satype)
            .collect();
        sas.sort_by_key(|sa| (sa.id.spi, sa.id.dst, sa.id.satype));
        let records = sas
            .into_iter()
            .map(|sa| {
                let mut record = Message::new(Header {
                    satype: sa.id.satype,
                    ..msg.header
                });
                export(&mut record, sa, self.sad.replay_count(&sa.id), true);
                record
            })
            .collect();
        self.records(from, msg, records)
    }

    pub(super) fn grpspis(&mut self, msg: &Message) -> Handled {
        let first = sa_id(msg, ExtType::SA, ExtType::ADDRESS_DST, msg.header.satype)?;
        let Some(Body::Protocol(satype2)) = msg.get(ExtType::X_SATYPE2) else {
            return Err(Errno::EINVAL);
        };
        let second = sa_id(msg, ExtType::X_SA2, ExtType::X_DST2, SaType(satype2.proto))?;
        self.sad.group(first, second)?;
        Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
    }

    pub(super) fn expire_message(&mut self, sa: &SecurityAssociation, expiry: Expiry) -> Message {
        let seq = self.next_seq();
        let mut msg = Message::new(Header::new(MsgType::EXPIRE, sa.id.satype, seq, 0));
        push(&mut msg, ExtType::SA, Body::Sa(sa_ext(sa)));
        push(
            &mut msg,
            ExtType::LIFETIME_CURRENT,
            Body::Lifetime(current(sa)),
        );
        let (t, limit) = match expiry {
            Expiry::Soft => (ExtType::LIFETIME_SOFT, sa.soft),
            _ => (ExtType::LIFETIME_HARD, sa.hard),
        };
        push(&mut msg, t, Body::Lifetime(limit.unwrap_or_default()));
        push(&mut msg, ExtType::ADDRESS_SRC, sockaddr(sa.src));
        push(&mut msg, ExtType::ADDRESS_DST, sockaddr(sa.id.dst));
        msg
    }
}

fn sa_ext(sa: &SecurityAssociation) -> pfkey::Sa {
    pfkey::Sa {
        spi: sa.id.spi,
        replay: sa.replay,
        state: match sa.state {
            State::Larval => pfkey::SaState::LARVAL,
            State::Mature => pfkey::SaState::MATURE,
        },
        auth: sa.auth,
        encrypt: sa.encrypt,
        flags: sa.flags
            | if sa.udpencap_port.is_some() {
                sa_flags::UDPENCAP
            } else {
                0
            },
    }
}

fn current(sa: &SecurityAssociation) -> Lifetime {
    Lifetime {
        allocations: 0,
        bytes: sa.usage.bytes,
        addtime: sa.usage.added,
        usetime: sa.usage.first_use.unwrap_or(0),
    }
}

/// Everything the engine knows of an SA, keys included, as GET and DUMP
/// return it. Bundle links go only in dumps.
fn export(msg: &mut Message, sa: &SecurityAssociation, replay: u64, links: bool) {
    push(msg, ExtType::SA, Body::Sa(sa_ext(sa)));
    push(msg, ExtType::LIFETIME_CURRENT, Body::Lifetime(current(sa)));
    if let Some(l) = sa.hard {
        push(msg, ExtType::LIFETIME_HARD, Body::Lifetime(l));
    }
    if let Some(l) = sa.soft {
        push(msg, ExtType::LIFETIME_SOFT, Body::Lifetime(l));
    }
    if let Some(last) = sa.usage.last_use {
        let l = Lifetime {
            usetime: last,
            ..Lifetime::default()
        };
        push(msg, ExtType::X_LIFETIME_LASTUSE, Body::Lifetime(l));
    }
    push(msg, ExtType::ADDRESS_SRC, sockaddr(sa.src));
    push(msg, ExtType::ADDRESS_DST, sockaddr(sa.id.dst));
    if let Some(id) = &sa.src_id {
        push(msg, ExtType::IDENTITY_SRC, Body::Identity(id.clone()));
    }
    if let Some(id) = &sa.dst_id {
        push(msg, ExtType::IDENTITY_DST, Body::Identity(id.clone()));
    }
    if let Some(k) = &sa.auth_key {
        push(msg, ExtType::KEY_AUTH, Body::Key(k.clone()));
    }
    if let Some(k) = &sa.enc_key {
        push(msg, ExtType::KEY_ENCRYPT, Body::Key(k.clone()));
    }
    if let Some(port) = sa.udpencap_port {
        push(
            msg,
            ExtType::X_UDPENCAP,
            Body::UdpEncap(pfkey::UdpEncap { port, reserved: 0 }),
        );
    }
    if let Some(tag) = &sa.tag {
        push(msg, ExtType::X_TAG, Body::Tag(pfkey::Tag::new(tag)));
    }
    if let Some(unit) = sa.tap {
        push(msg, ExtType::X_TAP, Body::Tap { unit });
    }
    if links && let Some(next) = sa.next {
        let sa2 = pfkey::Sa {
            spi: next.spi,
            state: pfkey::SaState::MATURE,
            ..pfkey::Sa::default()
        };
        push(msg, ExtType::X_SA2, Body::Sa(sa2));
        push(msg, ExtType::X_DST2, sockaddr(next.dst));
        let satype2 = pfkey::Protocol {
            proto: next.satype.0,
            ..pfkey::Protocol::default()
        };
        push(msg, ExtType::X_SATYPE2, Body::Protocol(satype2));
    }
    push(
        msg,
        ExtType::X_REPLAY,
        Body::Replay {
            reserved: 0,
            count: replay,
        },
    );
    let counter = pfkey::Counter {
        ipackets: sa.usage.packets_in,
        opackets: sa.usage.packets_out,
        ibytes: sa.usage.bytes_in,
        obytes: sa.usage.bytes_out,
        idrops: sa.usage.drops_in,
        odrops: sa.usage.drops_out,
        ..pfkey::Counter::default()
    };
    push(msg, ExtType::X_COUNTER, Body::Counter(Box::new(counter)));
}

#[cfg(test)]
mod algorithm_tests {
    use super::*;
    use crate::sad::SaId;

    fn esp(enc: EncAlg, enc_len: usize, auth: AuthAlg, auth_len: usize) -> SecurityAssociation {
        let id = SaId {
            dst: "192.0.2.2".parse().unwrap(),
            spi: 0x1000,
            satype: SaType::ESP,
        };
        let mut sa = SecurityAssociation::new(id, "192.0.2.1".parse().unwrap(), 0);
        sa.encrypt = enc.0;
        sa.enc_key = (enc_len > 0).then(|| pfkey::Key::new(&vec![7; enc_len]));
        sa.auth = auth;
        sa.auth_key = (auth_len > 0).then(|| pfkey::Key::new(&vec![9; auth_len]));
        sa
    }

    #[test]
    fn combined_ciphers_may_name_their_own_icv_as_the_auth_algorithm() {
        let ok = |sa: &SecurityAssociation| check_algorithms(sa).is_ok();
        // As OpenBSD's ipsecctl and isakmpd send them.
        assert!(ok(&esp(EncAlg::X_AESGCM16, 20, AuthAlg::X_AES128GMAC, 0)));
        assert!(ok(&esp(EncAlg::X_AESGCM16, 36, AuthAlg::X_AES256GMAC, 0)));
        assert!(ok(&esp(EncAlg::X_AESGMAC, 28, AuthAlg::X_AES192GMAC, 0)));
        assert!(ok(&esp(
            EncAlg::X_CHACHA20POLY1305,
            36,
            AuthAlg::X_CHACHA20POLY1305,
            0
        )));
        // Or nothing at all; and the shorter GCM ICVs.
        assert!(ok(&esp(EncAlg::X_AESGCM16, 20, AuthAlg::NONE, 0)));
        assert!(ok(&esp(EncAlg::X_AESGCM8, 20, AuthAlg::NONE, 0)));
        assert!(ok(&esp(EncAlg::X_AESGCM12, 28, AuthAlg::X_AES192GMAC, 0)));
        // A GMAC of another key size, a key for it, or GMAC without GCM.
        assert!(!ok(&esp(EncAlg::X_AESGCM16, 20, AuthAlg::X_AES256GMAC, 0)));
        assert!(!ok(&esp(EncAlg::X_AESGCM16, 20, AuthAlg::X_AES128GMAC, 20)));
        assert!(!ok(&esp(EncAlg::X_AES, 16, AuthAlg::X_AES128GMAC, 0)));
        assert!(!ok(&esp(
            EncAlg::X_AESGCM16,
            20,
            AuthAlg::X_CHACHA20POLY1305,
            0
        )));
    }

    #[test]
    fn algorithms_openbsd_knows_but_this_host_cannot_key_are_refused_at_add() {
        let ok = |sa: &SecurityAssociation| check_algorithms(sa).is_ok();
        assert!(ok(&esp(EncAlg::X_AES, 16, AuthAlg::X_SHA2_256, 32)));
        // Key lengths OpenBSD takes, for ciphers and a MAC not built here.
        assert!(!ok(&esp(EncAlg::X_BLF, 16, AuthAlg::X_SHA2_256, 32)));
        assert!(!ok(&esp(EncAlg::X_CAST, 16, AuthAlg::X_SHA2_256, 32)));
        assert!(!ok(&esp(EncAlg::X_AES, 16, AuthAlg::X_RIPEMD160HMAC, 20)));
        // A larval SA has no keys yet: its UPDATE is checked.
        let mut larval = esp(EncAlg::X_BLF, 16, AuthAlg::X_SHA2_256, 32);
        larval.state = State::Larval;
        assert!(ok(&larval));
    }
}
