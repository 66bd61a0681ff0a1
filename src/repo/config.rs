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
    /// 32 KiB / 64 KiB / 256 KiB. Database files change by scattered 8 KiB pages, and a
    /// changed page costs the whole chunk around it, so the day's increment shrinks with
    /// the chunk size while the first snapshot grows a little (zstd sees less context per
    /// chunk). Measured with `benches/store_size.sh` on the 2 GiB benchmark tree (zstd
    /// level 2; store after three snapshots, what "a day of database activity" added, and
    /// the median first-snapshot CPU user+sys of three interleaved runs), by min/avg/max:
    /// 128/256/1024 KiB 897-900 MiB, +174-176 MiB, 9.0 s; 64/128/512 KiB 869 MiB, +130 MiB,
    /// 9.7 s; 32/64/256 KiB 862-866 MiB (95% of restic 0.14's 913 MiB), +101-103 MiB,
    /// 8.5 s; 16/64/256 KiB 865 MiB, +103 MiB. Smaller chunks are not slower: zstd picks
    /// cheaper parameters for inputs of 128 KiB and less. An earlier measurement on a
    /// 1 GiB tree, by average size alone: the day's new data was 1 MiB 314 MiB, 512 KiB
    /// 265 MiB, 256 KiB 202 MiB, 128 KiB 163 MiB.
    fn default() -> Self {
        ChunkerParams {
            min_size: 32 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
        }
    }
}

/// zstd level of a new store's blobs. Measured with `benches/store_size.sh` on the 2 GiB
/// benchmark tree with 32/64/256 KiB chunks (store after three snapshots; first-snapshot
/// CPU user+sys, median of three interleaved runs): level 1 871 MiB, 8.7 s; level 2
/// 862-866 MiB, 8.5 s; level 3 856 MiB, and in the same unpaired sweep 11.2 s against
/// level 2's 9.1 s. Level 2 keeps the store at 95% of restic 0.14's; level 3 saves 1% more
/// for a quarter more CPU. With 128/256/1024 KiB chunks: level 1 917 MiB, level 2 897-900
/// MiB, level 3 888 MiB.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 2;

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
