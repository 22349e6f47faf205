//! Macro definitions: `name = value` in the file and `-D name=value` on the
//! command line (which the file cannot override).

use crate::lexer::MacroTable;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct Macro {
    value: Arc<str>,
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
    pub fn define(&mut self, name: &str, value: &str, persistent: bool) -> bool {
        if self.table.get(name).is_some_and(|m| m.persistent) {
            return false;
        }
        self.next_order += 1;
        self.table.insert(
            name.to_owned(),
            Macro {
                value: Arc::from(value),
                persistent,
                used: false,
                order: self.next_order,
            },
        );
        true
    }

    /// Names of the macros never expanded, in the order they were defined.
    pub fn unused(&self) -> Vec<&str> {
        let mut unused: Vec<(&str, u64)> = self
            .table
            .iter()
            .filter(|(_, m)| !m.used)
            .map(|(name, m)| (name.as_str(), m.order))
            .collect();
        unused.sort_by_key(|&(_, order)| order);
        unused.into_iter().map(|(name, _)| name).collect()
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
    fn expand(&mut self, name: &str) -> Option<Arc<str>> {
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
        assert!(m.define("peer", "1.1.1.1", true));
        assert!(!m.define("peer", "2.2.2.2", false));
        assert_eq!(&*m.expand("peer").unwrap(), "1.1.1.1");
        assert!(m.define("x", "a", false));
        assert!(m.define("x", "b", false));
        assert!(m.define("y", "c", false));
        assert_eq!(m.unused(), vec!["x", "y"]);
    }
}
