//! `ikectl(8)`: see `iked::ikectl`.

fn main() -> std::process::ExitCode {
    iked::ikectl::main()
}
