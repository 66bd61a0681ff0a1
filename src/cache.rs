//! The local SQLite cache: the blob index and the files cache.
//!
//! It is only a cache. The blob index mirrors the store's index files (it remembers which
//! index files it has loaded and drops what vanished from the store); the files cache
//! remembers, per path, the (device, inode, size, mtime, ctime) a file had and the chunks
//! it was cut into, so an unchanged file is not read again. Deleting the database loses
//! nothing: the next command rebuilds the index from the store and re-reads files once.
//!
//! Rows enter the blob index only after the index file naming them is durable in the
//! store, so a crash can never leave the cache claiming a blob the store lacks.
//!
//! Files-cache rows enter `files` only once the snapshot that read those files is
//! durable. While a snapshot runs they are streamed, in batches, into a temporary table
//! of this connection (`temp.pending_files`, on disk in SQLite's temporary folder, never
//! all in memory), and moved into `files` in one transaction after the snapshot record
//! is written ([`Cache::pending_files_commit`]). A snapshot that fails or is killed leaves
//! `files` as it was: the temporary table dies with the connection (or is emptied by the
//! next [`Cache::pending_files_begin`]).
//!
//! Lookups share read transactions: the files-cache and blob-index lookups a snapshot
//! makes for every file ([`Cache::file_lookup`], [`Cache::has_blob`]) run inside one read
//! transaction the first of them opens, which the next write of this connection (or
//! [`Cache::read_batch`]) ends first, and which ends by itself after
//! [`LOOKUPS_PER_READ`] lookups. Without it every lookup was a transaction of its own,
//! whose file locks cost more than the lookup. A lookup therefore sees every write of
//! this connection made before it, and writes of other processes at most
//! [`LOOKUPS_PER_READ`] lookups late (for a cache, a late "absent" only costs a blob
//! stored twice, as when two snapshots race).
//!
//! Reconciling ([`Cache::sync_index`]): index files the store no longer lists are
//! forgotten, new ones are loaded. A pack stays known for as long as at least one loaded
//! index file names it (`index_packs` maps index files to packs), so which index file was
//! loaded first never decides what is forgotten. An index file that cannot be read is
//! skipped and reported; the blobs it named are then found from the packs themselves
//! (every pack's trailer lists its blobs), recorded under [`RECOVERED`], which is never a
//! store name and so is re-derived on every sync until the index is repaired.

use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::id::Id;
use crate::pack::{BlobKind, PackEntry, PackRecord};
use crate::repo::Repo;
use crate::tree::Extent;
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::Cell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where a blob lies.
#[derive(Clone, Debug)]
pub struct Location {
    pub pack: Id,
    pub header_len: u32,
    pub entry: PackEntry,
}

/// Where a blob's bytes lie, with what is needed to fetch its pack's header too.
#[derive(Clone, Debug)]
pub struct BlobRange {
    pub pack: Id,
    pub pack_size: u64,
    pub header_len: u32,
    pub offset: u64,
    pub length: u64,
}

/// What the files cache knows of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

pub struct Cache {
    conn: Connection,
    path: PathBuf,
    /// How many lookups the shared read transaction this cache opened has served;
    /// `None` while it has none open (see the module docs).
    shared_read: Cell<Option<u32>>,
}

