//! Any bytes as an `ipsecd -p` rules file. Nothing may panic; a file
//! that reads reads the same again; every problem has a place in the
//! file, within its text.

#![no_main]

use ipsec_grammar::SourceMap;
use ipsec_grammar::filter::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sources = SourceMap::new();
    let file = sources.add("rules", data);
    let len = sources.file(file).text().len();
    match parse(&sources, file) {
        Ok(rules) => assert_eq!(parse(&sources, file), Ok(rules)),
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                let span = e.span.expect("every problem has a place");
                assert!(span.range().end <= len, "{span:?} past {len}");
            }
        }
    }
});
