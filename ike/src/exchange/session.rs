//! An authenticated IKE SA's messages (RFC 7296 §2.1–2.2): each end
//! numbers its own requests (the original initiator from 2, after
//! IKE_SA_INIT and IKE_AUTH; the original responder from 0), every message
//! is sealed with the sender's keys, a request the peer repeats gets the
//! same response again, and anything out of its window is dropped.

use super::handshake::{Established, Failure};
use crate::wire::{ExchangeType, Flags, Header, Payload, PayloadType, VERSION};
use rand_core::CryptoRngCore;

/// An IKE SA that both ends have authenticated.
#[derive(Debug)]
pub struct Session {
    pub sa: Established,
    /// The ID of this end's next request.
    next_request: u32,
    /// The ID the peer's next request must carry.
    peer_next: u32,
    /// The last response sent, for a request the peer repeats.
    last_response: Option<(u32, Vec<u8>)>,
}

/// What came in over the session.
#[derive(Debug)]
pub enum Incoming {
    /// A new request from the peer: answer it with [`Session::respond`].
    Request(Header, Vec<Payload>),
    /// A response to this end's request `Header::message_id`.
    Response(Header, Vec<Payload>),
    /// The peer repeated its last request: send this again.
    Repeat(Vec<u8>),
}

impl Session {
    /// The session after IKE_AUTH. Each end counts its own requests: the
    /// original initiator's IKE_SA_INIT and IKE_AUTH were 0 and 1, the
    /// original responder has sent none yet.
    pub fn new(sa: Established) -> Session {
        let (next_request, peer_next) = if sa.initiator { (2, 0) } else { (0, 2) };
        Session {
            sa,
            next_request,
            peer_next,
            last_response: None,
        }
    }

    /// A session for an IKE SA made by rekeying another: both ends count
    /// their requests from 0.
    pub fn rekeyed(sa: Established) -> Session {
        Session {
            sa,
            next_request: 0,
            peer_next: 0,
            last_response: None,
        }
    }

    /// Keeps the IKE_AUTH response, for an initiator that repeats its
    /// request (message ID 1).
    pub fn remember_auth_response(&mut self, bytes: Vec<u8>) {
        self.last_response = Some((1, bytes));
    }

    /// The IKE SA's SPIs.
    pub fn spis(&self) -> (u64, u64) {
        (self.sa.spi_i, self.sa.spi_r)
    }

    fn flags(&self, response: bool) -> Flags {
        let mut f = if self.sa.initiator {
            Flags::INITIATOR
        } else {
            Flags(0)
        };
        if response {
            f = f.with(Flags::RESPONSE);
        }
        f
    }

    /// This end's sending keys: the initiator's or the responder's.
    fn send_keys(&self) -> (&[u8], &[u8]) {
        let k = &self.sa.keys;
        if self.sa.initiator {
            (&k.ei, &k.ai)
        } else {
            (&k.er, &k.ar)
        }
    }

    fn receive_keys(&self) -> (&[u8], &[u8]) {
        let k = &self.sa.keys;
        if self.sa.initiator {
            (&k.er, &k.ar)
        } else {
            (&k.ei, &k.ai)
        }
    }

    fn seal(
        &self,
        exchange: ExchangeType,
        response: bool,
        id: u32,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, Failure> {
        let header = Header {
            spi_i: self.sa.spi_i,
            spi_r: self.sa.spi_r,
            next: PayloadType::NONE,
            version: VERSION,
            exchange,
            flags: self.flags(response),
            message_id: id,
            length: 0,
        };
        let (e, a) = self.send_keys();
        self.sa
            .suite
            .protection
            .seal(header, payloads, e, a, rng)
            .map_err(|_| Failure::Malformed("message too long"))
    }

    /// A new request of `exchange` with `payloads`; returns its message
    /// ID and bytes.
    pub fn request(
        &mut self,
        exchange: ExchangeType,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(u32, Vec<u8>), Failure> {
        let id = self.next_request;
        let bytes = self.seal(exchange, false, id, payloads, rng)?;
        self.next_request += 1;
        Ok((id, bytes))
    }

    /// The response to the peer's request `request`.
    pub fn respond(
        &mut self,
        request: &Header,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, Failure> {
        let bytes = self.seal(request.exchange, true, request.message_id, payloads, rng)?;
        self.last_response = Some((request.message_id, bytes.clone()));
        Ok(bytes)
    }

    /// Opens a message for this SA. Requests must be the next the peer
    /// may send (or the last, repeated); responses must answer a request
    /// this end sent.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Incoming, Failure> {
        let head = Header::peek(bytes).map_err(|_| Failure::Malformed("header"))?;
        if (head.spi_i, head.spi_r) != self.spis() {
            return Err(Failure::Malformed("another SA's message"));
        }
        // The peer's flag says which end it is.
        if head.flags.contains(Flags::INITIATOR) == self.sa.initiator {
            return Err(Failure::Malformed("the initiator flag is this end's"));
        }
        let is_response = head.flags.contains(Flags::RESPONSE);
        if !is_response {
            if let Some((id, last)) = &self.last_response
                && *id == head.message_id
            {
                // Opened first, so a forgery cannot draw a response.
                let (e, a) = self.receive_keys();
                self.sa
                    .suite
                    .protection
                    .open(bytes, e, a)
                    .map_err(Failure::Unprotected)?;
                return Ok(Incoming::Repeat(last.clone()));
            }
            if head.message_id != self.peer_next {
                return Err(Failure::Malformed("a request out of the window"));
            }
        } else if head.message_id >= self.next_request {
            return Err(Failure::Malformed("a response to no request"));
        }
        let (e, a) = self.receive_keys();
        let payloads = self
            .sa
            .suite
            .protection
            .open(bytes, e, a)
            .map_err(Failure::Unprotected)?;
        if is_response {
            Ok(Incoming::Response(head, payloads))
        } else {
            self.peer_next += 1;
            Ok(Incoming::Request(head, payloads))
        }
    }
}
