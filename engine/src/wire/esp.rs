//! ESP (RFC 4303 §2): the header view, with the SPI and sequence number
//! that come before the encrypted payload, and the trailer (padding, pad
//! length, next header) that ends the plaintext once it is decrypted.

use super::{Error, Result};

/// The length of the SPI and the sequence number.
pub const HEADER_LEN: usize = 8;

/// A view of an ESP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const SPI: Range<usize> = 0..4;
    pub const SEQUENCE: Range<usize> = 4..8;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that the header is all there.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, at: std::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The security parameters index.
    pub fn spi(&self) -> u32 {
        self.u32_at(field::SPI)
    }

    /// The low 32 bits of the sequence number.
    pub fn sequence_number(&self) -> u32 {
        self.u32_at(field::SEQUENCE)
    }

    /// Everything after the header: IV, ciphertext, trailer and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the security parameters index.
    pub fn set_spi(&mut self, value: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the low 32 bits of the sequence number.
    pub fn set_sequence_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQUENCE].copy_from_slice(&value.to_be_bytes());
    }

    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The length of the trailer that follows `payload_len` bytes of plaintext
/// so that they end on a multiple of `block` bytes (the cipher's block
/// size, or 4 with none: RFC 4303 §2.4 wants 4-byte alignment anyway).
pub fn trailer_len(payload_len: usize, block: usize) -> usize {
    let block = block.max(4);
    (block - (payload_len + 2) % block) % block + 2
}

/// Writes a trailer into `trailer`, which is [`trailer_len`] bytes long:
/// the default padding 1, 2, 3, ..., its length, and the next header.
pub fn write_trailer(trailer: &mut [u8], next_header: u8) {
    let pad_len = trailer.len() - 2;
    for (i, byte) in trailer[..pad_len].iter_mut().enumerate() {
        *byte = (i + 1) as u8;
    }
    trailer[pad_len] = pad_len as u8;
    trailer[pad_len + 1] = next_header;
}

/// Reads the trailer at the end of decrypted `plaintext`, returning the
/// payload's length and the next header. The padding must be the default
/// sequence (RFC 4303 §2.4 asks receivers to check it): with confidentiality
/// this catches most decryption with a wrong key even before integrity.
pub fn read_trailer(plaintext: &[u8]) -> Result<(usize, u8)> {
    let [.., pad_len, next_header] = *plaintext else {
        return Err(Error::Truncated);
    };
    let pad_len = usize::from(pad_len);
    let payload_len = plaintext
        .len()
        .checked_sub(pad_len + 2)
        .ok_or(Error::BadPadding)?;
    let padding = &plaintext[payload_len..payload_len + pad_len];
    if padding
        .iter()
        .enumerate()
        .any(|(i, &b)| usize::from(b) != i + 1)
    {
        return Err(Error::BadPadding);
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The start of an ESP packet: SPI 0x0000_1000, sequence number 1, then
    // the first bytes of the IV.
    const BYTES: [u8; 12] = [
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9d, 0x2f, 0x63, 0x1e,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(packet.spi(), 0x1000);
        assert_eq!(packet.sequence_number(), 1);
        assert_eq!(packet.payload(), &BYTES[8..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_spi(0x1000);
        packet.set_sequence_number(1);
        packet.payload_mut().copy_from_slice(&BYTES[8..]);
        assert_eq!(bytes, BYTES);
    }

    #[test]
    fn one_byte_short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert!(
            Packet::new_checked(&BYTES[..8])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn trailer_aligns_to_the_block() {
        // AES-CBC: 16-byte blocks. 100 + 2 needs 10 more bytes of padding.
        assert_eq!(trailer_len(100, 16), 12);
        // Already aligned after the two trailer bytes: no padding.
        assert_eq!(trailer_len(14, 16), 2);
        // No cipher (or a stream cipher): 4-byte alignment.
        assert_eq!(trailer_len(5, 1), 3);
        assert_eq!(trailer_len(6, 0), 2);
        for len in 0..100 {
            for block in [1, 4, 8, 16] {
                let total = len + trailer_len(len, block);
                assert_eq!(total % block.max(4), 0);
                assert!(trailer_len(len, block) < block.max(4) + 2);
            }
        }
    }

    #[test]
    fn trailer_round_trip() {
        let mut plaintext = b"hello, world".to_vec();
        let trailer = trailer_len(plaintext.len(), 16);
        plaintext.resize(plaintext.len() + trailer, 0xa5);
        let end = plaintext.len();
        write_trailer(&mut plaintext[end - trailer..], 4);
        assert_eq!(&plaintext[12..], &[1, 2, 2, 4]);
        assert_eq!(read_trailer(&plaintext), Ok((12, 4)));
    }

    #[test]
    fn bad_trailers_are_refused() {
        assert_eq!(read_trailer(&[]), Err(Error::Truncated));
        assert_eq!(read_trailer(&[4]), Err(Error::Truncated));
        // A pad length longer than the plaintext.
        assert_eq!(read_trailer(&[1, 2, 3, 4]), Err(Error::BadPadding));
        // Padding that is not 1, 2, 3, ...
        assert_eq!(read_trailer(&[9, 1, 3, 2, 4]), Err(Error::BadPadding));
        // No padding at all is fine.
        assert_eq!(read_trailer(&[9, 9, 0, 41]), Ok((2, 41)));
    }
}
