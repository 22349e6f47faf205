//! ESP (RFC 4303): confidentiality and integrity for what follows the IP
//! header, with the cipher and MAC of an SA.
//!
//! Layout: SPI | sequence | IV | ciphertext of (payload | padding | pad
//! length | next header) | ICV. The ICV covers everything before it; with
//! extended sequence numbers the high 32 bits are authenticated but not
//! sent (RFC 4303 §2.2.1), and combined ciphers take SPI and sequence as
//! associated data (RFC 4106 §5, RFC 4543 §3.3, RFC 7634 §2.1).

use super::Refusal;
use super::ip::{CannotBuild, Layout, proto, reframe};
use crate::crypto::{Cipher, KeyError, Mac};
use crate::packet::PacketBuf;
use crate::random::Random;
use crate::wire::esp;
use pfkey::{AuthAlg, EncAlg};
use std::ops::Range;

/// An ESP SA's cipher and MAC.
#[derive(Debug)]
pub struct Esp {
    cipher: Cipher,
    /// None for combined ciphers, which make their own ICV, and for SAs
    /// without authentication.
    mac: Option<Mac>,
}

impl Esp {
    /// Keys ESP. A combined cipher ignores the authentication algorithm:
    /// OpenBSD's ipsecctl names GCM's GHASH there, with no key of its own.
    pub fn new(
        enc: EncAlg,
        enc_key: &[u8],
        auth: AuthAlg,
        auth_key: &[u8],
    ) -> Result<Esp, KeyError> {
        let cipher = Cipher::new(enc, enc_key)?;
        let mac = if cipher.is_combined() || auth == AuthAlg::NONE {
            None
        } else {
            Some(Mac::new(auth, auth_key)?)
        };
        Ok(Esp { cipher, mac })
    }

    fn icv_len(&self) -> usize {
        self.mac
            .as_ref()
            .map_or(self.cipher.icv_len(), Mac::icv_len)
    }

    /// Whether packets are authenticated (OpenBSD's AUTH flag on enc).
    pub fn authenticates(&self) -> bool {
        self.mac.is_some() || self.cipher.is_combined()
    }

    /// The most bytes ESP adds to a packet.
    pub fn overhead(&self) -> usize {
        overhead(
            self.cipher.iv_len(),
            self.cipher.block_len(),
            self.icv_len(),
        )
    }

    /// Seals, in place, what follows the header of the packet in `buf`
    /// (laid out as `layout` says, link padding already cut): the ESP
    /// header and IV go in after the IP header, the trailer and ICV
    /// behind, and the IP header names ESP. `seq` is the full sequence
    /// number; only its low half is sent.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &self,
        buf: &mut PacketBuf,
        layout: &Layout,
        spi: u32,
        seq: u64,
        esn: bool,
        random: &mut Random,
    ) -> Result<(), CannotBuild> {
        let iv_len = self.cipher.iv_len();
        let icv_len = self.icv_len();
        let at = layout.header_len;
        let payload_len = buf.len() - at;
        let trailer = esp::trailer_len(payload_len, self.cipher.block_len());
        buf.push_back(trailer + icv_len)?;
        let packet = buf.insert(at, esp::HEADER_LEN + iv_len)?;
        let text_at = at + esp::HEADER_LEN + iv_len;
        let icv_at = text_at + payload_len + trailer;
        esp::write_trailer(&mut packet[text_at + payload_len..icv_at], layout.protocol);
        let (head, icv) = packet[at..].split_at_mut(icv_at - at);
        let (header, text) = head.split_at_mut(text_at - at);
        let mut view = esp::Packet::new_unchecked(&mut *header);
        view.set_spi(spi);
        view.set_sequence_number(seq as u32);
        let iv = &mut header[esp::HEADER_LEN..];
        if self.cipher.counter_iv() {
            // Unique is enough for counter modes, and the sequence number
            // never repeats under one key.
            iv.copy_from_slice(&seq.to_be_bytes()[8 - iv_len..]);
        } else {
            random.fill(iv);
        }
        let iv = &header[esp::HEADER_LEN..];
        if self.cipher.is_combined() {
            let aad = associated_data(spi, seq, esn);
            self.cipher.seal(iv, aad.as_ref(), text, icv);
        } else {
            self.cipher.encrypt(iv, text);
            match &self.mac {
                Some(mac) => {
                    let high = high_bits(seq, esn);
                    mac.sign(&[header, text, high.as_ref()], icv);
                }
                None => icv.fill(0),
            }
        }
        reframe(packet, layout, proto::ESP)
    }

    /// Opens ESP bytes in place: checks the ICV (in constant time) before
    /// anything is decrypted, then the padding. Returns where the payload
    /// lies in `packet` and its protocol. `seq` is the full sequence
    /// number, as the replay window inferred it.
    pub fn open(
        &self,
        packet: &mut [u8],
        seq: u64,
        esn: bool,
    ) -> Result<(Range<usize>, u8), Refusal> {
        let iv_len = self.cipher.iv_len();
        let icv_len = self.icv_len();
        let text_at = esp::HEADER_LEN + iv_len;
        let text_len = packet
            .len()
            .checked_sub(text_at + icv_len)
            .filter(|&n| n >= 2)
            .ok_or(Refusal::Malformed)?;
        if text_len % self.cipher.block_len() != 0 {
            return Err(Refusal::Malformed);
        }
        let (head, icv) = packet.split_at_mut(text_at + text_len);
        let (header, text) = head.split_at_mut(text_at);
        let iv = &header[esp::HEADER_LEN..];
        if self.cipher.is_combined() {
            let spi = esp::Packet::new_unchecked(&*header).spi();
            let aad = associated_data(spi, seq, esn);
            self.cipher
                .open(iv, aad.as_ref(), text, icv)
                .map_err(|_| Refusal::Authentication)?;
        } else {
            if let Some(mac) = &self.mac {
                let high = high_bits(seq, esn);
                mac.verify(&[header, text, high.as_ref()], icv)
                    .map_err(|_| Refusal::Authentication)?;
            }
            self.cipher.decrypt(iv, text);
        }
        let (len, next_header) = esp::read_trailer(text).map_err(|_| Refusal::Padding)?;
        Ok((text_at..text_at + len, next_header))
    }
}

/// The most bytes ESP adds with these sizes: header, IV, the longest
/// trailer, ICV.
pub fn overhead(iv_len: usize, block: usize, icv_len: usize) -> usize {
    esp::HEADER_LEN + iv_len + block.max(4) + 1 + icv_len
}

/// Up to 12 bytes, without a heap allocation.
struct Small {
    bytes: [u8; 12],
    len: usize,
}

impl AsRef<[u8]> for Small {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// SPI and sequence number, with the high half in front of the low one
/// when ESN is on.
fn associated_data(spi: u32, seq: u64, esn: bool) -> Small {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        bytes[4..].copy_from_slice(&seq.to_be_bytes());
        Small { bytes, len: 12 }
    } else {
        bytes[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        Small { bytes, len: 8 }
    }
}

/// The high half of an extended sequence number, which the ICV covers
/// after the packet.
fn high_bits(seq: u64, esn: bool) -> Small {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
    Small {
        bytes,
        len: if esn { 4 } else { 0 },
    }
}
