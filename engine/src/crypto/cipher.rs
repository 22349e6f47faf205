//! ESP's ciphers: plain ones (NULL, AES-CBC, 3DES-CBC, AES-CTR) that a
//! separate [`Mac`](super::Mac) protects, and combined ones (AES-GCM,
//! AES-GMAC, ChaCha20-Poly1305) that make the ICV themselves.

use std::fmt;

use aes::cipher::inout::InOutBuf;
use aes::cipher::{
    BlockCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit, StreamCipher,
};
use aes::{Aes128, Aes192, Aes256, Block};
use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, Nonce, Tag};
use des::TdesEde3;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use pfkey::EncAlg;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::facts::{self, CipherFacts};
use super::{BadIcv, KeyError};

/// Bytes of salt (GCM, GMAC, ChaCha20-Poly1305) or nonce (CTR) at the end
/// of the PF_KEY key material, after the key proper.
const SALT_LEN: usize = 4;
/// Bytes of IV each packet carries for the counter-based ciphers.
const COUNTER_IV_LEN: usize = 8;
/// The ICV of ChaCha20-Poly1305.
const FULL_ICV_LEN: usize = 16;

type Salt = Zeroizing<[u8; SALT_LEN]>;

/// A cipher keyed for one SA, in one direction.
///
/// Cloning copies the expanded key; both copies zeroize it on drop.
#[derive(Clone)]
pub struct Cipher {
    kind: Kind,
    facts: &'static CipherFacts,
}

#[derive(Clone)]
enum Kind {
    Null,
    AesCbc(Aes),
    TdesCbc(TdesEde3),
    /// RFC 3686: the nonce is the first word of every counter block.
    AesCtr {
        aes: Aes,
        nonce: Salt,
    },
    /// RFC 4106, with the ICV truncated to the facts' length.
    AesGcm(Gcm),
    /// RFC 4543 (ENCR_NULL_AUTH_AES_GMAC): authenticates, encrypts nothing.
    AesGmac(Gcm),
    /// RFC 7634.
    ChaCha {
        aead: ChaCha20Poly1305,
        salt: Salt,
    },
}

impl Cipher {
    /// Keys `alg` with the PF_KEY key material: the key proper, followed
    /// by a 4-byte nonce (CTR) or salt (GCM, GMAC, ChaCha20-Poly1305).
    pub fn new(alg: EncAlg, key: &[u8]) -> Result<Cipher, KeyError> {
        let facts = facts::cipher(alg)
            .filter(|f| f.built && alg != EncAlg::NONE)
            .ok_or(KeyError::Unsupported)?;
        if !facts.keys.allows(key.len()) {
            return Err(KeyError::BadLength);
        }
        let kind = match alg {
            EncAlg::NULL => Kind::Null,
            EncAlg::X_AES => Kind::AesCbc(Aes::new(key)?),
            EncAlg::TRIPLE_DES_CBC => {
                Kind::TdesCbc(TdesEde3::new_from_slice(key).map_err(|_| KeyError::BadLength)?)
            }
            EncAlg::X_AESCTR => {
                let (key, nonce) = split_salt(key)?;
                Kind::AesCtr {
                    aes: Aes::new(key)?,
                    nonce,
                }
            }
            EncAlg::X_AESGCM8 | EncAlg::X_AESGCM12 | EncAlg::X_AESGCM16 => {
                Kind::AesGcm(Gcm::new(key)?)
            }
            EncAlg::X_AESGMAC => Kind::AesGmac(Gcm::new(key)?),
            EncAlg::X_CHACHA20POLY1305 => {
                let (key, salt) = split_salt(key)?;
                let aead =
                    ChaCha20Poly1305::new_from_slice(key).map_err(|_| KeyError::BadLength)?;
                Kind::ChaCha { aead, salt }
            }
            _ => return Err(KeyError::Unsupported),
        };
        Ok(Cipher { kind, facts })
    }

    /// Block size that ESP pads the payload to (before max(…,4) which the
    /// caller applies): AES-CBC 16, 3DES 8, the stream-like rest 1.
    pub fn block_len(&self) -> usize {
        self.facts.block
    }

    /// IV bytes carried in each packet: a whole block for CBC, 8 for the
    /// counter-based ciphers, none for NULL.
    pub fn iv_len(&self) -> usize {
        self.facts.iv
    }

