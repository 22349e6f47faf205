//! `ipsecd`'s command line.

use std::path::PathBuf;

pub const USAGE: &str =
    "usage: ipsecd [-dv] [-s socket] [-e ifname] [-p rules] [-w pcap] [-b ifname -b ifname]";
const DEFAULT_SOCKET: &str = "/run/ipsecd/ipsecd.sock";

#[derive(Debug)]
pub struct Args {
    pub foreground: bool,
    pub verbose: u8,
    pub socket: PathBuf,
    pub enc: String,
    pub capture: Option<PathBuf>,
    /// Bridge mode's two Ethernet ports (`-b` twice), or none.
    pub bridge: Vec<String>,
    /// The filter's rules file (`-p`).
    pub filter: Option<PathBuf>,
}

pub fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        foreground: false,
        verbose: 0,
        socket: PathBuf::from(DEFAULT_SOCKET),
        enc: "enc0".to_string(),
        capture: None,
        bridge: Vec::new(),
        filter: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unknown command line argument: {arg}"));
        };
        let mut chars = flags.chars();
        while let Some(flag) = chars.next() {
            match flag {
                'd' => args.foreground = true,
                'v' => args.verbose = args.verbose.saturating_add(1),
                's' | 'e' | 'p' | 'w' | 'b' => {
                    let rest: String = chars.by_ref().collect();
                    let value = if !rest.is_empty() {
                        rest
                    } else if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("option requires an argument -- {flag}"));
                    };
                    match flag {
                        's' => args.socket = PathBuf::from(value),
                        'e' => args.enc = value,
                        'w' => args.capture = Some(PathBuf::from(value)),
                        'p' => args.filter = Some(PathBuf::from(value)),
                        _ => args.bridge.push(value),
                    }
                }
                other => return Err(format!("unknown option -- {other}")),
            }
        }
    }
    let name = |port: &String| port.split(',').next().unwrap_or_default().to_owned();
    match args.bridge.as_slice() {
        [] => {}
        [a, b] if name(a) != name(b) => {}
        [a, b] => {
            return Err(format!(
                "-b: {a} and {b} are one interface: a bridge needs two"
            ));
        }
        _ => return Err("-b: bridge mode takes two interfaces, -b A -b B".into()),
    }
    Ok(args)
}
