//! Loading `ipsecd -p`'s rules file: read as root, so it must be a
//! regular file of the daemon's user that nobody else may write (opened
//! without following links, checked on the open descriptor); parsed with
//! every problem at its place (`ipsec_grammar::filter`); made the
//! engine's rules. A file with any problem is refused whole.

use ipsec_engine::filter::{
    Action, AddrItem, Addrs, Endpoint, Family, Net, PortTest, Rule, Ruleset, Way,
};
use ipsec_grammar::filter::{self as text, RulesFile};
use ipsec_grammar::{ErrorFormat, Renderer, SourceMap};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// More than any rules written by hand.
const MAX_LEN: u64 = 4 << 20;

/// The rules in `path`, or what is wrong with them, one line each at
/// `file:line:col`.
pub fn load(path: &Path) -> Result<Ruleset, String> {
    let bytes = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sources = SourceMap::new();
    let name = path.display().to_string();
    let file = sources.add(name.clone(), &bytes);
    let parsed = text::parse(&sources, file).map_err(|errors| {
        let renderer = Renderer {
            sources: &sources,
            format: ErrorFormat::Short,
            program: "ipsecd",
        };
        errors
            .iter()
            .map(|d| renderer.render(d, false))
            .collect::<String>()
            .trim_end()
            .to_owned()
    })?;
    Ok(ruleset(name, &parsed, |span| sources.line(span)))
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "must be a regular file of user {me} that group and others cannot write \
                 (owner {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    if meta.len() > MAX_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {MAX_LEN} bytes"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_LEN).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The engine's rules from the rules as written in `file`; `line` says
/// where a rule starts.
fn ruleset(file: String, parsed: &RulesFile, line: impl Fn(ipsec_grammar::Span) -> u32) -> Ruleset {
    let table_index = |name: &str| parsed.tables.iter().position(|t| t.name == name);
    let items = |list: &[text::AddrItem]| -> Vec<AddrItem> {
        list.iter()
            .map(|i| AddrItem {
                net: Net {
                    addr: i.addr,
                    prefix: i.prefix,
                },
                negated: i.negated,
            })
            .collect()
    };
    let endpoint = |end: &text::Endpoint| Endpoint {
        addrs: match &end.addrs {
            text::Addrs::Any => Addrs::Any,
            text::Addrs::List(list) => Addrs::List(items(list)),
            text::Addrs::Table { name, negated } => Addrs::Table {
                // parse() refuses a rule that names a table it lacks.
                index: table_index(name).unwrap_or(usize::MAX),
                negated: *negated,
            },
        },
        ports: end.ports.iter().map(|&t| port_test(t)).collect(),
    };
    let rules = parsed
        .rules
        .iter()
        .map(|r| Rule {
            line: line(r.span),
            text: r.text.clone(),
            action: if r.block { Action::Block } else { Action::Pass },
            way: r
                .inbound
                .map(|inbound| if inbound { Way::In } else { Way::Out }),
            log: r.log,
            quick: r.quick,
            on: r.on.clone(),
            family: r
                .inet6
                .map(|v6| if v6 { Family::Inet6 } else { Family::Inet }),
            protos: r.protos.clone(),
            from: endpoint(&r.from),
            to: endpoint(&r.to),
        })
        .collect();
    let tables = parsed.tables.iter().map(|t| items(&t.entries)).collect();
    Ruleset::new(file, rules, tables)
}

fn port_test(t: text::PortTest) -> PortTest {
    match t {
        text::PortTest::Eq(p) => PortTest::Eq(p),
        text::PortTest::Ne(p) => PortTest::Ne(p),
        text::PortTest::Lt(p) => PortTest::Lt(p),
        text::PortTest::Le(p) => PortTest::Le(p),
        text::PortTest::Gt(p) => PortTest::Gt(p),
        text::PortTest::Ge(p) => PortTest::Ge(p),
        text::PortTest::Range(a, b) => PortTest::Range(a, b),
        text::PortTest::Between(a, b) => PortTest::Between(a, b),
        text::PortTest::Outside(a, b) => PortTest::Outside(a, b),
    }
}

/// The rules' counters, a line each, for the log.
pub fn summary(rules: &Ruleset) -> Vec<String> {
    rules
        .rules()
        .iter()
        .zip(rules.counters())
        .map(|(rule, c)| {
            let total = c.total();
            format!(
                "filter rule {}:{}: {} packets, {} bytes",
                rules.file(),
                rule.line,
                total.packets,
                total.bytes
            )
        })
        .collect()
}
