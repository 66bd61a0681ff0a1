//! Index files: sealed CBOR lists of [`PackRecord`]s, written only after the packs they
//! name are durable. A version-2 index file is bound to its store and name; one of the
//! first format still opens (index files carry no authority).

use super::Repo;
use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::PackRecord;
use crate::sign;

const INDEX_LABEL: &[u8] = b"vault v1 index";
const INDEX_LABEL_V2: &[u8] = b"vault v2 index";

impl Repo {
    fn index_aad(&self, name: &str) -> Vec<u8> {
        let mut aad = INDEX_LABEL_V2.to_vec();
        aad.extend(sign::binding("index", &self.config.store_id, "index", name));
        aad
    }

    pub fn save_index(&self, keys: &WriterKeys, packs: &[PackRecord]) -> Result<String> {
        let mut plain = Vec::new();
        ciborium::into_writer(packs, &mut plain).expect("serialisable");
        let name = Id::random().to_hex();
        let sealed = if self.is_legacy() {
            keys.seal_meta_owned(INDEX_LABEL, plain)
        } else {
            keys.seal_meta_owned(&self.index_aad(&name), plain)
        };
        self.backend.put(Kind::Index, &name, &sealed)?;
        Ok(name)
    }

    /// Opens an index file: bound to its store and name (version 2), or of the first
    /// format (index files carry no authority: a pack's blobs are checked against their
    /// ids when read, so an unbound index file can at worst point at the wrong place).
    pub fn load_index(&self, keys: &WriterKeys, name: &str) -> Result<Vec<PackRecord>> {
        let what = format!("index file {name}");
        let sealed = self.backend.get(Kind::Index, name)?;
        let plain = match keys.open_meta(&self.index_aad(name), &sealed, &what) {
            Ok(p) => p,
            Err(e) => keys.open_meta(INDEX_LABEL, &sealed, &what).map_err(|_| e)?,
        };
        crate::pack::decode_index(&plain).map_err(|d| Error::corrupt(what, d))
    }

    /// True when an index file is sealed bound to this store and its name.
    pub fn index_is_bound(&self, keys: &WriterKeys, name: &str) -> Result<bool> {
        let sealed = self.backend.get(Kind::Index, name)?;
        Ok(keys
            .open_meta(&self.index_aad(name), &sealed, "index")
            .is_ok())
    }
}
