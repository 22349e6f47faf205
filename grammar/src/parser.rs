//! The parser: reads a configuration one statement at a time, following
//! `include`s and recording macros, and hands out statements and
//! diagnostics in the order they arise.
//!
//! Each line is parsed on its own. A statement always ends at a newline, so
//! recovering from an error means dropping the rest of the line, as
//! OpenBSD's `error '\n'` rule does; the next line starts afresh.

use crate::ast::{Spanned, Statement, Stmt};
use crate::diag::{Diagnostic, Severity, Shown};
use crate::grammar::LineParser;
use crate::lexer::{Lexer, Token};
use crate::macros::Macros;
use crate::source::{FileId, SourceMap, Span};
use crate::suggest;
use crate::token::{KEYWORDS, Keyword, LexError, Tok};
use lalrpop_util::ParseError;
use std::collections::VecDeque;

/// The longest value a macro may have.
pub const MAX_MACRO_VALUE: usize = 64 << 10;

/// How deep `include`s may nest.
const MAX_INCLUDE_DEPTH: usize = 64;

/// How many files one configuration may include in all, and how many
/// bytes they may add up to: a file that includes itself under names
/// that differ (`a.conf`, `./a.conf`) would otherwise multiply.
pub const MAX_INCLUDES: usize = 1024;
pub const MAX_INCLUDED_BYTES: usize = 64 << 20;

/// A file an `include` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Wiped when dropped: an included file may hold keys.
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
    /// What makes it this file whatever its name (device and inode), when
    /// the loader knows: an include loop is found by it.
    pub identity: Option<(u64, u64)>,
}

/// Reads the files named by `include`.
pub trait Loader {
    /// The file, or the reason it could not be read.
    fn load(&mut self, path: &str) -> Result<Loaded, String>;
}

/// A loader for text that stands alone: every `include` fails, as a file
/// that does not exist would.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIncludes;

impl Loader for NoIncludes {
    fn load(&mut self, _: &str) -> Result<Loaded, String> {
        Err("No such file or directory".into())
    }
}

/// What the parser hands out.
#[derive(Debug)]
pub enum Event {
    Statement(Statement),
    Diagnostic(Diagnostic),
}

pub struct Parser<'a> {
    sources: &'a mut SourceMap,
    loader: &'a mut dyn Loader,
    macros: Macros,
    stack: Vec<(FileId, Lexer)>,
    /// The identities of the included files being read, as the stack.
    reading: Vec<Option<(u64, u64)>>,
    /// Files included so far, and their bytes.
    included: usize,
    included_bytes: usize,
    pending: VecDeque<Event>,
    grammar: LineParser,
}

impl std::fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("files", &self.stack.len())
            .finish()
    }
}

