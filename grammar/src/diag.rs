//! Diagnostics: one type for every problem the front end and the compiler
//! find, rendered either as OpenBSD prints them or with codespan-reporting.

use crate::source::{FileId, SourceMap, Span};
use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::term::{self, Config, DisplayStyle};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Printed, not counted: the configuration still loads.
    Warning,
    /// Counted: the configuration is refused, but the rest is still checked.
    Error,
    /// Stops everything at once (OpenBSD's `errx(1, ...)` cases).
    Fatal,
}

/// How OpenBSD's ipsecctl would print the message, which differs by origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `yyerror`: `<file>: <line>: <message>`.
    Line(FileId, u32),
    /// `warnx`/`errx`: `ipsecctl: <message>`.
    Program,
    /// A bare `fprintf(stderr, ...)`: just the message.
    Bare,
}

/// Which formats print a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shown {
    #[default]
    Always,
    /// Lines OpenBSD prints that the other formats fold into a better
    /// message (a note, or the error they lead to).
    OpenbsdOnly,
    /// Problems OpenBSD counts without a word (a malformed SPI).
    NotOpenbsd,
}

/// A problem found in a configuration or on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The message, worded exactly as OpenBSD words it.
    pub message: String,
    pub origin: Origin,
    /// The text the problem is about, if it has a place in a file.
    pub span: Option<Span>,
    /// What to write under the span.
    pub label: Option<String>,
    /// Extra lines for the rich form ("did you mean", hints).
    pub notes: Vec<String>,
    pub shown: Shown,
}

impl Diagnostic {
    fn new(severity: Severity, message: impl Into<String>, origin: Origin) -> Diagnostic {
        Diagnostic {
            severity,
            message: message.into(),
            origin,
            span: None,
            label: None,
            notes: Vec::new(),
            shown: Shown::Always,
        }
    }

    /// A counted error at a line of a file, like OpenBSD's `yyerror`.
    pub fn error(line: (FileId, u32), message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, message, Origin::Line(line.0, line.1))
    }

    /// A warning at a line of a file (printed like an error, not counted).
    pub fn warning(line: (FileId, u32), message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, message, Origin::Line(line.0, line.1))
    }

    /// A problem that stops the program, printed as `ipsecctl: <message>`.
    pub fn fatal(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Fatal, message, Origin::Program)
    }

    /// A message printed as is, without a location.
    pub fn bare(severity: Severity, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(severity, message, Origin::Bare)
    }

    /// A message printed as `ipsecctl: <message>` that does not stop anything.
    pub fn program(severity: Severity, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(severity, message, Origin::Program)
    }

    pub fn with_span(mut self, span: Span) -> Diagnostic {
        self.span = Some(span);
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn shown(mut self, shown: Shown) -> Diagnostic {
        self.shown = shown;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity != Severity::Warning
    }
}

/// The ways diagnostics can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorFormat {
    /// OpenBSD's plain lines: `stdin: 2: no peer specified for destination ...`.
    Openbsd,
    /// codespan-reporting with the source line and a caret.
    #[default]
    Rich,
    /// One line each: `file:line:col: error: message`.
    Short,
}

impl ErrorFormat {
    pub fn from_name(name: &str) -> Option<ErrorFormat> {
        match name {
            "openbsd" => Some(ErrorFormat::Openbsd),
            "rich" => Some(ErrorFormat::Rich),
            "short" => Some(ErrorFormat::Short),
            _ => None,
        }
    }
}

/// Renders diagnostics into text.
#[derive(Debug)]
pub struct Renderer<'a> {
    pub sources: &'a SourceMap,
    pub format: ErrorFormat,
    /// The program name used for `Origin::Program` lines.
    pub program: &'a str,
}

impl Renderer<'_> {
    /// Renders one diagnostic, ending with a newline.
    pub fn render(&self, d: &Diagnostic, colour: bool) -> String {
        let hidden = match d.shown {
            Shown::Always => false,
            Shown::OpenbsdOnly => self.format != ErrorFormat::Openbsd,
            Shown::NotOpenbsd => self.format == ErrorFormat::Openbsd,
        };
        if hidden {
            return String::new();
        }
        match self.format {
            ErrorFormat::Openbsd => self.openbsd(d),
            ErrorFormat::Short => self.codespan(d, DisplayStyle::Short, false),
            ErrorFormat::Rich => self.codespan(d, DisplayStyle::Rich, colour),
        }
    }

    fn openbsd(&self, d: &Diagnostic) -> String {
        match d.origin {
            Origin::Line(file, line) => {
                format!("{}: {}: {}\n", self.sources.name(file), line, d.message)
            }
            Origin::Program => format!("{}: {}\n", self.program, d.message),
            Origin::Bare => format!("{}\n", d.message),
        }
    }

    fn codespan(&self, d: &Diagnostic, style: DisplayStyle, colour: bool) -> String {
        // OpenBSD writes some warnings with the word in the text itself.
        let message = d.message.strip_prefix("warning: ").unwrap_or(&d.message);
        let mut report = match d.severity {
            Severity::Warning => Report::warning(),
            _ => Report::error(),
        }
        .with_message(message);
        match d.span {
            Some(span) => {
                let mut label = Label::primary(span.file, span.range());
                if let Some(text) = &d.label {
                    label = label.with_message(text);
                }
                report = report.with_labels(vec![label]);
            }
            None => {
                if let Origin::Line(file, line) = d.origin {
                    // No exact place: point at the start of the line.
                    if let Some(start) = self.line_start(file, line) {
                        report = report.with_labels(vec![Label::primary(file, start..start)]);
                    }
                }
            }
        }
        report = report.with_notes(d.notes.clone());
        let config = Config {
            display_style: style,
            ..Config::default()
        };
        let mut out = String::new();
        if colour {
            let mut buffer = termcolor_buffer();
            if term::emit_to_write_style(&mut buffer, &config, self.sources, &report).is_ok() {
                out = String::from_utf8_lossy(buffer.as_slice()).into_owned();
            }
        } else if term::emit_to_string(&mut out, &config, self.sources, &report).is_err() {
            out.clear();
        }
        if out.is_empty() {
            let _ = writeln!(out, "{}: {}", self.program, d.message);
        }
        out
    }

    fn line_start(&self, file: FileId, line: u32) -> Option<usize> {
        let text = self.sources.file(file).text();
        if line == 1 {
            return Some(0);
        }
        text.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .nth(line as usize - 2)
            .map(|(i, _)| i + 1)
    }
}

fn termcolor_buffer() -> term::termcolor::Buffer {
    term::termcolor::Buffer::ansi()
}
