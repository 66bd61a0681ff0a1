//! The library's error type. Every variant names the thing that failed and, where the user
//! can act, what to do; the CLI prints these as they are.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no store at {0}: create one with `vault init --store {0}`, or point --store (or `store` in the config) at an existing store")]
    StoreNotFound(String),

    #[error("a store already exists at {0}; refusing to overwrite it")]
    StoreExists(String),

    #[error("store at {location} has format version {found}, this vault reads version {supported}; upgrade vault")]
    UnsupportedVersion {
        location: String,
        found: u32,
        supported: u32,
    },

    #[error("object {kind}/{name} is missing from the store{hint}")]
    Missing {
        kind: &'static str,
        name: String,
        hint: String,
    },

    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },

    #[error(
        "wrong passphrase for the reader identity stored in {0} (or the key object is damaged)"
    )]
    WrongPassphrase(String),

    #[error("{0}")]
    Key(String),

    #[error("configuration {path}: {detail}")]
    Config { path: PathBuf, detail: String },

    #[error("{0}")]
    Usage(String),

    #[error("local cache database {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{0}")]
    Backend(String),

    /// A remote store (S3) failed. `transient` failures (timeouts, resets, 5xx, throttling)
    /// may succeed when retried; the others need the user to act, and the message says how.
    #[error("{message}")]
    Remote { message: String, transient: bool },

    #[error("restore: {0}")]
    Restore(String),

    /// `lock extend` (S3 Object Lock retention) could not go ahead.
    #[error("{0}")]
    ObjectLock(String),

    #[error("{0} is under retention (object lock) and cannot be deleted or overwritten yet")]
    RetentionLocked(String),

    #[error("the store is busy: {0}; try again when it has finished (or wait with --lock-wait)")]
    Busy(String),

    /// A command stopped before changing anything because going on could lose data.
    #[error("{0}")]
    Refused(String),

    #[error("snapshot {0} not found: `vault snapshots` lists the snapshots in this store")]
    SnapshotNotFound(String),

    /// Stopped on request (SIGINT/SIGTERM) at a point that leaves the store consistent;
    /// `operation` names what was stopped (`snapshot`, `restore`, `prune`, ...). The one
    /// variant for every stop by a signal: the CLI maps it to 128 + the signal's number.
    #[error("{operation} stopped on request")]
    Cancelled { operation: &'static str },
    /// `latest` (or a filter) matched no snapshot; `present` lists the hosts the store
    /// holds, so the operator can choose instead of restoring another host's files.
    #[error("no snapshot matches {wanted}, so nothing was chosen; {present}")]
    NoMatchingSnapshot { wanted: String, present: String },

    /// A hook command failed, timed out or could not start.
    #[error("{0}")]
    Hook(String),

    /// Talking to a database server for a consistent capture failed.
    #[error("{0}")]
    Database(String),
}

impl Error {
    /// Wraps an I/O error with what was being done, so the message names the file.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// True for errors that mean "the store holds damaged data", as opposed to an
    /// unreachable store or bad input.
    /// True when the store refused a delete or overwrite because the object is still
    /// under retention; such objects are skipped and deleted once the lock has passed.
    pub fn is_retention_locked(&self) -> bool {
        matches!(self, Error::RetentionLocked(_))
    }

    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

/// Adds a context string to `std::io::Result`s.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

/// Replaces every double-quoted part of a parser message (serde quotes the offending
/// value there, as in `invalid type: string "...", expected u32`) by `"..."`. Key names are
/// quoted with backticks and stay.
pub fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("...\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}
