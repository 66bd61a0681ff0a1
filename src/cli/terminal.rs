//! Asking a person at the terminal, for commands run by hand.

use anyhow::{anyhow, bail, Context as _, Result};
use secrecy::{ExposeSecret as _, SecretString};
use std::io::{BufRead, Write};

/// True when a person could be asked: a controlling terminal can be opened.
pub fn available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Reads a line from the terminal with echo off; `None` when there is no terminal (cron,
/// scripts), so callers fall back to their non-interactive forms.
pub fn prompt(question: &str) -> Result<Option<SecretString>> {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Ok(None);
    };
    let old = rustix::termios::tcgetattr(&tty).ok();
    if let Some(old) = &old {
        let mut quiet = old.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut out = &tty;
    let _ = out.write_all(question.as_bytes());
    let _ = out.flush();
    let mut line = zeroize::Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(old) = &old {
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, old);
    }
    let _ = out.write_all(b"\n");
    read.context("read the passphrase from the terminal")?;
    Ok(Some(SecretString::from(
        line.trim_end_matches(['\n', '\r']).to_string(),
    )))
}

/// Asks `repeat` to confirm `first`, a new passphrase just read by [`prompt`]: `first` when
/// the two answers agree, else an error saying `differ`.
pub fn confirm(first: SecretString, repeat: &str, differ: &str) -> Result<SecretString> {
    let again = prompt(repeat)?.ok_or_else(|| anyhow!("no terminal to confirm the passphrase"))?;
    if first.expose_secret() != again.expose_secret() {
        bail!("{differ}");
    }
    Ok(first)
}
