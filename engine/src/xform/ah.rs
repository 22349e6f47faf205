//! AH (RFC 4302): integrity for the whole packet, the parts of the IP
//! header that routers change (RFC 4302 §3.3.3.1) counted as zero.

use super::Refusal;
use super::ip::{CannotBuild, Layout, proto, reframe};
use crate::crypto::{KeyError, Mac};
use crate::packet::PacketBuf;
use crate::wire::{ah, ipv4, ipv6};
use pfkey::AuthAlg;

/// An AH SA's MAC.
#[derive(Debug)]
pub struct Ah {
    mac: Mac,
}

impl Ah {
    pub fn new(auth: AuthAlg, key: &[u8]) -> Result<Ah, KeyError> {
        Ok(Ah {
            mac: Mac::new(auth, key)?,
        })
    }

    fn header_len(&self, v6: bool) -> usize {
        header_len(self.mac.icv_len(), v6)
    }

    /// The most bytes AH adds to a packet.
    pub fn overhead(&self) -> usize {
        self.header_len(true)
    }

    /// Seals the packet in `buf` (laid out as `layout` says, link
    /// padding already cut) in place: the AH header goes in after the IP
    /// header, and the ICV covers the packet with its mutable fields as
    /// zero.
    pub fn seal(
        &self,
        buf: &mut PacketBuf,
        layout: &Layout,
        spi: u32,
        seq: u64,
        esn: bool,
    ) -> Result<(), CannotBuild> {
        let ah_len = self.header_len(layout.v6);
        let at = layout.header_len;
        let packet = buf.insert(at, ah_len)?;
        {
            let mut header = ah::Packet::new_unchecked(&mut packet[at..at + ah_len]);
            header.set_next_header(layout.protocol);
            header.set_payload_len((ah_len / 4 - 2) as u8);
            header.clear_reserved();
            header.set_spi(spi);
            header.set_sequence_number(seq as u32);
        }
        packet[at + ah::FIXED_LEN..at + ah_len].fill(0);
        reframe(packet, layout, proto::AH)?;
        let mut icv = [0u8; 64];
        let icv = &mut icv[..self.mac.icv_len()];
        let mut scratch = [0u8; MAX_HEADER];
        let muted = muted_header(&packet[..at], layout.v6, &mut scratch);
        let (high, high_len) = high_bits(seq, esn);
        self.mac
            .sign(&[muted, &packet[at..], &high[..high_len]], icv);
        packet[at + ah::FIXED_LEN..][..icv.len()].copy_from_slice(icv);
        Ok(())
    }

    /// Verifies the AH header after `layout`'s IP header (the ICV in
    /// constant time). Returns the protocol it protects and the header's
    /// length. `seq` is the full sequence number the window inferred.
    pub fn open(
        &self,
        packet: &[u8],
        layout: &Layout,
        seq: u64,
        esn: bool,
    ) -> Result<(u8, usize), Refusal> {
        let at = layout.header_len;
        let ah_len = self.header_len(layout.v6);
        let view =
            ah::Packet::new_checked(&packet[at..layout.len]).map_err(|_| Refusal::Malformed)?;
        if view.header_len() != ah_len {
            return Err(Refusal::Malformed);
        }
        let next_header = view.next_header();
        let icv = &view.icv()[..self.mac.icv_len()];
        let mut scratch = [0u8; MAX_HEADER];
        let muted = muted_header(&packet[..at], layout.v6, &mut scratch);
        // The header as the sender signed it: the ICV zeroed, its padding
        // as sent (RFC 4302 §2.6: the padding is in the ICV).
        let mut ah_copy = [0u8; 80];
        let ah_copy = &mut ah_copy[..ah_len];
        ah_copy.copy_from_slice(&packet[at..at + ah_len]);
        ah_copy[ah::FIXED_LEN..ah::FIXED_LEN + self.mac.icv_len()].fill(0);
        let (high, high_len) = high_bits(seq, esn);
        self.mac
            .verify(
                &[
                    muted,
                    ah_copy,
                    &packet[at + ah_len..layout.len],
                    &high[..high_len],
                ],
                icv,
            )
            .map_err(|_| Refusal::Authentication)?;
        Ok((next_header, ah_len))
    }
}

/// The AH header's length: the ICV is padded so that the header ends on
/// 4 bytes in IPv4 and on 8 in IPv6 (RFC 4302 §2.6).
pub fn header_len(icv_len: usize, v6: bool) -> usize {
    let align = if v6 { 8 } else { 4 };
    (ah::FIXED_LEN + icv_len).next_multiple_of(align)
}

/// The high half of an extended sequence number, which the ICV covers
/// after the packet; nothing without ESN.
fn high_bits(seq: u64, esn: bool) -> ([u8; 4], usize) {
    (((seq >> 32) as u32).to_be_bytes(), if esn { 4 } else { 0 })
}

/// IPv4 options that do not change in transit (RFC 4302 Appendix A.1):
/// end of list, no-op, and the security labels.
const IMMUTABLE_V4_OPTIONS: [u8; 7] = [0x00, 0x01, 0x82, 0x85, 0x86, 0x94, 0x95];

/// The longest header AH covers before itself: IPv6 and a hop-by-hop
/// header of 256 eight-byte units (an IPv4 header is at most 60 bytes).
const MAX_HEADER: usize = 40 + 256 * 8;

/// A copy of an IP header with its mutable fields zeroed, as the ICV
/// sees it, in `scratch`.
fn muted_header<'a>(header: &[u8], v6: bool, scratch: &'a mut [u8; MAX_HEADER]) -> &'a [u8] {
    let h = &mut scratch[..header.len()];
    h.copy_from_slice(header);
    if v6 {
        let mut ip = ipv6::Packet::new_unchecked(&mut *h);
        ip.set_version_class_and_label(0, 0);
        ip.set_hop_limit(0);
        if h.len() > ipv6::HEADER_LEN {
            mute_v6_options(&mut h[ipv6::HEADER_LEN..]);
        }
    } else {
        let mut ip = ipv4::Packet::new_unchecked(&mut *h);
        ip.set_tos(0);
        ip.set_unfragmented(false);
        ip.set_ttl(0);
        ip.set_checksum(0);
        mute_v4_options(&mut h[ipv4::HEADER_LEN..]);
    }
    h
}

fn mute_v4_options(options: &mut [u8]) {
    let mut i = 0;
    while i < options.len() {
        let kind = options[i];
        if kind == 0 {
            break;
        }
        if kind == 1 {
            i += 1;
            continue;
        }
        let len = usize::from(*options.get(i + 1).unwrap_or(&0)).max(2);
        let end = (i + len).min(options.len());
        if !IMMUTABLE_V4_OPTIONS.contains(&kind) {
            options[i..end].fill(0);
        }
        i = end;
    }
}

/// Zeroes the data of hop-by-hop options whose type marks them as
/// changing en route (RFC 8200 §4.2, the third-highest bit).
fn mute_v6_options(ext: &mut [u8]) {
    let mut i = 2;
    while i < ext.len() {
        let kind = ext[i];
        if kind == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*ext.get(i + 1).unwrap_or(&0));
        let end = (i + 2 + len).min(ext.len());
        if kind & 0x20 != 0 {
            ext[(i + 2).min(end)..end].fill(0);
        }
        i = end;
    }
}
