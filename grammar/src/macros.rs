//! Macro definitions: `name = value` in the file and `-D name=value` on the
//! command line (which the file cannot override).

use crate::lexer::MacroTable;
use crate::secret::{SecretText, text_of};
use crate::source::Span;
use std::collections::HashMap;

#[derive(Debug)]
struct Macro {
    value: SecretText,
    /// Where the file defined it (`-D` definitions have no place).
    span: Option<Span>,
    persistent: bool,
    used: bool,
    /// Definition order, for reporting unused macros as OpenBSD lists them.
    order: u64,
}

#[derive(Debug, Default)]
pub struct Macros {
    table: HashMap<String, Macro>,
    next_order: u64,
}

impl Macros {
    /// Defines or replaces a macro. A persistent (command-line) definition
    /// is never replaced; returns whether the definition took effect.
    pub fn define(
        &mut self,
        name: &str,
        value: &str,
        persistent: bool,
        span: Option<Span>,
    ) -> bool {
        if self.table.get(name).is_some_and(|m| m.persistent) {
            return false;
        }
        self.next_order += 1;
        self.table.insert(
            name.to_owned(),
            Macro {
                value: text_of(value.as_bytes()),
                span,
                persistent,
                used: false,
                order: self.next_order,
            },
        );
        true
    }

    /// The macros never expanded and where they were defined, in the
    /// order they were defined.
    pub fn unused(&self) -> Vec<(&str, Option<Span>)> {
        let mut unused: Vec<(&str, &Macro)> = self
            .table
            .iter()
            .filter(|(_, m)| !m.used)
            .map(|(name, m)| (name.as_str(), m))
            .collect();
        unused.sort_by_key(|&(_, m)| m.order);
        unused.into_iter().map(|(name, m)| (name, m.span)).collect()
    }

    /// Names that look like `name`, for "did you mean" notes.
    pub fn similar(&self, name: &str) -> Option<&str> {
        self.table
            .keys()
            .map(|k| (crate::suggest::distance(k, name), k))
            .filter(|&(d, k)| d <= 2 && d < k.len().max(name.len()))
            .min()
            .map(|(_, k)| k.as_str())
    }
}

impl MacroTable for Macros {
    fn expand(&mut self, name: &str) -> Option<SecretText> {
        let m = self.table.get_mut(name)?;
        m.used = true;
        Some(m.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definitions_win() {
        let mut m = Macros::default();
        assert!(m.define("peer", "1.1.1.1", true, None));
        assert!(!m.define("peer", "2.2.2.2", false, None));
        assert_eq!(m.expand("peer").unwrap().as_str(), "1.1.1.1");
        assert!(m.define("x", "a", false, None));
        assert!(m.define("x", "b", false, None));
        assert!(m.define("y", "c", false, None));
        let names: Vec<&str> = m.unused().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["x", "y"]);
    }
}
