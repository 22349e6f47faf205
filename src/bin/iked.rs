//! `iked(8)`: see the `iked` crate.

fn main() -> std::process::ExitCode {
    iked::main()
}
