//! One command's hold on a store: the store, its keys unlocked once, the local cache.
//!
//! The CLI opens one session per command and hands it to the library calls the command
//! makes, so a command that does two things (`forget --prune`) unlocks the keys once and
//! asks for a passphrase at most once. A session is either a *writer's* (the id key
//! only: write snapshots, read metadata) or a *reader's* (also the reader identity: read
//! everything); [`Session::blob_reader`] refuses a writer's session.

use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::reader::BlobReader;
use crate::repo::Repo;
use std::path::{Path, PathBuf};

pub struct Session {
    repo: Repo,
    keys: WriterKeys,
    identity: Option<age::x25519::Identity>,
    cache_dir: PathBuf,
}

impl Session {
    /// A writer's session: the keys of a writer key file.
    pub fn writer(repo: Repo, keys: WriterKeys, cache_dir: impl Into<PathBuf>) -> Session {
        Session {
            repo,
            keys,
            identity: None,
            cache_dir: cache_dir.into(),
        }
    }

    /// A reader's session: unwraps the id key (`keys/idkey`) with the reader identity.
    pub fn unlock(
        repo: Repo,
        identity: age::x25519::Identity,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<Session> {
        let id_key = crate::keys::unlock_idkey_object(repo.backend.as_ref(), &identity)?;
        Ok(Session {
            repo,
            keys: WriterKeys::from_id_key(id_key),
            identity: Some(identity),
            cache_dir: cache_dir.into(),
        })
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn keys(&self) -> &WriterKeys {
        &self.keys
    }

    /// The reader identity, in a reader's session.
    pub fn identity(&self) -> Option<&age::x25519::Identity> {
        self.identity.as_ref()
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The local cache database of this store.
    pub fn open_cache(&self) -> Result<Cache> {
        Cache::open(&self.cache_dir, &self.repo.config.store_id)
    }

    /// A reader of blobs (file contents and trees): needs a reader's session.
    pub fn blob_reader(&self) -> Result<BlobReader> {
        let identity = self.identity.clone().ok_or_else(|| {
            Error::Key(format!(
                "reading the contents of the store at {} needs its reader identity; a writer key cannot read backups",
                self.repo.location()
            ))
        })?;
        Ok(BlobReader::new(
            self.repo.clone(),
            self.keys.clone(),
            identity,
        ))
    }
}
