//! Where a passphrase comes from without asking: an environment variable or the first
//! line of a file. (Asking at the terminal is [`super::terminal::prompt`].) Values are
//! kept in wiped buffers; messages name the file, never the value.

use anyhow::{bail, Context as _, Result};
use secrecy::SecretString;
use std::path::Path;
use zeroize::Zeroizing;

/// The first line of `path`; an empty first line is an error naming the file.
pub fn from_file(path: &Path) -> Result<SecretString> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("read passphrase file {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("passphrase file {} is empty", path.display());
    }
    Ok(SecretString::from(line))
}

/// The value of the environment variable `var`, unless unset or empty.
pub fn from_env(var: &str) -> Option<SecretString> {
    let value = Zeroizing::new(std::env::var(var).ok()?);
    (!value.is_empty()).then(|| SecretString::from(value.as_str()))
}
