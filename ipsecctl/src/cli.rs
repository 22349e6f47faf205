//! The command line, read as OpenBSD's getopt(3) reads it: clustered
//! flags (`-nvf -`), option arguments attached or separate.

use ipsec_grammar::ErrorFormat;

pub const USAGE: &str = "usage: ipsecctl [-cdFkmnv] [-D macro=value] [-f file] [-i fifo] [-s modifier]\n\
\t[-S socket] [-w file] [--error-format=openbsd|rich|short] [--json]\n\
\t[--sync [--grace=seconds]] [--explain 'packet']";

/// How long, by default, `--sync` keeps the SAs it retires.
pub const DEFAULT_GRACE: u64 = 5;

pub const DEFAULT_SOCKET: &str = "/run/ipsecd/ipsecd.sock";
pub const DEFAULT_FIFO: &str = "/var/run/isakmpd.fifo";

/// What `-s` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Flow,
    Sa,
    All,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub collapse: bool,
    pub delete: bool,
    pub flush: bool,
    pub keys: bool,
    pub monitor: bool,
    pub noaction: bool,
    pub verbose: u8,
    pub defines: Vec<(String, String)>,
    pub file: Option<String>,
    pub fifo: String,
    pub show: Option<Show>,
    pub socket: String,
    /// `-w`: where to write the PF_KEY messages of `-f`.
    pub write: Option<String>,
    pub error_format: ErrorFormat,
    /// `--json`: `-s` prints JSON.
    pub json: bool,
    /// `--sync`: `-f` makes the live tables equal to the file.
    pub sync: bool,
    /// `--grace`: seconds `--sync` keeps the SAs it retires.
    pub grace: u64,
    /// `--explain`: a packet, to ask ipsecd what it would do with it.
    pub explain: Option<String>,
}

/// The outcome of reading the command line.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    /// `-h`/`--help`.
    Help,
    Version,
    /// Print these lines to standard error, then the usage, and fail.
    Usage(Vec<String>),
}

impl Args {
    fn new(socket: String) -> Args {
        Args {
            collapse: false,
            delete: false,
            flush: false,
            keys: false,
            monitor: false,
            noaction: false,
            verbose: 0,
            defines: Vec::new(),
            file: None,
            fifo: DEFAULT_FIFO.to_owned(),
            show: None,
            socket,
            write: None,
            error_format: ErrorFormat::default(),
            json: false,
            sync: false,
            grace: DEFAULT_GRACE,
            explain: None,
        }
    }
}

/// The value of a long option: after `=`, or the next word.
fn long_value(
    name: &str,
    inline: Option<String>,
    argv: &[String],
    i: &mut usize,
) -> Result<String, String> {
    match inline {
        Some(v) => Ok(v),
        None if *i < argv.len() => {
            *i += 1;
            Ok(argv[*i - 1].clone())
        }
        None => Err(format!("ipsecctl: option requires an argument -- {name}")),
    }
}

/// The first of `flow`, `sa`, `all` that starts with `word`.
fn show_modifier(word: &str) -> Option<Show> {
    [("flow", Show::Flow), ("sa", Show::Sa), ("all", Show::All)]
        .into_iter()
        .find(|(name, _)| !word.is_empty() && name.starts_with(word))
        .map(|(_, show)| show)
}

/// `-D name=value`, split at the last `=`.
fn define(arg: &str) -> Option<(String, String)> {
    let (name, value) = arg.rsplit_once('=')?;
    Some((name.to_owned(), value.to_owned()))
}

