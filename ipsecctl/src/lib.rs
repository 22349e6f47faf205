//! ipsecctl: reads ipsec.conf(5), prints what it means, and hands it to
//! the runtime (`ipsecd`) and to isakmpd. The `ipsecctl` binary is this
//! crate's [`main`].

mod cli;
pub mod client;
mod explain;
pub mod iked;
mod isakmpd;
mod live;
/// JSON strings, as `--json` writes them (`ikectl -j` too).
pub use live::quote as json_string;
mod sync;
mod system;

use cli::{Args, Parsed};
use ipsec_compiler::ike::Secret;
use ipsec_compiler::lower::{self, Action, LowerError, Sequencer};
use ipsec_compiler::{Options, Output, RuleKind};
use ipsec_grammar::{Diagnostic, ErrorFormat, Renderer, Severity, SourceMap};
use pfkey::MsgType;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Runs `ipsecctl` with the process's arguments.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let socket = std::env::var("IPSECD_SOCKET").unwrap_or_else(|_| cli::DEFAULT_SOCKET.to_owned());
    match cli::parse(&argv, socket) {
        Parsed::Run(args) => {
            if run(&args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Parsed::Help => {
            println!("{}\n\n{HELP}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Parsed::Version => {
            println!("ipsecctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Parsed::Usage(lines) => {
            for line in lines {
                eprintln!("{line}");
            }
            eprintln!("{}", cli::USAGE);
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "  -c            collapse flows into lists when showing them (-s)
  -D m=value    define macro m; the file cannot override it
  -d            delete the rules of the file instead of adding them
  -F            flush all flows and SAs from ipsecd
  -f file       load rules from file (- for standard input)
  -i fifo       where ike rules go: isakmpd's FIFO, or iked's socket
                (default /var/run/isakmpd.fifo)
  -k            show keys (with -v, and with -s sa)
  -m            print PF_KEY messages from ipsecd until interrupted
  -n            parse and check only: change nothing
  -s modifier   show flow, sa or all from ipsecd
  -S socket     ipsecd's control socket (default /run/ipsecd/ipsecd.sock,
                or $IPSECD_SOCKET)
  -v            print the rules as they are read; twice: with rule numbers
  -w file       write the PF_KEY messages that -f (or -d -f) sends to file
  --error-format=openbsd|rich|short
                how problems in the file are reported (default rich)
  --json        with -s, print the tables as JSON
  --sync        with -f, make the running tables equal to the file: add
                what is new, remove what is gone, switch changed SAs
                without a gap; with -n, print the plan as +/- lines
  --grace=N     with --sync, keep the SAs it retires N seconds (default 5)
  --explain 'out proto tcp from A port P to B port Q'
                ask ipsecd which flow and SA such a packet would take

See ipsecctl(8) and ipsec.conf(5).";

/// Flush, load, show, monitor: OpenBSD's order. Each failure is reported
/// and the rest still runs.
fn run(args: &Args) -> bool {
    let mut ok = true;
    let mut client: Option<client::Client> = None;
    let connected = |what: &str, client: &mut Option<client::Client>| -> bool {
        if client.is_none() {
            *client = live::connect(&args.socket, what);
        }
        client.is_some()
    };
    if args.flush && !args.noaction {
        ok &= connected("flush", &mut client) && client.as_mut().is_some_and(live::flush);
        // iked's rules go too (isakmpd has no such command).
        if iked::is_socket(&args.fifo)
            && let Err(why) = iked::request(&args.fifo, "flush", "")
        {
            eprintln!("ipsecctl: failed to flush iked's rules: {why}");
            ok = false;
        }
    }
    if let Some(file) = &args.file {
        ok &= load(args, file, &mut client);
    }
    if let Some(show) = args.show {
        ok &= connected("show the tables", &mut client)
            && client
                .as_mut()
                .is_some_and(|c| live::show(c, args, show, &system::System::default()));
    }
    if let Some(words) = &args.explain {
        ok &= connected("ask ipsecd", &mut client)
            && client.as_mut().is_some_and(|c| explain::explain(c, words));
    }
    if args.monitor {
        ok &= connected("monitor", &mut client)
            && client.as_mut().is_some_and(|c| live::monitor(c, args.keys));
    }
    ok
}

/// The configuration text, the name to report it by, and what `fstat`
/// said of the file (standard input has nothing to check).
type Config = (String, Zeroizing<Vec<u8>>, Option<std::fs::Metadata>);

fn read_config(file: &str) -> Result<Config, String> {
    if file == "-" {
        let bytes = system::read_wiped(io::stdin(), 0).map_err(|why| format!("stdin: {why}"))?;
        return Ok(("stdin".to_owned(), bytes, None));
    }
    // Checked on the descriptor it was read from, not by path afterwards.
    let read = system::read_file(file).map_err(|why| format!("{file}: {why}"))?;
    Ok((file.to_owned(), read.bytes, Some(read.meta)))
}

/// Another user could change the policy (or read the keys) of this file.
fn insecure(name: &str, meta: &std::fs::Metadata, holds_secrets: bool) -> Option<Diagnostic> {
    let why = system::exposure(meta, holds_secrets)?;
    let d = Diagnostic::program(Severity::Error, format!("{name}: {why}"));
    if why.starts_with("owner") {
        return Some(d);
    }
    let risk = if system::exposure(meta, false).is_some() {
        "others can change this policy"
    } else {
        "it holds keys that others can read"
    };
    Some(d.with_note(format!("{risk}; try: chmod 600 {name}")))
}

fn colour_for(format: ErrorFormat) -> bool {
    format == ErrorFormat::Rich
        && io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn report(sources: &SourceMap, format: ErrorFormat, diagnostics: &[Diagnostic]) {
    let renderer = Renderer {
        sources,
        format,
        program: "ipsecctl",
    };
    let colour = colour_for(format);
    let mut err = io::stderr().lock();
    for d in diagnostics {
        let _ = err.write_all(renderer.render(d, colour).as_bytes());
    }
}

fn not_loaded(format: ErrorFormat, errors: usize, name: &str) {
    match format {
        ErrorFormat::Openbsd => {
            eprintln!("ipsecctl: Syntax error in config file: ipsec rules not loaded")
        }
        _ => {
            let plural = if errors == 1 { "" } else { "s" };
            eprintln!("ipsecctl: {errors} error{plural} in {name}: ipsec rules not loaded");
        }
    }
}

fn load(args: &Args, file: &str, client: &mut Option<client::Client>) -> bool {
    let format = args.error_format;
    let (name, bytes, meta) = match read_config(file) {
        Ok(read) => read,
        Err(message) => {
            eprintln!("ipsecctl: {message}");
            not_loaded(format, 1, file);
            return false;
        }
    };
    let mut sources = SourceMap::new();
    let main = sources.add(name.clone(), &bytes);
    let resolver = system::System::default();
    let opts = Options {
        // With -s, OpenBSD prints the macros it reads but not the rules.
        echo: args.verbose > 0 && args.show.is_none(),
        defines: args.defines.clone(),
        ..Options::verbosity(args.verbose, args.keys, args.delete)
    };
    let mut files = system::Files::default();
    let mut out = ipsec_compiler::compile(&mut sources, main, &mut files, &resolver, &opts);
    // Every file read is checked, the included ones too: whoever can
    // write one can change the policy, whoever can read one with keys
    // has them.
    let secret = |path: &str| out.secret_files.iter().any(|&id| sources.name(id) == path);
    let mut exposed: Vec<Diagnostic> = files
        .read
        .iter()
        .filter_map(|(path, meta)| insecure(path, meta, secret(path)))
        .collect();
    if let Some(meta) = &meta
        && let Some(d) = insecure(&name, meta, out.secret_files.contains(&main))
    {
        exposed.insert(0, d);
    }
    if !exposed.is_empty() {
        out.text.clear();
        out.diagnostics.extend(exposed);
    }
    let readable_keys = resolver
        .readable_keys
        .lock()
        .map(|k| k.clone())
        .unwrap_or_default();
    for path in readable_keys {
        out.diagnostics.push(
            Diagnostic::program(
                Severity::Warning,
                format!("{path}: key file readable by group or others"),
            )
            .with_note(format!(
                "anyone who can read it has the key; try: chmod 600 {path}"
            ))
            .shown(ipsec_grammar::Shown::NotOpenbsd),
        );
    }
    print_text(&out.text);
    report(&sources, format, &out.diagnostics);
    let errors = out.diagnostics.iter().filter(|d| d.is_error()).count();
    if out.fatal {
        return false;
    }
    if errors > 0 {
        not_loaded(format, errors, &name);
        return false;
    }
    let wants_messages = args.write.is_some() || (args.noaction && args.verbose > 1);
    if wants_messages {
        let (messages, lowered) = messages(args, &out);
        if args.noaction && args.verbose > 1 {
            print_messages(&messages, args.keys);
        }
        if let Some(path) = &args.write
            && !write_messages(&messages, path)
        {
            return false;
        }
        if !lowered {
            return false;
        }
    }
    if args.sync {
        return synchronize(args, &out, client);
    }
    if args.noaction {
        return true;
    }
    commit(args, &out, client)
}

/// `--sync`: works out what differs between the file and the daemon's
/// tables, prints it with `-n` or `-v`, and (without `-n`) changes it.
/// `ike` rules go to isakmpd as `-f` sends them.
fn synchronize(args: &Args, out: &Output, client: &mut Option<client::Client>) -> bool {
    let (wanted, lowered) = messages(args, out);
    if !lowered {
        return false;
    }
    if client.is_none() {
        *client = live::connect(&args.socket, "synchronise the tables");
    }
    let Some(c) = client.as_mut() else {
        return false;
    };
    let tables = live::dump(c, MsgType::X_SPDDUMP)
        .and_then(|flows| Ok((flows, live::dump(c, MsgType::DUMP)?)));
    let (flows, sas) = match tables {
        Ok(t) => t,
        Err(why) => {
            eprintln!("ipsecctl: cannot read the tables: {why}");
            return false;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let resolver = system::System::default();
    let local = system::local_addresses();
    let live = sync::Live {
        flows: &flows,
        sas: &sas,
        local: &local,
        now,
    };
    let plan = sync::plan(&wanted, &live, args.grace, &resolver, args.keys);
    if args.noaction || args.verbose > 0 {
        let mut text = String::new();
        for line in &plan.lines {
            text.push_str(line);
            text.push('\n');
        }
        print_text(&text);
    }
    if args.noaction {
        return true;
    }
    if let Err(why) = sync::apply(c, &plan) {
        eprintln!("ipsecctl: failed to synchronise the tables: {why}");
        return false;
    }
    let host_name = ipsec_compiler::Resolver::host_name(&resolver);
    for rule in &out.rules {
        if let RuleKind::Ike(ike) = &rule.kind {
            let sent = if iked::is_socket(&args.fifo) {
                iked::send(&args.fifo, ike, false)
            } else {
                ipsec_compiler::ike::add_script(ike, &host_name, Secret::Show)
                    .map_err(|(_, message)| message)
                    .and_then(|text| isakmpd::send(&args.fifo, &text))
            };
            if let Err(why) = sent {
                eprintln!(
                    "ipsecctl: failed to add rule {} (line {}): {why}",
                    rule.nr, rule.line
                );
                return false;
            }
        }
    }
    true
}

/// The PF_KEY messages loading (or deleting) sends, numbered as one socket
/// would number them. Rules that cannot be sent are reported.
fn messages(args: &Args, out: &Output) -> (Vec<pfkey::Message>, bool) {
    let action = if args.delete {
        Action::Delete
    } else {
        Action::Add
    };
    let mut seq = Sequencer::new(std::process::id());
    let mut messages = Vec::new();
    let mut ok = true;
    for rule in &out.rules {
        match lower::lower(rule, action, &mut seq) {
            Ok(m) => messages.extend(m),
            Err(LowerError::MissingKey) => {
                eprintln!("ipsecctl: rule {}: an SA needs a key", rule.nr);
                let verb = if args.delete { "delete" } else { "add" };
                eprintln!("ipsecctl: failed to {verb} rule {}", rule.nr);
                ok = false;
            }
        }
    }
    (messages, ok)
}

/// `-w`: the messages, one after another, in a file only its owner may
/// read (it holds the keys).
fn write_messages(messages: &[pfkey::Message], path: &str) -> bool {
    let bytes = zeroize::Zeroizing::new(pfkey::encode_stream(messages));
    if let Err(e) = system::write_private(path, &bytes) {
        eprintln!("ipsecctl: {path}: {}", system::strerror(&e));
        return false;
    }
    true
}

/// `-nvv`: each message as the monitor shows it.
fn print_messages(messages: &[pfkey::Message], show_keys: bool) {
    let mut text = String::new();
    for message in messages {
        text.push_str(&pfkey::Monitor { message, show_keys }.to_string());
    }
    print_text(&text);
}

fn print_text(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Sends the rules on in order, flows, SAs and bundles to ipsecd and
/// `ike` rules to isakmpd, and stops at the first that fails, saying which
/// (and its line) and how many went in before it.
fn commit(args: &Args, out: &Output, client: &mut Option<client::Client>) -> bool {
    let verb = if args.delete { "delete" } else { "add" };
    let resolver = system::System::default();
    let host_name = ipsec_compiler::Resolver::host_name(&resolver);
    let mut seq = None;
    for (done, rule) in out.rules.iter().enumerate() {
        let sent = match &rule.kind {
            RuleKind::Ike(ike) if iked::is_socket(&args.fifo) => {
                iked::send(&args.fifo, ike, args.delete)
            }
            RuleKind::Ike(ike) => {
                let script = if args.delete {
                    Ok(ipsec_compiler::ike::delete_script(ike))
                } else {
                    ipsec_compiler::ike::add_script(ike, &host_name, Secret::Show)
                        .map_err(|(_, message)| message)
                };
                script.and_then(|text| isakmpd::send(&args.fifo, &text))
            }
            _ => {
                if client.is_none() {
                    let what = if args.delete {
                        "delete rules"
                    } else {
                        "load rules"
                    };
                    *client = live::connect(&args.socket, what);
                }
                let Some(c) = client.as_mut() else {
                    live::report_progress(done, out.rules.len(), args.delete);
                    return false;
                };
                let seq = seq.get_or_insert_with(|| lower::Sequencer::new(c.pid()));
                live::send_rule(c, rule, seq, args.delete)
            }
        };
        if let Err(why) = sent {
            eprintln!(
                "ipsecctl: failed to {verb} rule {} (line {}): {why}",
                rule.nr, rule.line
            );
            live::report_progress(done, out.rules.len(), args.delete);
            return false;
        }
    }
    true
}
