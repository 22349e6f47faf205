//! IPComp (RFC 3173) with deflate (RFC 2394): a 4-byte header (next
//! header, flags, CPI) in front of the compressed payload. Payloads too
//! small to gain, or that do not shrink, are sent as they are.

use super::Refusal;
use crate::crypto::KeyError;
use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;
use pfkey::CompAlg;

/// The IPComp header's length.
pub const HEADER_LEN: usize = 4;

/// Below this many bytes deflate rarely gains (OpenBSD's threshold).
pub const MIN_LEN: usize = 90;

/// IP's limit, which a decompressed payload may not pass.
const MAX_PAYLOAD: usize = 65535;

#[derive(Debug)]
pub struct IpComp;

impl IpComp {
    pub fn new(alg: CompAlg) -> Result<IpComp, KeyError> {
        if alg == CompAlg::DEFLATE {
            Ok(IpComp)
        } else {
            Err(KeyError::Unsupported)
        }
    }

    /// The IPComp form of `payload`, or None when it is better sent as it
    /// is (RFC 3173 §2.2).
    pub fn compress(&self, cpi: u16, next_header: u8, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < MIN_LEN {
            return None;
        }
        let packed = compress_to_vec(payload, 6);
        if packed.len() + HEADER_LEN >= payload.len() {
            return None;
        }
        let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
        out.push(next_header);
        out.push(0);
        out.extend_from_slice(&cpi.to_be_bytes());
        out.extend_from_slice(&packed);
        Some(out)
    }

    /// The payload inside an IPComp header, and its protocol.
    pub fn decompress(&self, bytes: &[u8]) -> Result<(Vec<u8>, u8), Refusal> {
        let [next_header, _flags, _, _, ref packed @ ..] = *bytes else {
            return Err(Refusal::Malformed);
        };
        // Bombs (more than IP can carry) and corrupt streams alike.
        let payload =
            decompress_to_vec_with_limit(packed, MAX_PAYLOAD).map_err(|_| Refusal::Malformed)?;
        Ok((payload, next_header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_payloads_round_trip_and_small_ones_pass() {
        let c = IpComp::new(CompAlg::DEFLATE).unwrap();
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(20);
        let packed = c.compress(0x1234, 6, &text).unwrap();
        assert_eq!(&packed[..4], &[6, 0, 0x12, 0x34]);
        assert!(packed.len() < text.len() / 2);
        assert_eq!(c.decompress(&packed).unwrap(), (text.clone(), 6));
        assert_eq!(c.compress(1, 6, &text[..MIN_LEN - 1]), None);
        // Random-looking bytes do not shrink and go uncompressed.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..500)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        assert_eq!(c.compress(1, 6, &noise), None);
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let c = IpComp::new(CompAlg::DEFLATE).unwrap();
        let bomb = compress_to_vec(&vec![0u8; 200_000], 9);
        let mut packet = vec![4, 0, 0, 1];
        packet.extend_from_slice(&bomb);
        assert_eq!(c.decompress(&packet), Err(Refusal::Malformed));
        assert_eq!(
            c.decompress(&[4, 0, 0, 1, 0xff, 0xff]),
            Err(Refusal::Malformed)
        );
        assert_eq!(c.decompress(&[4, 0]), Err(Refusal::Malformed));
        assert!(IpComp::new(CompAlg::OUI).is_err());
    }
}
