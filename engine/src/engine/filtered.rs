//! The pf-style filter in the data path: the shell asks, for each packet
//! that goes in or out through the enc interface or a bridge port,
//! whether the filter lets it; a block is a `filtered` drop, and a rule
//! with `log` copies the packet into the enc capture. Clients read the
//! rules and their counters with an `X_FILTERDUMP`.

use super::datapath::Tap;
use super::*;
use crate::filter::{Action, Packet, Way};
use crate::spd::{Direction, PacketKey};
use crate::wire::layout::Layout;

impl Engine {
    /// Whether the filter lets `packet` go `way` through `interface`.
    /// What cannot be read as IP is not the filter's to judge (the data
    /// path refuses it on its own).
    pub fn filter_allows(
        &mut self,
        packet: &[u8],
        interface: &str,
        way: Way,
        events: &mut Events,
    ) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let Ok(layout) = Layout::of(packet) else {
            return true;
        };
        let direction = match way {
            Way::In => Direction::In,
            Way::Out => Direction::Out,
        };
        let key = PacketKey::of(&layout, packet, direction);
        let decision = self.filter.decide(&Packet {
            interface,
            way,
            key: &key,
            len: layout.len,
        });
        if decision.log && self.capture {
            events.taps.push(Tap {
                inbound: way == Way::In,
                spi: 0,
                flags: 0,
                packet: packet[..layout.len].to_vec(),
            });
        }
        if decision.action == Action::Block {
            self.counters.drop(DropReason::Filtered, way == Way::In);
            return false;
        }
        true
    }

    /// Every filter rule, in order, as `X_FILTERDUMP` records with what
    /// each decided in and out.
    pub(super) fn filterdump(&mut self, from: ClientId, msg: &Message) -> Handled {
        let records = self
            .filter
            .rules()
            .iter()
            .zip(self.filter.counters())
            .enumerate()
            .map(|(number, (rule, c))| {
                let mut record = Message::new(msg.header);
                let written = pfkey::FilterRule::new(number as u32, rule.line, &rule.text);
                push(
                    &mut record,
                    ExtType::X_FILTER_RULE,
                    Body::FilterRule(written),
                );
                let counter = pfkey::Counter {
                    ipackets: c.inbound.packets,
                    ibytes: c.inbound.bytes,
                    opackets: c.outbound.packets,
                    obytes: c.outbound.bytes,
                    ..pfkey::Counter::default()
                };
                push(
                    &mut record,
                    ExtType::X_COUNTER,
                    Body::Counter(Box::new(counter)),
                );
                record
            })
            .collect();
        self.records(from, msg, records)
    }
}
