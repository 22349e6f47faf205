//! `ipsecd(8)`: see the `ipsecd` crate.

fn main() -> std::process::ExitCode {
    ipsecd::main()
}
