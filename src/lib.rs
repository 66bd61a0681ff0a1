//! `vault`: encrypted, deduplicating backups of Travis CI Enterprise hosts.
//!
//! This crate is the whole product except the command line (`src/main.rs`, `src/cli/`),
//! which only parses options, finds keys, calls one function here and renders what it
//! returns. The library never prints.
//!
//! # Read first
//!
//! 1. [`format`]: every object in a store, its encoding, its crypto and who writes it.
//! 2. [`crypto`] and [`keys`]: who can read what (writers cannot read backups).
//! 3. [`backend`]: the contract every store backend keeps.
//! 4. [`backup`] and [`restore`]: the two paths most code serves.
//!
//! # Map, by layer
//!
//! Lowest first; a module uses only modules of lower layers or earlier in its own layer
//! (`tests/layers.rs` checks this on every build of the test suite).
//!
//! - **foundation**: [`id`] (32-byte ids), [`error`] (the typed [`Error`], whose
//!   reasons name ids),
//!   [`host`] (this machine's name), [`parallel`] (a pool whose first error stops it),
//!   [`passphrase`] (how strong a new passphrase is), [`progress`] (progress counters and
//!   the cancel flag a signal sets).
//! - **storage**: [`backend`]: objects as bytes under (kind, name) in a folder, S3 or
//!   memory, with retry and restore-spool wrappers. Knows nothing of encryption. The S3
//!   backend is a folder of its own ([`backend::s3`]: settings, client, object lock, XML,
//!   error classification); its settings come in as their own type, [`backend::s3::S3Config`].
//! - **format**: [`crypto`] (keys and seals), [`sign`] (Ed25519 signatures bound to
//!   store, kind and name), [`tree`] (directory listings),
//!   [`fsmeta`] (reading and applying file metadata), [`acl`] (POSIX ACL
//!   encodings), [`pack`] (packs of encrypted
//!   blobs), [`hosts`] (the admin-signed registry of authorised hosts), [`keys`] (key
//!   objects and key files), [`repo`] (config, index files, snapshot records and their
//!   verification, in `repo/`), [`chunker`] (content-defined chunking), [`cache`] (the
//!   local SQLite index and files cache, rebuilt from the store when lost), [`lock`]
//!   (leases).
//! - **reading**: [`reader`] (blobs back from packs, verified), [`walk`] (the walks of
//!   reachable trees and blobs, once per tree: a seen-set walk and a memoised fold; and
//!   pack usage), [`select`] (which snapshot a spec
//!   and the `--host/--tag/--path` filters mean).
//! - **operations**: [`retention`] (the pure retention policy: its configuration, the
//!   policy, `keep_within` and the decisions, in `retention/`), [`forget`] (policy ->
//!   plan -> execute), [`prune`] (plan -> execute; a dry run shows the plan),
//!   [`object_lock`] (`lock extend`), [`check`] (index, packs, snapshots),
//!   [`repair`] (rebuilding index files and snapshot records), [`copy`],
//!   [`backup`] (the source walk, captured folders, synthetic files, the files cache and
//!   the uploader that writes packs and index files, in `backup/`), [`postgres`]
//!   (consistent online capture of a cluster), [`hooks`] (commands run around a snapshot
//!   or restore), [`restore`] (plan, write, metadata,
//!   verify and `--delete`, in `restore/`), [`diff`], [`find`], [`mount`], [`import_tar`], [`dump`]
//!   (snapshots compared, searched, mounted, imported from and written to tar),
//!   [`stats`] (store size, deduplication and pack fill),
//!   [`secrets`] (sealed platform secrets), [`drill`] (a restore test that starts the
//!   database), [`upgrade`] (signing a store of the first format).
//! - **session**: [`session`] (one command's store, keys unlocked once, and cache).
//! - **configuration**: [`config`] (the configuration file, read for the CLI). It is the
//!   top layer: it gathers each module's own settings type (`[s3]` is
//!   [`backend::s3::S3Config`], `[retention]` [`retention::RetentionConfig`], ...) into one
//!   TOML document, and no library module imports it; the CLI reads it and hands each
//!   operation only its own settings.
//!
//! Each operation takes options and returns a typed report (or, for `forget`, a plan
//! first); the CLI decides how to show it.

pub mod acl;
pub mod backend;
pub mod backup;
pub mod cache;
pub mod check;
pub mod chunker;
pub mod config;
pub mod copy;
pub mod crypto;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod error;
pub mod forget;
/// The store format: every object, its encoding, its crypto and who writes it.
#[doc = include_str!("FORMAT.md")]
pub mod format {}
pub mod find;
pub mod fsmeta;
pub mod hooks;
pub mod host;
pub mod hosts;
pub mod id;
pub mod import_tar;
pub mod keys;
pub mod lock;
pub mod mount;
pub mod object_lock;
pub mod pack;
pub mod parallel;
pub mod passphrase;
pub mod postgres;
pub mod progress;
pub mod prune;
pub mod reader;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod secrets;
pub mod select;
pub mod session;
pub mod sign;
pub mod stats;
pub mod tree;
pub mod upgrade;
pub mod walk;

pub use backend::{Backend, BackendRef, Kind};
pub use cache::Cache;
pub use crypto::WriterKeys;
pub use error::{Error, Result};
pub use forget::{ForgetPlan, ForgetReport};
pub use id::Id;
pub use reader::BlobReader;
pub use repo::{Repo, Snapshot};
pub use session::Session;
pub use tree::{Node, NodeKind, Tree};
