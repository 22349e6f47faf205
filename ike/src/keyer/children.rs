//! An IKE SA's Child SAs: the one set up with it, and those the peer
//! adds later with CREATE_CHILD_SA for another rule of the same peer
//! (strongSwan does, for a connection of several children). Each is
//! known by the SPI it receives on.

use super::*;

/// A Child SA added to an IKE SA after the first, for rule `policy`.
#[derive(Debug)]
pub(super) struct Extra {
    pub policy: usize,
    pub child: ChildSa,
    /// When it went in, and when ipsecd will warn that it needs rekeying.
    pub since: u64,
    pub rekey_at: Option<u64>,
}

impl IkeSa {
    /// Every current Child SA, with its rule.
    pub(super) fn children(&self) -> Vec<(usize, &ChildSa)> {
        let mut out = Vec::new();
        if let State::Up(session) = &self.state
            && !self.child_gone
        {
            out.push((self.policy, &session.sa.child));
        }
        out.extend(self.extra.iter().map(|e| (e.policy, &e.child)));
        out
    }

    /// The current Child SA that receives on `spi_in`, with its rule.
    pub(super) fn child(&self, spi_in: u32) -> Option<(usize, &ChildSa)> {
        self.children()
            .into_iter()
            .find(|(_, c)| c.spi_in == spi_in)
    }

    /// The inbound SPI of the current Child SA that sends on `spi_out`
    /// (the SPI the peer receives on, which is how it names it).
    pub(super) fn child_sending(&self, spi_out: u32) -> Option<u32> {
        self.children()
            .into_iter()
            .find(|(_, c)| c.spi_out == spi_out)
            .map(|(_, c)| c.spi_in)
    }

    /// Whether the first Child SA is the one receiving on `spi_in`.
    pub(super) fn is_first(&self, spi_in: u32) -> bool {
        matches!(&self.state, State::Up(s) if !self.child_gone && s.sa.child.spi_in == spi_in)
    }
}
