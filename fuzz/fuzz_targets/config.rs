//! Any bytes as an ipsec.conf: parsing, compiling, printing every rule in
//! every mode and rendering every diagnostic in every format must not
//! panic.

#![no_main]

use ipsec_compiler::{Fixed, Options, PrintOptions, rule_text};
use ipsec_grammar::{ErrorFormat, Loaded, Loader, Renderer, SourceMap};
use libfuzzer_sys::fuzz_target;

/// Serves the input itself for any include, to exercise nesting and loops.
struct Echo(Vec<u8>);

impl Loader for Echo {
    fn load(&mut self, path: &str) -> Result<Loaded, String> {
        if path.starts_with('/') {
            Err("No such file or directory".into())
        } else {
            // No identity: only the parser's limits stop a loop.
            Ok(Loaded {
                bytes: self.0.clone().into(),
                identity: None,
            })
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut resolver = Fixed::standard();
    resolver
        .key_files
        .insert("k".into(), data.iter().copied().take(64).collect());
    let mut sources = SourceMap::new();
    let main = sources.add("fuzz.conf", data);
    let opts = Options {
        echo: true,
        echo_macros: true,
        warn_unused: true,
        print: PrintOptions {
            keys: true,
            numbers: true,
            delete: false,
        },
        defines: vec![("d".into(), "1.2.3.4".into())],
    };
    let out = ipsec_compiler::compile(
        &mut sources,
        main,
        &mut Echo(data.to_vec()),
        &resolver,
        &opts,
    );
    for format in [ErrorFormat::Openbsd, ErrorFormat::Rich, ErrorFormat::Short] {
        let r = Renderer {
            sources: &sources,
            format,
            program: "ipsecctl",
        };
        for d in &out.diagnostics {
            let _ = r.render(d, format == ErrorFormat::Rich);
        }
    }
    let delete = PrintOptions {
        keys: false,
        numbers: false,
        delete: true,
    };
    for rule in &out.rules {
        let _ = rule_text(rule, delete, &resolver, "host");
    }
});
