//! `ipsecctl(8)`: see the `ipsecctl` crate.

fn main() -> std::process::ExitCode {
    ipsecctl::main()
}
