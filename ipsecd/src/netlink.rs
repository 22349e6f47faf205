//! A synchronous rtnetlink client: one request, its acknowledgement or
//! its dump, at a time. The messages themselves come from
//! `netlink-packet-route`; this only frames them and reads the answers,
//! so that routes and rules change without running `ip`.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::io;

/// An rtnetlink socket.
#[derive(Debug)]
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Dumps filtered by the kernel (by table), and errors that say why.
        socket.set_netlink_get_strict_chk(true)?;
        let _ = socket.set_ext_ack(true);
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Sends a request that changes something (with `flags` such as
    /// `NLM_F_CREATE | NLM_F_REPLACE`) and waits for its acknowledgement.
    pub fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        let mut done = false;
        self.receive(seq, |payload| match payload {
            NetlinkPayload::Error(e) => {
                done = true;
                match e.code {
                    None => Ok(true),
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                }
            }
            _ => Ok(false),
        })?;
        if done {
            Ok(())
        } else {
            Err(io::Error::other("netlink: no acknowledgement"))
        }
    }

    /// Sends a dump request; returns every message of the answer.
    pub fn dump(&mut self, message: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut found = Vec::new();
        self.receive(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                found.push(m);
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) => match e.code {
                None => Ok(true),
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
            },
            _ => Ok(false),
        })?;
        Ok(found)
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads the answers to request `seq`, handing each payload to `each`
    /// until it says the answer is complete.
    fn receive(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> io::Result<bool>,
    ) -> io::Result<()> {
        loop {
            let (datagram, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = message.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len.next_multiple_of(4);
                // An answer to an earlier request that gave up waiting.
                if message.header.sequence_number != seq {
                    continue;
                }
                if each(message.payload)? {
                    return Ok(());
                }
            }
        }
    }
}
