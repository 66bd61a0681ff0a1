//! A store in a local directory (the embedded default).
//!
//! Layout: `config`, `keys/NAME`, `index/NAME`, `snapshots/NAME`, `locks/NAME`,
//! `secrets/NAME`, and `packs/XX/NAME` where `XX` is the name's first two hex digits, so no
//! folder grows past a few thousand entries. `tmp/` holds writes in progress.
//!
//! Durability: an object is written to `tmp/`, fsynced, renamed into place, and the target
//! folder is fsynced, so after `put` returns the object survives power loss and a crash
//! never leaves a partial object under its final name. Leftovers in `tmp/` are ignored by
//! every reader. A pack staged in `tmp/` as it was built ([`Backend::put_staged`]) is
//! stored the same way, by its fsync and rename.

use super::staged::StagedFile;
use super::{check_name, missing, Backend, Kind, ObjectInfo};
use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct LocalBackend {
    root: PathBuf,
    /// Recently read objects, kept open: a restore reads thousands of blobs from the same
    /// few packs, and opening the pack anew for each costs more than the read.
    open_files: Mutex<Vec<(PathBuf, Arc<File>)>>,
}

const OPEN_FILES_KEPT: usize = 32;

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            open_files: Mutex::default(),
        }
    }

    fn open_cached(&self, path: &Path) -> std::io::Result<Arc<File>> {
        let mut open = self.open_files.lock().unwrap();
        if let Some(i) = open.iter().position(|(p, _)| p == path) {
            let entry = open.remove(i);
            let file = entry.1.clone();
            open.push(entry);
            return Ok(file);
        }
        let file = Arc::new(File::open(path)?);
        if open.len() >= OPEN_FILES_KEPT {
            open.remove(0);
        }
        open.push((path.to_path_buf(), file.clone()));
        Ok(file)
    }

    fn forget_open(&self, path: &Path) {
        self.open_files.lock().unwrap().retain(|(p, _)| p != path);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.join("config"),
            Kind::Packs => self
                .root
                .join(kind.dir())
                .join(&name[..2.min(name.len())])
                .join(name),
            other => self.root.join(other.dir()).join(name),
        }
    }

    /// The folder `target` goes in, made (and made durable) if missing.
    fn object_dir(&self, target: &Path) -> Result<PathBuf> {
        let dir = target
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
            sync_dir(dir.parent().unwrap_or(&self.root))?;
        }
        Ok(dir)
    }

    /// A folder is a store once `create` laid out its folders; the config object comes
    /// last in `create`, so objects may be written before it exists.
    fn ensure_store(&self) -> Result<()> {
        if self.root.join("keys").is_dir() {
            Ok(())
        } else {
            Err(Error::StoreNotFound(self.location()))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("fsync folder {}", dir.display()))
}

