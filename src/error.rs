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

    /// No store at this location ([`Remedy::InitStore`] says what to do).
    #[error("no store at {0}")]
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

    /// Another command holds a conflicting lease ([`Remedy::TryAgainOrWait`]).
    #[error("the store is busy: {0}")]
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
    /// holds, so the operator can choose instead of restoring another host's files
    /// ([`Remedy::ChooseSnapshot`] when `choices`: the store holds snapshots).
    #[error("no snapshot matches {wanted}, so nothing was chosen; {present}")]
    NoMatchingSnapshot {
        wanted: String,
        present: String,
        choices: bool,
    },

    /// A hook command failed, timed out or could not start.
    #[error("{0}")]
    Hook(String),

    /// Talking to a database server for a consistent capture failed.
    #[error("{0}")]
    Database(String),

    /// Prune stopped before changing anything (see [`PruneStop`]).
    #[error("prune stopped before changing anything: {0}")]
    Prune(PruneStop),

    /// An error with a step that helps, for errors whose variant does not imply one.
    #[error("{error}")]
    Remedied { error: Box<Error>, remedy: Remedy },
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

    /// True when the store refused a delete or overwrite because the object is still
    /// under retention; such objects are skipped and deleted once the lock has passed.
    pub fn is_retention_locked(&self) -> bool {
        matches!(self, Error::RetentionLocked(_))
    }

    /// True when another command holds a conflicting lease (with or without a remedy
    /// attached).
    pub fn is_busy(&self) -> bool {
        matches!(self.unremedied(), Error::Busy(_))
    }

    /// True for errors that mean "the store holds damaged data", as opposed to an
    /// unreachable store or bad input.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// True when an object is damaged or gone from the store: the errors a check reports
    /// and a repair works around, as opposed to an unreachable store or bad input.
    pub fn is_damage(&self) -> bool {
        self.is_corruption() || matches!(self, Error::Missing { .. })
    }

    /// What the user can do about this error, when there is something to do that the
    /// message does not say itself (the CLI words it with the commands that do it).
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Error::Prune(stop) => Some(stop.remedy()),
            Error::Remedied { remedy, .. } => Some(remedy.clone()),
            Error::StoreNotFound(location) => Some(Remedy::InitStore {
                location: location.clone(),
            }),
            Error::Busy(_) => Some(Remedy::TryAgainOrWait),
            Error::NoMatchingSnapshot { choices: true, .. } => Some(Remedy::ChooseSnapshot),
            _ => None,
        }
    }

    /// The error itself, without the remedy attached to it (for telling kinds apart).
    pub fn unremedied(&self) -> &Error {
        match self {
            Error::Remedied { error, .. } => error.unremedied(),
            other => other,
        }
    }

    /// This error with `remedy` attached.
    pub fn with_remedy(self, remedy: Remedy) -> Error {
        Error::Remedied {
            error: Box::new(self),
            remedy,
        }
    }
}

/// Why prune stopped before changing anything: going on could delete data a snapshot
/// needs, or the store changed under the plan.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PruneStop {
    /// Index files the store lists cannot be read (`names`, with the first reason).
    #[error("{} index files cannot be read ({}: {first})", names.len(), names.join(", "))]
    IndexUnreadable { names: Vec<String>, first: String },
    /// Blobs that snapshots use lie in no pack the index names and the store holds
    /// (`examples` holds up to five as (snapshot, blob)).
    #[error(
        "{count} blobs that snapshots use lie in no pack the index names and the store holds (e.g. {}); \
         the index is incomplete or packs are gone",
        examples.iter().map(|(s, b)| format!("blob {} of snapshot {}", b.short(), s.short())).collect::<Vec<_>>().join(", ")
    )]
    BlobsUnlocated {
        count: usize,
        examples: Vec<(crate::id::Id, crate::id::Id)>,
    },
    /// A folder tree of a snapshot lies in no pack the index names and the store holds.
    #[error("folder tree {} of snapshot {} lies in no pack the index names and the store holds", tree.short(), snapshot.short())]
    TreeUnlocated {
        tree: crate::id::Id,
        snapshot: crate::id::Id,
    },
    /// A folder tree of a snapshot cannot be read.
    #[error("a folder of snapshot {} cannot be read ({error})", snapshot.short())]
    TreeUnreadable {
        snapshot: crate::id::Id,
        error: String,
    },
    /// Packs the plan keeps or copies from are gone from the store, or changed size,
    /// between planning and executing.
    #[error("{} packs the plan relies on changed in the store since it was made (e.g. packs/{})", packs.len(), packs.first().map(String::as_str).unwrap_or(""))]
    StoreChanged { packs: Vec<String> },
    /// The plan was made for a dry run, without the exclusive lease executing needs.
    #[error("the plan was made for a dry run, without the store's exclusive lease")]
    DryRunPlan,
}

