//! Reading blobs back: the reader identity unwraps each pack's data key once, then every
//! blob is fetched with one ranged read, decrypted, decompressed and checked against its id.

use crate::cache::{Cache, Location};
use crate::crypto::{SecretKey, WriterKeys};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack;
use crate::repo::Repo;
use crate::tree::{ChunkList, Tree};
use std::collections::HashMap;
use std::sync::Mutex;

pub struct BlobReader {
    pub repo: Repo,
    pub keys: WriterKeys,
    identity: age::x25519::Identity,
    data_keys: Mutex<HashMap<Id, SecretKey>>,
}

impl BlobReader {
    pub fn new(repo: Repo, keys: WriterKeys, identity: age::x25519::Identity) -> Self {
        BlobReader {
            repo,
            keys,
            identity,
            data_keys: Mutex::default(),
        }
    }

    /// The same reader over another backend (such as a restore spool in front of this
    /// one); pack data keys already unwrapped are kept.
    pub fn with_backend(&self, backend: crate::backend::BackendRef) -> BlobReader {
        BlobReader {
            repo: Repo {
                backend,
                config: self.repo.config.clone(),
                trust: self.repo.trust.clone(),
            },
            keys: self.keys.clone(),
            identity: self.identity.clone(),
            data_keys: Mutex::new(self.data_keys.lock().unwrap().clone()),
        }
    }

    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    fn data_key(&self, pack: &Id, header_len: u32) -> Result<SecretKey> {
        if let Some(k) = self.data_keys.lock().unwrap().get(pack) {
            return Ok(k.clone());
        }
        pack::check_header_len(header_len)
            .map_err(|d| Error::corrupt(format!("index entry for pack {pack}"), d))?;
        let (off, len) = pack::header_range(header_len);
        let header =
            self.repo
                .backend
                .get_range(crate::backend::Kind::Packs, &pack.to_hex(), off, len)?;
        let key = pack::open_header_in_store(
            &self.identity,
            &self.repo.config.recipients,
            &header,
            pack,
        )?;
        self.data_keys.lock().unwrap().insert(*pack, key.clone());
        Ok(key)
    }

    pub fn read(&self, loc: &Location) -> Result<Vec<u8>> {
        check_location(loc)?;
        let key = self.data_key(&loc.pack, loc.header_len)?;
        let sealed = self.repo.backend.get_range(
            crate::backend::Kind::Packs,
            &loc.pack.to_hex(),
            loc.entry.offset as u64,
            loc.entry.length as u64,
        )?;
        pack::open_blob(&self.keys, &key, &loc.pack, &loc.entry, &sealed)
    }

    /// Reads blobs that lie back to back in one pack with a single ranged read.
    pub fn read_run(&self, run: &[&Location]) -> Result<Vec<Vec<u8>>> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(Vec::new());
        };
        debug_assert!(run.windows(2).all(|w| w[0].pack == w[1].pack
            && w[0].entry.offset + w[0].entry.length == w[1].entry.offset));
        for loc in run {
            check_location(loc)?;
        }
        let key = self.data_key(&first.pack, first.header_len)?;
        let start = first.entry.offset as u64;
        let end = last.entry.offset as u64 + last.entry.length as u64;
        let bytes = self.repo.backend.get_range(
            crate::backend::Kind::Packs,
            &first.pack.to_hex(),
            start,
            end - start,
        )?;
        run.iter()
            .map(|loc| {
                let from = (loc.entry.offset as u64 - start) as usize;
                let sealed = &bytes[from..from + loc.entry.length as usize];
                pack::open_blob(&self.keys, &key, &loc.pack, &loc.entry, sealed)
            })
            .collect()
    }

    /// Loads and decodes a tree, refusing trees whose names are unsorted or repeated
    /// (which an honest writer never produces). A file whose extents are kept in chunk
    /// lists gets them loaded into `extents` (its `lists` stay, naming the blobs); a
    /// list that is missing or does not open makes the tree unreadable, naming the entry.
    pub fn tree(&self, cache: &Cache, id: &Id) -> Result<Tree> {
        let mut tree = self.tree_shallow(cache, id)?;
        for node in tree.nodes.iter_mut().filter(|n| !n.lists.is_empty()) {
            let mut lists = Vec::with_capacity(node.lists.len());
            for list_id in &node.lists {
                lists.push(self.chunk_list(cache, id, &node.name, list_id)?);
            }
            node.extents = ChunkList::join(lists);
        }
        Ok(tree)
    }

    /// Loads and decodes a tree as [`BlobReader::tree`] does, but leaves chunk lists
    /// unread: a node with `lists` has no `extents`. For walks that want a tree's blobs
    /// rather than its files' bytes, which check whether a list is stored before reading
    /// it, and read a list shared by many snapshots once.
    pub fn tree_shallow(&self, cache: &Cache, id: &Id) -> Result<Tree> {
        let loc = locate(cache, id, "tree")?;
        let bytes = self.read(&loc)?;
        let tree = Tree::decode(&bytes).map_err(|e| Error::corrupt(format!("tree {id}"), e))?;
        if tree.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt(
                format!("tree {id}"),
                "entries are not in strictly increasing name order",
            ));
        }
        Ok(tree)
    }

    /// Loads chunk list `list` of entry `name` in tree `tree`; a list that is missing or
    /// does not open is damage to that tree, named with the entry.
    pub fn chunk_list(
        &self,
        cache: &Cache,
        tree: &Id,
        name: &[u8],
        list: &Id,
    ) -> Result<ChunkList> {
        let entry = crate::tree::display_name(name);
        let loc = cache.locate(list)?.ok_or_else(|| {
            Error::corrupt(
                format!("tree {tree}"),
                format!(
                    "the chunk list {list} of entry {entry} is in no index file (was a pack or \
                     index file deleted?)"
                ),
            )
        })?;
        let bytes = self.read(&loc).map_err(|e| match e {
            e if e.is_damage() => Error::corrupt(
                format!("tree {tree}"),
                format!("the chunk list {list} of entry {entry} cannot be read: {e}"),
            ),
            e => e,
        })?;
        ChunkList::decode(name, &bytes).map_err(|e| {
            Error::corrupt(
                format!("tree {tree}"),
                format!("the chunk list {list} of entry {entry}: {e}"),
            )
        })
    }
}

/// Bounds a blob's recorded lengths before they size a read.
fn check_location(loc: &Location) -> Result<()> {
    loc.entry
        .check_bounds(loc.header_len, None)
        .map_err(|d| Error::corrupt(format!("index entry for pack {}", loc.pack.short()), d))
}

pub fn locate(cache: &Cache, id: &Id, what: &str) -> Result<Location> {
    cache.locate(id)?.ok_or_else(|| Error::Missing {
        kind: "blob",
        name: format!("{what} {id}"),
        hint: ": no index file names it (was a pack or index file deleted?); `vault check` lists what is affected".into(),
    })
}
