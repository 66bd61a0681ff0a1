//! Where a store's objects live.
//!
//! A store is a flat namespace of immutable objects addressed by (kind, name). Names are
//! lowercase hex ids, except the single `config` object. Backends only move bytes: they
//! never interpret or decrypt what they hold, so every backend is interchangeable and one
//! test suite (`testsuite`, behind the `testing` feature) checks them all.
//!
//! The contract every backend keeps:
//! - `put` is atomic and durable: once it returns, the whole object survives a crash and a
//!   reader never sees a partial object under its final name. Writing the same name twice
//!   with the same bytes is harmless (retries are idempotent).
//! - `get` of an absent object returns [`Error::Missing`]; `delete` of an absent object is
//!   not an error (prune may race another prune).
//! - `list` returns only complete objects.

/// Fault injection for tests (feature `testing`; not in release builds).
#[cfg(any(test, feature = "testing"))]
pub mod faulty;
pub mod local;
pub mod memory;
pub mod retry;
pub mod s3;
pub mod spool;
pub mod staged;
/// The suite every backend must pass (feature `testing`; not in release builds).
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

use crate::error::{Error, Result};
use bytes::Bytes;
use std::sync::Arc;

/// The kinds of object a store holds, one folder (or key prefix) each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The store's plaintext description: format version, chunker parameters, recipients.
    Config,
    /// age files: the passphrase-wrapped reader identity and the id key.
    Keys,
    /// Pack files holding encrypted blobs (file chunks and directory trees).
    Packs,
    /// Index files: which blob lies where in which pack.
    Index,
    /// One object per snapshot.
    Snapshots,
    /// Leases held by running commands.
    Locks,
    /// Sealed platform secrets (age files).
    Secrets,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Config,
        Kind::Keys,
        Kind::Packs,
        Kind::Index,
        Kind::Snapshots,
        Kind::Locks,
        Kind::Secrets,
    ];

    /// Folder (or key prefix) name of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Keys => "keys",
            Kind::Packs => "packs",
            Kind::Index => "index",
            Kind::Snapshots => "snapshots",
            Kind::Locks => "locks",
            Kind::Secrets => "secrets",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Config => "config",
            other => other.dir(),
        }
    }
}

/// S3 Object Lock retention for every object a store writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Each object is retained this many days from when it is written (or extended).
    pub days: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockMode {
    /// Privileged users (s3:BypassGovernanceRetention) can still delete early.
    Governance,
    /// Nobody, not even the account root, can delete before the date.
    Compliance,
}

impl std::str::FromStr for ObjectLock {
    type Err = Error;

    /// Parses `MODE:DAYS`, e.g. `governance:30` or `compliance:90d`.
    fn from_str(s: &str) -> Result<ObjectLock> {
        let bad = || {
            Error::Usage(format!(
                "object lock {s:?}: expected MODE:DAYS with MODE governance or compliance, e.g. governance:30"
            ))
        };
        let (mode, days) = s.split_once(':').ok_or_else(bad)?;
        let mode = match mode.to_ascii_lowercase().as_str() {
            "governance" => LockMode::Governance,
            "compliance" => LockMode::Compliance,
            _ => return Err(bad()),
        };
        let days: u32 = days.trim_end_matches('d').parse().map_err(|_| bad())?;
        if days == 0 {
            return Err(bad());
        }
        Ok(ObjectLock { mode, days })
    }
}

/// A complete object as `list` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// A partial write left in the store's scratch area (`tmp/` of a local store), by a
/// write still in progress or by a process killed mid-write. Never read as an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub name: String,
    pub size: u64,
    /// Time since it was last written to.
    pub age: std::time::Duration,
}

/// How long a partial write must have been left untouched before it is removed. A put
/// writes at most one pack (about 17 MiB) and every write moves the file's mtime, so a
/// live write is touched every few milliseconds; an hour is far beyond any stalled disk
/// or NFS hiccup, while still clearing a killed snapshot's debris on the next daily run.
/// A write wrongly removed would fail its rename and so fail its command cleanly.
pub const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes leftovers untouched for `grace`; returns how many and their bytes.
pub fn remove_leftovers(backend: &dyn Backend, grace: std::time::Duration) -> Result<(usize, u64)> {
    let mut removed = (0, 0);
    for l in backend.leftovers()? {
        if l.age >= grace {
            backend.remove_leftover(&l.name)?;
            removed.0 += 1;
            removed.1 += l.size;
        }
    }
    Ok(removed)
}

/// Where [`Backend::get_range_into`] hands a range as it arrives: each piece with its
/// position in the range.
pub type RangeSink<'a> = dyn FnMut(u64, &[u8]) -> Result<()> + Send + 'a;

/// Storage for a store's objects. See the module docs for the contract.
pub trait Backend: Send + Sync {
    /// Human-readable location, used in messages (never contains credentials).
    fn location(&self) -> String;

