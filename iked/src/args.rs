//! `iked [-dv] [-c directory] [-s socket] [-S ipsecd-socket]`.

/// The control socket `ipsecctl -i` talks to, by default.
pub const DEFAULT_SOCKET: &str = "/run/ipsecd/iked.sock";
/// `ipsecd`'s, by default (as `ipsecctl`'s, and `IPSECD_SOCKET` too).
pub const DEFAULT_IPSECD: &str = "/run/ipsecd/ipsecd.sock";

/// Where this host's key, certificate and trusted authorities are, by
/// default (OpenBSD's iked's place).
pub const DEFAULT_PKI: &str = "/etc/iked";

pub const USAGE: &str = "usage: iked [-dv] [-c directory] [-s socket] [-S ipsecd-socket]";

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub foreground: bool,
    pub verbose: u8,
    pub socket: String,
    pub ipsecd: String,
    pub pki: String,
}

/// Reads the arguments after the program's name.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        foreground: false,
        verbose: 0,
        socket: DEFAULT_SOCKET.into(),
        ipsecd: std::env::var("IPSECD_SOCKET").unwrap_or_else(|_| DEFAULT_IPSECD.into()),
        pki: DEFAULT_PKI.into(),
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unexpected argument {arg}"));
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            match c {
                'd' => args.foreground = true,
                'v' => args.verbose = args.verbose.saturating_add(1),
                's' | 'S' | 'c' => {
                    let rest: String = chars.by_ref().collect();
                    let value = if rest.is_empty() {
                        it.next().cloned().ok_or(format!("-{c} needs a path"))?
                    } else {
                        rest
                    };
                    match c {
                        's' => args.socket = value,
                        'S' => args.ipsecd = value,
                        _ => args.pki = value,
                    }
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Args, String> {
        let argv: Vec<String> = words.split_whitespace().map(String::from).collect();
        parse(&argv)
    }

    #[test]
    fn flags_and_sockets() {
        let a = parse_words("-dvv -s /tmp/i.sock -S/tmp/d.sock -c /tmp/pki").unwrap();
        assert_eq!(a.pki, "/tmp/pki");
        assert_eq!(parse_words("-d").unwrap().pki, DEFAULT_PKI);
        assert!(a.foreground);
        assert_eq!(a.verbose, 2);
        assert_eq!(
            (a.socket.as_str(), a.ipsecd.as_str()),
            ("/tmp/i.sock", "/tmp/d.sock")
        );
        assert!(parse_words("-x").unwrap_err().contains("-x"));
        assert!(parse_words("-s").unwrap_err().contains("path"));
        assert!(parse_words("extra").is_err());
    }
}
