//! The Encrypted payload (RFC 7296 §3.14): how an IKE SA's messages
//! after IKE_SA_INIT are sealed and opened. AES-CBC with an HMAC-SHA
//! integrity check over the whole message, or an AEAD (AES-GCM with a
//! 16-byte tag, RFC 5282; ChaCha20-Poly1305, RFC 7634) whose nonce is the
//! key's 4-byte salt and the payload's 8-byte IV, and whose additional
//! data is everything before the IV.

use super::keys::KeyLengths;
use crate::wire::codec::EncodeError;
use crate::wire::{
    Body, DecodeError, EncrId, HEADER_LEN, Header, IntegId, Message, Payload, PayloadType,
    decode_chain, encode_chain,
};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A cipher for the Encrypted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-CBC with a key of 16, 24 or 32 bytes.
    AesCbc(usize),
    /// AES-GCM with a 16-byte tag and a key of 16, 24 or 32 bytes.
    AesGcm16(usize),
    ChaCha20Poly1305,
}

/// An integrity algorithm, for a cipher that has none of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

/// How an IKE SA protects its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protection {
    pub cipher: Cipher,
    /// `None` exactly when the cipher is an AEAD.
    pub integ: Option<Integ>,
}

/// Why a protected message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not a message, or its plaintext is not a chain of payloads.
    Malformed(DecodeError),
    /// The message has no Encrypted payload at its end.
    NotEncrypted,
    /// Too short for an IV and a check value, or not whole blocks.
    Length,
    /// The check value or the tag does not match: forged, or damaged.
    Integrity,
    /// The pad length points outside the plaintext.
    Padding,
}

/// The salt an AEAD's key carries after the cipher key.
const SALT: usize = 4;
/// The IV an AEAD's Encrypted payload carries.
const AEAD_IV: usize = 8;
const AEAD_TAG: usize = 16;
const AES_BLOCK: usize = 16;

impl Integ {
    /// The algorithm a transform names, if this daemon has it.
    pub fn of(id: IntegId) -> Option<Integ> {
        Some(match id {
            IntegId::HMAC_SHA1_96 => Integ::HmacSha1_96,
            IntegId::HMAC_SHA2_256_128 => Integ::HmacSha256_128,
            IntegId::HMAC_SHA2_384_192 => Integ::HmacSha384_192,
            IntegId::HMAC_SHA2_512_256 => Integ::HmacSha512_256,
            _ => return None,
        })
    }

    /// The key length: the hash's output (RFC 4868).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// The check value's length: the truncated MAC.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }

    /// The check value of `data` under `key`.
    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8], len: usize) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any length");
            mac.update(data);
            mac.finalize().into_bytes()[..len].to_vec()
        }
        let len = self.icv_len();
        match self {
            Integ::HmacSha1_96 => run::<Hmac<sha1::Sha1>>(key, data, len),
            Integ::HmacSha256_128 => run::<Hmac<sha2::Sha256>>(key, data, len),
            Integ::HmacSha384_192 => run::<Hmac<sha2::Sha384>>(key, data, len),
            Integ::HmacSha512_256 => run::<Hmac<sha2::Sha512>>(key, data, len),
        }
    }
}

impl Protection {
    /// The protection a proposal's ENCR (with its key length) and INTEG
    /// transforms name, if this daemon has it and the pair makes sense:
    /// an AEAD with no integrity algorithm, any other cipher with one.
    pub fn of(encr: EncrId, key_bits: Option<u16>, integ: IntegId) -> Option<Protection> {
        let key = |allowed: &[u16]| {
            key_bits
                .filter(|b| allowed.contains(b))
                .map(|b| usize::from(b) / 8)
        };
        let cipher = match encr {
            EncrId::AES_CBC => Cipher::AesCbc(key(&[128, 192, 256])?),
            EncrId::AES_GCM_16 => Cipher::AesGcm16(key(&[128, 192, 256])?),
            EncrId::CHACHA20_POLY1305 if key_bits.is_none() => Cipher::ChaCha20Poly1305,
            _ => return None,
        };
        let aead = !matches!(cipher, Cipher::AesCbc(_));
        let integ = match (aead, integ) {
            (true, IntegId::NONE) => None,
            (false, id) => Some(Integ::of(id)?),
            (true, _) => return None,
        };
        Some(Protection { cipher, integ })
    }

