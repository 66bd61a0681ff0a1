//! What a store holds and what deduplication and compression save.
//!
//! Figures (all in bytes):
//! - `store_bytes`: every object in the store (packs, index files, snapshot records,
//!   keys, leases, sealed secrets), as stored;
//! - `logical_bytes`: the apparent size of every snapshot's files added up, as if each
//!   snapshot were a full copy (data before deduplication and compression);
//! - `dedup_bytes`: the plaintext of every blob (file chunks and folder listings) some
//!   snapshot needs, each counted once (after deduplication, before compression);
//! - `stored_blob_bytes`: the same blobs as stored, compressed and encrypted;
//! - per snapshot, `unique_bytes`/`unique_stored_bytes`: the blobs no other snapshot
//!   needs, which is what forgetting that snapshot alone would let prune free;
//! - pack fill: `pack_used_bytes` of `pack_bytes` hold blobs some snapshot needs (the
//!   rest is what prune would free or repack), packs against the store's target size.
//!
//! Reading the trees needs the reader identity. Memory: one entry per distinct blob
//! reached (its id, how many snapshots need it, and one of them).

use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::Result;
use crate::id::Id;
use crate::reader::BlobReader;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ObjectTally {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotStats {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub hostname: String,
    pub logical_bytes: u64,
    pub unique_bytes: u64,
    pub unique_stored_bytes: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    pub store_bytes: u64,
    pub objects: BTreeMap<&'static str, ObjectTally>,
    pub snapshots: u64,
    pub logical_bytes: u64,
    pub dedup_bytes: u64,
    pub stored_blob_bytes: u64,
    pub blobs: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    pub pack_used_bytes: u64,
    pub pack_target_bytes: u64,
    pub per_snapshot: Vec<SnapshotStats>,
}

pub fn run(reader: &BlobReader, cache: &mut Cache) -> Result<StoreStats> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    cache.sync_index(repo, keys)?;
    let mut st = StoreStats {
        pack_target_bytes: repo.config.pack_size as u64,
        ..Default::default()
    };
    for kind in Kind::ALL {
        if kind == Kind::Config {
            continue;
        }
        let mut t = ObjectTally::default();
        for o in repo.backend.list(kind)? {
            t.objects += 1;
            t.bytes += o.size;
        }
        st.store_bytes += t.bytes;
        st.objects.insert(kind.label(), t);
    }
    let snapshots = repo.snapshots(keys)?;
    st.snapshots = snapshots.len() as u64;
    // Blob id -> (snapshots that need it, the last of them).
    let mut need: HashMap<Id, (u32, u32)> = HashMap::new();
    let progress = crate::progress::get();
    progress.begin_items("stats", "snapshots", snapshots.len() as u64, 0);
    for (i, (id, snap)) in snapshots.iter().enumerate() {
        crate::progress::check_cancelled("stats")?;
        progress.set_current(&id.short());
        let mut reached = HashSet::new();
        crate::walk::reachable_blobs(reader, cache, &snap.tree, &mut reached)?;
        for blob in reached {
            let e = need.entry(blob).or_insert((0, 0));
            e.0 += 1;
            e.1 = i as u32;
        }
        st.logical_bytes += snap.summary.bytes;
        progress.add_files(1);
    }
    let mut unique = vec![(0u64, 0u64); snapshots.len()];
    for (blob, (count, owner)) in &need {
        let Some(loc) = cache.locate(blob)? else {
            continue;
        };
        st.blobs += 1;
        st.dedup_bytes += loc.entry.raw_len as u64;
        st.stored_blob_bytes += loc.entry.length as u64;
        if *count == 1 {
            let u = &mut unique[*owner as usize];
            u.0 += loc.entry.raw_len as u64;
            u.1 += loc.entry.length as u64;
        }
    }
    for usage in crate::walk::pack_usages(cache, |id| need.contains_key(id))? {
        let usage = usage?;
        st.packs += 1;
        st.pack_bytes += usage.size;
        st.pack_used_bytes += usage.used_bytes;
    }
    st.per_snapshot = snapshots
        .iter()
        .zip(unique)
        .map(|((id, s), (raw, stored))| SnapshotStats {
            id: id.to_hex(),
            short_id: id.short(),
            time: s.time.clone(),
            hostname: s.hostname.clone(),
            logical_bytes: s.summary.bytes,
            unique_bytes: raw,
            unique_stored_bytes: stored,
        })
        .collect();
    Ok(st)
}
