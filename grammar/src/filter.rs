//! The language of `ipsecd -p`: pf-style filter rules for the enc
//! interface and the bridge ports, a subset of pf.conf(5).
//!
//! ```text
//! table <trusted> { 192.168.2.0/24, 2001:db8:2::/48 }
//! block in on enc0 all
//! pass in quick on enc0 inet proto tcp from <trusted> to 192.168.1.10 port 22
//! pass out on enc0 proto { icmp, icmp6 }
//! block in log on em0 from any to 10.0.0.0/8 port 1000:2000
//! ```
//!
//! A rule is `pass` or `block`, then in this order and each optional:
//! `in` or `out`, `log`, `quick`, `on IF`, `inet` or `inet6`, `proto P`
//! or `proto { P, ... }`, and either `all` or `from ADDRS [port PORTS]`
//! and/or `to ADDRS [port PORTS]`. ADDRS is `any`, an address or network
//! (`!` negates it), a `<table>` (`!<table>`), or a `{ list }` of
//! addresses; PORTS is a port test or a `{ list }` of them: `N`, `= N`,
//! `!= N`, `< N`, `<= N`, `> N`, `>= N`, `A:B` (A to B), `A >< B`
//! (between) or `A <> B` (outside). Protocols are numbers or the names
//! in [`protocol_number`]; ports are numbers. `#` starts a comment and a
//! backslash at the end of a line joins the next to it.
//!
//! Like the rest of this crate: no I/O, and every problem reported, once,
//! with its place in the file.

use crate::diag::Diagnostic;
use crate::source::{FileId, SourceMap, Span};
use std::net::IpAddr;

/// The longest rules file read, and the most rules and table entries: a
/// filter is written by hand.
pub const MAX_RULES: usize = 10_000;
pub const MAX_TABLE_ENTRIES: usize = 100_000;

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub span: Span,
    /// The rule as written, on one line, with single spaces.
    pub text: String,
    pub block: bool,
    /// `Some(true)` for `in`, `Some(false)` for `out`.
    pub inbound: Option<bool>,
    pub log: bool,
    pub quick: bool,
    pub on: Option<String>,
    /// `Some(false)` for `inet`, `Some(true)` for `inet6`.
    pub inet6: Option<bool>,
    pub protos: Vec<u8>,
    pub from: Endpoint,
    pub to: Endpoint,
}

/// `from` or `to`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub addrs: Addrs,
    pub ports: Vec<PortTest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Addrs {
    #[default]
    Any,
    List(Vec<AddrItem>),
    Table {
        name: String,
        negated: bool,
    },
}

/// An address or network, perhaps negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrItem {
    pub addr: IpAddr,
    pub prefix: u8,
    pub negated: bool,
}

/// A port test, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortTest {
    Eq(u16),
    Ne(u16),
    Lt(u16),
    Le(u16),
    Gt(u16),
    Ge(u16),
    Range(u16, u16),
    Between(u16, u16),
    Outside(u16, u16),
}

/// A table as defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub span: Span,
    pub name: String,
    pub entries: Vec<AddrItem>,
}

/// A rules file: its tables and rules, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RulesFile {
    pub tables: Vec<Table>,
    pub rules: Vec<Rule>,
}

/// IP protocol names a rule may use.
pub fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "igmp" => 2,
        "ipencap" | "ipip" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmp6" | "ipv6-icmp" => 58,
        "etherip" => 97,
        "ipcomp" => 108,
        "sctp" => 132,
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    LBrace,
    RBrace,
    Comma,
    Bang,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Between,
    Outside,
    Newline,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("\"{w}\""),
            Tok::LBrace => "\"{\"".into(),
            Tok::RBrace => "\"}\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Bang => "\"!\"".into(),
            Tok::Lt => "\"<\"".into(),
            Tok::Le => "\"<=\"".into(),
            Tok::Gt => "\">\"".into(),
            Tok::Ge => "\">=\"".into(),
            Tok::Eq => "\"=\"".into(),
            Tok::Ne => "\"!=\"".into(),
            Tok::Between => "\"><\"".into(),
            Tok::Outside => "\"<>\"".into(),
            Tok::Newline => "the end of the line".into(),
        }
    }
}

