//! The compiler for OpenBSD's `ipsec.conf(5)`: statements from
//! [`ipsec_grammar`] become flows, SAs, bundles and IKE connections with
//! OpenBSD's defaults and checks, and print as `ipsecctl -v` prints them.
//!
//! Nothing here does I/O; names, interfaces and key files come through
//! [`Resolver`], included files through [`ipsec_grammar::Loader`].

pub mod addr;
mod compile;
pub mod hosts;
pub mod ike;
pub mod lower;
pub mod print;
pub mod raise;
pub mod resolve;
pub mod rule;
mod sa;
pub mod values;
pub mod xform;

pub use compile::{Compiler, Fatal};
pub use print::{PrintOptions, rule_text};
pub use resolve::{Fixed, Resolver, Transport};
pub use rule::{Rule, RuleKind};

use ipsec_grammar::ast::Stmt;
use ipsec_grammar::{Diagnostic, Event, FileId, Loader, Parser, Severity, SourceMap};

/// How to run a compilation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print each rule as it is read, as `-v` does (unless `-s` is given).
    pub echo: bool,
    /// Print each macro definition as it is read (`-v`, even with `-s`).
    pub echo_macros: bool,
    /// Warn about macros never used (`-vv`).
    pub warn_unused: bool,
    pub print: PrintOptions,
    /// `-D name=value` definitions.
    pub defines: Vec<(String, String)>,
}

impl Options {
    /// What `ipsecctl` prints at verbosity `verbose` (the number of `-v`),
    /// with `-k` and `-d` as given.
    pub fn verbosity(verbose: u8, keys: bool, delete: bool) -> Options {
        Options {
            echo: verbose > 0,
            echo_macros: verbose > 0,
            warn_unused: verbose > 1,
            print: PrintOptions {
                keys,
                numbers: verbose > 1,
                delete,
            },
            defines: Vec::new(),
        }
    }
}

/// Everything a compilation produced.
#[derive(Debug, Default)]
pub struct Output {
    pub rules: Vec<Rule>,
    /// The `-v` text: macro definitions and rules, in order.
    pub text: String,
    /// Problems, in the order they were found.
    pub diagnostics: Vec<Diagnostic>,
    /// Processing stopped early.
    pub fatal: bool,
    /// Files holding keys or pre-shared secrets in clear.
    pub secret_files: Vec<FileId>,
}

impl Output {
    /// The configuration may be loaded: no error was found.
    pub fn ok(&self) -> bool {
        !self.fatal
            && !self
                .diagnostics
                .iter()
                .any(|d| d.severity != Severity::Warning)
    }
}

/// Compiles a text that stands alone (an `include` in it is refused),
/// named `name` in diagnostics.
pub fn compile_text(name: &str, text: &str, resolver: &dyn Resolver, opts: &Options) -> Output {
    let mut sources = SourceMap::new();
    let main = sources.add(name, text.as_bytes());
    compile(
        &mut sources,
        main,
        &mut ipsec_grammar::NoIncludes,
        resolver,
        opts,
    )
}

/// The PF_KEY messages that loading a standalone `text` sends, numbered
/// for process `pid`; for tests and tools that drive an engine directly.
/// `Err` says why a text cannot be sent.
pub fn load_messages(
    text: &str,
    resolver: &dyn Resolver,
    action: lower::Action,
    pid: u32,
) -> Result<Vec<pfkey::Message>, String> {
    let out = compile_text("-", text, resolver, &Options::default());
    if !out.ok() {
        let why: Vec<&str> = out.diagnostics.iter().map(|d| d.message.as_str()).collect();
        return Err(why.join("; "));
    }
    let mut seq = lower::Sequencer::new(pid);
    let mut messages = Vec::new();
    for rule in &out.rules {
        let lowered = lower::lower(rule, action, &mut seq)
            .map_err(|_| format!("rule {}: an SA needs a key", rule.nr))?;
        messages.extend(lowered);
    }
    Ok(messages)
}

/// Parses and compiles the file `main`, following includes.
pub fn compile(
    sources: &mut SourceMap,
    main: FileId,
    loader: &mut dyn Loader,
    resolver: &dyn Resolver,
    opts: &Options,
) -> Output {
    let host_name = resolver.host_name();
    let mut out = Output::default();
    let mut compiler = Compiler::new(resolver);
    let mut parser = Parser::new(sources, main, loader);
    for (name, value) in &opts.defines {
        parser.define(name, value);
    }
    while let Some(event) = parser.next() {
        let statement = match event {
            Event::Diagnostic(d) => {
                out.diagnostics.push(d);
                continue;
            }
            Event::Statement(s) => s,
        };
        if let Stmt::Macro { name, value } = &statement.stmt
            && opts.echo_macros
        {
            out.text
                .push_str(&format!("{} = \"{}\"\n", name.node, value.node.as_str()));
        }
        let before = compiler.rules().len();
        let result = compiler.statement(&statement, parser.sources(), &mut out.diagnostics);
        if opts.echo {
            for rule in &compiler.rules()[before..] {
                let (text, problem) = rule_text(rule, opts.print, resolver, &host_name);
                out.text.push_str(&text);
                if let Some(message) = problem {
                    let d = Diagnostic::program(Severity::Warning, message)
                        .with_span(rule.span)
                        .with_label("isakmpd cannot be told this rule")
                        .with_note("ipsecctl -n accepts it, but loading it fails");
                    out.diagnostics.push(d);
                }
            }
        }
        if result.is_err() {
            out.fatal = true;
            break;
        }
    }
    if opts.warn_unused && !out.fatal {
        for (name, span) in parser.macros().unused() {
            let mut d = Diagnostic::bare(
                Severity::Warning,
                format!("warning: macro '{name}' not used"),
            );
            d.span = span;
            out.diagnostics.push(d);
        }
    }
    out.secret_files = compiler.secret_files().to_vec();
    out.rules = compiler.into_rules();
    out
}

/// The rules of a config that must compile cleanly, for the tests.
#[cfg(test)]
pub(crate) fn rules_of(text: &str) -> Vec<Rule> {
    let mut sources = ipsec_grammar::SourceMap::new();
    let main = sources.add("t.conf", text.as_bytes());
    let out = compile(
        &mut sources,
        main,
        &mut ipsec_grammar::NoIncludes,
        &Fixed::standard(),
        &Options::default(),
    );
    assert!(out.ok(), "{:?}", out.diagnostics);
    out.rules
}
