//! The store's `config` object: format version, store id, chunker sizes, pack size,
//! compression level, object lock and reader recipients, and in a version-2 store the
//! admin's public key and signature over the rest (checked by
//! [`Repo::authenticate`](super::Repo::authenticate)).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 128 KiB / 256 KiB / 1 MiB. Measured on the benchmark's Travis-like tree (1 GiB,
    /// then "a day of database activity": scattered 8 KiB page rewrites), the new data
    /// the second snapshot had to store was, by average chunk size: 1 MiB 314 MiB,
    /// 512 KiB 265 MiB, 256 KiB 202 MiB, 128 KiB 163 MiB. 256 KiB keeps most of the gain
    /// while the index and trees stay small (4 chunks per MiB) and chunks stay large
    /// enough for one ranged read each to be efficient on S3.
    fn default() -> Self {
        ChunkerParams {
            min_size: 128 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreConfig {
    pub format: String,
    pub version: u32,
    pub store_id: String,
    pub created: String,
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u32,
    pub compression_level: i32,
    /// age recipients that pack data keys are wrapped to.
    pub recipients: Vec<String>,
    /// S3 Object Lock retention given to every object, if the store was created with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::backend::ObjectLock>,
    /// The admin's Ed25519 public key (hex), version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<String>,
    /// The admin's signature over everything else here, version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl StoreConfig {
    pub(super) fn unsigned(&self) -> StoreConfig {
        StoreConfig {
            signature: None,
            ..self.clone()
        }
    }
}

/// Parses the store's config object (JSON).
pub fn decode_store_config(bytes: &[u8]) -> std::result::Result<StoreConfig, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a vault store config: {e}"))
}
