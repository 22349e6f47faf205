//! The control socket's protocol: `ipsecctl -i` sends one request per
//! message, a verb on the first line and, for `add` and `delete`, `ike`
//! statements of `ipsec.conf` after it; `iked` answers `ok`, or `error:`
//! and why. `ikectl` sends `show` (or `show json`) for the rules and
//! their SAs, and `up N` or `down N` to bring rule N up or take it down.

use ipsec_compiler::rule::{Ike, RuleKind};
use ipsec_compiler::{Fixed, compile_text, print::ike_statement};
use ipsec_ike::crypto::pki::Pki;
use ipsec_ike::keyer::Policy;
use std::net::IpAddr;
use std::sync::Arc;

/// One request.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Statements whose rules become policies.
    Add(String),
    /// Statements whose policies go.
    Delete(String),
    /// Every policy goes.
    Flush,
    /// The rules and their SAs, in JSON if asked.
    Show {
        json: bool,
    },
    /// Rule N (from 1, as `show` numbers them) comes up or goes down.
    Up(usize),
    Down(usize),
}

/// Reads a request.
pub fn parse(bytes: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text".to_owned())?;
    let (verb, rest) = text.split_once('\n').unwrap_or((text, ""));
    match verb.trim() {
        "add" => Ok(Request::Add(rest.to_owned())),
        "delete" => Ok(Request::Delete(rest.to_owned())),
        "flush" => Ok(Request::Flush),
        "show" => Ok(Request::Show { json: false }),
        "show json" => Ok(Request::Show { json: true }),
        other => match other.split_once(' ') {
            Some(("up", n)) => rule_number(n).map(Request::Up),
            Some(("down", n)) => rule_number(n).map(Request::Down),
            _ => Err(format!("unknown request {other:?}")),
        },
    }
}

fn rule_number(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("not a rule number: {text:?}"))
}

/// The policies `text`'s `ike` statements make; each is named by its
/// statement without the key, which is also how `delete` finds it.
/// `local_for` gives this host's address toward a peer, `pki` its
/// certificates, for rules that use them.
pub fn policies(
    text: &str,
    local_for: &dyn Fn(IpAddr) -> Option<IpAddr>,
    pki: &dyn Fn() -> Result<Arc<Pki>, String>,
) -> Result<Vec<Policy>, String> {
    let mut policies = Vec::new();
    for (ike, name) in rules(text)? {
        let policy = ipsec_ike::policy::policy(&ike, name.clone(), local_for, pki)
            .map_err(|why| format!("{name}: {why}"))?;
        policies.push(policy);
    }
    Ok(policies)
}

/// The names of `text`'s `ike` statements' rules, for `delete`.
pub fn names(text: &str) -> Result<Vec<String>, String> {
    Ok(rules(text)?.into_iter().map(|(_, name)| name).collect())
}

fn rules(text: &str) -> Result<Vec<(Ike, String)>, String> {
    let out = compile_text("ipsecctl", text, &Fixed::standard(), &Default::default());
    if !out.ok() {
        let why: Vec<&str> = out.diagnostics.iter().map(|d| d.message.as_str()).collect();
        return Err(why.join("; "));
    }
    let mut rules = Vec::new();
    for rule in out.rules {
        let RuleKind::Ike(ike) = rule.kind else {
            return Err("only ike rules go to iked".into());
        };
        let name = ike_statement(&ike, false)?.trim_end().to_owned();
        rules.push((*ike, name));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_their_rules() {
        assert_eq!(parse(b"flush"), Ok(Request::Flush));
        assert_eq!(parse(b"show\n"), Ok(Request::Show { json: false }));
        assert_eq!(parse(b"show json"), Ok(Request::Show { json: true }));
        assert_eq!(parse(b"up 2\n"), Ok(Request::Up(2)));
        assert_eq!(parse(b"down 1"), Ok(Request::Down(1)));
        assert!(parse(b"down 0").is_err());
        assert!(parse(b"up two").is_err());
        assert_eq!(
            parse(b"add\nike esp from 10.0.0.1 to 10.0.0.2\n"),
            Ok(Request::Add("ike esp from 10.0.0.1 to 10.0.0.2\n".into()))
        );
        assert!(parse(b"frob").is_err());
        let here = |_: IpAddr| Some("192.0.2.1".parse().unwrap());
        let none = || Err("no certificates".to_owned());
        let p = policies(
            "ike esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2 psk \"k\"\n",
            &here,
            &none,
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert!(!p[0].name.contains("psk"), "{}", p[0].name);
        assert!(
            p[0].name
                .starts_with("ike active esp tunnel from 10.1.0.0/16")
        );
        let flows = policies(
            "flow esp from 10.0.0.1 to 10.0.0.2 peer 192.0.2.2\n",
            &here,
            &none,
        );
        assert!(flows.unwrap_err().contains("only ike"));
        assert!(policies("ike frob\n", &here, &none).is_err());
        // A rule with certificates says why it cannot have them; delete
        // needs only the names.
        let rsa = "ike esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2\n";
        assert!(
            policies(rsa, &here, &none)
                .unwrap_err()
                .contains("no certificates")
        );
        assert_eq!(names(rsa).unwrap().len(), 1);
    }
}