    /// ICV bytes a combined cipher makes; 0 for the plain ones.
    pub fn icv_len(&self) -> usize {
        self.facts.icv
    }

    /// True for GCM (any ICV), GMAC and ChaCha20-Poly1305: they make the
    /// ICV themselves, so the SA has no separate MAC.
    pub fn is_combined(&self) -> bool {
        self.facts.icv > 0
    }

    /// True when the IV must be unique but need not be unpredictable (CTR,
    /// GCM, GMAC, ChaCha20-Poly1305): ESP then uses the sequence number.
    pub fn counter_iv(&self) -> bool {
        self.facts.counter_iv
    }

    /// Encrypts `data` in place with a plain cipher. `iv.len()` must be
    /// [`iv_len`](Self::iv_len), and for CBC `data` whole blocks. NULL
    /// leaves `data` as it is.
    ///
    /// # Panics
    ///
    /// On a combined cipher (use [`seal`](Self::seal)), or an IV of the
    /// wrong length: both are the caller's bug, and carrying on could send
    /// plaintext.
    pub fn encrypt(&self, iv: &[u8], data: &mut [u8]) {
        match &self.kind {
            Kind::Null => {}
            Kind::AesCbc(aes) => with_aes!(aes, c => cbc_encrypt(c, iv, data)),
            Kind::TdesCbc(tdes) => cbc_encrypt(tdes, iv, data),
            Kind::AesCtr { aes, nonce } => aes.ctr(&counter_block(nonce, iv, 1), data),
            _ => panic!("{self:?} is a combined cipher: seal, not encrypt"),
        }
    }

    /// Decrypts `data` in place with a plain cipher; the inverse of
    /// [`encrypt`](Self::encrypt), with the same requirements.
    ///
    /// # Panics
    ///
    /// As [`encrypt`](Self::encrypt).
    pub fn decrypt(&self, iv: &[u8], data: &mut [u8]) {
        match &self.kind {
            Kind::Null => {}
            Kind::AesCbc(aes) => with_aes!(aes, c => cbc_decrypt(c, iv, data)),
            Kind::TdesCbc(tdes) => cbc_decrypt(tdes, iv, data),
            Kind::AesCtr { aes, nonce } => aes.ctr(&counter_block(nonce, iv, 1), data),
            _ => panic!("{self:?} is a combined cipher: open, not decrypt"),
        }
    }

    /// Encrypts `data` in place with a combined cipher and writes the ICV
    /// into `icv`. `aad` is what ESP authenticates besides the data (SPI
    /// || sequence number [|| ESN high bits]). GMAC encrypts nothing: it
    /// authenticates `aad || iv || data` and leaves `data` unchanged.
    ///
    /// # Panics
    ///
    /// On a plain cipher, or when `iv` or `icv` is not
    /// [`iv_len`](Self::iv_len) or [`icv_len`](Self::icv_len) long.
    pub fn seal(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &mut [u8]) {
        match &self.kind {
            Kind::AesGcm(gcm) => {
                gcm.ctr(iv, data);
                icv.copy_from_slice(&gcm.tag(iv, &[aad], data)[..self.facts.icv]);
            }
            Kind::AesGmac(gcm) => icv.copy_from_slice(&gcm.tag(iv, &[aad, iv, data], &[])),
            Kind::ChaCha { aead, salt } => {
                let tag = aead
                    .encrypt_in_place_detached(&chacha_nonce(salt, iv), aad, data)
                    .expect("ESP payloads are far below ChaCha20's 256 GiB limit");
                icv.copy_from_slice(&tag);
            }
            _ => panic!("{self:?} is a plain cipher: encrypt, not seal"),
        }
    }

    /// Checks `icv` in constant time, and only if it matches decrypts
    /// `data` in place: on a mismatch `data` is left as it was.
    ///
    /// # Panics
    ///
    /// On a plain cipher, or an IV of the wrong length. An ICV of the
    /// wrong length is merely a mismatch.
    pub fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &[u8]) -> Result<(), BadIcv> {
        match &self.kind {
            Kind::AesGcm(gcm) => {
                check(&gcm.tag(iv, &[aad], data)[..self.facts.icv], icv)?;
                gcm.ctr(iv, data);
                Ok(())
            }
            Kind::AesGmac(gcm) => check(&gcm.tag(iv, &[aad, iv, data], &[]), icv),
            Kind::ChaCha { aead, salt } => {
                if icv.len() != FULL_ICV_LEN {
                    return Err(BadIcv);
                }
                // The crate verifies the tag before it decrypts anything.
                aead.decrypt_in_place_detached(
                    &chacha_nonce(salt, iv),
                    aad,
                    data,
                    Tag::from_slice(icv),
                )
                .map_err(|_| BadIcv)
            }
            _ => panic!("{self:?} is a plain cipher: decrypt, not open"),
        }
    }
}

