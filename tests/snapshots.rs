//! One snapshot per configuration: what `ipsecctl -kv` prints (or the flags
//! on the case's first line) and every diagnostic, in both forms.

use crate::support;

#[test]
fn cases() {
    insta::glob!("cases/*.conf", |path| {
        let text = std::fs::read_to_string(path).expect("readable case");
        let name = path.file_name().unwrap().to_string_lossy();
        insta::assert_snapshot!(support::render(&name, &text));
    });
}

#[test]
fn examples() {
    insta::glob!("../examples", "*.conf", |path| {
        let text = std::fs::read_to_string(path).expect("readable example");
        let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        let rendered = support::render(&name, &text);
        assert!(
            rendered.ends_with("loadable\n"),
            "{name} must load:\n{rendered}"
        );
        insta::assert_snapshot!(rendered);
    });
}
