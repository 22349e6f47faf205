//! The Internet checksum (RFC 1071): the ones' complement of the ones'
//! complement sum of 16-bit words.

use std::net::IpAddr;

/// Adds `data` to a running ones' complement sum, as big-endian 16-bit
/// words; an odd last byte is padded with a zero, so only the last piece
/// of a sum may have an odd length.
pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
        // Fold early so that the sum never overflows, whatever the length.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits and complements it.
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of `data` alone.
pub fn of(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The running sum of the pseudo-header that TCP, UDP and ICMPv6
/// checksums cover (RFC 768, RFC 8200 §8.1). Both addresses must be of
/// one family.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let sum = accumulate(accumulate(0, &src.octets()), &dst.octets());
            // The IPv4 form carries the length in 16 bits.
            accumulate(sum, &[0, protocol, (len >> 8) as u8, len as u8])
        }
        (src, dst) => {
            let sum = accumulate(accumulate(0, &octets16(src)), &octets16(dst));
            accumulate(accumulate(sum, &len.to_be_bytes()), &[0, 0, 0, protocol])
        }
    }
}

fn octets16(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(accumulate(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(of(&[0x12, 0x34, 0x56]), of(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn data_with_its_checksum_sums_to_zero() {
        let mut data =
            *b"\x45\x00\x00\x1c\xab\xcd\x00\x00\x40\x11\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02";
        let sum = of(&data);
        data[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(of(&data), 0);
    }

    #[test]
    fn long_buffers_do_not_overflow() {
        let data = vec![0xff; 1 << 20];
        assert_eq!(of(&data), 0);
    }

    #[test]
    fn icmpv6_checksum_with_its_pseudo_header() {
        // An echo request from fe80::1 to fe80::2 whose checksum, f112,
        // was computed independently.
        let message = [
            0x80, 0x00, 0xf1, 0x12, 0x00, 0x07, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
            0x67, 0x68,
        ];
        let src = "fe80::1".parse().unwrap();
        let dst = "fe80::2".parse().unwrap();
        let sum = pseudo_header(src, dst, 58, message.len() as u32);
        assert_eq!(finish(accumulate(sum, &message)), 0);
    }

    #[test]
    fn udp_checksum_with_its_pseudo_header() {
        // A UDP datagram from 10.0.0.1:1234 to 10.0.0.2:53 carrying "hi",
        // checksum 0x7e67 computed independently.
        let datagram = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x7e, 0x67, b'h', b'i'];
        let src = "10.0.0.1".parse().unwrap();
        let dst = "10.0.0.2".parse().unwrap();
        let sum = pseudo_header(src, dst, 17, datagram.len() as u32);
        assert_eq!(finish(accumulate(sum, &datagram)), 0);
    }
}
