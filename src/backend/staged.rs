//! Objects built in a file before they are stored.
//!
//! A pack is 16 MiB, and a snapshot has one being filled while one uploads: held in
//! memory, the two were half of a first snapshot's peak. A [`StagedFile`] is built on disk
//! instead, in the folder its backend names ([`Backend::staging_dir`]: the local store's
//! own `tmp/`, so storing it is a rename) or else in the cache's folder (for S3, which
//! streams it as the request body). Only a small write-behind buffer stays in memory.
//!
//! A staged file that is dropped without being stored is removed; one that a killed run
//! left behind is a leftover like any other partial write, removed once untouched for
//! [`LEFTOVER_GRACE`](super::LEFTOVER_GRACE). A pack may stay open longer than that with
//! nothing written to it (a long walk that finds little new data), so its writer holds an
//! exclusive `flock` on it for its whole life, and a file so held is never a leftover
//! ([`in_use`]), whichever process looks.
//!
//! [`Backend::staging_dir`]: super::Backend::staging_dir

use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file being built (or built) in a staging folder; removed when dropped unless a
/// backend moved it into the store.
#[derive(Debug)]
pub struct StagedFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Set once a backend renamed the file into the store: nothing to remove.
    moved: bool,
}

impl StagedFile {
    /// Creates a new, empty, private file in `dir` (made if missing), named after `label`
    /// and a random suffix.
    pub fn create(dir: &Path, label: &str) -> Result<StagedFile> {
        fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{label}-{}", crate::id::Id::random().short()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("create {} (is the folder writable?)", path.display()))?;
        // A new file: nobody else can hold its lock.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io(format!("lock {}", path.display()), e.into()))?;
        Ok(StagedFile {
            path,
            file,
            len: 0,
            moved: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes` (at the end, wherever a read left the file's position).
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.len)
            .ctx(|| format!("write {} (is the disk full?)", self.path.display()))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// The file, positioned at its start, for reading it whole (a retry reads it again).
    pub fn rewound(&mut self) -> Result<&mut File> {
        self.file
            .seek(SeekFrom::Start(0))
            .ctx(|| format!("seek {}", self.path.display()))?;
        Ok(&mut self.file)
    }

    /// A second handle on the file, positioned at its start: for a reader that must own
    /// its file (an HTTP body).
    pub fn reopen(&self) -> Result<File> {
        let mut file = File::open(&self.path).ctx(|| format!("open {}", self.path.display()))?;
        file.seek(SeekFrom::Start(0))
            .ctx(|| format!("seek {}", self.path.display()))?;
        Ok(file)
    }

    /// The whole file in memory, for backends that store bytes only.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.len as usize);
        let path = self.path.clone();
        self.rewound()?
            .read_to_end(&mut bytes)
            .ctx(|| format!("read {}", path.display()))?;
        if bytes.len() as u64 != self.len {
            return Err(Error::Backend(format!(
                "{} holds {} bytes where {} were written (was it changed meanwhile?)",
                path.display(),
                bytes.len(),
                self.len
            )));
        }
        Ok(bytes)
    }

    /// The BLAKE3 hash of the whole file, read through `buf` (its capacity at a time, at
    /// least 64 KiB; its contents are dropped).
    pub fn hash_with(&mut self, buf: &mut Vec<u8>) -> Result<blake3::Hash> {
        let mut hasher = blake3::Hasher::new();
        let step = buf.capacity().max(64 << 10);
        buf.clear();
        buf.resize(step, 0);
        let (mut at, len) = (0u64, self.len);
        while at < len {
            let n = step.min((len - at) as usize);
            self.file
                .read_exact_at(&mut buf[..n], at)
                .ctx(|| format!("read {}", self.path.display()))?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        buf.clear();
        Ok(hasher.finalize())
    }

    /// Makes the file durable and renames it to `target`; the staged file is then gone
    /// from its folder (the caller syncs `target`'s folder). Again after it succeeded (a
    /// retry after a lost reply), a no-op.
    pub fn persist(&mut self, target: &Path) -> Result<()> {
        if self.moved {
            return Ok(());
        }
        self.file
            .sync_all()
            .ctx(|| format!("fsync {}", self.path.display()))?;
        fs::rename(&self.path, target)
            .ctx(|| format!("rename {} to {}", self.path.display(), target.display()))?;
        self.moved = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.moved {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// True while a [`StagedFile`]'s writer (in this process or another) holds the file at
/// `path`: it is being built, however long ago it was last written.
pub fn in_use(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // Taken (and given back when `file` closes) unless the writer holds it.
    matches!(
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

/// Removes files in `dir` untouched for `grace` and not [`in_use`] (a killed run's staged
/// packs); returns how many. A missing folder has none.
pub fn remove_stale(dir: &Path, grace: std::time::Duration) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if meta.is_file()
            && age >= grace
            && !in_use(&entry.path())
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_file_untouched_for_long_is_not_a_leftover_while_its_writer_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let held = StagedFile::create(dir.path(), "pack").unwrap();
        File::options()
            .write(true)
            .open(held.path())
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let left = dir.path().join("pack-left-by-a-killed-run");
        fs::write(&left, b"partial").unwrap();
        File::options()
            .write(true)
            .open(&left)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let grace = std::time::Duration::from_secs(3600);
        assert_eq!(remove_stale(dir.path(), grace).unwrap(), 1);
        assert!(held.path().exists(), "the held file was removed");
        assert!(!left.exists(), "the killed run's file stayed");
    }

    #[test]
    fn a_dropped_staged_file_is_removed_and_a_persisted_one_is_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = StagedFile::create(dir.path(), "pack").unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        assert_eq!(f.len(), 11);
        assert_eq!(f.read_all().unwrap(), b"hello world");
        assert_eq!(
            f.read_all().unwrap(),
            b"hello world",
            "a second read starts over"
        );
        let path = f.path().to_path_buf();
        assert!(in_use(&path), "a staged file is held by its writer");
        drop(f);
        assert!(!path.exists());
        fs::write(&path, b"left by a killed run").unwrap();
        assert!(!in_use(&path), "a file nobody holds is not in use");

        let mut f = StagedFile::create(dir.path(), "pack").unwrap();
        f.append(b"kept").unwrap();
        let target = dir.path().join("kept");
        f.persist(&target).unwrap();
        f.persist(&target).unwrap();
        drop(f);
        assert_eq!(fs::read(&target).unwrap(), b"kept");
    }
}
