//! Integration tests: snapshots of compiled output and diagnostics for
//! every case in `tests/cases` and `examples`, the command line as a user
//! runs it, ipsecctl against a running ipsecd, and the printer's round
//! trip.

mod bridge;
mod churn;
mod cli;
mod daemon;
mod datapath;
mod failclosed;
mod filter;
mod hostile;
mod ike_interop;
mod iked;
mod interop;
mod natt;
mod netem;
mod observe;
mod reload;
mod roundtrip;
mod snapshots;
mod support;
