//! Handing `ike` rules to `iked` through its control socket, when `-i`
//! names a socket rather than isakmpd's FIFO: each rule as one
//! `ipsec.conf` statement, which `iked` compiles as this program does.

use crate::client::Client;
use crate::system::strerror;
use ipsec_compiler::print::ike_statement;
use ipsec_compiler::rule::Ike;
use std::os::unix::fs::FileTypeExt;

/// Whether `path` is a socket (an `iked`), not a FIFO (an isakmpd).
pub fn is_socket(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Sends one request and reads `iked`'s answer: `Ok` with it, or `Err`
/// with what went wrong.
pub fn request(path: &str, verb: &str, body: &str) -> Result<String, String> {
    let client = Client::connect(path).map_err(|e| format!("iked at {path}: {}", strerror(&e)))?;
    let message = zeroize::Zeroizing::new(format!("{verb}\n{body}"));
    client
        .send_bytes(message.as_bytes())
        .map_err(|e| format!("iked at {path}: {}", strerror(&e)))?;
    let answer = client
        .recv()
        .map_err(|e| format!("iked at {path}: {}", strerror(&e)))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    match text.strip_prefix("error: ") {
        Some(why) => Err(why.trim_end().to_owned()),
        None => Ok(text),
    }
}

/// Adds (or with `delete`, removes) one rule.
pub fn send(path: &str, ike: &Ike, delete: bool) -> Result<(), String> {
    let statement = zeroize::Zeroizing::new(ike_statement(ike, true)?);
    let verb = if delete { "delete" } else { "add" };
    request(path, verb, &statement).map(|_| ())
}
