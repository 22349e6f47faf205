//! Manual SA checks: defaults for each SA type and key lengths, in
//! OpenBSD's order (the first failure is the one reported).

use crate::rule::{Key, SaType, Transforms};
use crate::xform::{Auth, Comp, Enc};

/// The part of an SA rule a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    Spi,
    Auth,
    Enc,
    Comp,
    AuthKey,
    EncKey,
    Rule,
}

/// A problem: OpenBSD's message and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub culprit: Culprit,
}

/// Fills in the default transforms and checks the keys; returns OpenBSD's
/// message for the first problem.
pub fn validate(
    satype: SaType,
    spi: u32,
    xfs: &mut Transforms,
    authkey: Option<&Key>,
    enckey: Option<&Key>,
) -> Result<(), Problem> {
    let fail = |message: String, culprit: Culprit| Err(Problem { message, culprit });
    if spi == 0 {
        return fail("no SPI specified".into(), Culprit::Spi);
    }
    match satype {
        SaType::Ah => {
            xfs.auth.get_or_insert(Auth::HmacSha2_256);
            if xfs.enc.is_some() {
                return fail("ah does not provide encryption".into(), Culprit::Enc);
            }
            if xfs.comp.is_some() {
                return fail("ah does not provide compression".into(), Culprit::Comp);
            }
        }
        SaType::Esp => {
            if xfs.comp.is_some() {
                return fail("esp does not provide compression".into(), Culprit::Comp);
            }
            let enc = *xfs.enc.get_or_insert(Enc::Aes);
            let info = enc.info();
            if info.nostatic {
                return fail(
                    format!("{} is disallowed with static keys", info.name),
                    Culprit::Enc,
                );
            }
            if info.noauth && xfs.auth.is_some() {
                return fail(
                    format!("authentication is implicit for {}", info.name),
                    Culprit::Auth,
                );
            }
            if !info.noauth {
                xfs.auth.get_or_insert(Auth::HmacSha2_256);
            }
        }
        SaType::Ipcomp => {
            if xfs.auth.is_some() || xfs.enc.is_some() {
                return fail(
                    "no encryption or authentication with ipcomp".into(),
                    Culprit::Rule,
                );
            }
            xfs.comp.get_or_insert(Comp::Deflate);
        }
        SaType::Ipip => {
            if xfs.auth.is_some() || xfs.enc.is_some() || xfs.comp.is_some() {
                return fail(
                    "no encryption, authentication or compression with ipip".into(),
                    Culprit::Rule,
                );
            }
        }
        // OpenBSD's "authentication key needed for tcpmd5" can never fire,
        // as tcpmd5 is always transport mode; any key length is accepted.
        SaType::Tcpmd5 => {}
    }
    if let Some(auth) = xfs.auth {
        let info = auth.info();
        match authkey {
            None if auth != Auth::None => {
                return fail("no authentication key specified".into(), Culprit::Rule);
            }
            Some(key) if key.len() != info.key_len => {
                return fail(
                    format!(
                        "wrong authentication key length, needs to be {} bits",
                        info.key_len * 8
                    ),
                    Culprit::AuthKey,
                );
            }
            _ => {}
        }
    }
    if let Some(enc) = xfs.enc {
        let info = enc.info();
        match enckey {
            None if enc != Enc::Null => {
                return fail("no encryption key specified".into(), Culprit::Rule);
            }
            Some(key) if key.len() < info.key_min => {
                return fail(
                    format!(
                        "encryption key too short ({} bits), minimum {} bits",
                        key.len() * 8,
                        info.key_min * 8
                    ),
                    Culprit::EncKey,
                );
            }
            Some(key) if key.len() > info.key_max => {
                return fail(
                    format!(
                        "encryption key too long ({} bits), maximum {} bits",
                        key.len() * 8,
                        info.key_max * 8
                    ),
                    Culprit::EncKey,
                );
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        satype: SaType,
        spi: u32,
        xfs: &mut Transforms,
        authkey: Option<&Key>,
        enckey: Option<&Key>,
    ) -> Result<(), String> {
        validate(satype, spi, xfs, authkey, enckey).map_err(|p| p.message)
    }

    fn key(n: usize) -> Key {
        Key::new(vec![0xaa; n])
    }

    #[test]
    fn esp_defaults_and_key_lengths() {
        let mut x = Transforms::default();
        assert_eq!(
            check(SaType::Esp, 0x1000, &mut x, Some(&key(32)), Some(&key(20))),
            Ok(())
        );
        assert_eq!((x.auth, x.enc), (Some(Auth::HmacSha2_256), Some(Enc::Aes)));
        let mut x = Transforms::default();
        assert_eq!(
            check(SaType::Esp, 0x1000, &mut x, Some(&key(20)), Some(&key(16))),
            Err("wrong authentication key length, needs to be 256 bits".into())
        );
        let mut x = Transforms::default();
        assert_eq!(
            check(SaType::Esp, 0x1000, &mut x, Some(&key(32)), Some(&key(8))),
            Err("encryption key too short (64 bits), minimum 128 bits".into())
        );
        let mut x = Transforms {
            enc: Some(Enc::Aes128Gcm),
            ..Transforms::default()
        };
        assert_eq!(
            check(SaType::Esp, 0x1000, &mut x, None, Some(&key(20))),
            Err("aes-128-gcm is disallowed with static keys".into())
        );
        let mut x = Transforms {
            enc: Some(Enc::Null),
            ..Transforms::default()
        };
        assert_eq!(
            check(SaType::Esp, 0x1000, &mut x, Some(&key(32)), None),
            Ok(())
        );
    }

    #[test]
    fn other_types() {
        let mut x = Transforms::default();
        assert_eq!(check(SaType::Ipcomp, 0x1000, &mut x, None, None), Ok(()));
        assert_eq!(x.comp, Some(Comp::Deflate));
        let mut x = Transforms {
            enc: Some(Enc::Aes),
            ..Transforms::default()
        };
        assert_eq!(
            check(SaType::Ah, 0x1000, &mut x, Some(&key(32)), None),
            Err("ah does not provide encryption".into())
        );
        assert_eq!(
            check(SaType::Tcpmd5, 0, &mut Transforms::default(), None, None),
            Err("no SPI specified".into())
        );
        assert_eq!(
            check(
                SaType::Tcpmd5,
                0x1000,
                &mut Transforms::default(),
                None,
                None
            ),
            Ok(())
        );
    }
}