    /// The lengths of SK_a and SK_e (an AEAD's with its salt).
    pub fn key_lengths(&self) -> KeyLengths {
        let encr = match self.cipher {
            Cipher::AesCbc(k) => k,
            Cipher::AesGcm16(k) => k + SALT,
            Cipher::ChaCha20Poly1305 => 32 + SALT,
        };
        KeyLengths {
            integ: self.integ.map_or(0, Integ::key_len),
            encr,
        }
    }

    fn iv_len(&self) -> usize {
        match self.cipher {
            Cipher::AesCbc(_) => AES_BLOCK,
            _ => AEAD_IV,
        }
    }

    fn check_len(&self) -> usize {
        self.integ.map_or(AEAD_TAG, Integ::icv_len)
    }

    /// A message of `header`, whose only payload is an Encrypted payload
    /// holding `inner`, sealed with the sender's keys: `ekey` (SK_ei or
    /// SK_er) and `akey` (SK_ai or SK_ar; empty for an AEAD). The IV is
    /// drawn from `rng`.
    pub fn seal(
        &self,
        header: Header,
        inner: &[Payload],
        ekey: &[u8],
        akey: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, EncodeError> {
        let (first, chain) = encode_chain(inner)?;
        let mut plain = Zeroizing::new(chain);
        // Pad to whole blocks for CBC; an AEAD needs only the pad length.
        let block = if matches!(self.cipher, Cipher::AesCbc(_)) {
            AES_BLOCK
        } else {
            1
        };
        let pad = (block - (plain.len() + 1) % block) % block;
        let padded = plain.len() + pad;
        plain.resize(padded, 0);
        plain.push(pad as u8);
        let iv_len = self.iv_len();
        let body_len = iv_len + plain.len() + self.check_len();
        let total = HEADER_LEN + 4 + body_len;
        let mut out = Vec::with_capacity(total);
        let header = Header {
            next: PayloadType::SK,
            length: u32::try_from(total).map_err(|_| EncodeError::TooLong)?,
            ..header
        };
        out.extend_from_slice(&header_bytes(&header));
        out.push(first.0);
        out.push(0);
        out.extend_from_slice(
            &u16::try_from(4 + body_len)
                .map_err(|_| EncodeError::TooLong)?
                .to_be_bytes(),
        );
        let aad_len = out.len();
        let mut iv = vec![0u8; iv_len];
        rng.fill_bytes(&mut iv);
        out.extend_from_slice(&iv);
        match self.cipher {
            Cipher::AesCbc(k) => {
                cbc_encrypt(k, ekey, &iv, &mut plain).map_err(|_| EncodeError::Inconsistent)?;
                out.extend_from_slice(&plain);
                let integ = self.integ.ok_or(EncodeError::Inconsistent)?;
                let icv = integ.mac(akey, &out);
                out.extend_from_slice(&icv);
            }
            cipher => {
                let (key, salt) = ekey
                    .split_at_checked(ekey.len().saturating_sub(SALT))
                    .ok_or(EncodeError::Inconsistent)?;
                let nonce = [salt, &iv].concat();
                let tag = aead_seal(cipher, key, &nonce, &out[..aad_len], &mut plain)
                    .map_err(|_| EncodeError::Inconsistent)?;
                out.extend_from_slice(&plain);
                out.extend_from_slice(&tag);
            }
        }
        Ok(out)
    }

    /// The payloads inside the Encrypted payload of `bytes`, a message
    /// sealed with the peer's keys `ekey` and `akey`, once its check
    /// value or tag is right.
    pub fn open(&self, bytes: &[u8], ekey: &[u8], akey: &[u8]) -> Result<Vec<Payload>, OpenError> {
        let message = Message::decode(bytes).map_err(OpenError::Malformed)?;
        let Some(Payload {
            body: Body::Sk { first, data },
            ..
        }) = message.payloads.last()
        else {
            return Err(OpenError::NotEncrypted);
        };
        let (iv_len, check_len) = (self.iv_len(), self.check_len());
        if data.len() < iv_len + check_len + 1 {
            return Err(OpenError::Length);
        }
        // The SK payload's body ends the message.
        let iv_at = bytes.len() - data.len();
        let (iv, rest) = data.split_at(iv_len);
        let (ciphertext, check) = rest.split_at(rest.len() - check_len);
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        match self.cipher {
            Cipher::AesCbc(k) => {
                if ciphertext.len() % AES_BLOCK != 0 {
                    return Err(OpenError::Length);
                }
                let integ = self.integ.ok_or(OpenError::Integrity)?;
                let expected = integ.mac(akey, &bytes[..bytes.len() - check_len]);
                if !bool::from(expected.ct_eq(check)) {
                    return Err(OpenError::Integrity);
                }
                cbc_decrypt(k, ekey, iv, &mut plain).map_err(|_| OpenError::Integrity)?;
            }
            cipher => {
                let (key, salt) = ekey
                    .split_at_checked(ekey.len().saturating_sub(SALT))
                    .ok_or(OpenError::Integrity)?;
                let nonce = [salt, iv].concat();
                aead_open(cipher, key, &nonce, &bytes[..iv_at], &mut plain, check)
                    .map_err(|_| OpenError::Integrity)?;
            }
        }
        let pad = usize::from(*plain.last().ok_or(OpenError::Padding)?);
        let end = plain.len().checked_sub(pad + 1).ok_or(OpenError::Padding)?;
        decode_chain(*first, &plain[..end]).map_err(OpenError::Malformed)
    }
}

fn header_bytes(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(&h.spi_i.to_be_bytes());
    b[8..16].copy_from_slice(&h.spi_r.to_be_bytes());
    b[16] = h.next.0;
    b[17] = h.version;
    b[18] = h.exchange.0;
    b[19] = h.flags.0;
    b[20..24].copy_from_slice(&h.message_id.to_be_bytes());
    b[24..28].copy_from_slice(&h.length.to_be_bytes());
    b
}

/// Why a primitive refused: a key or IV of the wrong length, or a tag
/// that does not match.
#[derive(Debug)]
struct Refused;

fn cbc_encrypt(key_len: usize, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), Refused> {
    let len = data.len();
    if key.len() != key_len {
        return Err(Refused);
    }
    let done = match key_len {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .encrypt_padded_mut::<NoPadding>(data, len)
            .is_ok(),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .encrypt_padded_mut::<NoPadding>(data, len)
            .is_ok(),
        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .encrypt_padded_mut::<NoPadding>(data, len)
            .is_ok(),
    };
    if done { Ok(()) } else { Err(Refused) }
}

fn cbc_decrypt(key_len: usize, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), Refused> {
    if key.len() != key_len {
        return Err(Refused);
    }
    let done = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .decrypt_padded_mut::<NoPadding>(data)
            .is_ok(),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .decrypt_padded_mut::<NoPadding>(data)
            .is_ok(),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| Refused)?
            .decrypt_padded_mut::<NoPadding>(data)
            .is_ok(),
    };
    if done { Ok(()) } else { Err(Refused) }
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

