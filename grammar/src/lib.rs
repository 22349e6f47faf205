//! The front end for OpenBSD's `ipsec.conf(5)` language: a lexer that
//! follows OpenBSD's rules (macros, quoting, continuations), an LR grammar
//! for every statement, a syntax tree with spans, and diagnostics that can
//! be printed OpenBSD's way or with the offending text underlined.
//!
//! The crate does no I/O: included files are read through [`Loader`].

pub mod ast;
pub mod diag;
pub mod filter;
pub mod lexer;
pub mod macros;
pub mod parser;
pub mod secret;
pub mod source;
mod suggest;
pub mod token;

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        unused_imports,
        unused_qualifications,
        missing_debug_implementations
    )]
    grammar
);

pub use diag::{Diagnostic, ErrorFormat, Origin, Renderer, Severity, Shown};
pub use parser::{Event, Loaded, Loader, MAX_INCLUDED_BYTES, MAX_INCLUDES, NoIncludes, Parser};
pub use source::{FileId, SourceMap, Span};
pub use suggest::closest;
