//! Shared test plumbing: a fixed resolver, includes and key files read from
//! `tests/cases`, and a way to render a compilation as one text.

use ipsec_compiler::{Fixed, Options, Output};
use ipsec_grammar::{ErrorFormat, Loader, Renderer, SourceMap};
use std::path::{Path, PathBuf};

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// The standard fixed tables, with every file under `tests/cases/keys`
/// available as `keys/NAME` and the examples' keys as `examples/keys/NAME`,
/// as they are named from the top of the tree.
pub fn resolver() -> Fixed {
    let mut fixed = Fixed::standard();
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, prefix) in [
        (cases_dir().join("keys"), "keys"),
        (top.join("examples/keys"), "examples/keys"),
    ] {
        for entry in std::fs::read_dir(&dir).expect("key directory exists") {
            let path = entry.expect("readable directory").path();
            let name = format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy());
            fixed
                .key_files
                .insert(name, std::fs::read(&path).expect("readable key file"));
        }
    }
    fixed
}

/// Includes are read relative to `tests/cases`.
pub struct CaseFiles;

impl Loader for CaseFiles {
    fn load(&mut self, path: &str) -> Result<ipsec_grammar::Loaded, String> {
        let bytes = std::fs::read(cases_dir().join(path))
            .map_err(|_| "No such file or directory".to_owned())?;
        Ok(ipsec_grammar::Loaded {
            bytes: bytes.into(),
            identity: None,
        })
    }
}

/// Flags a case asks for, like the command line's: `k`, `d`, `v`, `vv`.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    pub keys: bool,
    pub delete: bool,
    pub verbose: u8,
}

impl Flags {
    /// Reads `# flags: -kvv` from the first line; the default is `-kv`.
    pub fn of(text: &str) -> Flags {
        let mut flags = Flags {
            keys: true,
            delete: false,
            verbose: 1,
        };
        if let Some(spec) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# flags: -"))
        {
            flags.keys = spec.contains('k');
            flags.delete = spec.contains('d');
            flags.verbose = spec.matches('v').count() as u8;
        }
        flags
    }

    pub fn options(self) -> Options {
        Options::verbosity(self.verbose, self.keys, self.delete)
    }
}

/// Compiles `text` as the file `name`.
pub fn compile(name: &str, text: &str, flags: Flags) -> (SourceMap, Output) {
    let mut sources = SourceMap::new();
    let main = sources.add(name, text.as_bytes());
    let resolver = resolver();
    let out = ipsec_compiler::compile(
        &mut sources,
        main,
        &mut CaseFiles,
        &resolver,
        &flags.options(),
    );
    (sources, out)
}

/// The PF_KEY messages of a loadable configuration: each in hex, eight
/// bytes a row, then as the monitor shows it (keys included).
fn frames(out: &Output, flags: Flags) -> String {
    use ipsec_compiler::lower::{self, Action, Sequencer};
    let action = if flags.delete {
        Action::Delete
    } else {
        Action::Add
    };
    let mut seq = Sequencer::new(4242);
    let mut s = String::new();
    for rule in &out.rules {
        let Ok(messages) = lower::lower(rule, action, &mut seq) else {
            s.push_str(&format!(
                "--- rule {}: cannot be sent (an SA without a key)\n",
                rule.nr
            ));
            continue;
        };
        for m in messages {
            s.push_str(&format!("--- pfkey (rule {})\n", rule.nr));
            for row in m.encode().chunks(8) {
                let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
                s.push_str(&hex.join(" "));
                s.push('\n');
            }
            s.push_str(
                &pfkey::Monitor {
                    message: &m,
                    show_keys: true,
                }
                .to_string(),
            );
        }
    }
    s
}

/// The printed rules, the PF_KEY messages that load them, then the
/// diagnostics in OpenBSD's and the rich form.
pub fn render(name: &str, text: &str) -> String {
    let (sources, out) = compile(name, text, Flags::of(text));
    let mut s = String::from("--- output\n");
    s.push_str(&out.text);
    if out.ok() {
        s.push_str(&frames(&out, Flags::of(text)));
    }
    if !out.diagnostics.is_empty() {
        for (title, format) in [
            ("openbsd", ErrorFormat::Openbsd),
            ("rich", ErrorFormat::Rich),
        ] {
            s.push_str(&format!("--- diagnostics ({title})\n"));
            let r = Renderer {
                sources: &sources,
                format,
                program: "ipsecctl",
            };
            for d in &out.diagnostics {
                s.push_str(&r.render(d, false));
            }
        }
    }
    s.push_str(&format!(
        "--- {} rules, {}\n",
        out.rules.len(),
        if out.ok() { "loadable" } else { "refused" }
    ));
    s
}

/// The ipsecd binary cargo built for these tests.
pub fn ipsecd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ipsecd"))
}

/// Whether the test runs as root; if not, says it is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped, needs root");
    }
    root
}
