//! Everything the CLI prints goes through here.
//!
//! - `outln!` writes a line of the human report to stdout. It is silent under `--quiet`
//!   and `--json` (stdout then carries only the JSON result). A closed stdout (`vault
//!   snapshots | head -1`) never panics: a listing stops at once with exit status 0; a
//!   command that changes the store drops the rest of its report and goes on to the end,
//!   so it never stops half-way.
//! - `errln!` writes a warning or error to stderr, whatever the mode; a closed stderr is
//!   ignored.
//! - `--json`: the command hands its result object to [`set_result`]; `main` adds the
//!   command name, exit status and duration and prints it as the one object on stdout,
//!   or, for a command whose stdout is its data (`dump`'s tar stream, see
//!   [`set_result_on_stderr`]), as one line on stderr, so the data stays whole.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

/// How much the CLI says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal = 0,
    Quiet = 1,
    Verbose = 2,
    Json = 3,
}

static MODE: AtomicU8 = AtomicU8::new(0);
static LISTING: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static RESULT: Mutex<Option<serde_json::Value>> = Mutex::new(None);
static RESULT_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Marks the running command as one whose stdout carries its data (a tar stream): the
/// `--json` result then goes to stderr.
pub fn set_result_on_stderr() {
    RESULT_ON_STDERR.store(true, Ordering::Relaxed);
}

pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Quiet,
        2 => Mode::Verbose,
        3 => Mode::Json,
        _ => Mode::Normal,
    }
}

pub fn json() -> bool {
    mode() == Mode::Json
}

/// Marks the running command as one that only reads: a closed stdout ends it (exit 0).
pub fn set_listing(listing: bool) {
    LISTING.store(listing, Ordering::Relaxed);
}

/// True once stdout was found closed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `bytes` to stdout as they are. See the module docs for a closed stdout.
pub fn write_stdout(bytes: &[u8]) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
    if let Err(e) = written {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() == std::io::ErrorKind::BrokenPipe && LISTING.load(Ordering::Relaxed) {
            std::process::exit(0);
        }
    }
}

/// One line of the human report (see `outln!`).
pub fn line(args: std::fmt::Arguments) {
    if matches!(mode(), Mode::Quiet | Mode::Json) {
        return;
    }
    write_stdout(format!("{args}\n").as_bytes());
}

/// A line of a listing (the data the command was asked for): printed even under
/// `--quiet`, but not under `--json`, whose result object holds the data.
pub fn data_line(args: std::fmt::Arguments) {
    if json() {
        return;
    }
    write_stdout(format!("{args}\n").as_bytes());
}

/// A safety net for output that does not go through this module: `println!` panics on a
/// closed stdout; for a listing that ends the process quietly with status 0 instead.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && LISTING.load(Ordering::Relaxed) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// True when `e` comes from writing to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// True for a command that only reads (see [`set_listing`]).
pub fn is_listing() -> bool {
    LISTING.load(Ordering::Relaxed)
}

/// A line on stderr; never fails.
pub fn err_line(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{args}");
}

/// The command's result object, printed by `main` under `--json`.
pub fn set_result(value: serde_json::Value) {
    *RESULT.lock().unwrap() = Some(value);
}

pub fn take_result() -> Option<serde_json::Value> {
    RESULT.lock().unwrap().take()
}

/// A stdout writer for long listings: same rules as `outln!`, but buffered.
pub struct Stdout {
    buf: Vec<u8>,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            buf: Vec::with_capacity(64 << 10),
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            write_stdout(&self.buf);
            self.buf.clear();
        }
        Ok(())
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A line of the human report on stdout: silent under `--quiet` and `--json`.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::output::line(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::output::line(format_args!($($t)*)) };
}

/// A listing line on stdout: printed unless `--json` (the data is in the result then).
#[macro_export]
macro_rules! dataln {
    ($($t:tt)*) => { $crate::cli::output::data_line(format_args!($($t)*)) };
}

/// A warning or error on stderr.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::output::err_line(format_args!($($t)*)) };
}

/// Adds the keys of `more` (an object) to the result object.
pub fn extend_result(more: serde_json::Value) {
    let mut r = RESULT.lock().unwrap();
    match (r.as_mut(), more) {
        (Some(serde_json::Value::Object(have)), serde_json::Value::Object(more)) => {
            have.extend(more);
        }
        (_, more) => *r = Some(more),
    }
}

static PRINTED: AtomicBool = AtomicBool::new(false);

/// Says that the command printed its data itself (a secret, paper sheets): under
/// `--json`, `main` then adds no object after it.
pub fn mark_printed() {
    PRINTED.store(true, Ordering::Relaxed);
}

/// Prints a listing's JSON (an array) at once; `main` then prints nothing more.
pub fn print_json_listing(value: &serde_json::Value) -> serde_json::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    PRINTED.store(true, Ordering::Relaxed);
    write_stdout(format!("{text}\n").as_bytes());
    Ok(())
}

/// Under `--json`, prints the command's result object with `command`, `exit_status`,
/// `duration_ms` and, on failure, `error` added. Returns the result (for metrics).
pub fn finish_json(
    command: &str,
    exit_status: u8,
    elapsed: std::time::Duration,
    error: Option<&anyhow::Error>,
) -> Option<serde_json::Value> {
    let result = take_result();
    if !json() || (PRINTED.load(Ordering::Relaxed) && error.is_none()) {
        return result;
    }
    let mut obj = match result.clone() {
        Some(serde_json::Value::Object(o)) => o,
        Some(other) => {
            let mut o = serde_json::Map::new();
            o.insert("result".into(), other);
            o
        }
        None => serde_json::Map::new(),
    };
    obj.insert("command".into(), command.into());
    obj.insert("exit_status".into(), exit_status.into());
    obj.insert("duration_ms".into(), (elapsed.as_millis() as u64).into());
    obj.insert("error".into(), error.map(|e| format!("{e:#}")).into());
    let text = serde_json::to_string(&serde_json::Value::Object(obj.clone()))
        .unwrap_or_else(|_| "{}".into());
    if RESULT_ON_STDERR.load(Ordering::Relaxed) {
        err_line(format_args!("{text}"));
    } else {
        write_stdout(format!("{text}\n").as_bytes());
    }
    Some(serde_json::Value::Object(obj))
}
