//! `show`'s answer: each rule with its IKE SAs and Child SAs, in text for
//! people or in JSON for programs, and the drops by reason.

use ipsec_ike::keyer::{Drops, RuleStatus, SaStatus};
use ipsecctl::json_string as quote;
use std::fmt::Write;

/// The text `ikectl show` prints.
pub fn text(rules: &[RuleStatus<'_>], drops: &Drops) -> String {
    let mut out = String::new();
    for r in rules {
        let state = if r.down {
            "down (by hand)"
        } else if r.sas.iter().any(|sa| sa.state == "up") {
            "up"
        } else if r.sas.is_empty() {
            "idle"
        } else {
            "negotiating"
        };
        let _ = writeln!(out, "rule {}: {}: {state}", r.number, r.policy.name);
        for sa in &r.sas {
            let _ = write!(
                out,
                "\tIKE SA {:016x}:{:016x} with {} ({}, {}), {} s",
                sa.spi_i,
                sa.spi_r,
                sa.remote,
                sa.state,
                if sa.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                sa.age
            );
            if let Some([cipher, integ, prf, group]) = &sa.ike {
                let _ = write!(out, ", enc {cipher} auth {integ} prf {prf} group {group}");
            }
            out.push('\n');
            for c in &sa.children {
                let [enc, auth, group] = &c.algorithms;
                let _ = write!(
                    out,
                    "\t\tChild SA {:#010x} in, {:#010x} out (rule {}), enc {enc} auth {auth} pfs {group}, {} s",
                    c.spi_in, c.spi_out, c.rule, c.age
                );
                match c.rekey_in {
                    Some(s) => {
                        let _ = writeln!(out, ", rekeyed in {s} s");
                    }
                    None => out.push_str(", no lifetime\n"),
                }
            }
        }
    }
    if rules.is_empty() {
        out.push_str("no rules\n");
    }
    let _ = writeln!(
        out,
        "dropped: {} malformed, {} unopened, {} for unknown SPIs, {} from no rule's peer; \
         under a flood: {} asked for a cookie, {} refused, {} half-open SAs expired",
        drops.malformed,
        drops.unprotected,
        drops.unknown_spi,
        drops.no_policy,
        drops.cookies_asked,
        drops.half_open_full,
        drops.half_open_expired
    );
    out
}

/// The same as one JSON object.
pub fn json(rules: &[RuleStatus<'_>], drops: &Drops) -> String {
    let rules: Vec<String> = rules
        .iter()
        .map(|r| {
            let sas: Vec<String> = r.sas.iter().map(sa_json).collect();
            format!(
                "{{\"number\":{},\"rule\":{},\"peer\":{},\"down\":{},\"sas\":[{}]}}",
                r.number,
                quote(&r.policy.name),
                // null: a rule for any peer.
                r.policy
                    .peer
                    .map_or_else(|| "null".to_owned(), |p| quote(&p.to_string())),
                r.down,
                sas.join(",")
            )
        })
        .collect();
    format!(
        "{{\"rules\":[{}],\"dropped\":{{\"malformed\":{},\"unopened\":{},\"unknown_spi\":{},\
         \"no_rule\":{},\"cookies_asked\":{},\"half_open_full\":{},\"half_open_expired\":{}}}}}\n",
        rules.join(","),
        drops.malformed,
        drops.unprotected,
        drops.unknown_spi,
        drops.no_policy,
        drops.cookies_asked,
        drops.half_open_full,
        drops.half_open_expired
    )
}

fn sa_json(sa: &SaStatus) -> String {
    let ike = sa.ike.as_ref().map_or_else(
        || "null".to_owned(),
        |[enc, auth, prf, group]| {
            format!(
                "{{\"enc\":{},\"auth\":{},\"prf\":{},\"group\":{}}}",
                quote(enc),
                quote(auth),
                quote(prf),
                quote(group)
            )
        },
    );
    let children: Vec<String> = sa
        .children
        .iter()
        .map(|c| {
            let [enc, auth, group] = &c.algorithms;
            format!(
                "{{\"rule\":{},\"spi_in\":\"{:#010x}\",\"spi_out\":\"{:#010x}\",\"enc\":{},\"auth\":{},\
                 \"pfs\":{},\"age\":{},\"rekey_in\":{}}}",
                c.rule,
                c.spi_in,
                c.spi_out,
                quote(enc),
                quote(auth),
                quote(group),
                c.age,
                c.rekey_in.map_or_else(|| "null".to_owned(), |s| s.to_string())
            )
        })
        .collect();
    format!(
        "{{\"state\":{},\"spi_i\":\"{:016x}\",\"spi_r\":\"{:016x}\",\"initiator\":{},\"remote\":{},\
         \"age\":{},\"ike\":{},\"children\":[{}]}}",
        quote(sa.state),
        sa.spi_i,
        sa.spi_r,
        sa.initiator,
        quote(&sa.remote.to_string()),
        sa.age,
        ike,
        children.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rules_say_so() {
        let d = Drops::default();
        assert!(text(&[], &d).starts_with("no rules\ndropped: 0 malformed"));
        assert_eq!(
            json(&[], &d),
            "{\"rules\":[],\"dropped\":{\"malformed\":0,\"unopened\":0,\"unknown_spi\":0,\
             \"no_rule\":0,\"cookies_asked\":0,\"half_open_full\":0,\"half_open_expired\":0}}\n"
        );
    }
}
