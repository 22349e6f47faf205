//! EtherIP (RFC 3378): an Ethernet frame carried in IP, protocol 97,
//! behind a two-byte header that holds the version (3) in its top four
//! bits and zeros in the rest. Two bridges joined by it make one LAN.

use super::{Error, Result};

/// The version nibble and twelve reserved bits.
pub const HEADER_LEN: usize = 2;

/// The only version there is.
pub const VERSION: u8 = 3;

/// The header to write in front of a frame.
pub const HEADER: [u8; HEADER_LEN] = [VERSION << 4, 0];

/// The Ethernet frame an EtherIP payload carries; `BadVersion` for any
/// other version (RFC 3378 §3: discard it).
pub fn frame(payload: &[u8]) -> Result<&[u8]> {
    let header = payload.get(..HEADER_LEN).ok_or(Error::Truncated)?;
    if header[0] >> 4 != VERSION {
        return Err(Error::BadVersion);
    }
    Ok(&payload[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_behind_a_version_3_header() {
        assert_eq!(frame(&[0x30, 0, 0xaa, 0xbb]), Ok(&[0xaa, 0xbb][..]));
        assert_eq!(frame(&HEADER), Ok(&[][..]));
        assert_eq!(frame(&[0x20, 0, 0xaa]), Err(Error::BadVersion));
        assert_eq!(frame(&[0x30]), Err(Error::Truncated));
    }
}