impl Backend for LocalBackend {
    fn leftovers(&self) -> Result<Vec<super::Leftover>> {
        let dir = self.root.join("tmp");
        let mut out = Vec::new();
        for entry in read_dir_or_empty(&dir)? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let Ok(meta) = entry.metadata() else {
                continue; // removed meanwhile (its write finished)
            };
            // A staged pack still being built (held by its writer) is no leftover.
            if !meta.is_file() || super::staged::in_use(&entry.path()) {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            out.push(super::Leftover {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
                age,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove_leftover(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::Usage(format!("invalid leftover name {name:?}")));
        }
        let path = self.root.join("tmp").join(name);
        if super::staged::in_use(&path) {
            return Ok(()); // a pack its writer is still building
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
        }
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            return Err(Error::StoreExists(self.location()));
        }
        fs::create_dir_all(&self.root)
            .ctx(|| format!("create store folder {}", self.root.display()))?;
        for sub in [
            "keys",
            "packs",
            "index",
            "snapshots",
            "locks",
            "secrets",
            "tmp",
        ] {
            let dir = self.root.join(sub);
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        }
        sync_dir(&self.root)
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        if kind != Kind::Config {
            self.ensure_store()?;
        }
        let target = self.path(kind, name);
        let dir = self.object_dir(&target)?;
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).ctx(|| format!("create {}", tmp_dir.display()))?;
        let tmp = tmp_dir.join(format!(
            "{}-{}",
            kind.label(),
            crate::id::Id::random().short()
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .ctx(|| format!("create {}", tmp.display()))?;
            file.write_all(data)
                .ctx(|| format!("write {} (is the disk full?)", tmp.display()))?;
            file.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
            fs::rename(&tmp, &target)
                .ctx(|| format!("rename {} to {}", tmp.display(), target.display()))?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn put_staged(&self, kind: Kind, name: &str, file: &mut StagedFile) -> Result<()> {
        // Staged elsewhere (not on this store's filesystem, as far as we know): copy.
        if file.path().parent() != Some(self.root.join("tmp").as_path()) {
            let bytes = file.read_all()?;
            return self.put(kind, name, &bytes);
        }
        check_name(kind, name)?;
        if kind != Kind::Config {
            self.ensure_store()?;
        }
        let target = self.path(kind, name);
        let dir = self.object_dir(&target)?;
        file.persist(&target)?;
        sync_dir(&dir)
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.root.join("tmp"))
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        match fs::read(&path) {
            Ok(data) => Ok(data),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if kind == Kind::Config {
                    Err(Error::StoreNotFound(self.location()))
                } else {
                    Err(missing(kind, name))
                }
            }
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        let file = match self.open_cached(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing(kind, name)),
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let mut buf = vec![0u8; len as usize];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                Err(Error::corrupt(
                    format!("{}/{name}", kind.label()),
                    format!(
                        "object is {size} bytes, shorter than the range {offset}+{len} the index names (truncated?)"
                    ),
                ))
            }
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        if kind == Kind::Config {
            return Ok(match fs::metadata(self.root.join("config")) {
                Ok(m) => vec![ObjectInfo {
                    name: "config".into(),
                    size: m.len(),
                }],
                Err(_) => vec![],
            });
        }
        self.ensure_store()?;
        let base = self.root.join(kind.dir());
        let mut out = Vec::new();
        let mut dirs = vec![base.clone()];
        if kind == Kind::Packs {
            dirs.clear();
            for entry in read_dir_or_empty(&base)? {
                let entry = entry.ctx(|| format!("list {}", base.display()))?;
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    dirs.push(entry.path());
                }
            }
        }
        for dir in dirs {
            for entry in read_dir_or_empty(&dir)? {
                let entry = entry.ctx(|| format!("list {}", dir.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if check_name(kind, &name).is_err() {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .ctx(|| format!("stat {}", entry.path().display()))?;
                if meta.is_file() {
                    out.push(ObjectInfo {
                        name,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        self.forget_open(&path);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("delete {}", path.display()), e)),
        }
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        check_name(kind, name)?;
        Ok(self.path(kind, name).exists())
    }
}

fn read_dir_or_empty(
    dir: &Path,
) -> Result<Box<dyn Iterator<Item = std::io::Result<fs::DirEntry>>>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Box::new(rd)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(Error::io(format!("list {}", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::staged::StagedFile;
    use std::time::{Duration, SystemTime};

    fn age(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    #[test]
    fn a_pack_staged_in_tmp_is_no_leftover_however_old_until_its_writer_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBackend::new(dir.path().join("store"));
        store.create().unwrap();
        let tmp = store.staging_dir().unwrap();
        let held = StagedFile::create(&tmp, "pack").unwrap();
        age(held.path(), Duration::from_secs(7200));
        let killed = tmp.join("pack-of-a-killed-run");
        fs::write(&killed, b"partial").unwrap();
        age(&killed, Duration::from_secs(7200));

        let listed: Vec<String> = store
            .leftovers()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(listed, ["pack-of-a-killed-run"]);
        let removed = crate::backend::remove_leftovers(&store, crate::backend::LEFTOVER_GRACE);
        assert_eq!(removed.unwrap(), (1, 7));
        assert!(held.path().exists() && !killed.exists());

        drop(held);
        assert!(
            store.leftovers().unwrap().is_empty(),
            "a dropped staged pack is removed"
        );
    }
}
