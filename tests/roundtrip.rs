//! The printer round trip: what `ipsecctl -knv` prints for flows and SAs
//! is itself a configuration, and reading it back prints the same text.

use crate::support::{self, Flags};
use proptest::prelude::*;

fn v4() -> impl Strategy<Value = String> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}"))
}

fn v6() -> impl Strategy<Value = String> {
    (0x2001u16..0x3fff, any::<u16>(), 0u16..3, any::<u16>())
        .prop_map(|(a, b, c, d)| format!("{a:x}:{b:x}:{c:x}::{d:x}"))
}

/// A host or a network of one family.
fn endpoint(v6_family: bool) -> BoxedStrategy<String> {
    let host = if v6_family {
        v6().boxed()
    } else {
        v4().boxed()
    };
    let max = if v6_family { 128 } else { 32 };
    prop_oneof![
        host.clone(),
        (host, 0u8..=max).prop_map(|(h, bits)| format!("{h}/{bits}")),
        Just("any".to_owned()),
    ]
    .boxed()
}

fn flow() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::sample::select(vec!["esp", "ah", "ipcomp", "ipip"]),
        prop::sample::select(vec!["", " in", " out"]),
        prop::sample::select(vec!["", " proto tcp", " proto udp", " proto 47"]),
        (any::<bool>(), any::<bool>()),
        prop::sample::select(vec!["use", "acquire", "require", "deny", "bypass", "dontacq"]),
        prop::option::of("[a-z]{1,8}\\.example"),
    )
        .prop_flat_map(|(fam6, satype, dir, proto, (sport, dport), kind, id)| {
            (endpoint(fam6), endpoint(fam6), if fam6 { v6().boxed() } else { v4().boxed() }).prop_map(
                move |(src, dst, peer)| {
                    let ports = !proto.is_empty() && proto != " proto 47";
                    let sp = if ports && sport { " port 22" } else { "" };
                    let dp = if ports && dport { " port 8080" } else { "" };
                    let ids = id.as_ref().map_or(String::new(), |i| format!(" srcid {i} dstid peer.{i}"));
                    format!("flow {satype}{dir}{proto} from {src}{sp} to {dst}{dp} peer {peer}{ids} type {kind}\n")
                },
            )
        })
}

fn hex(len: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), len).prop_map(|b| {
        let digits: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("0x{digits}")
    })
}

fn sa() -> impl Strategy<Value = String> {
    let spi = 256u32..=u32::MAX;
    (
        any::<bool>(),
        spi,
        prop::sample::select(vec!["tunnel", "transport"]),
        0usize..6,
    )
        .prop_flat_map(|(fam6, spi, mode, kind)| {
            let host = if fam6 { v6().boxed() } else { v4().boxed() };
            (host.clone(), host, hex(32), hex(24), hex(20)).prop_map(move |(src, dst, k32, k24, k20)| {
                let ends = format!("from {src} to {dst} spi 0x{spi:08x}");
                match kind {
                    0 => format!("esp {mode} {ends} auth hmac-sha2-256 enc aes authkey {k32} enckey {k24}\n"),
                    1 => format!("esp {mode} {ends} auth hmac-sha1 enc 3des-cbc authkey {k20} enckey {k24}\n"),
                    2 => format!("ah {mode} {ends} auth hmac-sha2-256 authkey {k32}\n"),
                    3 => format!("ipcomp {mode} {ends} comp deflate\n"),
                    4 => format!("ipip {ends}\n"),
                    _ => format!("tcpmd5 {ends} authkey {k20}\n"),
                }
            })
        })
}

fn print(text: &str) -> String {
    let flags = Flags {
        keys: true,
        delete: false,
        verbose: 1,
    };
    let (_, out) = support::compile("roundtrip.conf", text, flags);
    assert!(out.ok(), "{text}\n{:?}", out.diagnostics);
    out.text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_rules_read_back_the_same(rules in prop::collection::vec(prop_oneof![flow(), sa()], 1..8)) {
        let config: String = rules.concat();
        let first = print(&config);
        let second = print(&first);
        prop_assert_eq!(&first, &second);
        // Reading it a third time changes nothing either.
        prop_assert_eq!(print(&second), second);
    }
}

/// The rule with the names its addresses were written as left out.
fn unnamed(kind: &ipsec_compiler::rule::RuleKind) -> ipsec_compiler::rule::RuleKind {
    use ipsec_compiler::rule::RuleKind;
    let mut kind = kind.clone();
    if let RuleKind::Ike(ike) = &mut kind {
        for a in [
            Some(&mut ike.src),
            Some(&mut ike.dst),
            ike.local.as_mut(),
            ike.peer.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            a.name.clear();
            if let Some(nat) = &mut a.nat {
                nat.name.clear();
            }
        }
    }
    kind
}

/// Every `ike` rule of the cases and examples, printed as the statement
/// `ipsecctl` hands to `iked`, compiles back to the same rule.
#[test]
fn ike_rules_printed_as_statements_compile_back_the_same() {
    use ipsec_compiler::rule::RuleKind;
    use ipsec_compiler::{Fixed, compile_text, print::ike_statement};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["tests/cases", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "conf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let out = compile_text("case", &text, &Fixed::standard(), &Default::default());
            if !out.ok() {
                continue;
            }
            for rule in &out.rules {
                let RuleKind::Ike(ike) = &rule.kind else {
                    continue;
                };
                let Ok(statement) = ike_statement(ike, true) else {
                    continue;
                };
                let back = compile_text(
                    "statement",
                    &statement,
                    &Fixed::standard(),
                    &Default::default(),
                );
                assert!(
                    back.ok(),
                    "{}: {statement}{:?}",
                    path.display(),
                    back.diagnostics
                );
                // Names (an interface's, a host's) are printed as addresses.
                let kinds: Vec<RuleKind> = back.rules.iter().map(|r| unnamed(&r.kind)).collect();
                assert_eq!(
                    kinds,
                    [unnamed(&rule.kind)],
                    "{}: {statement}",
                    path.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 20, "only {seen} ike rules in the cases");
}

/// A key with quotes and backslashes survives the statement; one the
/// language cannot hold is refused rather than sent changed.
#[test]
fn ike_statement_keys_survive_or_are_refused() {
    use ipsec_compiler::rule::{IkeAuth, RuleKind};
    use ipsec_compiler::{Fixed, compile_text, print::ike_statement};
    let conf = "ike esp from 192.0.2.1 to 192.0.2.2 psk 'say \"a\\b\" twice'\n";
    let out = compile_text("-", conf, &Fixed::standard(), &Default::default());
    assert!(out.ok(), "{:?}", out.diagnostics);
    let RuleKind::Ike(ike) = &out.rules[0].kind else {
        panic!()
    };
    let statement = ike_statement(ike, true).unwrap();
    let back = compile_text("-", &statement, &Fixed::standard(), &Default::default());
    let RuleKind::Ike(again) = &back.rules[0].kind else {
        panic!("{statement}")
    };
    let key = |i: &ipsec_compiler::rule::Ike| match &i.auth {
        IkeAuth::Psk(k) => k.to_string(),
        IkeAuth::Rsa => String::new(),
    };
    assert_eq!(key(again), "say \"a\\b\" twice");
    assert!(!ike_statement(ike, false).unwrap().contains("psk"));
    let mut bad = (**ike).clone();
    bad.auth = IkeAuth::Psk(zeroize::Zeroizing::new("ends in \\".into()));
    assert!(ike_statement(&bad, true).is_err());
}
