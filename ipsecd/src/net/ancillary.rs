//! Ancillary data (control messages): what the kernel says beside a
//! datagram it delivers, and what the daemon says beside one it sends.

use std::mem::size_of;

/// Room for the control messages of one datagram, aligned for cmsghdr.
#[repr(C, align(8))]
pub(super) struct ControlBuffer(pub(super) [u8; 256]);

impl Default for ControlBuffer {
    fn default() -> ControlBuffer {
        ControlBuffer([0; 256])
    }
}

/// What the ancillary data of one datagram said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ancillary {
    pub(super) dst4: Option<[u8; 4]>,
    pub(super) ttl: Option<u8>,
    pub(super) tos: Option<u8>,
    pub(super) dst6: Option<[u8; 16]>,
    pub(super) hop_limit: Option<u8>,
    pub(super) tclass: Option<u8>,
    /// With `UDP_GRO`: the size of each datagram of a run read as one.
    pub(super) segment: Option<usize>,
}

/// Linux's `CMSG_ALIGN`: to the size of a long.
const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<libc::c_long>() - 1) & !(size_of::<libc::c_long>() - 1)
}

/// An `int` option value; Linux gives TTL, hop limit and traffic class so.
fn int_value(data: &[u8]) -> Option<u8> {
    let bytes: [u8; 4] = data.get(..4)?.try_into().ok()?;
    u8::try_from(i32::from_ne_bytes(bytes)).ok()
}

impl Ancillary {
    /// Walks the control messages in `control`, trusting none of the
    /// lengths in it; what does not fit or is not understood is skipped.
    pub(super) fn parse(mut control: &[u8]) -> Ancillary {
        let mut found = Ancillary::default();
        let header = size_of::<libc::cmsghdr>();
        while control.len() >= header {
            // SAFETY: control holds at least a cmsghdr's bytes, which are
            // read unaligned into a plain-data copy.
            let cmsg: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control.as_ptr().cast()) };
            let len = cmsg.cmsg_len as usize;
            let Some(data) = control.get(cmsg_align(header)..len) else {
                break;
            };
            match (cmsg.cmsg_level, cmsg.cmsg_type) {
                // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
                // addr is the header's destination.
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    found.dst4 = data.get(8..12).and_then(|a| a.try_into().ok());
                }
                (libc::IPPROTO_IP, libc::IP_TTL) => found.ttl = int_value(data),
                // One byte, unlike the others.
                (libc::IPPROTO_IP, libc::IP_TOS) => found.tos = data.first().copied(),
                // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    found.dst6 = data.get(..16).and_then(|a| a.try_into().ok());
                }
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => found.hop_limit = int_value(data),
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => found.tclass = int_value(data),
                (libc::SOL_UDP, libc::UDP_GRO) => {
                    found.segment = data
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .and_then(|b| usize::try_from(i32::from_ne_bytes(b)).ok())
                        .filter(|&n| n > 0);
                }
                _ => {}
            }
            control = control.get(cmsg_align(len)..).unwrap_or_default();
        }
        found
    }
}

/// What goes beside a run of ESP-in-UDP datagrams sent over IPv4: the
/// source address (`IP_PKTINFO`), TOS and TTL of their outer header, and,
/// for a run of more than one, the size to cut it into (`UDP_SEGMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outgoing {
    pub(super) src: [u8; 4],
    pub(super) tos: u8,
    pub(super) ttl: u8,
    pub(super) segment: Option<u16>,
}

impl Outgoing {
    /// Writes the control messages into `out`; returns their length.
    pub(super) fn write(&self, out: &mut ControlBuffer) -> usize {
        // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
        // spec_dst is the source address; no interface is forced.
        let mut pktinfo = [0u8; 12];
        pktinfo[4..8].copy_from_slice(&self.src);
        let mut at = 0;
        at += put(
            &mut out.0[at..],
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &pktinfo,
        );
        let tos = i32::from(self.tos).to_ne_bytes();
        at += put(&mut out.0[at..], libc::IPPROTO_IP, libc::IP_TOS, &tos);
        let ttl = i32::from(self.ttl).to_ne_bytes();
        at += put(&mut out.0[at..], libc::IPPROTO_IP, libc::IP_TTL, &ttl);
        if let Some(size) = self.segment {
            at += put(
                &mut out.0[at..],
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                &size.to_ne_bytes(),
            );
        }
        at
    }
}

/// Writes one control message at the start of `out`; returns the room it
/// takes. The four messages [`Outgoing`] writes fit a [`ControlBuffer`]
/// many times over.
fn put(out: &mut [u8], level: libc::c_int, kind: libc::c_int, data: &[u8]) -> usize {
    let header = cmsg_align(size_of::<libc::cmsghdr>());
    let len = header + data.len();
    let space = cmsg_align(len);
    out[..space].fill(0);
    // SAFETY: an all-zero cmsghdr is valid plain data.
    let mut cmsg: libc::cmsghdr = unsafe { std::mem::zeroed() };
    cmsg.cmsg_len = len as _;
    cmsg.cmsg_level = level;
    cmsg.cmsg_type = kind;
    // SAFETY: out holds at least a cmsghdr's bytes (space >= header); the
    // write is unaligned-safe.
    unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast(), cmsg) };
    out[header..len].copy_from_slice(data);
    space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsg_parsing_trusts_no_length() {
        assert_eq!(Ancillary::parse(&[]), Ancillary::default());
        assert_eq!(Ancillary::parse(&[0xff; 7]), Ancillary::default());
        let header = size_of::<libc::cmsghdr>();
        let data_at = cmsg_align(header);
        let cmsg = |len: usize, level: libc::c_int, kind: libc::c_int, data: &[u8]| {
            // SAFETY: cmsghdr is plain data; zero is a valid start.
            let mut c: libc::cmsghdr = unsafe { std::mem::zeroed() };
            c.cmsg_len = len as _;
            c.cmsg_level = level;
            c.cmsg_type = kind;
            // SAFETY: viewing a local plain-data struct as its bytes.
            let raw = unsafe { std::slice::from_raw_parts((&raw const c).cast::<u8>(), header) };
            let mut bytes = raw.to_vec();
            bytes.resize(data_at, 0);
            bytes.extend_from_slice(data);
            bytes.resize(cmsg_align(bytes.len()), 0);
            bytes
        };
        let ttl = cmsg(
            data_at + 4,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            &200i32.to_ne_bytes(),
        );
        let tos = cmsg(data_at + 1, libc::IPPROTO_IP, libc::IP_TOS, &[0xb8]);
        let mut both = ttl.clone();
        both.extend_from_slice(&tos);
        let found = Ancillary::parse(&both);
        assert_eq!((found.ttl, found.tos), (Some(200), Some(0xb8)));
        // Lengths that lie: past the end, shorter than a header, zero.
        for len in [both.len() + 1, header - 1, 0, usize::MAX >> 1] {
            let lie = cmsg(len, libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes());
            assert_eq!(Ancillary::parse(&lie), Ancillary::default(), "{len}");
        }
        // Data too short for what the type says, and values out of range.
        let short = cmsg(data_at + 2, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[1; 2]);
        assert_eq!(Ancillary::parse(&short), Ancillary::default());
        let big = cmsg(
            data_at + 4,
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &300i32.to_ne_bytes(),
        );
        assert_eq!(Ancillary::parse(&big), Ancillary::default());
    }
}
