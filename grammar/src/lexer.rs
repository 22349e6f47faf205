//! The lexer: OpenBSD's rules for ipsec.conf, character for character.
//!
//! These rules are context-sensitive in ways a table-driven lexer cannot
//! express: a backslash is dropped wherever it appears outside quotes, a run
//! of digits is a number only if the character after it is a delimiter, and
//! a `$macro` is replaced by its value, which is then read as if it were
//! part of the file and may run on into the file's own text. So the lexer
//! reads one character at a time from a small stack (pushed-back characters,
//! the macro being expanded, the file), as OpenBSD's does.

use crate::secret::SecretText;
use crate::token::{Keyword, LexError, Tok};
use zeroize::Zeroizing;

/// OpenBSD's token buffer; a token must fit in it with its terminator.
const MAX_TOKEN: usize = 8096;

/// Tokens one line may hold once its macros are expanded. Far more than
/// any statement, few enough that a macro bomb (macros of macros, each
/// level multiplying) is stopped at the line that sets it off.
pub const MAX_LINE_TOKENS: usize = 65_536;

/// A token and the bytes it came from. Tokens read from a macro's value are
/// placed at the `$name` that was expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// A character and where it came from.
#[derive(Debug, Clone, Copy)]
struct Ch {
    byte: u8,
    start: usize,
    end: usize,
    /// Read from a macro's value: putting it back rewinds the macro.
    expanded: bool,
}

/// The macros a lexer may expand.
pub trait MacroTable {
    /// The value of a macro, marking it used.
    fn expand(&mut self, name: &str) -> Option<SecretText>;
}

#[derive(Debug)]
struct Expansion {
    value: SecretText,
    next: usize,
    start: usize,
    end: usize,
}

/// Reads tokens from one file.
#[derive(Debug)]
pub struct Lexer {
    text: SecretText,
    pos: usize,
    pushback: Vec<Ch>,
    expansion: Option<Expansion>,
    /// Set once the text is used up (or cut short by an unterminated quote).
    finished: bool,
    /// Whether the last token handed out was a newline.
    at_line_start: bool,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Which bytes may continue a bare word: letters, digits and punctuation
/// other than `( ) { } < > ! = / # ,`.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || (c.is_ascii_punctuation()
                && !matches!(
                    c,
                    b'(' | b')' | b'{' | b'}' | b'<' | b'>' | b'!' | b'=' | b'/' | b'#' | b','
                ));
        b += 1;
    }
    table
};

#[inline]
fn allowed_in_string(b: u8) -> bool {
    WORD_BYTES[b as usize]
}

/// Room for the longest token, so that it never grows (leaving a copy of
/// a key behind), wiped when the token is made.
fn token_buffer() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Vec::with_capacity(MAX_TOKEN))
}

fn allowed_to_end_number(b: u8) -> bool {
    is_space(b) || matches!(b, b')' | b',' | b'/' | b'}' | b'=')
}

impl Lexer {
    pub fn new(text: SecretText) -> Lexer {
        Lexer {
            text,
            pos: 0,
            pushback: Vec::new(),
            expansion: None,
            finished: false,
            at_line_start: true,
        }
    }

