//! Checking a store.
//!
//! 1. Reconcile: the local cache is brought in line with the index files the store lists
//!    (vanished ones forgotten, new ones loaded), and every listed index file is read
//!    from the store; one that does not open is a problem, and the cache forgets what it
//!    named, so a warm and a fresh cache judge the same. Its blobs are then looked up in
//!    the packs' own trailers.
//! 2. Packs: every pack the index names exists with the recorded size; every pack in the
//!    store has a header that opens for the reader identity and an authenticated trailer
//!    whose entries fit the pack and agree with the index (two ranged reads per pack).
//! 3. Data (`--read-data`, or a share of the packs with `--read-data-subset`): each
//!    selected pack is downloaded, its hash compared with its name, every blob decrypted
//!    and checked against its id.
//! 4. Snapshots: every tree loads and names only blobs that lie in sound packs. Each tree
//!    is walked once ([`crate::walk::fold`]); what was found below it is remembered and
//!    re-attributed wherever the same tree appears again, so shared subtrees cost nothing
//!    extra.
//!
//! Problems are typed records naming the damaged object, the snapshots and file paths
//! it affects. Partial writes in the store's `tmp/` are listed with their size but are
//! not problems: a killed command leaves them, and the next snapshot or prune removes
//! them once older than [`crate::backend::LEFTOVER_GRACE`].
//!
//! A snapshot record that is not signed by an authorised host of its name, is bound to
//! another name or store, or claims a time in the future, is a problem too
//! (`SnapshotUnverified`, see [`crate::repo::Verification`]).

use crate::backend::{Kind, Leftover};
use crate::cache::Cache;
use crate::error::Result;
use crate::id::Id;
use crate::reader::BlobReader;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod packs;
mod snapshots;

/// Which packs `check` downloads and decrypts in full.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum DataSubset {
    /// None: headers and trailers only.
    #[default]
    None,
    /// Every pack.
    All,
    /// Share `n` of `m` (1-based): the packs whose id, read as a number, is `n-1` mod `m`.
    /// Running 1/M .. M/M reads every pack exactly once.
    Slice { n: u32, m: u32 },
    /// A random `percent` share of the packs (at least one when there are any).
    Percent(f64),
}

/// A [`DataSubset`] spelled neither `N/M` nor `P%` (the text given).
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: expected N/M (1 <= N <= M, e.g. 2/7) or P% (0 < P <= 100, e.g. 5%)")]
pub struct BadSubset(pub String);

impl std::str::FromStr for DataSubset {
    type Err = BadSubset;

    /// `N/M` or `P%`.
    fn from_str(s: &str) -> std::result::Result<DataSubset, BadSubset> {
        let bad = || BadSubset(s.to_string());
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(DataSubset::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let m: u32 = m.trim().parse().map_err(|_| bad())?;
        if n == 0 || m == 0 || n > m {
            return Err(bad());
        }
        Ok(DataSubset::Slice { n, m })
    }
}

impl DataSubset {
    fn select(&self, mut packs: Vec<Id>) -> Vec<Id> {
        packs.sort();
        match *self {
            DataSubset::None => Vec::new(),
            DataSubset::All => packs,
            DataSubset::Slice { n, m } => packs
                .into_iter()
                .filter(|id| {
                    u64::from_be_bytes(id.0[..8].try_into().unwrap()) % m as u64 == (n - 1) as u64
                })
                .collect(),
            DataSubset::Percent(p) => {
                use rand::seq::SliceRandom;
                let k = ((packs.len() as f64 * p / 100.0).ceil() as usize).min(packs.len());
                packs.shuffle(&mut rand::thread_rng());
                packs.truncate(k);
                packs.sort();
                packs
            }
        }
    }
}

/// What is wrong, by the kind of object it concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An index file does not open or parse.
    IndexDamaged,
    /// A pack the index names is not in the store.
    PackMissing,
    /// A pack's size differs from what the index recorded.
    PackSize,
    /// A pack's header does not open, or its magic or lengths are wrong.
    PackHeader,
    /// A pack's trailer does not open or does not fit the pack.
    PackTrailer,
    /// The index and the pack's own trailer disagree about its blobs.
    PackIndexMismatch,
    /// A pack's bytes do not hash to its name.
    PackCorrupt,
    /// Blobs fail authentication or do not match their ids.
    BlobCorrupt,
    /// Blobs snapshots use that no index file (nor any pack trailer) names.
    BlobMissing,
    /// A folder's tree blob cannot be read.
    TreeUnreadable,
    /// A snapshot record does not open.
    SnapshotDamaged,
    /// A snapshot record opens but is not signed by an authorised host of the name it
    /// records, is bound to another name or store, or claims a time in the future.
    SnapshotUnverified,
}

/// One problem: what is damaged, why, and what it affects.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The damaged object: `index/NAME`, `packs/ID`, `blob ID`, `snapshots/ID`, `tree ID`.
    pub object: String,
    pub message: String,
    /// Short ids of the snapshots affected.
    pub snapshots: Vec<String>,
    /// Paths (in the snapshots) of the files and folders that cannot be restored whole.
    pub paths: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub packs: u64,
    pub index_files: u64,
    /// Packs whose header and trailer were verified.
    pub packs_verified: u64,
    /// Packs downloaded and decrypted in full.
    pub packs_read: u64,
    pub blobs_read: u64,
    /// Packs in the store that no index file names (left by an interrupted run; the next
    /// prune removes them).
    pub unindexed_packs: u64,
    pub problems: Vec<Problem>,
    #[serde(serialize_with = "leftovers_json")]
    pub leftovers: Vec<Leftover>,
}