    /// Prepares an empty store (folders, bucket prefix). Fails if a config object exists.
    fn create(&self) -> Result<()>;

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;

    /// [`Backend::put`] of bytes the caller gives up: a backend that sends them over the
    /// network can send this buffer itself instead of a copy (a pack is 16 MiB, and a
    /// copy per upload in flight is most of a snapshot's memory on S3). Wrappers that
    /// pass puts on (retry) must forward this; cloning [`Bytes`] does not copy them.
    fn put_bytes(&self, kind: Kind, name: &str, data: Bytes) -> Result<()> {
        self.put(kind, name, &data)
    }

    /// [`Backend::put`] of an object built in a staged file. The default reads the file
    /// into memory and puts the bytes; a backend that can do better (rename a file staged
    /// in its own [`Backend::staging_dir`], stream the file as a request body) does.
    /// Wrappers that pass puts on (retry) must forward this and [`Backend::staging_dir`].
    fn put_staged(&self, kind: Kind, name: &str, file: &mut staged::StagedFile) -> Result<()> {
        let bytes = file.read_all()?;
        self.put_bytes(kind, name, Bytes::from(bytes))
    }

    /// Where this backend wants objects staged for [`Backend::put_staged`]: a folder on
    /// the store's own filesystem, from which a put is a rename. `None` (the default):
    /// stage anywhere.
    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;

    /// Reads `len` bytes at `offset`. Reading past the end is reported as corruption,
    /// because callers only ask for ranges an index promised.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// [`Backend::get_range`], handed to `sink` piece by piece: a backend that streams
    /// ([`Backend::streams_ranges`]) never holds the whole range (a restore spool has many
    /// ranges in flight). After an error `sink` may have had part of the range, and a
    /// retry hands it the range again from the start. Wrappers that pass reads on (retry)
    /// must forward this and [`Backend::streams_ranges`].
    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
        sink: &mut RangeSink<'_>,
    ) -> Result<()> {
        let bytes = self.get_range(kind, name, offset, len)?;
        sink(0, &bytes)
    }

    /// Whether [`Backend::get_range_into`] hands a range on as it arrives (true) or holds
    /// it whole first (false, the default).
    fn streams_ranges(&self) -> bool {
        false
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>>;

    fn delete(&self, kind: Kind, name: &str) -> Result<()>;

    fn exists(&self, kind: Kind, name: &str) -> Result<bool>;

    /// Makes every later `put` carry the store's object-lock retention (S3 Object Lock).
    /// Backends without object lock accept `None` and refuse a policy. Wrappers (retry,
    /// fault injection) must forward this, not rely on the default.
    fn set_object_lock(&self, lock: Option<&ObjectLock>) -> Result<()> {
        match lock {
            None => Ok(()),
            Some(_) => Err(Error::Usage(format!(
                "{}: this kind of store has no object lock; object lock needs an S3 bucket created with it",
                self.location()
            ))),
        }
    }

    /// Partial writes lying in the store's scratch area. Backends without one (S3 puts
    /// are atomic) have none. Wrappers must forward this.
    fn leftovers(&self) -> Result<Vec<Leftover>> {
        Ok(Vec::new())
    }

    /// Removes one leftover named by [`Backend::leftovers`]. Wrappers must forward this.
    fn remove_leftover(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }

    /// Extends the retention of an existing object to `until` (never shortens it).
    /// Wrappers must forward this.
    fn extend_retention(&self, kind: Kind, name: &str, until: std::time::SystemTime) -> Result<()> {
        let _ = until;
        Err(Error::Usage(format!(
            "{}/{name} at {}: this kind of store has no object lock",
            kind.label(),
            self.location()
        )))
    }
}

pub type BackendRef = Arc<dyn Backend>;

/// Opens the backend a store location names: a filesystem path (the default), or a URL
/// scheme another backend registers. S3 settings come from the environment; see
/// [`open_with`] to give them (such as a configuration's `[s3]` table).
pub fn open(location: &str) -> Result<BackendRef> {
    open_with(location, &s3::S3Config::default())
}

/// As [`open`], with these S3 settings for `s3://` locations.
pub fn open_with(location: &str, s3_config: &s3::S3Config) -> Result<BackendRef> {
    if location.starts_with("s3://") {
        return s3::open_s3(location, s3_config);
    }
    if let Some(rest) = location.strip_prefix("memory://") {
        return Ok(memory::MemoryBackend::shared(rest));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(Arc::new(local::LocalBackend::new(path)))
}

pub(crate) fn missing(kind: Kind, name: &str) -> Error {
    Error::Missing {
        kind: kind.label(),
        name: name.to_string(),
        hint: String::new(),
    }
}

/// Rejects names that could escape a folder or collide with temporary files.
pub(crate) fn check_name(kind: Kind, name: &str) -> Result<()> {
    let ok = if kind == Kind::Config {
        name == "config"
    } else {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b.is_ascii_lowercase())
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid object name {name:?} for kind {}",
            kind.label()
        )))
    }
}