/// Parses `argv` without the program name. `default_socket` is the socket
/// path unless `-S` names another.
pub fn parse(argv: &[String], default_socket: String) -> Parsed {
    if argv.is_empty() {
        return Parsed::Usage(Vec::new());
    }
    let mut args = Args::new(default_socket);
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            match name {
                "help" => return Parsed::Help,
                "version" => return Parsed::Version,
                "json" => args.json = true,
                "sync" => args.sync = true,
                "explain" => {
                    let value = match long_value("explain", inline, argv, &mut i) {
                        Ok(v) => v,
                        Err(why) => return Parsed::Usage(vec![why]),
                    };
                    args.explain = Some(value);
                }
                "grace" => {
                    let value = match long_value("grace", inline, argv, &mut i) {
                        Ok(v) => v,
                        Err(why) => return Parsed::Usage(vec![why]),
                    };
                    match value.parse::<u64>() {
                        Ok(n) if n <= 86_400 => args.grace = n,
                        _ => {
                            return Parsed::Usage(vec![format!(
                                "ipsecctl: --grace takes seconds, at most 86400, not '{value}'"
                            )]);
                        }
                    }
                }
                "error-format" => {
                    let value = match long_value("error-format", inline, argv, &mut i) {
                        Ok(v) => v,
                        Err(why) => return Parsed::Usage(vec![why]),
                    };
                    match ErrorFormat::from_name(&value) {
                        Some(f) => args.error_format = f,
                        None => {
                            return Parsed::Usage(vec![format!(
                                "ipsecctl: unknown error format '{value}' (use openbsd, rich or short)"
                            )]);
                        }
                    }
                }
                _ => return Parsed::Usage(vec![format!("ipsecctl: unknown option -- {name}")]),
            }
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            i -= 1;
            break;
        }
        let flags: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let flag = flags[j];
            j += 1;
            if matches!(flag, 'D' | 'f' | 'i' | 's' | 'S' | 'w') {
                let value = if j < flags.len() {
                    let rest: String = flags[j..].iter().collect();
                    j = flags.len();
                    rest
                } else if i < argv.len() {
                    i += 1;
                    argv[i - 1].clone()
                } else {
                    return Parsed::Usage(vec![format!(
                        "ipsecctl: option requires an argument -- {flag}"
                    )]);
                };
                match flag {
                    'D' => match define(&value) {
                        Some(d) => args.defines.push(d),
                        None => warnings.push(format!(
                            "ipsecctl: could not parse macro definition {value}"
                        )),
                    },
                    'f' => args.file = Some(value),
                    'i' => args.fifo = value,
                    'S' => args.socket = value,
                    'w' => args.write = Some(value),
                    _ => match show_modifier(&value) {
                        Some(show) => args.show = Some(show),
                        None => {
                            warnings.push(format!("ipsecctl: Unknown show modifier '{value}'"));
                            return Parsed::Usage(warnings);
                        }
                    },
                }
                continue;
            }
            match flag {
                'c' => args.collapse = true,
                'd' => args.delete = true,
                'F' => args.flush = true,
                'k' => args.keys = true,
                'm' => args.monitor = true,
                'n' => args.noaction = true,
                'v' => args.verbose = args.verbose.saturating_add(1),
                'h' => return Parsed::Help,
                other => {
                    warnings.push(format!("ipsecctl: unknown option -- {other}"));
                    return Parsed::Usage(warnings);
                }
            }
        }
    }
    if args.sync && (args.file.is_none() || args.delete) {
        return Parsed::Usage(vec!["ipsecctl: --sync needs -f file, and not -d".into()]);
    }
    if i < argv.len() {
        for extra in &argv[i..] {
            warnings.push(format!("unknown command line argument: {extra}"));
        }
        return Parsed::Usage(warnings);
    }
    for w in warnings {
        eprintln!("{w}");
    }
    Parsed::Run(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&argv, DEFAULT_SOCKET.into()) {
            Parsed::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clustered_flags_take_the_next_argument() {
        let a = run(&["-nvf", "-"]);
        assert!(a.noaction);
        assert_eq!(a.verbose, 1);
        assert_eq!(a.file.as_deref(), Some("-"));
        let a = run(&["-vvkfconf", "-s", "f", "-Dx=a=b"]);
        assert_eq!(a.verbose, 2);
        assert!(a.keys);
        assert_eq!(a.file.as_deref(), Some("conf"));
        assert_eq!(a.show, Some(Show::Flow));
        assert_eq!(a.defines, vec![("x=a".to_owned(), "b".to_owned())]);
        let a = run(&["-nf", "x.conf", "-wout.bin"]);
        assert_eq!(a.write.as_deref(), Some("out.bin"));
    }

    #[test]
    fn modifiers_and_mistakes() {
        assert_eq!(show_modifier("a"), Some(Show::All));
        assert_eq!(show_modifier("s"), Some(Show::Sa));
        assert_eq!(show_modifier("fl"), Some(Show::Flow));
        assert_eq!(show_modifier("x"), None);
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            parse(&argv(&["-s", "x"]), String::new()),
            Parsed::Usage(_)
        ));
        assert!(matches!(
            parse(&argv(&["-n", "extra"]), String::new()),
            Parsed::Usage(_)
        ));
        assert!(matches!(
            parse(&argv(&["-q"]), String::new()),
            Parsed::Usage(_)
        ));
        assert!(matches!(parse(&[], String::new()), Parsed::Usage(_)));
        let a = run(&["--error-format=openbsd", "-n", "--error-format", "short"]);
        assert_eq!(a.error_format, ErrorFormat::Short);
    }
}