fn leftovers_json<S: serde::Serializer>(
    l: &[Leftover],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(l.len()))?;
    for x in l {
        seq.serialize_element(&serde_json::json!({
            "name": x.name, "size": x.size, "age_secs": x.age.as_secs()
        }))?;
    }
    seq.end()
}

pub struct CheckOptions {
    pub read_data: DataSubset,
}

type Key = (ProblemKind, String);

#[derive(Default)]
struct Problems {
    map: BTreeMap<Key, (String, BTreeSet<String>, BTreeSet<String>)>,
}

impl Problems {
    fn add(
        &mut self,
        kind: ProblemKind,
        object: impl Into<String>,
        message: impl Into<String>,
    ) -> Key {
        let key = (kind, object.into());
        self.map
            .entry(key.clone())
            .or_insert_with(|| (message.into(), BTreeSet::new(), BTreeSet::new()));
        key
    }

    fn affect(&mut self, key: &Key, snapshot: &str, path: String) {
        if let Some(p) = self.map.get_mut(key) {
            p.1.insert(snapshot.to_string());
            p.2.insert(path);
        }
    }

    fn into_vec(self) -> Vec<Problem> {
        self.map
            .into_iter()
            .map(|((kind, object), (message, snaps, paths))| Problem {
                kind,
                object,
                message,
                snapshots: snaps.into_iter().collect(),
                paths: paths.into_iter().collect(),
            })
            .collect()
    }
}

/// The state of one check: what the store holds, what was found so far.
struct Checker<'a> {
    reader: &'a BlobReader,
    cache: &'a mut Cache,
    /// The packs the store lists, name -> size.
    stored: HashMap<String, u64>,
    /// Packs that cannot be read, with the problem that says why.
    bad_packs: HashMap<Id, Key>,
    /// Blobs that fail authentication, with their problem.
    bad_blobs: HashMap<Id, Key>,
    report: CheckReport,
    problems: Problems,
}

pub fn run(reader: &BlobReader, cache: &mut Cache, opts: &CheckOptions) -> Result<CheckReport> {
    let mut c = Checker {
        reader,
        cache,
        stored: HashMap::new(),
        bad_packs: HashMap::new(),
        bad_blobs: HashMap::new(),
        report: CheckReport::default(),
        problems: Problems::default(),
    };
    c.index_files()?;
    c.packs()?;
    c.read_data(&opts.read_data)?;
    c.snapshots()?;
    let mut report = c.report;
    report.problems = c.problems.into_vec();
    report.leftovers = reader.repo.backend.leftovers()?;
    Ok(report)
}

impl Checker<'_> {
    /// Step 1, index files, each read from the store; then the cache reconciled with them.
    fn index_files(&mut self) -> Result<()> {
        let repo = &self.reader.repo;
        let keys = &self.reader.keys;
        for info in repo.backend.list(Kind::Index)? {
            self.report.index_files += 1;
            if let Err(e) = repo.load_index(keys, &info.name) {
                if !e.is_damage() {
                    return Err(e);
                }
                self.problems.add(
                    ProblemKind::IndexDamaged,
                    format!("index/{}", info.name),
                    format!(
                        "index file {}: {e}; `vault repair index` replaces it",
                        info.name
                    ),
                );
                self.cache.forget_index(&info.name)?;
            }
        }
        let sync = self.cache.sync_index(repo, keys)?;
        for (name, why) in &sync.unreadable_packs {
            self.problems.add(
                ProblemKind::PackTrailer,
                format!("packs/{name}"),
                format!(
                    "pack {name}: no index file names it and its trailer cannot be read: {why}"
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_and_slices_partition() {
        assert_eq!(
            "2/7".parse::<DataSubset>().unwrap(),
            DataSubset::Slice { n: 2, m: 7 }
        );
        assert_eq!(
            "5%".parse::<DataSubset>().unwrap(),
            DataSubset::Percent(5.0)
        );
        for bad in ["0/3", "4/3", "3/0", "0%", "101%", "x", "1/"] {
            assert!(bad.parse::<DataSubset>().is_err(), "{bad}");
        }
        let ids: Vec<Id> = (0..200).map(|_| Id::random()).collect();
        let mut seen = Vec::new();
        for n in 1..=5 {
            seen.extend(DataSubset::Slice { n, m: 5 }.select(ids.clone()));
        }
        seen.sort();
        let mut all = ids.clone();
        all.sort();
        assert_eq!(seen, all, "1/5..5/5 select every pack exactly once");
        assert_eq!(DataSubset::Percent(10.0).select(ids.clone()).len(), 20);
        assert_eq!(DataSubset::Percent(0.1).select(ids.clone()).len(), 1);
        assert!(DataSubset::None.select(ids).is_empty());
    }
}
