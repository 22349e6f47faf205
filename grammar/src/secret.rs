//! Text that may hold keys: a configuration file, a macro's value, a key or
//! a pre-shared secret taken from them. It is wiped when dropped, and it
//! grows into fresh buffers, wiping the old, so no stale copy stays behind
//! in freed memory.

use std::sync::Arc;
use zeroize::Zeroizing;

/// A string that is wiped when dropped.
pub type Secret = Zeroizing<String>;

/// Shared text that is wiped when its last reference goes.
pub type SecretText = Arc<Secret>;

/// Bytes as text, invalid UTF-8 replaced, in one allocation that is never
/// grown (a replacement character is at most three bytes per input byte).
pub fn text_of(bytes: &[u8]) -> SecretText {
    let mut text = Zeroizing::new(String::with_capacity(bytes.len().saturating_mul(3)));
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    Arc::new(text)
}

/// Appends `parts` to `text`; when it must grow, the old buffer is wiped.
pub fn append(text: &mut Secret, parts: &[&str]) {
    let extra: usize = parts.iter().map(|p| p.len()).sum();
    if text.capacity() - text.len() < extra {
        let wanted = (text.len() + extra).max(2 * text.capacity());
        let mut grown = Zeroizing::new(String::with_capacity(wanted));
        grown.push_str(text);
        *text = grown;
    }
    for part in parts {
        text.push_str(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_are_replaced_without_growing() {
        let text = text_of(b"key \xff\xfe 0x01");
        assert_eq!(text.as_str(), "key \u{fffd}\u{fffd} 0x01");
        assert!(text.capacity() >= text.len());
    }

    #[test]
    fn appending_keeps_every_part() {
        let mut text = Zeroizing::new(String::new());
        for _ in 0..100 {
            append(&mut text, &["0x", "deadbeef", " "]);
        }
        assert_eq!(text.len(), 1100);
        assert!(text.starts_with("0xdeadbeef 0xdeadbeef"));
    }
}
