//! `ikectl [-s socket] [-j] show | up N | down N`: what `iked` has, and
//! a rule brought up or taken down by hand, through its control socket.

use crate::args::DEFAULT_SOCKET;
use std::process::ExitCode;

pub const USAGE: &str =
    "usage: ikectl [-s socket] [-j] show\n       ikectl [-s socket] up | down rule";

/// The command line: the socket and the request to send.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    socket: String,
    request: String,
}

fn parse(argv: &[String]) -> Result<Command, String> {
    let mut socket = DEFAULT_SOCKET.to_owned();
    let mut json = false;
    let mut words = Vec::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-s" => socket = it.next().ok_or("-s needs a path")?.clone(),
            "-j" | "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            word => words.push(word),
        }
    }
    let request = match words.as_slice() {
        ["show"] | ["show", "sa"] => {
            if json {
                "show json".to_owned()
            } else {
                "show".to_owned()
            }
        }
        [verb @ ("up" | "down"), n] => {
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{verb}: not a rule number: {n}"))?;
            format!("{verb} {n}")
        }
        [] => return Err("no command".into()),
        other => return Err(format!("unknown command: {}", other.join(" "))),
    };
    Ok(Command { socket, request })
}

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&argv) {
        Ok(c) => c,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("ikectl: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match ipsecctl::iked::request(&command.socket, &command.request, "") {
        Ok(answer) => {
            // `up` and `down` answer a bare "ok".
            if answer.trim_end() != "ok" {
                print!("{answer}");
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("ikectl: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_become_requests() {
        let c = parse(&args("show")).unwrap();
        assert_eq!(
            (c.socket.as_str(), c.request.as_str()),
            (DEFAULT_SOCKET, "show")
        );
        assert_eq!(parse(&args("-j show")).unwrap().request, "show json");
        let c = parse(&args("-s /tmp/i.sock down 3")).unwrap();
        assert_eq!(
            (c.socket.as_str(), c.request.as_str()),
            ("/tmp/i.sock", "down 3")
        );
        assert_eq!(parse(&args("up 1")).unwrap().request, "up 1");
        assert!(
            parse(&args("up 0"))
                .unwrap_err()
                .contains("not a rule number")
        );
        assert!(parse(&args("up")).unwrap_err().contains("unknown command"));
        assert!(
            parse(&args("-x show"))
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(parse(&args("")).is_err());
        assert_eq!(parse(&args("-h")), Err(String::new()));
    }
}