/// Splits the text into tokens with their byte ranges; a line ends with
/// a `Newline` token (a backslash before the newline joins the lines).
fn lex(text: &[u8]) -> Vec<(Tok, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-');
    while i < text.len() {
        let b = text[i];
        let two = |c: u8| text.get(i + 1) == Some(&c);
        let (tok, len) = match b {
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\\' if two(b'\n') => {
                i += 2;
                continue;
            }
            b'\n' => (Tok::Newline, 1),
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b'!' if two(b'=') => (Tok::Ne, 2),
            b'!' => (Tok::Bang, 1),
            b'<' if two(b'=') => (Tok::Le, 2),
            b'<' if two(b'>') => (Tok::Outside, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if two(b'=') => (Tok::Ge, 2),
            b'>' if two(b'<') => (Tok::Between, 2),
            b'>' => (Tok::Gt, 1),
            b'=' => (Tok::Eq, 1),
            b if word(b) => {
                let start = i;
                while i < text.len() && word(text[i]) {
                    i += 1;
                }
                let w = String::from_utf8_lossy(&text[start..i]).into_owned();
                out.push((Tok::Word(w), start, i));
                continue;
            }
            other => {
                // Anything else is a word of its own, for the parser to
                // refuse where it stands.
                let w = String::from_utf8_lossy(&[other]).into_owned();
                (Tok::Word(w), 1)
            }
        };
        out.push((tok, i, i + len));
        i += len;
    }
    out.push((Tok::Newline, text.len(), text.len()));
    out
}

