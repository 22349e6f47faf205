//! Cookies (RFC 7296 §2.6): under a flood of IKE_SA_INIT requests, a
//! responder keeps no state for a request until the initiator shows it
//! can receive at its address, by returning a cookie the responder can
//! check without having stored it: a MAC, under a secret of the
//! responder's, of the initiator's nonce, address and SPI.

use crate::crypto::prf::Prf;
use crate::wire::{Body, Message, Notify, NotifyType, Payload};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A responder's cookie secret.
#[derive(Debug)]
pub struct Cookies {
    secret: Zeroizing<[u8; 32]>,
}

impl Cookies {
    /// Cookies under `secret`, which must be random and stay put while
    /// requests may come back with its cookies.
    pub fn new(secret: [u8; 32]) -> Cookies {
        Cookies {
            secret: Zeroizing::new(secret),
        }
    }

    /// The cookie for a request from `from` with `nonce` and `spi_i`.
    pub fn cookie(&self, from: SocketAddr, nonce: &[u8], spi_i: u64) -> Vec<u8> {
        let ip = match from.ip() {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        Prf::HmacSha256
            .prf(&*self.secret, &[nonce, &ip, &spi_i.to_be_bytes()])
            .to_vec()
    }

    /// Whether the IKE_SA_INIT request `m` from `from` carries the right
    /// cookie (first, as RFC 7296 asks).
    pub fn carries(&self, m: &Message, from: SocketAddr) -> bool {
        let Some(Payload {
            body: Body::Notify(n),
            ..
        }) = m.payloads.first()
        else {
            return false;
        };
        let nonce = m.payloads.iter().find_map(|p| match &p.body {
            Body::Nonce(n) => Some(n.as_slice()),
            _ => None,
        });
        match nonce {
            Some(nonce) if n.kind == NotifyType::COOKIE => {
                let expected = self.cookie(from, nonce, m.header.spi_i);
                bool::from(expected.as_slice().ct_eq(&n.data))
            }
            _ => false,
        }
    }

    /// The response that asks the initiator of `m` to come back with a
    /// cookie.
    pub fn challenge(&self, m: &Message, from: SocketAddr) -> Option<Vec<u8>> {
        let nonce = m.payloads.iter().find_map(|p| match &p.body {
            Body::Nonce(n) => Some(n.as_slice()),
            _ => None,
        })?;
        let cookie = self.cookie(from, nonce, m.header.spi_i);
        let mut header = m.header;
        header.spi_r = 0;
        header.flags = crate::wire::Flags::RESPONSE;
        Message {
            header,
            payloads: vec![Payload::new(Body::Notify(Notify::new(
                NotifyType::COOKIE,
                cookie,
            )))],
        }
        .encode()
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ExchangeType, Flags, Header, PayloadType};

    fn request(spi_i: u64, nonce: u8, cookie: Option<Vec<u8>>) -> Message {
        let mut payloads: Vec<Payload> = cookie
            .map(|c| Payload::new(Body::Notify(Notify::new(NotifyType::COOKIE, c))))
            .into_iter()
            .collect();
        payloads.push(Payload::new(Body::Nonce(vec![nonce; 32])));
        Message {
            header: Header {
                spi_i,
                spi_r: 0,
                next: PayloadType::NONCE,
                version: 0x20,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags::INITIATOR,
                message_id: 0,
                length: 0,
            },
            payloads,
        }
    }

    #[test]
    fn only_the_cookie_given_to_that_address_nonce_and_spi_is_taken() {
        let cookies = Cookies::new([7; 32]);
        let from: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let first = request(1, 0xaa, None);
        assert!(!cookies.carries(&first, from));
        let challenge = Message::decode(&cookies.challenge(&first, from).unwrap()).unwrap();
        assert!(challenge.header.flags.contains(Flags::RESPONSE));
        assert_eq!(challenge.header.spi_r, 0);
        let cookie = challenge
            .notifications(NotifyType::COOKIE)
            .next()
            .unwrap()
            .data
            .clone();
        assert!(cookies.carries(&request(1, 0xaa, Some(cookie.clone())), from));
        // Elsewhere, for another SA, or with another nonce, it is no good.
        let elsewhere: SocketAddr = "192.0.2.9:500".parse().unwrap();
        assert!(!cookies.carries(&request(1, 0xaa, Some(cookie.clone())), elsewhere));
        assert!(!cookies.carries(&request(2, 0xaa, Some(cookie.clone())), from));
        assert!(!cookies.carries(&request(1, 0xab, Some(cookie.clone())), from));
        // Nor under another daemon's secret.
        assert!(!Cookies::new([8; 32]).carries(&request(1, 0xaa, Some(cookie)), from));
    }
}
