//! How compile time grows with the size of a configuration.
//!
//! Generates configurations of 10,000 and 100,000 statements (flows, manual
//! SAs with keys in both directions, IKE rules), compiles each as
//! `ipsecctl -n` does (best of three), and reports the time per statement
//! and per rule, the growth from 10k to 100k (10x is linear) and the peak
//! resident memory. `--write N PATH` writes the N-statement configuration
//! to PATH instead, to time the real binary on it.

use ipsec_compiler::{Fixed, Options};
use ipsec_grammar::{NoIncludes, SourceMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A deterministic mix of every common statement.
pub fn generate(statements: usize) -> String {
    let mut text = String::with_capacity(statements * 120);
    let key32 = "0x".to_owned() + &"5a".repeat(32);
    let key16 = "0x".to_owned() + &"c3".repeat(16);
    for i in 0..statements {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let _ = match i % 10 {
            0..=3 => writeln!(
                text,
                "flow esp from 10.{a}.{b}.0/24 to 172.16.{b}.0/24 peer 192.0.2.{}",
                i % 250 + 1
            ),
            4..=6 => writeln!(
                text,
                "esp transport from 10.{a}.{b}.1 to 10.{a}.{b}.2 spi 0x{:08x}:0x{:08x} \
                 authkey {key32}:{key32} enckey {key16}:{key16}",
                0x1000_0000 + i,
                0x2000_0000 + i
            ),
            7 | 8 => writeln!(
                text,
                "ike esp from 10.{a}.{b}.0/24 to 172.17.{b}.0/24 peer 198.51.100.{} psk \"secret{i}\"",
                i % 250 + 1
            ),
            _ => writeln!(
                text,
                "flow ah in proto tcp from 10.{a}.{b}.9 port ssh to any peer any type acquire"
            ),
        };
    }
    text
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn compile_once(text: &str, resolver: &Fixed) -> (Duration, usize) {
    let mut sources = SourceMap::new();
    let main = sources.add("bench.conf", text.as_bytes());
    let start = Instant::now();
    let out = ipsec_compiler::compile(
        &mut sources,
        main,
        &mut NoIncludes,
        resolver,
        &Options::default(),
    );
    let elapsed = start.elapsed();
    assert!(out.ok(), "generated configuration must compile");
    (elapsed, out.rules.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let n: usize = args[i + 1].parse().expect("statement count");
        std::fs::write(&args[i + 2], generate(n)).expect("writable path");
        return;
    }
    let resolver = Fixed::standard();
    let mut per_statement = Vec::new();
    println!(
        "{:>10} {:>8} {:>10} {:>12} {:>10}",
        "statements", "rules", "best", "/statement", "/rule"
    );
    for n in [10_000, 100_000] {
        let text = generate(n);
        let (best, rules) = (0..3)
            .map(|_| compile_once(&text, &resolver))
            .min_by_key(|(t, _)| *t)
            .expect("three runs");
        let ns = best.as_nanos() as f64;
        per_statement.push(ns / n as f64);
        println!(
            "{n:>10} {rules:>8} {:>8.1}ms {:>10.0}ns {:>8.0}ns",
            ns / 1e6,
            ns / n as f64,
            ns / rules as f64
        );
    }
    println!(
        "growth 10k -> 100k: {:.2}x the time for 10x the statements (time per statement {:.2}x)",
        per_statement[1] * 10.0 / per_statement[0],
        per_statement[1] / per_statement[0]
    );
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0);
    }
}
