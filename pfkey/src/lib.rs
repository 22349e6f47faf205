//! PF_KEY v2 (RFC 2367) in OpenBSD's dialect, as bytes and values.
//!
//! A [`Message`] is a [`Header`] and a list of [`Extension`]s, each a type
//! number and a [`Body`] laid out as that type requires. [`Message::decode`]
//! reads any frame whose lengths are consistent, keeping numbers it does
//! not know; [`Message::encode`] writes it back byte for byte.
//! [`validate`] judges a decoded message as OpenBSD's kernel does and
//! names the `errno` it would answer.
//!
//! The crate does no I/O.

#![warn(missing_docs)]

pub mod codec;
pub mod consts;
pub mod display;
pub mod ext;
pub mod msg;
pub mod sockaddr;
pub mod validate;

pub use consts::*;
pub use display::Monitor;
pub use ext::{
    Address, Alg, Body, Comb, Counter, Data, Extension, FilterRule, Identity, Iface, Key, Lifetime,
    Proposal, Protocol, Sa,
};
pub use ext::{Sensitivity, SpiRange, Supported, Tag, UdpEncap};
pub use msg::{Header, Message, decode_stream, encode_stream};
pub use sockaddr::SockAddr;

use std::fmt;

/// Why bytes are not a PF_KEY message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than a field needs.
    Truncated,
    /// The header's length is not the number of bytes given.
    MessageLength,
    /// An extension claims less than one unit.
    ExtTooShort,
    /// An extension runs past the end of the message.
    ExtOverrun,
    /// An extension's length does not suit its type.
    ExtLength(ExtType),
    /// Padding that is not zero.
    Padding,
    /// A body that does not suit the extension type it was given.
    WrongBody(ExtType),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("message ends inside a field"),
            DecodeError::MessageLength => f.write_str("message length does not match its size"),
            DecodeError::ExtTooShort => f.write_str("extension shorter than its header"),
            DecodeError::ExtOverrun => f.write_str("extension runs past the end of the message"),
            DecodeError::ExtLength(t) => write!(f, "wrong length for a {t} extension"),
            DecodeError::Padding => f.write_str("padding is not zero"),
            DecodeError::WrongBody(t) => write!(f, "body does not suit a {t} extension"),
        }
    }
}

impl std::error::Error for DecodeError {}