impl PruneStop {
    pub fn remedy(&self) -> Remedy {
        match self {
            PruneStop::IndexUnreadable { .. } => Remedy::RepairIndexThenPrune,
            PruneStop::BlobsUnlocated { .. } => Remedy::RepairIndexThenCheckOrRepairSnapshots,
            PruneStop::TreeUnlocated { .. } => Remedy::RepairIndexThenCheck,
            PruneStop::TreeUnreadable { .. } => Remedy::Check,
            PruneStop::StoreChanged { .. } | PruneStop::DryRunPlan => Remedy::PruneAgain,
        }
    }
}

/// What to do about an error, as a typed step; the CLI words it with the commands that
/// do it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Create a store at `location`, or name an existing one.
    InitStore { location: String },
    /// Try again once the lease holder has finished, or wait for it.
    TryAgainOrWait,
    /// Rebuild the index from the packs, then prune again.
    RepairIndexThenPrune,
    /// Rebuild the index from the packs, then check the store.
    RepairIndexThenCheck,
    /// Rebuild the index, check; if data is really lost, rewrite snapshots without it.
    RepairIndexThenCheckOrRepairSnapshots,
    /// Check the store (it names what is damaged).
    Check,
    /// Run prune again (it plans anew).
    PruneAgain,
    /// The lease of `lease` (its short name) is held by `host`, another host: if that host
    /// is down, remove the lease by force; else wait or try again.
    ForceUnlockOrWait { host: String, lease: String },
    /// Unlocking by force needs a live lease's name: list them.
    ListLeases,
    /// Use a writable folder for the local cache.
    WritableCacheDir,
    /// Give the reader identity file (the store keeps no passphrase-wrapped one).
    ReaderIdentityFile,
    /// Choose a stronger passphrase, or accept the weak one explicitly.
    StrongerPassphrase,
    /// Name one host's snapshot: `latest` of a host, a host filter, or a snapshot id.
    ChooseSnapshot,
    /// Give either `latest:HOST` or the host filter, not both.
    OneHostChoice,
    /// Choose what to do with entries already in the restore target.
    ChooseOverwrite,
    /// Name paths the snapshot holds in the restore's path selection.
    IncludeSnapshotPaths,
    /// Escrow can also be a passphrase instead of recipients.
    EscrowPassphrase,
    /// Narrow the sealed versions to one host.
    ChooseSecretHost,
    /// Give the escrow identity file or the escrow passphrase.
    EscrowKey,
    /// Copy to a location other than the source.
    OtherCopyDestination,
    /// The bucket lacks Object Lock: use or make a bucket that has it, or a store without
    /// a lock policy.
    LockEnabledBucket,
    /// The S3 server has no Object Lock: make the store without a lock policy, or use a
    /// server that has it.
    StoreWithoutObjectLock,
    /// This host needs a writer key with a host signing key, made on the admin host.
    HostWriterKey,
    /// The store's recipients need the reader identity, or a writer key made for this
    /// host, to be authenticated.
    ReaderOrHostWriterKey,
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