impl<'a> Parser<'a> {
    /// A parser for the file `main`, already registered in `sources`.
    pub fn new(sources: &'a mut SourceMap, main: FileId, loader: &'a mut dyn Loader) -> Parser<'a> {
        let lexer = Lexer::new(sources.file(main).text().clone());
        Parser {
            sources,
            loader,
            macros: Macros::default(),
            stack: vec![(main, lexer)],
            reading: Vec::new(),
            included: 0,
            included_bytes: 0,
            pending: VecDeque::new(),
            grammar: LineParser::new(),
        }
    }

    /// Defines a macro that the file cannot override (`-D`).
    pub fn define(&mut self, name: &str, value: &str) {
        self.macros.define(name, value, true, None);
    }

    pub fn macros(&self) -> &Macros {
        &self.macros
    }

    pub fn sources(&self) -> &SourceMap {
        self.sources
    }

    fn line_of(&self, span: Span) -> (FileId, u32) {
        (span.file, self.sources.line(span))
    }

    fn report(&mut self, d: Diagnostic) {
        self.pending.push_back(Event::Diagnostic(d));
    }

    fn parse_line(&mut self, file: FileId, mut tokens: Vec<Token>) {
        let cut = tokens
            .iter()
            .position(|t| matches!(t.tok, Tok::Error(_)))
            .unwrap_or(tokens.len());
        // A line starting with a keyword in capitals reads as a macro
        // definition, and fails at its second word.
        let shouted = match tokens.first().map(|t| &t.tok) {
            Some(Tok::Str(word)) => crate::token::Keyword::lookup(&word.to_ascii_lowercase()),
            _ => None,
        };
        let include = matches!(
            tokens.first().map(|t| &t.tok),
            Some(Tok::Keyword(Keyword::Include))
        );
        // From the first lexical error on, the parser sees nothing.
        let tokens_after = tokens.split_off(cut);
        let input = tokens
            .into_iter()
            .map(|t| Ok::<_, ()>((t.start, t.tok, t.end)));
        match self.grammar.parse(file, input) {
            Ok(None) => {}
            Ok(Some((stmt, span, end))) => self.statement(Statement { stmt, span, end }),
            Err(ParseError::UnrecognizedToken {
                token: (start, tok, end),
                expected,
            }) => {
                self.syntax_error(Span::new(file, start, end), Some(&tok), &expected);
                let note = match shouted {
                    Some(k) => Some(format!(
                        "keywords are lower case: did you mean `{}`?",
                        k.as_str()
                    )),
                    None if include && tok == Tok::Slash => Some(
                        "`/` ends a bare word: quote the path, as in include \"dir/file.conf\""
                            .to_owned(),
                    ),
                    None => None,
                };
                if let (Some(note), Some(Event::Diagnostic(d))) = (note, self.pending.back_mut()) {
                    d.notes = vec![note];
                }
            }
            Err(ParseError::ExtraToken {
                token: (start, tok, end),
            }) => self.syntax_error(Span::new(file, start, end), Some(&tok), &[]),
            Err(ParseError::UnrecognizedEof { expected, .. }) => {
                let Some(bad) = tokens_after.first() else {
                    return;
                };
                let span = Span::new(file, bad.start, bad.end);
                let Tok::Error(error) = &bad.tok else { return };
                self.lex_error(span, error);
                // The text ended inside a quote: the statement is cut short,
                // which OpenBSD reports once more.
                if *error == LexError::UnterminatedString {
                    self.syntax_error(span, None, &expected);
                    if let Some(Event::Diagnostic(d)) = self.pending.back_mut() {
                        d.shown = Shown::OpenbsdOnly;
                    }
                }
            }
            Err(ParseError::InvalidToken { location }) => {
                self.syntax_error(Span::new(file, location, location + 1), None, &[])
            }
            Err(ParseError::User { .. }) => {}
        }
    }

    fn lex_error(&mut self, span: Span, error: &LexError) {
        let mut d = Diagnostic::error(self.line_of(span), error.message()).with_span(span);
        match error {
            LexError::UndefinedMacro(name) => {
                d = d.with_label("not defined before this line");
                if let Some(similar) = self.macros.similar(name) {
                    d = d.with_note(format!("did you mean `${similar}`?"));
                }
            }
            LexError::UnterminatedString => d = d.with_label("this quote is never closed"),
            _ => {}
        }
        self.report(d);
    }

    fn syntax_error(&mut self, span: Span, found: Option<&Tok>, expected: &[String]) {
        let mut d = Diagnostic::error(self.line_of(span), "syntax error").with_span(span);
        let expected: Vec<&str> = expected.iter().map(|e| e.trim_matches('"')).collect();
        d = match found {
            Some(tok) => d.with_label(format!("unexpected {tok}")),
            None => d.with_label("the statement ends here"),
        };
        if let Some(Tok::Str(word)) = found {
            let keywords = KEYWORDS
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| expected.contains(k));
            if let Some(k) = suggest::closest(word, keywords) {
                d = d.with_note(format!("did you mean `{k}`?"));
            } else if KEYWORDS.iter().any(|(k, _)| expected.contains(k)) {
                d = d.with_note(expected_note(&expected));
            }
        } else if !expected.is_empty() {
            d = d.with_note(expected_note(&expected));
        }
        self.report(d);
    }

    fn statement(&mut self, statement: Statement) {
        match &statement.stmt {
            Stmt::Include(path) => {
                self.include(path.clone(), statement.end);
                return;
            }
            Stmt::Macro { name, value } => {
                if name.node.chars().any(|c| c.is_ascii_whitespace()) {
                    let d = Diagnostic::error(
                        self.line_of(statement.end),
                        "macro name cannot contain whitespace",
                    )
                    .with_span(name.span);
                    self.pending.push_back(Event::Statement(statement.clone()));
                    self.report(d);
                    return;
                }
                let span = name.span.to(value.span);
                if value.node.len() > MAX_MACRO_VALUE {
                    let d = Diagnostic::error(
                        self.line_of(statement.end),
                        format!("macro value longer than {MAX_MACRO_VALUE} bytes"),
                    )
                    .with_span(value.span)
                    .with_note("a macro made of macros multiplies with each level");
                    self.report(d);
                    return;
                }
                self.macros
                    .define(&name.node, &value.node, false, Some(span));
            }
            _ => {}
        }
        self.pending.push_back(Event::Statement(statement));
    }

    fn include(&mut self, path: Spanned<String>, end: Span) {
        let line = self.line_of(end);
        let name = path.node;
        // OpenBSD follows includes without limit; a file that includes
        // itself would never end.
        let looping = self
            .stack
            .iter()
            .any(|(id, _)| self.sources.name(*id) == name);
        if looping || self.stack.len() >= MAX_INCLUDE_DEPTH {
            let why = if looping {
                format!("{name} is already being read: includes may not loop")
            } else {
                format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep")
            };
            let d = Diagnostic::error(line, format!("failed to include file {name}"))
                .with_span(path.span)
                .with_note(why);
            self.report(d);
            return;
        }
        if self.included >= MAX_INCLUDES {
            let d = Diagnostic::error(line, format!("failed to include file {name}"))
                .with_span(path.span)
                .with_note(format!(
                    "more than {MAX_INCLUDES} files are included in all"
                ));
            self.report(d);
            return;
        }
        match self.loader.load(&name) {
            Ok(loaded) => {
                let again = loaded.identity.is_some() && self.reading.contains(&loaded.identity);
                let too_much = self.included_bytes + loaded.bytes.len() > MAX_INCLUDED_BYTES;
                if again || too_much {
                    let why = if again {
                        format!("{name} is a file already being read: includes may not loop")
                    } else {
                        format!("the included files add up to more than {MAX_INCLUDED_BYTES} bytes")
                    };
                    let d = Diagnostic::error(line, format!("failed to include file {name}"))
                        .with_span(path.span)
                        .with_note(why);
                    self.report(d);
                    return;
                }
                self.included += 1;
                self.included_bytes += loaded.bytes.len();
                let id = self.sources.add(name, &loaded.bytes);
                let lexer = Lexer::new(self.sources.file(id).text().clone());
                self.stack.push((id, lexer));
                self.reading.push(loaded.identity);
            }
            Err(reason) => {
                self.report(
                    Diagnostic::bare(Severity::Warning, format!("pushfile: {name}: {reason}"))
                        .shown(Shown::OpenbsdOnly),
                );
                let d = Diagnostic::error(line, format!("failed to include file {name}"))
                    .with_span(path.span)
                    .with_label(reason);
                self.report(d);
            }
        }
    }
}

fn expected_note(expected: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut words: Vec<String> = expected
        .iter()
        .take(SHOWN)
        .map(|e| match *e {
            "\\n" => "end of line".to_owned(),
            "STRING" => "a word or quoted string".to_owned(),
            "NUMBER" => "a number".to_owned(),
            other => format!("`{other}`"),
        })
        .collect();
    if expected.len() > SHOWN {
        words.push("...".to_owned());
    }
    format!("expected one of: {}", words.join(", "))
}

impl Iterator for Parser<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let (file, lexer) = self.stack.last_mut()?;
            if lexer.is_finished() {
                self.stack.pop();
                // The main file has no entry in `reading`.
                self.reading.truncate(self.stack.len().saturating_sub(1));
                continue;
            }
            let file = *file;
            let tokens = lexer.line(&mut self.macros);
            if !tokens.is_empty() {
                self.parse_line(file, tokens);
            }
        }
    }
}