    /// Reads the tokens of one statement: everything up to and including
    /// the next newline. A last line without a newline gets one, placed at
    /// the end of the file. Returns an empty line at the end of the file.
    pub fn line(&mut self, macros: &mut dyn MacroTable) -> Vec<Token> {
        let mut tokens = Vec::new();
        while !self.finished {
            if tokens.len() == MAX_LINE_TOKENS {
                let start = tokens.first().map_or(self.text.len(), |t: &Token| t.start);
                let end = tokens.last().map_or(start, |t: &Token| t.end.max(start));
                tokens.clear();
                tokens.push(self.error_to_eol(LexError::LineTooLong, start, end));
                continue;
            }
            match self.token(macros) {
                Some(token) => {
                    let end = token.tok == Tok::Newline;
                    let cut = token.tok == Tok::Error(LexError::UnterminatedString);
                    self.at_line_start = end;
                    tokens.push(token);
                    if cut {
                        self.finished = true;
                    }
                    if end || cut {
                        break;
                    }
                }
                None => {
                    self.finished = true;
                    if !self.at_line_start && !tokens.is_empty() {
                        let at = self.text.len();
                        tokens.push(Token {
                            tok: Tok::Newline,
                            start: at,
                            end: at,
                        });
                    }
                }
            }
        }
        tokens
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn raw(&mut self) -> Option<Ch> {
        let byte = *self.text.as_bytes().get(self.pos)?;
        self.pos += 1;
        Some(Ch {
            byte,
            start: self.pos - 1,
            end: self.pos,
            expanded: false,
        })
    }

    /// The next character; outside quotes, backslashes are dropped and
    /// backslash-newline disappears.
    fn getc(&mut self, quoted: bool) -> Option<Ch> {
        // A macro being expanded comes first, then characters put back.
        if let Some(exp) = &mut self.expansion {
            if let Some(&byte) = exp.value.as_bytes().get(exp.next) {
                exp.next += 1;
                return Some(Ch {
                    byte,
                    start: exp.start,
                    end: exp.end,
                    expanded: true,
                });
            }
            self.expansion = None;
        }
        if let Some(ch) = self.pushback.pop() {
            return Some(ch);
        }
        if quoted {
            return self.raw();
        }
        loop {
            let ch = self.raw()?;
            if ch.byte != b'\\' {
                return Some(ch);
            }
            let next = self.raw()?;
            if next.byte != b'\n' {
                return Some(next);
            }
        }
    }

    fn ungetc(&mut self, ch: Option<Ch>) {
        let Some(ch) = ch else { return };
        match &mut self.expansion {
            Some(exp) if ch.expanded && exp.next > 0 => exp.next -= 1,
            _ => self.pushback.push(ch),
        }
    }

    fn expanding(&self) -> bool {
        self.expansion
            .as_ref()
            .is_some_and(|e| e.next < e.value.len())
    }

    /// Skips the rest of the line after an error; the newline stays, so the
    /// error ends the statement it belongs to and nothing more.
    fn error_to_eol(&mut self, error: LexError, start: usize, end: usize) -> Token {
        // Unlike OpenBSD, keep what was put back: it may be this line's
        // newline, and dropping it would swallow the next line too.
        self.expansion = None;
        self.pushback.retain(|ch| !ch.expanded);
        loop {
            match self.getc(false) {
                Some(ch) if ch.byte == b'\n' => {
                    self.ungetc(Some(ch));
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        Token {
            tok: Tok::Error(error),
            start,
            end,
        }
    }

    fn token(&mut self, macros: &mut dyn MacroTable) -> Option<Token> {
        loop {
            let mut c = self.getc(false);
            while matches!(
                c,
                Some(Ch {
                    byte: b' ' | b'\t',
                    ..
                })
            ) {
                c = self.getc(false);
            }
            let mut first = c?;
            if first.byte == b'#' {
                loop {
                    c = self.getc(false);
                    match c {
                        Some(ch) if ch.byte == b'\n' => break,
                        Some(_) => {}
                        None => return None,
                    }
                }
                first = c?;
            }
            if first.byte == b'$' && !self.expanding() {
                let mut name = String::new();
                let mut end = first.end;
                loop {
                    let ch = self.getc(false)?;
                    if ch.byte.is_ascii_alphanumeric() || ch.byte == b'_' {
                        if name.len() + 2 >= MAX_TOKEN {
                            return Some(self.error_to_eol(
                                LexError::StringTooLong,
                                first.start,
                                end,
                            ));
                        }
                        name.push(ch.byte as char);
                        end = ch.end;
                    } else {
                        self.ungetc(Some(ch));
                        break;
                    }
                }
                let Some(value) = macros.expand(&name) else {
                    return Some(self.error_to_eol(
                        LexError::UndefinedMacro(name),
                        first.start,
                        end,
                    ));
                };
                self.expansion = Some(Expansion {
                    value,
                    next: 0,
                    start: first.start,
                    end,
                });
                continue;
            }
            return Some(self.after_blanks(first));
        }
    }

    fn after_blanks(&mut self, first: Ch) -> Token {
        let b = first.byte;
        if b == b'"' || b == b'\'' {
            return self.quoted(first);
        }
        let mut first = first;
        if b == b'-' || b.is_ascii_digit() {
            match self.number(first) {
                Ok(token) => return token,
                Err(ch) => first = ch,
            }
            if first.byte == b'-' {
                return Token {
                    tok: Tok::Other('-'),
                    start: first.start,
                    end: first.end,
                };
            }
        }
        if first.byte.is_ascii_alphanumeric() || matches!(first.byte, b':' | b'_' | b'*') {
            return self.word(first);
        }
        let tok = match first.byte {
            b'\n' => Tok::Newline,
            b'{' => Tok::LBrace,
            b'}' => Tok::RBrace,
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            b'/' => Tok::Slash,
            b'=' => Tok::Equals,
            other => {
                // Not ASCII: report the whole character, not one byte of it.
                let mut end = first.end;
                if other >= 0x80 {
                    while let Some(ch) = self.getc(false) {
                        if ch.byte & 0xc0 != 0x80 {
                            self.ungetc(Some(ch));
                            break;
                        }
                        end = ch.end;
                    }
                }
                let c = self
                    .text
                    .get(first.start..end)
                    .and_then(|s| s.chars().next())
                    .unwrap_or(other as char);
                return Token {
                    tok: Tok::Other(c),
                    start: first.start,
                    end,
                };
            }
        };
        // A newline is shown as the end of its line, not the start of the next.
        let end = if tok == Tok::Newline {
            first.start
        } else {
            first.end
        };
        Token {
            tok,
            start: first.start,
            end,
        }
    }

    /// A run of digits followed by a delimiter is a number; otherwise the
    /// characters are put back and the first one is returned.
    fn number(&mut self, first: Ch) -> Result<Token, Ch> {
        if self.is_plain(first) && first.byte.is_ascii_digit() {
            let bytes = self.text.as_bytes();
            let end = bytes[self.pos..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |n| self.pos + n);
            match bytes.get(end) {
                // A backslash may hide a delimiter: take the slow path.
                Some(b'\\') => {}
                // A word such as an address: nothing was consumed yet.
                Some(&b) if !allowed_to_end_number(b) => return Err(first),
                _ if end - first.start < 19 => {
                    self.pos = end;
                    let value = self.text[first.start..end]
                        .bytes()
                        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
                    return Ok(Token {
                        tok: Tok::Number(value),
                        start: first.start,
                        end,
                    });
                }
                _ => {}
            }
        }
        let mut chars = vec![first];
        let mut next = self.getc(false);
        while let Some(ch) = next.filter(|ch| ch.byte.is_ascii_digit()) {
            if chars.len() >= MAX_TOKEN {
                return Ok(self.error_to_eol(LexError::StringTooLong, first.start, ch.end));
            }
            chars.push(ch);
            next = self.getc(false);
        }
        self.ungetc(next);
        let digits = !(chars.len() == 1 && first.byte == b'-');
        if digits && next.is_none_or(|ch| allowed_to_end_number(ch.byte)) {
            let text: String = chars.iter().map(|c| c.byte as char).collect();
            let end = chars.last().map_or(first.end, |c| c.end);
            return Ok(match text.parse::<i64>() {
                Ok(n) => Token {
                    tok: Tok::Number(n),
                    start: first.start,
                    end,
                },
                Err(_) => {
                    let reason = if first.byte == b'-' {
                        "too small"
                    } else {
                        "too large"
                    };
                    self.error_to_eol(LexError::InvalidNumber { text, reason }, first.start, end)
                }
            });
        }
        while chars.len() > 1 {
            self.ungetc(chars.pop());
        }
        Err(first)
    }

    fn word(&mut self, first: Ch) -> Token {
        if let Some(token) = self.plain_word(first) {
            return token;
        }
        let mut bytes = token_buffer();
        bytes.push(first.byte);
        let mut end = first.end;
        loop {
            let next = self.getc(false);
            match next {
                Some(ch) if allowed_in_string(ch.byte) => {
                    if bytes.len() + 1 >= MAX_TOKEN {
                        return self.error_to_eol(LexError::StringTooLong, first.start, end);
                    }
                    bytes.push(ch.byte);
                    end = end.max(ch.end);
                }
                other => {
                    self.ungetc(other);
                    break;
                }
            }
        }
        // Only ASCII reaches here, so nothing is replaced.
        let word = String::from_utf8_lossy(&bytes).into_owned();
        let tok = match Keyword::lookup(&word) {
            Some(k) => Tok::Keyword(k),
            None => Tok::Str(word),
        };
        Token {
            tok,
            start: first.start,
            end,
        }
    }

    /// `first` was just read from the file, and nothing is put back or
    /// being expanded: what follows can be scanned in the text directly.
    fn is_plain(&self, first: Ch) -> bool {
        !first.expanded
            && first.end == self.pos
            && self.pushback.is_empty()
            && self.expansion.is_none()
    }

    /// The common case, read straight from the text: a word from the file
    /// with nothing put back and no backslash in it.
    fn plain_word(&mut self, first: Ch) -> Option<Token> {
        if !self.is_plain(first) {
            return None;
        }
        let bytes = self.text.as_bytes();
        let end = bytes[self.pos..]
            .iter()
            .position(|&b| !allowed_in_string(b) || b == b'\\')
            .map_or(bytes.len(), |n| self.pos + n);
        if bytes.get(end) == Some(&b'\\') || end - first.start + 1 >= MAX_TOKEN {
            return None;
        }
        let word = &self.text[first.start..end];
        self.pos = end;
        let tok = match Keyword::lookup(word) {
            Some(k) => Tok::Keyword(k),
            None => Tok::Str(word.to_owned()),
        };
        Some(Token {
            tok,
            start: first.start,
            end,
        })
    }

    fn quoted(&mut self, open: Ch) -> Token {
        let quote = open.byte;
        let mut bytes = token_buffer();
        let mut end = open.end;
        loop {
            let Some(mut c) = self.getc(true) else {
                return self.unterminated(open);
            };
            end = end.max(c.end);
            match c.byte {
                b'\n' => continue,
                b'\\' => {
                    let Some(next) = self.getc(true) else {
                        return self.unterminated(open);
                    };
                    end = end.max(next.end);
                    if next.byte == quote || next.byte == b' ' || next.byte == b'\t' {
                        c = next;
                    } else if next.byte == b'\n' {
                        continue;
                    } else {
                        self.ungetc(Some(next));
                    }
                }
                b if b == quote => break,
                0 => return self.error_to_eol(LexError::NulInString, open.start, end),
                _ => {}
            }
            if bytes.len() + 2 >= MAX_TOKEN {
                return self.error_to_eol(LexError::StringTooLong, open.start, end);
            }
            bytes.push(c.byte);
        }
        Token {
            tok: Tok::Str(String::from_utf8_lossy(&bytes).into_owned()),
            start: open.start,
            end,
        }
    }

    fn unterminated(&mut self, open: Ch) -> Token {
        Token {
            tok: Tok::Error(LexError::UnterminatedString),
            start: open.start,
            end: open.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::text_of;
    use std::collections::HashMap;

    struct Table(HashMap<&'static str, &'static str>);

    impl MacroTable for Table {
        fn expand(&mut self, name: &str) -> Option<SecretText> {
            self.0.get(name).map(|v| text_of(v.as_bytes()))
        }
    }

    fn lex_with(text: &str, macros: &[(&'static str, &'static str)]) -> Vec<Tok> {
        let mut table = Table(macros.iter().copied().collect());
        let mut lexer = Lexer::new(text_of(text.as_bytes()));
        let mut out = Vec::new();
        while !lexer.is_finished() {
            out.extend(lexer.line(&mut table).into_iter().map(|t| t.tok));
        }
        out
    }

    fn lex(text: &str) -> Vec<Tok> {
        lex_with(text, &[])
    }

    fn s(text: &str) -> Tok {
        Tok::Str(text.into())
    }

    #[test]
    fn words_numbers_and_punctuation() {
        assert_eq!(
            lex("flow from 10.0.0.0/24 to any\n"),
            vec![
                Tok::Keyword(Keyword::Flow),
                Tok::Keyword(Keyword::From),
                s("10.0.0.0"),
                Tok::Slash,
                Tok::Number(24),
                Tok::Keyword(Keyword::To),
                Tok::Keyword(Keyword::Any),
                Tok::Newline,
            ]
        );
        // A number needs a delimiter after it; otherwise it is a word.
        assert_eq!(
            lex("3des 30m 0x10 12#c\n"),
            vec![s("3des"), s("30m"), s("0x10"), s("12"), Tok::Newline]
        );
        assert_eq!(
            lex("-5 -x\n"),
            vec![Tok::Number(-5), Tok::Other('-'), s("x"), Tok::Newline]
        );
    }

    #[test]
    fn backslashes_outside_quotes() {
        assert_eq!(
            lex("fl\\\now a\\b\n"),
            vec![Tok::Keyword(Keyword::Flow), s("ab"), Tok::Newline]
        );
        // A continuation may end a number, or join it to a word.
        assert_eq!(
            lex("12\\\n 3\\\nx\n"),
            vec![Tok::Number(12), s("3x"), Tok::Newline]
        );
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            lex("\"esp\" 'a\\'b' \"x\ny\"\n"),
            vec![s("esp"), s("a'b"), s("xy"), Tok::Newline]
        );
        assert_eq!(lex("\"a\\qb\"\n"), vec![s("a\\qb"), Tok::Newline]);
        assert_eq!(
            lex("x \"abc\n"),
            vec![s("x"), Tok::Error(LexError::UnterminatedString)]
        );
    }

    #[test]
    fn comments_keep_their_newline() {
        assert_eq!(
            lex("a # b \\\n c\nd\n"),
            vec![s("a"), Tok::Newline, s("d"), Tok::Newline]
        );
    }

    #[test]
    fn macros_are_relexed_and_do_not_nest() {
        assert_eq!(
            lex_with(
                "from $h to $x\n",
                &[("h", "{ 1.1.1.1, 2.2.2.2 }"), ("x", "$h")]
            ),
            vec![
                Tok::Keyword(Keyword::From),
                Tok::LBrace,
                s("1.1.1.1"),
                Tok::Comma,
                s("2.2.2.2"),
                Tok::RBrace,
                Tok::Keyword(Keyword::To),
                Tok::Other('$'),
                s("h"),
                Tok::Newline,
            ]
        );
        assert_eq!(
            lex("a $nope\nb\n"),
            vec![
                s("a"),
                Tok::Error(LexError::UndefinedMacro("nope".into())),
                Tok::Newline,
                s("b"),
                Tok::Newline
            ]
        );
        assert_eq!(
            lex("a $nope b\nc\n"),
            vec![
                s("a"),
                Tok::Error(LexError::UndefinedMacro("nope".into())),
                Tok::Newline,
                s("c"),
                Tok::Newline
            ]
        );
    }

    #[test]
    fn missing_final_newline_is_supplied() {
        assert_eq!(lex("a"), vec![s("a"), Tok::Newline]);
        assert_eq!(lex(""), vec![]);
    }

    #[test]
    fn overflowing_number() {
        assert_eq!(
            lex("99999999999999999999 x\ny\n"),
            vec![
                Tok::Error(LexError::InvalidNumber {
                    text: "99999999999999999999".into(),
                    reason: "too large"
                }),
                Tok::Newline,
                s("y"),
                Tok::Newline
            ]
        );
    }
}
