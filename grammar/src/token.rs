//! The words of the language.

use std::fmt;

macro_rules! keywords {
    ($($variant:ident = $text:literal,)*) => {
        /// A reserved word. They are case-sensitive, and a keyword can never
        /// be used as an unquoted value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Keyword { $($variant,)* }

        /// Every keyword with its spelling, sorted by spelling.
        pub const KEYWORDS: &[(&str, Keyword)] = &[$(($text, Keyword::$variant),)*];

        impl Keyword {
            pub fn as_str(self) -> &'static str {
                match self { $(Keyword::$variant => $text,)* }
            }

            /// Looks a bare word up in the keyword table.
            pub fn lookup(word: &str) -> Option<Keyword> {
                match word {
                    $($text => Some(Keyword::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

keywords! {
    Acquire = "acquire",
    Active = "active",
    Aggressive = "aggressive",
    Ah = "ah",
    Any = "any",
    Auth = "auth",
    Authkey = "authkey",
    Bundle = "bundle",
    Bypass = "bypass",
    Comp = "comp",
    Deny = "deny",
    Dontacq = "dontacq",
    Dstid = "dstid",
    Dynamic = "dynamic",
    Enc = "enc",
    Enckey = "enckey",
    Esp = "esp",
    File = "file",
    Flow = "flow",
    From = "from",
    Group = "group",
    Ike = "ike",
    In = "in",
    Include = "include",
    Interface = "interface",
    Ipcomp = "ipcomp",
    Ipip = "ipip",
    Lifetime = "lifetime",
    Local = "local",
    Main = "main",
    Out = "out",
    Passive = "passive",
    Peer = "peer",
    Port = "port",
    Proto = "proto",
    Psk = "psk",
    Quick = "quick",
    Require = "require",
    Rsa = "rsa",
    Spi = "spi",
    Srcid = "srcid",
    Tag = "tag",
    Tcpmd5 = "tcpmd5",
    To = "to",
    Transport = "transport",
    Tunnel = "tunnel",
    Type = "type",
    Udpencap = "udpencap",
    Use = "use",
}

/// A token. Values borrow nothing: macro expansion builds words from
/// several places, so they are owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Keyword(Keyword),
    /// A bare word that is not a keyword, or any quoted string.
    Str(String),
    Number(i64),
    Newline,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Slash,
    Equals,
    /// Any other character; always a syntax error.
    Other(char),
    /// A lexical error; the lexer has already skipped what it had to.
    Error(LexError),
}

/// What went wrong while reading a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexError {
    /// The text ended inside a quoted string; nothing more follows.
    UnterminatedString,
    StringTooLong,
    /// A NUL byte inside a quoted string.
    NulInString,
    InvalidNumber {
        text: String,
        reason: &'static str,
    },
    UndefinedMacro(String),
    /// More tokens on one line than any statement needs: macros that
    /// expand to macros can multiply without end.
    LineTooLong,
}

impl LexError {
    /// OpenBSD's wording.
    pub fn message(&self) -> String {
        match self {
            LexError::UnterminatedString => {
                "reached end of file while parsing quoted string".into()
            }
            LexError::StringTooLong => "string too long".into(),
            LexError::NulInString => "syntax error".into(),
            LexError::InvalidNumber { text, reason } => {
                format!("\"{text}\" invalid number: {reason}")
            }
            LexError::UndefinedMacro(name) => format!("macro '{name}' not defined"),
            LexError::LineTooLong => format!(
                "line too long: more than {} tokens, macros expanded",
                crate::lexer::MAX_LINE_TOKENS
            ),
        }
    }
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Keyword(k) => write!(f, "`{}`", k.as_str()),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Number(n) => write!(f, "number {n}"),
            Tok::Newline => f.write_str("end of line"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Slash => f.write_str("`/`"),
            Tok::Equals => f.write_str("`=`"),
            Tok::Other(c) => write!(f, "`{}`", c.escape_default()),
            Tok::Error(e) => f.write_str(&e.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(KEYWORDS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(Keyword::lookup("flow"), Some(Keyword::Flow));
        assert_eq!(Keyword::lookup("Flow"), None);
        assert_eq!(Keyword::lookup("udpencap"), Some(Keyword::Udpencap));
    }
}