/// Names the algorithm and key size, never the key.
impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match &self.kind {
            Kind::Null => "null".to_owned(),
            Kind::AesCbc(aes) => format!("aes-{}-cbc", aes.bits()),
            Kind::TdesCbc(_) => "3des-cbc".to_owned(),
            Kind::AesCtr { aes, .. } => format!("aes-{}-ctr", aes.bits()),
            Kind::AesGcm(gcm) => format!("aes-{}-gcm-{}", gcm.aes.bits(), self.facts.icv),
            Kind::AesGmac(gcm) => format!("aes-{}-gmac", gcm.aes.bits()),
            Kind::ChaCha { .. } => "chacha20-poly1305".to_owned(),
        };
        f.debug_struct("Cipher")
            .field("alg", &format_args!("{alg}"))
            .finish_non_exhaustive()
    }
}

/// AES under one of its three key sizes.
#[derive(Clone)]
enum Aes {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

/// Runs `$body` with `$c` bound to the keyed AES, whatever its size.
macro_rules! with_aes {
    ($aes:expr, $c:ident => $body:expr) => {
        match $aes {
            Aes::A128($c) => $body,
            Aes::A192($c) => $body,
            Aes::A256($c) => $body,
        }
    };
}
// Imported by path, so the methods of `Cipher` above can use it too.
use with_aes;

impl Aes {
    fn new(key: &[u8]) -> Result<Aes, KeyError> {
        let bad = |_| KeyError::BadLength;
        Ok(match key.len() {
            16 => Aes::A128(Aes128::new_from_slice(key).map_err(bad)?),
            24 => Aes::A192(Aes192::new_from_slice(key).map_err(bad)?),
            32 => Aes::A256(Aes256::new_from_slice(key).map_err(bad)?),
            _ => return Err(KeyError::BadLength),
        })
    }

    fn bits(&self) -> usize {
        match self {
            Aes::A128(_) => 128,
            Aes::A192(_) => 192,
            Aes::A256(_) => 256,
        }
    }

    fn encrypt_block(&self, block: &mut Block) {
        with_aes!(self, c => c.encrypt_block(block))
    }

    /// XORs `data` with the keystream that starts at counter block `first`
    /// and increments its last 32 bits, big-endian (RFC 3686, GCM).
    fn ctr(&self, first: &Block, data: &mut [u8]) {
        with_aes!(self, c => {
            let core = ctr::CtrCore::inner_iv_init(c.clone(), first);
            ctr::Ctr32BE::from_core(core).apply_keystream(data);
        })
    }
}

fn cbc_encrypt<C: BlockEncryptMut + BlockCipher + Clone>(c: &C, iv: &[u8], data: &mut [u8]) {
    let mut mode = cbc::Encryptor::inner_iv_slice_init(c.clone(), iv).expect("CBC IV is one block");
    let (blocks, tail) = InOutBuf::from(data).into_chunks();
    debug_assert!(tail.is_empty(), "CBC data is not whole blocks");
    mode.encrypt_blocks_inout_mut(blocks);
}

fn cbc_decrypt<C: BlockDecryptMut + BlockCipher + Clone>(c: &C, iv: &[u8], data: &mut [u8]) {
    let mut mode = cbc::Decryptor::inner_iv_slice_init(c.clone(), iv).expect("CBC IV is one block");
    let (blocks, tail) = InOutBuf::from(data).into_chunks();
    debug_assert!(tail.is_empty(), "CBC data is not whole blocks");
    mode.decrypt_blocks_inout_mut(blocks);
}

/// GCM keyed once per SA: the AES key schedule and GHASH keyed with
/// H = E_K(0^128), so a packet costs only the cipher and the hash.
#[derive(Clone)]
struct Gcm {
    aes: Aes,
    ghash: GHash,
    salt: Salt,
}

impl Gcm {
    fn new(key: &[u8]) -> Result<Gcm, KeyError> {
        let (key, salt) = split_salt(key)?;
        let aes = Aes::new(key)?;
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.as_mut_slice().zeroize();
        Ok(Gcm { aes, ghash, salt })
    }