/// Lookups one shared read transaction serves before it ends (a million-file snapshot
/// opens about 500 instead of two million).
const LOOKUPS_PER_READ: u32 = 4096;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS index_files (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (
    id BLOB PRIMARY KEY, header_len INTEGER NOT NULL, size INTEGER NOT NULL,
    index_file TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS packs_by_index ON packs(index_file);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB NOT NULL, pack BLOB NOT NULL, kind INTEGER NOT NULL, position INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    compressed INTEGER NOT NULL, PRIMARY KEY (id, pack)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs(pack);
CREATE TABLE IF NOT EXISTS index_packs (
    index_file TEXT NOT NULL, pack BLOB NOT NULL, PRIMARY KEY (index_file, pack)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS index_packs_by_pack ON index_packs(pack);
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, extents BLOB) WITHOUT ROWID;
";

const SCHEMA_VERSION: i64 = 2;

/// The cache's name for blobs located by reading pack trailers because an index file
/// could not be read. Not a valid store object name, so never listed by a store.
pub const RECOVERED: &str = "~recovered-from-packs";

/// What reconciling the cache with the store found.
#[derive(Debug, Default)]
pub struct IndexSync {
    /// Index files that could not be read, with the reason. Skipped.
    pub damaged: Vec<(String, String)>,
    /// Packs no readable index file names whose trailers were read instead.
    pub recovered_packs: usize,
    /// Packs whose trailer could not be read either, with the reason.
    pub unreadable_packs: Vec<(String, String)>,
}

impl IndexSync {
    /// One line per thing skipped, for the CLI to print as warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .damaged
            .iter()
            .map(|(name, why)| {
                format!(
                    "index file {name} cannot be read and was skipped ({why}); the blobs it named were looked up in the packs; `vault repair index` replaces it"
                )
            })
            .collect();
        if !self.damaged.is_empty() && self.recovered_packs > 0 {
            out.push(format!(
                "read the trailers of {} packs no readable index file names",
                self.recovered_packs
            ));
        }
        out.extend(self.unreadable_packs.iter().map(|(name, why)| {
            format!("pack {name}: its blob list cannot be read either ({why})")
        }));
        out
    }
}

impl Cache {
    /// Opens (creating if needed) the cache of one store under `dir`.
    pub fn open(dir: &Path, store_id: &str) -> Result<Cache> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let folder = dir.join(store_id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .map_err(|e| {
                Error::io(format!("create cache folder {}", folder.display()), e)
                    .with_remedy(Remedy::WritableCacheDir)
            })?;
        let path = folder.join("cache.sqlite");
        // The cache holds plaintext paths: only its owner may read it (earlier releases
        // made it world-readable; tighten those too). SQLite gives its -wal and -shm
        // files the database file's mode.
        let private = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(format!("make {} private", p.display()), e))
        };
        private(&folder, 0o700)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("create cache database {}", path.display()), e))?;
        private(&path, 0o600)?;
        let wrap = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        // Caches made before packs were mapped to every index file naming them: their
        // blob index is dropped and rebuilt from the store (the files cache stays).
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(wrap)?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN; DELETE FROM blobs; DELETE FROM packs; DELETE FROM index_files;
                 DELETE FROM index_packs; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(wrap)?;
        }
        Ok(Cache {
            conn,
            path,
            shared_read: Cell::new(None),
        })
    }

    /// Before a lookup: opens the shared read transaction unless one is open (or the
    /// caller holds a [`Cache::read_batch`]), and ends it once it has served
    /// [`LOOKUPS_PER_READ`] lookups.
    fn shared_lookup(&self) -> Result<()> {
        match self.shared_read.get() {
            Some(n) if n >= LOOKUPS_PER_READ => self.end_shared_read()?,
            Some(n) => {
                self.shared_read.set(Some(n + 1));
                return Ok(());
            }
            None => {}
        }
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
            self.shared_read.set(Some(1));
        }
        Ok(())
    }

    /// Ends the shared read transaction, if open; every write and [`Cache::read_batch`]
    /// call this first.
    fn end_shared_read(&self) -> Result<()> {
        if self.shared_read.take().is_some() {
            self.conn.execute_batch("COMMIT").map_err(|e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.err(e)
            })?;
        }
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            source,
        }
    }

    /// Brings the blob index in line with the store's index files. Index files that
    /// cannot be read are skipped (and reported); the packs no readable index file names
    /// are then located from their own trailers, so one damaged file blocks nothing.
    pub fn sync_index(&mut self, repo: &Repo, keys: &WriterKeys) -> Result<IndexSync> {
        let mut report = IndexSync::default();
        let listed: HashSet<String> = repo
            .backend
            .list(crate::backend::Kind::Index)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let known = self.index_files()?;
        for gone in known.difference(&listed) {
            self.forget_index_file(gone)?;
        }
        let mut new: Vec<&String> = listed.difference(&known).collect();
        new.sort();
        for name in new {
            match repo.load_index(keys, name) {
                Ok(packs) => self.add_index(name, &packs)?,
                Err(e) if e.is_damage() => report.damaged.push((name.clone(), e.to_string())),
                Err(e) => return Err(e),
            }
        }
        if !report.damaged.is_empty() {
            self.recover_from_packs(repo, keys, &mut report)?;
        }
        Ok(report)
    }

    /// Locates the blobs of every pack in the store that no loaded index file names, by
    /// reading the pack's trailer (ranged reads).
    fn recover_from_packs(
        &mut self,
        repo: &Repo,
        keys: &WriterKeys,
        report: &mut IndexSync,
    ) -> Result<()> {
        let known: HashSet<Id> = self.packs()?.into_iter().map(|(id, _)| id).collect();
        let mut records = Vec::new();
        for info in repo.backend.list(crate::backend::Kind::Packs)? {
            let Some(id) = Id::from_hex(&info.name) else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            match crate::pack::read_trailer_ranged(repo.backend.as_ref(), keys, &id, info.size) {
                Ok(r) => records.push(r),
                Err(e) if e.is_damage() => report.unreadable_packs.push((info.name, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        report.recovered_packs = records.len();
        self.add_index(RECOVERED, &records)
    }

    fn index_files(&self) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM index_files")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Forgets what an index file named (for example one found damaged in the store), so
    /// the next [`Cache::sync_index`] reads it again.
    pub fn forget_index(&mut self, name: &str) -> Result<()> {
        self.forget_index_file(name)
    }

    /// Forgets an index file; packs (and their blobs) that no other loaded index file
    /// names go with it.
    fn forget_index_file(&mut self, name: &str) -> Result<()> {
        self.end_shared_read()?;
        let tx = self.conn.transaction().map_err(|e| Error::Cache {
            path: self.path.clone(),
            source: e,
        })?;
        const ORPHANED: &str =
            "SELECT id FROM packs WHERE id NOT IN (SELECT pack FROM index_packs)";
        tx.execute("DELETE FROM index_packs WHERE index_file = ?1", [name])
            .and_then(|_| tx.execute(&format!("DELETE FROM blobs WHERE pack IN ({ORPHANED})"), []))
            .and_then(|_| tx.execute(&format!("DELETE FROM packs WHERE id IN ({ORPHANED})"), []))
            .and_then(|_| tx.execute("DELETE FROM index_files WHERE name = ?1", [name]))
            .and_then(|_| tx.commit())
            .map_err(|e| Error::Cache {
                path: self.path.clone(),
                source: e,
            })
    }

    /// Records an index file (already durable in the store) and the packs it names.
    pub fn add_index(&mut self, name: &str, packs: &[PackRecord]) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        self.end_shared_read()?;
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            tx.execute(
                "INSERT OR IGNORE INTO index_files (name) VALUES (?1)",
                [name],
            )
            .map_err(wrap)?;
            let mut pack_stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO packs (id, header_len, size, index_file) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(wrap)?;
            let mut map_stmt = tx
                .prepare("INSERT OR IGNORE INTO index_packs (index_file, pack) VALUES (?1, ?2)")
                .map_err(wrap)?;
            let mut blob_stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO blobs (id, pack, kind, position, offset, length, raw_len, compressed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(wrap)?;
            for pack in packs {
                pack_stmt
                    .execute(params![
                        &pack.id.0[..],
                        pack.header_len,
                        pack.size as i64,
                        name
                    ])
                    .map_err(wrap)?;
                map_stmt
                    .execute(params![name, &pack.id.0[..]])
                    .map_err(wrap)?;
            }
            for (pack, e) in blobs_in_key_order(packs) {
                blob_stmt
                    .execute(params![
                        &e.id.0[..],
                        &pack.0[..],
                        e.kind as u8,
                        e.position,
                        e.offset,
                        e.length,
                        e.raw_len,
                        e.compressed
                    ])
                    .map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)
    }

    /// Opens a read transaction that lasts until the returned guard is dropped. Lookups
    /// inside it skip SQLite's per-statement file locking, which dominates a restore's
    /// thousands of lookups otherwise. No write may happen while it is held.
    pub fn read_batch(&self) -> Result<rusqlite::Transaction<'_>> {
        self.end_shared_read()?;
        self.conn.unchecked_transaction().map_err(|e| self.err(e))
    }

    pub fn has_blob(&self, id: &Id) -> Result<bool> {
        self.shared_lookup()?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        stmt.exists([&id.0[..]]).map_err(|e| self.err(e))
    }

    pub fn locate(&self, id: &Id) -> Result<Option<Location>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT b.pack, p.header_len, b.kind, b.position, b.offset, b.length, b.raw_len, b.compressed
                 FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1 LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row([&id.0[..]], |r| location_row(id, r))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every place the index knows for a blob (a blob may lie in several packs).
    pub fn locations(&self, id: &Id) -> Result<Vec<Location>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT b.pack, p.header_len, b.kind, b.position, b.offset, b.length, b.raw_len, b.compressed
                 FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&id.0[..]], |r| location_row(id, r))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Every pack the index knows, with its size.
    pub fn packs(&self) -> Result<Vec<(Id, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, size FROM packs")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok((
                    Id(id.try_into().unwrap_or([0; 32])),
                    r.get::<_, i64>(1)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Where every directory-tree blob lies.
    pub fn tree_blob_ranges(&self) -> Result<Vec<BlobRange>> {
        let mut stmt = self
            .conn
            .prepare("SELECT b.pack, p.size, p.header_len, b.offset, b.length FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.kind = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([BlobKind::Tree as u8], |r| {
                let pack: Vec<u8> = r.get(0)?;
                Ok(BlobRange {
                    pack: Id(pack.try_into().unwrap_or([0; 32])),
                    pack_size: r.get::<_, i64>(1)? as u64,
                    header_len: r.get(2)?,
                    offset: r.get::<_, i64>(3)? as u64,
                    length: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Where packs bound for a store without a staging folder of its own (S3) are built:
    /// `tmp/` in this cache's folder, which only its owner may read.
    pub fn staging_dir(&self) -> PathBuf {
        self.path
            .parent()
            .expect("the cache database lies in the store's cache folder")
            .join("tmp")
    }

    pub fn pack_size(&self, pack: &Id) -> Result<Option<u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size FROM packs WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        stmt.query_row([&pack.0[..]], |r| r.get::<_, i64>(0).map(|s| s as u64))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn pack_header_len(&self, pack: &Id) -> Result<Option<u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT header_len FROM packs WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        stmt.query_row([&pack.0[..]], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The blobs the index places in one pack.
    pub fn pack_entries(&self, pack: &Id) -> Result<Vec<PackEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, position, offset, length, raw_len, compressed FROM blobs WHERE pack = ?1 ORDER BY offset",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&pack.0[..]], |r| {
                let id: Vec<u8> = r.get(0)?;
                let kind: u8 = r.get(1)?;
                Ok(PackEntry {
                    id: Id(id.try_into().unwrap_or([0; 32])),
                    kind: BlobKind::from_u8(kind).unwrap_or(BlobKind::Data),
                    position: r.get(2)?,
                    offset: r.get(3)?,
                    length: r.get(4)?,
                    raw_len: r.get(5)?,
                    compressed: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    pub fn file_lookup(&self, path: &[u8]) -> Result<Option<(FileStamp, Vec<Extent>)>> {
        self.shared_lookup()?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, extents FROM files WHERE path = ?1",
            )
            .map_err(|e| self.err(e))?;
        let row = stmt
            .query_row([path], |r| {
                Ok((
                    FileStamp {
                        dev: r.get::<_, i64>(0)? as u64,
                        ino: r.get::<_, i64>(1)? as u64,
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                        ctime_ns: r.get(4)?,
                    },
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(stamp, bytes)| {
            // An undecodable row is treated as absent: the file is simply read again.
            ciborium::from_reader(&bytes[..])
                .ok()
                .map(|extents| (stamp, extents))
        }))
    }

    /// Stores files-cache rows in one transaction.
    pub fn file_store(&mut self, rows: &[(Vec<u8>, FileStamp, Vec<Extent>)]) -> Result<()> {
        self.insert_files("main.files", rows)
    }

    /// Starts collecting files-cache rows for a snapshot: empties (creating if needed) the
    /// connection's temporary table of pending rows.
    pub fn pending_files_begin(&mut self) -> Result<()> {
        self.end_shared_read()?;
        self.conn
            .execute_batch(
                "PRAGMA temp_store = FILE;
                 CREATE TEMP TABLE IF NOT EXISTS pending_files (
                    path BLOB PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER,
                    mtime_ns INTEGER, ctime_ns INTEGER, extents BLOB) WITHOUT ROWID;
                 DELETE FROM temp.pending_files;",
            )
            .map_err(|e| self.err(e))
    }

    /// Adds a batch of rows to the pending ones (one transaction); `files` is untouched.
    pub fn pending_files_add(&mut self, rows: &[(Vec<u8>, FileStamp, Vec<Extent>)]) -> Result<()> {
        self.insert_files("temp.pending_files", rows)
    }

    /// Moves every pending row into the files cache, in one transaction. Call only once
    /// the snapshot that read those files is durable.
    pub fn pending_files_commit(&mut self) -> Result<()> {
        self.end_shared_read()?;
        self.conn
            .execute_batch(
                "BEGIN;
                 INSERT OR REPLACE INTO main.files
                    SELECT path, dev, ino, size, mtime_ns, ctime_ns, extents FROM temp.pending_files;
                 DELETE FROM temp.pending_files;
                 COMMIT;",
            )
            .map_err(|e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.err(e)
            })
    }

    /// Drops the pending rows (the snapshot failed); `files` stays as it was.
    pub fn pending_files_discard(&mut self) -> Result<()> {
        self.end_shared_read()?;
        self.conn
            .execute_batch("DELETE FROM temp.pending_files")
            .map_err(|e| self.err(e))
    }

    fn insert_files(
        &mut self,
        table: &str,
        rows: &[(Vec<u8>, FileStamp, Vec<Extent>)],
    ) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        self.end_shared_read()?;
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {table} (path, dev, ino, size, mtime_ns, ctime_ns, extents)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ))
                .map_err(wrap)?;
            for (p, s, extents) in rows {
                let mut enc = Vec::new();
                ciborium::into_writer(extents, &mut enc).expect("serialisable");
                stmt.execute(params![
                    p,
                    s.dev as i64,
                    s.ino as i64,
                    s.size as i64,
                    s.mtime_ns,
                    s.ctime_ns,
                    enc
                ])
                .map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)
    }
}

/// Every blob of `packs` with its pack, in the order of the `blobs` table's key (blob id,
/// then pack). Blob ids are hashes, so in pack order each row lands on a random page of a
/// table far larger than SQLite's page cache (at a million blobs, a read and a later
/// write of one page per row); in key order the rows of one call fill each page in turn.
fn blobs_in_key_order(packs: &[PackRecord]) -> Vec<(&Id, &PackEntry)> {
    let mut rows: Vec<(&Id, &PackEntry)> = packs
        .iter()
        .flat_map(|p| p.entries.iter().map(move |e| (&p.id, e)))
        .collect();
    rows.sort_by(|a, b| (&a.1.id.0, &a.0 .0).cmp(&(&b.1.id.0, &b.0 .0)));
    rows
}

/// A blob's location from a row of `SELECT b.pack, p.header_len, b.kind, b.position,
/// b.offset, b.length, b.raw_len, b.compressed`, the columns `locate` and `locations` read.
fn location_row(id: &Id, r: &rusqlite::Row) -> rusqlite::Result<Location> {
    let pack: Vec<u8> = r.get(0)?;
    let kind: u8 = r.get(2)?;
    Ok(Location {
        pack: Id(pack.try_into().unwrap_or([0; 32])),
        header_len: r.get(1)?,
        entry: PackEntry {
            id: *id,
            kind: BlobKind::from_u8(kind).unwrap_or(BlobKind::Data),
            position: r.get(3)?,
            offset: r.get(4)?,
            length: r.get(5)?,
            raw_len: r.get(6)?,
            compressed: r.get(7)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn record(byte: u8) -> PackRecord {
        PackRecord {
            id: Id([byte; 32]),
            size: 100,
            header_len: 10,
            entries: vec![PackEntry {
                id: Id([byte ^ 0xff; 32]),
                kind: BlobKind::Data,
                position: 0,
                offset: 30,
                length: 20,
                raw_len: 4,
                compressed: false,
            }],
        }
    }

    #[test]
    fn pending_file_rows_reach_the_files_cache_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::open(dir.path(), "x").unwrap();
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: 5,
        };
        let row = |p: &[u8]| (p.to_vec(), stamp.clone(), Vec::<Extent>::new());
        cache.file_store(&[row(b"/kept")]).unwrap();
        // A snapshot that fails: its rows never show, the earlier ones stay.
        cache.pending_files_begin().unwrap();
        cache.pending_files_add(&[row(b"/a"), row(b"/b")]).unwrap();
        assert!(cache.file_lookup(b"/a").unwrap().is_none());
        cache.pending_files_discard().unwrap();
        assert!(cache.file_lookup(b"/kept").unwrap().is_some());
        // Killed half-way (the connection closes): nothing of it either.
        cache.pending_files_begin().unwrap();
        cache.pending_files_add(&[row(b"/a")]).unwrap();
        drop(cache);
        let mut cache = Cache::open(dir.path(), "x").unwrap();
        assert!(cache.file_lookup(b"/a").unwrap().is_none());
        // One that succeeds, in two batches: every row, once committed.
        cache.pending_files_begin().unwrap();
        cache.pending_files_add(&[row(b"/a")]).unwrap();
        cache.pending_files_add(&[row(b"/b")]).unwrap();
        cache.pending_files_commit().unwrap();
        for p in [&b"/a"[..], b"/b", b"/kept"] {
            assert_eq!(cache.file_lookup(p).unwrap().unwrap().0, stamp);
        }
        // The next snapshot starts from an empty pending table.
        cache.pending_files_begin().unwrap();
        cache.pending_files_commit().unwrap();
    }

    #[test]
    fn shared_lookups_see_this_connections_writes_at_once_and_others_soon() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::open(dir.path(), "x").unwrap();
        let mut other = Cache::open(dir.path(), "x").unwrap();
        let blob = |byte: u8| Id([byte ^ 0xff; 32]);
        // A lookup opens the shared read; this connection's next write ends it first.
        assert!(!cache.has_blob(&blob(1)).unwrap());
        cache.add_index("i1", &[record(1)]).unwrap();
        assert!(cache.has_blob(&blob(1)).unwrap());
        // Another process's write shows once the shared read has ended by itself.
        other.add_index("i2", &[record(2)]).unwrap();
        let mut lookups = 0;
        while !cache.has_blob(&blob(2)).unwrap() {
            lookups += 1;
            assert!(lookups <= LOOKUPS_PER_READ, "never saw the other write");
        }
        // An explicit read batch and the files-cache writes work with one open.
        assert!(cache.file_lookup(b"/a").unwrap().is_none());
        drop(cache.read_batch().unwrap());
        assert!(cache.file_lookup(b"/a").unwrap().is_none());
        cache.pending_files_begin().unwrap();
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: 5,
        };
        cache
            .pending_files_add(&[(b"/a".to_vec(), stamp, Vec::new())])
            .unwrap();
        assert!(cache.file_lookup(b"/a").unwrap().is_none());
        cache.pending_files_commit().unwrap();
        assert!(cache.file_lookup(b"/a").unwrap().is_some());
    }

    #[test]
    fn a_pack_stays_known_while_any_index_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::backend::memory::MemoryBackend::shared("cache-reconcile");
        backend.create().unwrap();
        let repo = Repo {
            backend: backend.clone(),
            config: serde_json::from_value(serde_json::json!({
                "format": "vault store", "version": 1, "store_id": "x", "created": "",
                "chunker": {"min_size": 64, "avg_size": 128, "max_size": 256},
                "pack_size": 1000, "compression_level": 1, "recipients": []
            }))
            .unwrap(),
            trust: Default::default(),
        };
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let mut cache = Cache::open(dir.path(), "x").unwrap();
        // The newer index file (b) names the pack too, and is loaded first here.
        let b = repo.save_index(&keys, &[record(1)]).unwrap();
        cache.sync_index(&repo, &keys).unwrap();
        let a = repo.save_index(&keys, &[record(1), record(2)]).unwrap();
        cache.sync_index(&repo, &keys).unwrap();
        assert_eq!(cache.packs().unwrap().len(), 2);
        backend.delete(crate::backend::Kind::Index, &a).unwrap();
        let sync = cache.sync_index(&repo, &keys).unwrap();
        assert!(sync.damaged.is_empty());
        let packs: Vec<Id> = cache.packs().unwrap().into_iter().map(|p| p.0).collect();
        assert_eq!(packs, vec![Id([1; 32])], "pack 1 is still named by {b}");
        assert!(cache.locate(&Id([0xfe; 32])).unwrap().is_some());
        assert!(cache.locate(&Id([0xfd; 32])).unwrap().is_none());

        // A damaged index file is skipped and reported, not fatal.
        backend
            .put(
                crate::backend::Kind::Index,
                &"ab".repeat(32),
                b"garbage that is long enough to be sealed....",
            )
            .unwrap();
        let sync = cache.sync_index(&repo, &keys).unwrap();
        assert_eq!(sync.damaged.len(), 1);
        assert!(sync.warnings()[0].contains(&"ab".repeat(32)));
    }
}
