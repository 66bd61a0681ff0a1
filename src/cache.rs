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

use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{BlobKind, PackEntry, PackRecord};
use crate::repo::Repo;
use crate::tree::Extent;
use rusqlite::{params, Connection, OptionalExtension};
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
}

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
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,
    ctime_ns INTEGER, extents BLOB) WITHOUT ROWID;
";

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
                Error::io(
                    format!(
                        "create cache folder {} (set --cache-dir to a writable folder)",
                        folder.display()
                    ),
                    e,
                )
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
        Ok(Cache { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            source,
        }
    }

    /// Brings the blob index in line with the store's index files.
    pub fn sync_index(&mut self, repo: &Repo, keys: &WriterKeys) -> Result<()> {
        let listed: HashSet<String> = repo
            .backend
            .list(crate::backend::Kind::Index)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let known: HashSet<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM index_files")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        for gone in known.difference(&listed) {
            self.forget_index_file(gone)?;
        }
        for new in listed.difference(&known) {
            let packs = repo.load_index(keys, new)?;
            self.add_index(new, &packs)?;
        }
        Ok(())
    }

    fn forget_index_file(&mut self, name: &str) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::Cache {
            path: self.path.clone(),
            source: e,
        })?;
        tx.execute(
            "DELETE FROM blobs WHERE pack IN (SELECT id FROM packs WHERE index_file = ?1)",
            [name],
        )
        .and_then(|_| tx.execute("DELETE FROM packs WHERE index_file = ?1", [name]))
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
                for e in &pack.entries {
                    blob_stmt
                        .execute(params![
                            &e.id.0[..],
                            &pack.id.0[..],
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
        }
        tx.commit().map_err(wrap)
    }

    /// Opens a read transaction that lasts until the returned guard is dropped. Lookups
    /// inside it skip SQLite's per-statement file locking, which dominates a restore's
    /// thousands of lookups otherwise. No write may happen while it is held.
    pub fn read_batch(&self) -> Result<rusqlite::Transaction<'_>> {
        self.conn.unchecked_transaction().map_err(|e| self.err(e))
    }

    pub fn has_blob(&self, id: &Id) -> Result<bool> {
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
        stmt.query_row([&id.0[..]], |r| {
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
        })
        .optional()
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
        let path = self.path.clone();
        let wrap = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO files (path, dev, ino, size, mtime_ns, ctime_ns, extents)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
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