fn aead_seal(
    cipher: Cipher,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &mut [u8],
) -> Result<Vec<u8>, Refused> {
    fn run<A: KeyInit + AeadInPlace>(
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<Vec<u8>, Refused> {
        let aead = A::new_from_slice(key).map_err(|_| Refused)?;
        let nonce = aes_gcm::aead::Nonce::<A>::from_slice(nonce);
        let tag = aead
            .encrypt_in_place_detached(nonce, aad, data)
            .map_err(|_| Refused)?;
        Ok(tag.to_vec())
    }
    match cipher {
        Cipher::AesGcm16(16) => run::<aes_gcm::Aes128Gcm>(key, nonce, aad, data),
        Cipher::AesGcm16(24) => run::<Aes192Gcm>(key, nonce, aad, data),
        Cipher::AesGcm16(_) => run::<aes_gcm::Aes256Gcm>(key, nonce, aad, data),
        _ => run::<chacha20poly1305::ChaCha20Poly1305>(key, nonce, aad, data),
    }
}

fn aead_open(
    cipher: Cipher,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8],
) -> Result<(), Refused> {
    fn run<A: KeyInit + AeadInPlace>(
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Refused> {
        let aead = A::new_from_slice(key).map_err(|_| Refused)?;
        let nonce = aes_gcm::aead::Nonce::<A>::from_slice(nonce);
        let tag = aes_gcm::aead::Tag::<A>::from_slice(tag);
        aead.decrypt_in_place_detached(nonce, aad, data, tag)
            .map_err(|_| Refused)
    }
    match cipher {
        Cipher::AesGcm16(16) => run::<aes_gcm::Aes128Gcm>(key, nonce, aad, data, tag),
        Cipher::AesGcm16(24) => run::<Aes192Gcm>(key, nonce, aad, data, tag),
        Cipher::AesGcm16(_) => run::<aes_gcm::Aes256Gcm>(key, nonce, aad, data, tag),
        _ => run::<chacha20poly1305::ChaCha20Poly1305>(key, nonce, aad, data, tag),
    }
}
