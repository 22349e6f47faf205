//! Logging: to standard error in the foreground (`-d`), to syslog as a
//! daemon.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static TO_SYSLOG: AtomicBool = AtomicBool::new(false);
static VERBOSITY: AtomicU8 = AtomicU8::new(0);
/// The program's name, which prefixes every line.
static NAME: OnceLock<&'static CStr> = OnceLock::new();

pub fn init(foreground: bool, verbosity: u8) {
    init_as(c"ipsecd", foreground, verbosity);
}

/// [`init`] for the program called `name` (`iked` shares this log).
pub fn init_as(name: &'static CStr, foreground: bool, verbosity: u8) {
    let _ = NAME.set(name);
    VERBOSITY.store(verbosity, Ordering::Relaxed);
    if !foreground {
        // SAFETY: openlog keeps the pointer; the identity is static.
        unsafe {
            libc::openlog(
                name.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_DAEMON,
            )
        };
        TO_SYSLOG.store(true, Ordering::Relaxed);
    }
}

fn emit(priority: libc::c_int, message: &str) {
    if TO_SYSLOG.load(Ordering::Relaxed) {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: a constant format string and a NUL-terminated argument.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
    } else {
        let name = NAME
            .get()
            .map_or("ipsecd", |n| n.to_str().unwrap_or("ipsecd"));
        eprintln!("{name}: {message}");
    }
}

/// Something went wrong.
pub fn warn(message: &str) {
    emit(libc::LOG_WARNING, message);
}

/// Worth knowing: start, stop, refused clients.
pub fn info(message: &str) {
    emit(libc::LOG_INFO, message);
}

/// With `-v`: every client and message. The message is formatted only
/// then: without `-v`, a debug line on a busy path costs a load and a
/// compare.
pub fn debug(message: std::fmt::Arguments) {
    if VERBOSITY.load(Ordering::Relaxed) > 0 {
        emit(libc::LOG_DEBUG, &message.to_string());
    }
}
