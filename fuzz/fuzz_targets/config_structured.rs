//! ipsec.conf built from the fuzzer's bytes statement by statement, rather
//! than as bytes: macros defined from macros (the shape of a macro bomb),
//! address lists nested in lists, includes of other generated files under
//! many spellings of their names (the shape of an include loop), and rules
//! that use all of them. The byte-level `config` target rarely writes such
//! text; here every input is one. Compiling must not panic, and must end
//! quickly with bounded memory (libFuzzer's -timeout and -rss_limit_mb say
//! what quickly and bounded are).

#![no_main]

use ipsec_compiler::{Fixed, Options};
use ipsec_grammar::{Loaded, Loader, SourceMap};
use libfuzzer_sys::fuzz_target;

/// Words a statement is made of.
const WORDS: &[&str] = &[
    "flow",
    "esp",
    "ah",
    "ipcomp",
    "from",
    "to",
    "peer",
    "any",
    "out",
    "in",
    "proto",
    "tcp",
    "udp",
    "port",
    "22",
    "ssh",
    "type",
    "require",
    "bypass",
    "deny",
    "use",
    "local",
    "srcid",
    "ike",
    "main",
    "quick",
    "psk",
    "\"secret\"",
    "tunnel",
    "transport",
    "spi",
    "0x1000:0x1001",
    "auth",
    "hmac-sha2-256",
    "enc",
    "aes",
    "authkey",
    "enckey",
    "10.0.0.0/8",
    "192.0.2.1",
    "192.0.2.2",
    "2001:db8::1",
    "2001:db8::/32",
    "lo0",
    "{",
    "}",
    ",",
    "=",
    "\"",
    "\\\n",
    "0x0123456789abcdef0123456789abcdef",
    "bundle",
    "b",
];

/// The fuzzer's bytes, read one small choice at a time.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn next(&mut self, below: usize) -> usize {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                usize::from(b) % below.max(1)
            }
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// One generated file: statements until the bytes or the budget run out.
fn file(c: &mut Choices, files: usize) -> String {
    let mut text = String::new();
    let mut macros = 0;
    for _ in 0..32 {
        if c.done() {
            break;
        }
        match c.next(4) {
            // A macro, from words and earlier (or later) macros.
            0 => {
                text.push_str(&format!("m{macros} ="));
                macros += 1;
                let quoted = c.next(2) == 0;
                if quoted {
                    text.push_str(" \"");
                }
                for _ in 0..c.next(17) {
                    match c.next(3) {
                        0 => text.push_str(&format!(" $m{}", c.next(macros + 1))),
                        _ => text.push_str(&format!(" {}", WORDS[c.next(WORDS.len())])),
                    }
                }
                if quoted {
                    text.push('"');
                }
            }
            // An include of a generated file, spelled one way or another.
            1 => {
                let n = c.next(files.max(1));
                let spelling = "./".repeat(c.next(4));
                text.push_str(&format!("include \"{spelling}f{n}\""));
            }
            // A list of addresses, lists inside it.
            2 => {
                text.push_str(&format!("l{macros} = \""));
                macros += 1;
                let depth = c.next(4);
                text.push_str(&"{ ".repeat(depth));
                for i in 0..c.next(6) {
                    if i > 0 {
                        text.push_str(", ");
                    }
                    text.push_str(&format!("10.{}.0.0/16", c.next(256)));
                }
                text.push_str(&" }".repeat(depth));
                text.push('"');
            }
            // A rule of words and macros.
            _ => {
                for _ in 0..c.next(24) {
                    match c.next(4) {
                        0 => text.push_str(&format!("$m{} ", c.next(macros + 1))),
                        _ => {
                            text.push_str(WORDS[c.next(WORDS.len())]);
                            text.push(' ');
                        }
                    }
                }
            }
        }
        text.push('\n');
    }
    text
}

/// Serves the generated files by name, whatever `./` precedes it, each
/// with no identity of its own: only the parser's limits stop a loop.
struct Generated(Vec<String>);

impl Loader for Generated {
    fn load(&mut self, path: &str) -> Result<Loaded, String> {
        let name = path.trim_start_matches("./");
        let n: usize = name
            .strip_prefix('f')
            .and_then(|n| n.parse().ok())
            .ok_or("No such file or directory")?;
        let text = self.0.get(n).ok_or("No such file or directory")?;
        Ok(Loaded {
            bytes: text.clone().into_bytes().into(),
            identity: None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices(data);
    let count = 1 + c.next(4);
    let files: Vec<String> = (0..count).map(|_| file(&mut c, count)).collect();
    let mut sources = SourceMap::new();
    let main = sources.add("fuzz.conf", files[0].as_bytes());
    let _ = ipsec_compiler::compile(
        &mut sources,
        main,
        &mut Generated(files),
        &Fixed::standard(),
        &Options::default(),
    );
});