    /// Encrypts or decrypts `data`: counter mode from J0 + 1, where
    /// J0 = salt || iv || 1 (RFC 4106's 12-byte nonce, 32-bit counter).
    fn ctr(&self, iv: &[u8], data: &mut [u8]) {
        self.aes.ctr(&counter_block(&self.salt, iv, 2), data);
    }

    /// The untruncated tag: GHASH_H(A, C) xor E_K(J0), where the additional
    /// data A is the concatenation of `aad`.
    fn tag(&self, iv: &[u8], aad: &[&[u8]], ciphertext: &[u8]) -> Block {
        let mut hash = Absorb::new(self.ghash.clone());
        for part in aad {
            hash.feed(part);
        }
        hash.pad();
        hash.feed(ciphertext);
        hash.pad();
        let bits = |len: usize| (len as u64 * 8).to_be_bytes();
        let mut lengths = Block::default();
        lengths[..8].copy_from_slice(&bits(aad.iter().map(|part| part.len()).sum()));
        lengths[8..].copy_from_slice(&bits(ciphertext.len()));
        hash.ghash.update(&[lengths]);
        let mut tag = hash.ghash.finalize();
        let mut mask = counter_block(&self.salt, iv, 1);
        self.aes.encrypt_block(&mut mask);
        for (t, m) in tag.iter_mut().zip(mask.iter()) {
            *t ^= m;
        }
        tag
    }
}

/// GHASH fed in pieces: GCM pads A and C to whole blocks, not each piece
/// (GMAC's A is aad || iv || data).
struct Absorb {
    ghash: GHash,
    pending: Block,
    filled: usize,
}

impl Absorb {
    fn new(ghash: GHash) -> Absorb {
        Absorb {
            ghash,
            pending: Block::default(),
            filled: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        if self.filled > 0 {
            let n = data.len().min(self.pending.len() - self.filled);
            self.pending[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled < self.pending.len() {
                return;
            }
            self.ghash.update(&[self.pending]);
            self.filled = 0;
        }
        let whole = data.len() - data.len() % self.pending.len();
        self.ghash.update_padded(&data[..whole]);
        let rest = &data[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Zero-pads what is pending to a whole block: the end of A or of C.
    fn pad(&mut self) {
        if self.filled > 0 {
            self.ghash.update_padded(&self.pending[..self.filled]);
            self.filled = 0;
        }
    }
}

/// Splits PF_KEY key material into the key proper and its trailing salt.
fn split_salt(material: &[u8]) -> Result<(&[u8], Salt), KeyError> {
    let at = material
        .len()
        .checked_sub(SALT_LEN)
        .ok_or(KeyError::BadLength)?;
    let (key, salt) = material.split_at(at);
    let salt = salt.try_into().expect("split SALT_LEN from the end");
    Ok((key, Zeroizing::new(salt)))
}

/// `salt || iv || counter`: RFC 3686's counter block, and GCM's with a
/// 12-byte nonce.
fn counter_block(salt: &[u8; SALT_LEN], iv: &[u8], counter: u32) -> Block {
    let mut block = Block::default();
    block[..SALT_LEN].copy_from_slice(salt);
    block[SALT_LEN..SALT_LEN + COUNTER_IV_LEN].copy_from_slice(iv);
    block[SALT_LEN + COUNTER_IV_LEN..].copy_from_slice(&counter.to_be_bytes());
    block
}

/// RFC 7634's nonce: salt || iv.
fn chacha_nonce(salt: &[u8; SALT_LEN], iv: &[u8]) -> Nonce {
    let mut nonce = Nonce::default();
    nonce[..SALT_LEN].copy_from_slice(salt);
    nonce[SALT_LEN..].copy_from_slice(iv);
    nonce
}

/// Compares an expected ICV with the received one in constant time.
fn check(expected: &[u8], icv: &[u8]) -> Result<(), BadIcv> {
    if bool::from(expected.ct_eq(icv)) {
        Ok(())
    } else {
        Err(BadIcv)
    }
}
