//! Views over packet headers, in the style of smoltcp's `wire` module.
//!
//! Each header has a `Packet<T>` view over a byte buffer. The contract:
//!
//! - `Packet::new_checked(buffer)` is for bytes from the wire. It succeeds
//!   only when every fixed field the view's getters read lies inside the
//!   buffer (and any length field the header carries agrees with it), so
//!   the getters that follow never panic.
//! - `Packet::new_unchecked(buffer)` is for emission into a buffer the
//!   caller sized with the header's `HEADER_LEN`; getters and setters on a
//!   shorter buffer panic, which is a bug in the caller, not bad input.
//!
//! Nothing here allocates or does I/O. Errors are one small `Copy` enum so
//! that the data path can count drops by reason.

pub mod ah;
pub mod checksum;
pub mod esp;
pub mod etherip;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod layout;
pub mod proto;
pub mod tcp;
pub mod udp;

use std::fmt;

/// Why bytes could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the header (or the length it declares) does.
    Truncated,
    /// The version field names another protocol.
    BadVersion,
    /// A length field contradicts itself or the buffer.
    BadLength,
    /// The header checksum does not match.
    BadChecksum,
    /// ESP padding that is not what the sender must have written.
    BadPadding,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad version",
            Error::BadLength => "bad length",
            Error::BadChecksum => "bad checksum",
            Error::BadPadding => "bad padding",
        })
    }
}

impl std::error::Error for Error {}

/// What the views return.
pub type Result<T> = std::result::Result<T, Error>;