/// Reads a rules file: every rule and table, or every problem, each once
/// at its place.
pub fn parse(sources: &SourceMap, file: FileId) -> Result<RulesFile, Vec<Diagnostic>> {
    let tokens = lex(sources.file(file).text().as_bytes());
    let mut parser = Parser {
        sources,
        file,
        tokens,
        at: 0,
        errors: Vec::new(),
        out: RulesFile::default(),
    };
    parser.file();
    let names: Vec<&str> = parser.out.tables.iter().map(|t| t.name.as_str()).collect();
    let mut errors = parser.errors;
    for (i, table) in parser.out.tables.iter().enumerate() {
        if names[..i].contains(&table.name.as_str()) {
            errors.push(parser_error(
                sources,
                table.span,
                format!("table <{}> is defined twice", table.name),
            ));
        }
    }
    for rule in &parser.out.rules {
        for end in [&rule.from, &rule.to] {
            if let Addrs::Table { name, .. } = &end.addrs
                && !names.contains(&name.as_str())
            {
                errors.push(parser_error(
                    sources,
                    rule.span,
                    format!("table <{name}> is not defined"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(parser.out)
    } else {
        Err(errors)
    }
}

fn parser_error(sources: &SourceMap, span: Span, message: String) -> Diagnostic {
    Diagnostic::error((span.file, sources.line(span)), message).with_span(span)
}

/// A problem on the line being read: reported, and the rest of the line
/// skipped.
struct Stop;

struct Parser<'a> {
    sources: &'a SourceMap,
    file: FileId,
    tokens: Vec<(Tok, usize, usize)>,
    at: usize,
    errors: Vec<Diagnostic>,
    out: RulesFile,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at.min(self.tokens.len() - 1)].0
    }

    fn span(&self) -> Span {
        let (_, start, end) = self.tokens[self.at.min(self.tokens.len() - 1)];
        Span::new(self.file, start, end)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        tok
    }

    fn error(&mut self, message: String) -> Stop {
        let span = self.span();
        self.errors.push(parser_error(self.sources, span, message));
        Stop
    }

    fn word_is(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(x) if x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.word_is(w);
        if yes {
            self.bump();
        }
        yes
    }

    fn file(&mut self) {
        while self.at < self.tokens.len() - 1 {
            if *self.peek() == Tok::Newline {
                self.bump();
                continue;
            }
            let start = self.span();
            let done = if self.word_is("table") {
                self.table(start)
            } else {
                self.rule(start)
            };
            if done.is_ok() && *self.peek() != Tok::Newline {
                let what = self.peek().describe();
                let _ = self.error(format!("syntax error: {what} after the end of the rule"));
            }
            while !matches!(self.peek(), Tok::Newline) {
                self.bump();
            }
            if self.out.rules.len() > MAX_RULES {
                let _ = self.error(format!("more than {MAX_RULES} rules"));
                return;
            }
        }
    }

    fn table(&mut self, start: Span) -> Result<(), Stop> {
        self.bump();
        let name = self.table_name()?;
        if *self.peek() != Tok::LBrace {
            let what = self.peek().describe();
            return Err(self.error(format!(
                "syntax error: {what} where the table's {{ list }} begins"
            )));
        }
        let entries = self.addr_list()?;
        let span = start.to(self.span());
        self.out.tables.push(Table {
            span,
            name,
            entries,
        });
        Ok(())
    }

    fn table_name(&mut self) -> Result<String, Stop> {
        if self.bump() != Tok::Lt {
            return Err(self.error("syntax error: a table is named as <name>".into()));
        }
        let Tok::Word(name) = self.bump() else {
            return Err(self.error("syntax error: a table is named as <name>".into()));
        };
        if self.bump() != Tok::Gt {
            return Err(self.error("syntax error: a table is named as <name>".into()));
        }
        Ok(name)
    }

    fn rule(&mut self, start: Span) -> Result<(), Stop> {
        let block = match self.bump() {
            Tok::Word(w) if w == "block" => true,
            Tok::Word(w) if w == "pass" => false,
            other => {
                self.at -= 1;
                let what = other.describe();
                return Err(self.error(format!(
                    "syntax error: {what} where a rule (pass or block) or a table begins"
                )));
            }
        };
        let inbound = if self.eat_word("in") {
            Some(true)
        } else if self.eat_word("out") {
            Some(false)
        } else {
            None
        };
        let log = self.eat_word("log");
        let quick = self.eat_word("quick");
        let on = if self.eat_word("on") {
            match self.bump() {
                Tok::Word(w) => Some(w),
                _ => return Err(self.error("syntax error: on names an interface".into())),
            }
        } else {
            None
        };
        let inet6 = if self.eat_word("inet") {
            Some(false)
        } else if self.eat_word("inet6") {
            Some(true)
        } else {
            None
        };
        let protos = if self.eat_word("proto") {
            self.protos()?
        } else {
            Vec::new()
        };
        let (mut from, mut to) = (Endpoint::default(), Endpoint::default());
        if !self.eat_word("all") {
            if self.eat_word("from") {
                from = self.endpoint()?;
            }
            if self.eat_word("to") {
                to = self.endpoint()?;
            }
        }
        let span = start.to(self.span());
        let end = self.tokens[self.at.saturating_sub(1)].2;
        let text =
            written(&self.sources.file(self.file).text().as_bytes()[span.range().start..end]);
        self.out.rules.push(Rule {
            span,
            text,
            block,
            inbound,
            log,
            quick,
            on,
            inet6,
            protos,
            from,
            to,
        });
        Ok(())
    }

    fn protos(&mut self) -> Result<Vec<u8>, Stop> {
        if *self.peek() != Tok::LBrace {
            return Ok(vec![self.proto()?]);
        }
        self.list(Some("protocols"), Self::proto)
    }

    /// A `{ list }` of what `item` reads, commas between the items
    /// optional, on one line. Only a list `what` names must not be empty.
    fn list<T>(
        &mut self,
        what: Option<&str>,
        mut item: impl FnMut(&mut Self) -> Result<T, Stop>,
    ) -> Result<Vec<T>, Stop> {
        self.bump();
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Comma => {
                    self.bump();
                }
                Tok::Newline => {
                    return Err(self.error("syntax error: the { list } is not closed".into()));
                }
                _ => {
                    items.push(item(self)?);
                    if items.len() > MAX_TABLE_ENTRIES {
                        return Err(self.error(format!("more than {MAX_TABLE_ENTRIES} items")));
                    }
                }
            }
        }
        if let Some(what) = what
            && items.is_empty()
        {
            return Err(self.error(format!("syntax error: an empty list of {what}")));
        }
        Ok(items)
    }

    fn proto(&mut self) -> Result<u8, Stop> {
        let Tok::Word(w) = self.peek().clone() else {
            let what = self.peek().describe();
            return Err(self.error(format!("syntax error: {what} where a protocol goes")));
        };
        let number = protocol_number(&w).or_else(|| w.parse::<u8>().ok());
        let Some(number) = number else {
            return Err(self.error(format!("unknown protocol {w}")));
        };
        self.bump();
        Ok(number)
    }

    fn endpoint(&mut self) -> Result<Endpoint, Stop> {
        let addrs = if self.eat_word("any") {
            Addrs::Any
        } else {
            let negated = *self.peek() == Tok::Bang;
            if negated {
                self.bump();
            }
            match self.peek() {
                Tok::Lt => Addrs::Table {
                    name: self.table_name()?,
                    negated,
                },
                Tok::LBrace if !negated => Addrs::List(self.addr_list()?),
                _ => {
                    let mut item = self.addr()?;
                    item.negated = negated;
                    Addrs::List(vec![item])
                }
            }
        };
        let ports = if self.eat_word("port") {
            self.ports()?
        } else {
            Vec::new()
        };
        Ok(Endpoint { addrs, ports })
    }

    /// A `{ list }` of addresses, each perhaps negated; a table's may be
    /// empty.
    fn addr_list(&mut self) -> Result<Vec<AddrItem>, Stop> {
        self.list(None, |p| {
            let negated = *p.peek() == Tok::Bang;
            if negated {
                p.bump();
            }
            let mut item = p.addr()?;
            item.negated = negated;
            Ok(item)
        })
    }

    fn addr(&mut self) -> Result<AddrItem, Stop> {
        let Tok::Word(w) = self.peek().clone() else {
            let what = self.peek().describe();
            return Err(self.error(format!("syntax error: {what} where an address goes")));
        };
        let (text, prefix) = match w.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (w.as_str(), None),
        };
        let Ok(addr) = text.parse::<IpAddr>() else {
            return Err(self.error(format!("{w}: not an address (names are not looked up)")));
        };
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.map(str::parse::<u8>) {
            None => full,
            Some(Ok(p)) if p <= full => p,
            Some(_) => return Err(self.error(format!("{w}: the prefix length is at most {full}"))),
        };
        self.bump();
        Ok(AddrItem {
            addr,
            prefix,
            negated: false,
        })
    }

    fn ports(&mut self) -> Result<Vec<PortTest>, Stop> {
        if *self.peek() != Tok::LBrace {
            return Ok(vec![self.port_test()?]);
        }
        self.list(Some("ports"), Self::port_test)
    }

    fn port_test(&mut self) -> Result<PortTest, Stop> {
        let op = match self.peek() {
            Tok::Eq => Some(PortTest::Eq as fn(u16) -> PortTest),
            Tok::Ne => Some(PortTest::Ne as fn(u16) -> PortTest),
            Tok::Lt => Some(PortTest::Lt as fn(u16) -> PortTest),
            Tok::Le => Some(PortTest::Le as fn(u16) -> PortTest),
            Tok::Gt => Some(PortTest::Gt as fn(u16) -> PortTest),
            Tok::Ge => Some(PortTest::Ge as fn(u16) -> PortTest),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            return Ok(op(self.port()?));
        }
        if let Tok::Word(w) = self.peek().clone()
            && let Some((a, b)) = w.split_once(':')
        {
            let (a, b) = (self.port_number(a)?, self.port_number(b)?);
            if a > b {
                return Err(self.error(format!("{w}: the range runs backwards")));
            }
            self.bump();
            return Ok(PortTest::Range(a, b));
        }
        let first = self.port()?;
        match self.peek() {
            Tok::Between => {
                self.bump();
                Ok(PortTest::Between(first, self.port()?))
            }
            Tok::Outside => {
                self.bump();
                Ok(PortTest::Outside(first, self.port()?))
            }
            _ => Ok(PortTest::Eq(first)),
        }
    }

    fn port(&mut self) -> Result<u16, Stop> {
        let Tok::Word(w) = self.peek().clone() else {
            let what = self.peek().describe();
            return Err(self.error(format!("syntax error: {what} where a port goes")));
        };
        let port = self.port_number(&w)?;
        self.bump();
        Ok(port)
    }

    fn port_number(&mut self, w: &str) -> Result<u16, Stop> {
        match w.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) if w.bytes().all(|b| b.is_ascii_digit()) => {
                Err(self.error(format!("port {w}: at most 65535")))
            }
            Err(_) => Err(self.error(format!(
                "port {w}: write the number (service names are not looked up)"
            ))),
        }
    }
}

