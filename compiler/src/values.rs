//! Values written as text in rules: SPIs, keys and lifetimes, read the
//! way OpenBSD's C library reads them.

use crate::rule::Key;

/// `strtoul(s, .., 0)` that must consume the whole string; like C, a minus
/// sign wraps around.
pub fn parse_ulong(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let value = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Hex digits, optionally after `0x`; an odd last digit is ignored, as
/// OpenBSD does. `None` if a pair is not hex.
pub fn parse_hex_key(text: &str) -> Option<Key> {
    let hex = text.strip_prefix("0x").unwrap_or(text).as_bytes();
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let digit = |c: u8| (c as char).to_digit(16);
        bytes.push((digit(pair[0])? * 16 + digit(pair[1])?) as u8);
    }
    Some(Key::new(bytes))
}

/// A lifetime read as OpenBSD reads it, with `sscanf("%d%c")`: a number of
/// seconds, or a number and a unit `m` or `h`; anything after the unit is
/// ignored.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let trimmed = text.trim_start();
    let sign = usize::from(trimmed.starts_with(['-', '+']));
    let digits = trimmed[sign..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let value: i64 = trimmed[..sign + digits]
        .parse()
        .map_err(|_| format!("invalid time specification: {text}"))?;
    match trimmed[sign + digits..].chars().next() {
        None => Ok(value),
        Some('m' | 'M') => Ok(value.saturating_mul(60)),
        Some('h' | 'H') => Ok(value.saturating_mul(3600)),
        Some(_) => Err("invalid time unit".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert_eq!(parse_ulong("0x1000"), Some(0x1000));
        assert_eq!(parse_ulong("010"), Some(8));
        assert_eq!(parse_ulong("12"), Some(12));
        assert_eq!(parse_ulong(""), None);
        assert_eq!(parse_ulong("x"), None);
        assert_eq!(parse_ulong("-1"), Some(u64::MAX));
        assert_eq!(
            parse_hex_key("0xdeadbee").unwrap().bytes(),
            &[0xde, 0xad, 0xbe]
        );
        assert!(parse_hex_key("0xzz").is_none());
        assert_eq!(parse_lifetime("30m"), Ok(1800));
        assert_eq!(parse_lifetime("2H"), Ok(7200));
        assert_eq!(parse_lifetime("5s"), Err("invalid time unit".into()));
        assert_eq!(
            parse_lifetime("abc"),
            Err("invalid time specification: abc".into())
        );
    }
}
