//! The SPD across restarts. OpenBSD's flows live in the kernel and outlive
//! any daemon; here the "kernel" is a process, so the shell saves the flows
//! and a new run restores them before it touches the host's routes. The
//! guard the old run installed then matches the restored flows exactly and
//! nothing is removed in between: no window of clear text.
//!
//! The saved form is the stream of X_ADDFLOW messages that would add the
//! flows again, the same frames `ipsecctl -w` writes. It holds no keys:
//! SAs are not saved, and a restored `require` flow drops (and acquires)
//! until its SAs are loaded again.

use super::*;
use pfkey::decode_stream;

/// Why a saved stream was refused; nothing of it was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    /// Which message (from 0) was at fault.
    pub index: usize,
    pub why: String,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "saved flow {}: {}", self.index + 1, self.why)
    }
}

impl Engine {
    /// Every flow, in the order it was added, as the X_ADDFLOW message
    /// that adds it again.
    pub fn saved_flows(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (sel, policy) in self.spd.iter() {
            let header = Header::new(MsgType::X_ADDFLOW, policy.satype, 0, 0);
            let mut msg = Message::new(header);
            flows::describe(&mut msg, sel, Some(policy));
            out.extend_from_slice(&msg.encode());
        }
        out
    }

    /// Adds the flows of a stream [`Engine::saved_flows`] wrote; returns
    /// how many. The stream is checked whole first, as any client's
    /// message would be: a damaged one changes nothing.
    pub fn restore_flows(&mut self, stream: &[u8]) -> Result<usize, RestoreError> {
        let messages = decode_stream(stream).map_err(|e| RestoreError {
            index: 0,
            why: format!("not a stream of PF_KEY messages: {e}"),
        })?;
        for (index, msg) in messages.iter().enumerate() {
            let refused = |why: String| RestoreError { index, why };
            if msg.header.msg_type != MsgType::X_ADDFLOW {
                return Err(refused(format!("{:?} is not a flow", msg.header.msg_type)));
            }
            validate::check_request(msg, msg.header.pid)
                .and_then(|()| flows::check(msg))
                .map_err(|e| refused(format!("refused with {e:?}")))?;
        }
        let mut restored = 0;
        for (index, msg) in messages.iter().enumerate() {
            match self.addflow(msg) {
                Ok(_) => restored += 1,
                // The checks above are the ones a client's message gets, so
                // this is a flow the engine itself refuses: say which.
                Err(e) => {
                    return Err(RestoreError {
                        index,
                        why: format!("refused with {e:?}"),
                    });
                }
            }
        }
        self.changes += 1;
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(conf: &str) -> Vec<Vec<u8>> {
        crate::engine::tests::load_messages(conf)
    }

    #[test]
    fn flows_come_back_as_they_were() {
        let mut first = Engine::new([7; 32]);
        let conf = "flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require\n\
                    flow ah proto tcp from 2001:db8::1 to 2001:db8::2 port 22 peer 2001:db8::2\n\
                    flow from 10.9.0.0/16 to 10.8.0.0/16 type deny\n";
        for m in compiled(conf) {
            first.handle(1, crate::engine::tests::PID, &m, 0);
        }
        assert_eq!(first.spd.len(), 6);
        let saved = first.saved_flows();

        let mut second = Engine::new([8; 32]);
        assert_eq!(second.restore_flows(&saved), Ok(6));
        let flows = |e: &Engine| -> Vec<(Selector, Policy)> {
            e.spd.iter().map(|(s, p)| (*s, p.clone())).collect()
        };
        assert_eq!(flows(&first), flows(&second));
        assert_eq!(second.saved_flows(), saved);
        assert_eq!(second.enc_routes(), first.enc_routes());
    }

    #[test]
    fn a_damaged_stream_restores_nothing() {
        let mut first = Engine::new([7; 32]);
        let conf = "flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2\n";
        for m in compiled(conf) {
            first.handle(1, crate::engine::tests::PID, &m, 0);
        }
        let saved = first.saved_flows();
        let mut engine = Engine::new([8; 32]);
        // Cut short.
        assert!(engine.restore_flows(&saved[..saved.len() - 8]).is_err());
        // A message that is not a flow.
        let mut other = saved.clone();
        other[1] = MsgType::FLUSH.0;
        assert!(engine.restore_flows(&other).is_err());
        // A flow the checks refuse: its direction is neither in nor out.
        let mut bad = saved.clone();
        let second = Message::peek_len(&saved).unwrap();
        let mut msg = Message::decode(&saved[second..]).unwrap();
        if let Some(Body::Protocol(kind)) = msg
            .extensions
            .iter_mut()
            .find(|e| e.ext_type == ExtType::X_FLOW_TYPE)
            .map(|e| &mut e.body)
        {
            kind.direction = 9;
        }
        bad.truncate(second);
        bad.extend_from_slice(&msg.encode());
        let err = engine.restore_flows(&bad).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(engine.spd.is_empty(), "nothing restored");
    }
}