/// Source text on one line: continuations joined, spaces collapsed.
fn written(source: &[u8]) -> String {
    String::from_utf8_lossy(source)
        .replace("\\\n", " ")
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<RulesFile, Vec<String>> {
        let mut sources = SourceMap::new();
        let file = sources.add("rules", text.as_bytes());
        parse(&sources, file).map_err(|errors| {
            errors
                .iter()
                .map(|d| {
                    let span = d.span.unwrap();
                    let (line, col) = sources.file(file).line_col(span.range().start);
                    format!("{line}:{col}: {}", d.message)
                })
                .collect()
        })
    }

    #[test]
    fn the_examples_read_as_written() {
        let file = read(
            "table <trusted> { 192.168.2.0/24, 2001:db8:2::/48 }\n\
             block in on enc0 all   # the default\n\
             pass in quick on enc0 inet proto tcp from <trusted> to 192.168.1.10 port 22\n\
             pass out on enc0 proto { icmp, icmp6 }\n\
             block in log on em0 from any to 10.0.0.0/8 \\\n  port { 1000:2000 >= 60000 }\n\
             pass from ! 10.1.0.0/16 port 1 >< 1024 to { 10.9.0.1 !10.9.0.2 } port != 22\n",
        )
        .unwrap();
        assert_eq!(file.tables.len(), 1);
        assert_eq!(file.tables[0].entries.len(), 2);
        assert_eq!(file.rules.len(), 5);
        assert_eq!(file.rules[0].text, "block in on enc0 all");
        assert_eq!(
            file.rules[3].text,
            "block in log on em0 from any to 10.0.0.0/8 port { 1000:2000 >= 60000 }"
        );
        let ssh = &file.rules[1];
        assert!(!ssh.block && ssh.quick && ssh.inbound == Some(true));
        assert_eq!(
            (ssh.on.as_deref(), ssh.inet6, &ssh.protos[..]),
            (Some("enc0"), Some(false), &[6][..])
        );
        assert_eq!(
            ssh.from.addrs,
            Addrs::Table {
                name: "trusted".into(),
                negated: false
            }
        );
        assert_eq!(ssh.to.ports, [PortTest::Eq(22)]);
        assert_eq!(file.rules[2].protos, [1, 58]);
        let logged = &file.rules[3];
        assert!(logged.block && logged.log);
        assert_eq!(
            logged.to.ports,
            [PortTest::Range(1000, 2000), PortTest::Ge(60000)]
        );
        let last = &file.rules[4];
        assert_eq!(last.from.ports, [PortTest::Between(1, 1024)]);
        assert_eq!(last.to.ports, [PortTest::Ne(22)]);
        let Addrs::List(items) = &last.to.addrs else {
            panic!("{:?}", last.to.addrs)
        };
        assert_eq!(
            items.iter().map(|i| i.negated).collect::<Vec<_>>(),
            [false, true]
        );
        let Addrs::List(from) = &last.from.addrs else {
            panic!()
        };
        assert!(from[0].negated && from[0].prefix == 16);
    }

    #[test]
    fn every_problem_is_told_once_at_its_place() {
        let errors = read(
            "pass in on enc0 proto frob\n\
             block out from 10.0.0.300\n\
             pass to any port 70000\n\
             allow in all\n\
             pass from <nowhere>\n\
             pass to any port ssh\n\
             pass all extra\n\
             table <t> { 10.0.0.1\n\
             pass to 10.0.0.0/40\n\
             pass to any port 2000:1000\n",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "1:23: unknown protocol frob",
                "2:16: 10.0.0.300: not an address (names are not looked up)",
                "3:18: port 70000: at most 65535",
                "4:1: syntax error: \"allow\" where a rule (pass or block) or a table begins",
                "6:18: port ssh: write the number (service names are not looked up)",
                "7:10: syntax error: \"extra\" after the end of the rule",
                "8:21: syntax error: the { list } is not closed",
                "9:9: 10.0.0.0/40: the prefix length is at most 32",
                "10:18: 2000:1000: the range runs backwards",
                "5:1: table <nowhere> is not defined",
            ]
        );
    }
}
