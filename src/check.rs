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
//!    is walked once; what was found below it is remembered and re-attributed wherever the
//!    same tree appears again, so shared subtrees cost nothing extra.
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
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack;
use crate::reader::BlobReader;
use crate::tree::display_name;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

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

impl std::str::FromStr for DataSubset {
    type Err = Error;

    /// `N/M` or `P%`.
    fn from_str(s: &str) -> Result<DataSubset> {
        let bad = || {
            Error::Usage(format!(
                "--read-data-subset {s:?}: expected N/M (1 <= N <= M, e.g. 2/7) or P% (0 < P <= 100, e.g. 5%)"
            ))
        };
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

pub fn run(reader: &BlobReader, cache: &mut Cache, opts: &CheckOptions) -> Result<CheckReport> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    let mut report = CheckReport::default();
    let mut problems = Problems::default();

    // 1. Index files, each read from the store; then the cache reconciled with them.
    for info in repo.backend.list(Kind::Index)? {
        report.index_files += 1;
        if let Err(e) = repo.load_index(keys, &info.name) {
            if !(e.is_corruption() || matches!(e, Error::Missing { .. })) {
                return Err(e);
            }
            problems.add(
                ProblemKind::IndexDamaged,
                format!("index/{}", info.name),
                format!(
                    "index file {}: {e}; `vault repair index` replaces it",
                    info.name
                ),
            );
            cache.forget_index(&info.name)?;
        }
    }
    let sync = cache.sync_index(repo, keys)?;
    for (name, why) in &sync.unreadable_packs {
        problems.add(
            ProblemKind::PackTrailer,
            format!("packs/{name}"),
            format!("pack {name}: no index file names it and its trailer cannot be read: {why}"),
        );
    }

    // 2. Packs: present with the recorded size; header and trailer sound.
    let stored: HashMap<String, u64> = repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    report.packs = stored.len() as u64;
    let mut bad_packs: HashMap<Id, Key> = HashMap::new();
    let indexed: HashMap<Id, u64> = cache.packs()?.into_iter().collect();
    for (id, size) in &indexed {
        match stored.get(&id.to_hex()) {
            None => {
                let k = problems.add(
                    ProblemKind::PackMissing,
                    format!("packs/{id}"),
                    format!("pack {id} is missing from the store"),
                );
                bad_packs.insert(*id, k);
            }
            Some(s) if s != size => {
                let k = problems.add(
                    ProblemKind::PackSize,
                    format!("packs/{id}"),
                    format!("corrupt pack {id}: {s} bytes, the index says {size} (truncated or altered)"),
                );
                bad_packs.insert(*id, k);
            }
            Some(_) => {}
        }
    }
    let mut names: Vec<&String> = stored.keys().collect();
    names.sort();
    for name in names {
        let Some(id) = Id::from_hex(name) else {
            continue;
        };
        if !indexed.contains_key(&id) {
            report.unindexed_packs += 1;
        }
        if bad_packs.contains_key(&id) {
            continue;
        }
        report.packs_verified += 1;
        let object = format!("packs/{name}");
        let ends = match pack::read_ends(repo.backend.as_ref(), keys, &id, stored[name]) {
            Ok(e) => e,
            Err(e) if e.is_corruption() => {
                let text = e.to_string();
                let kind = if text.contains("trailer") {
                    ProblemKind::PackTrailer
                } else {
                    ProblemKind::PackHeader
                };
                let k = problems.add(kind, &object, text);
                if kind == ProblemKind::PackHeader {
                    bad_packs.insert(id, k);
                }
                continue;
            }
            Err(e @ Error::Missing { .. }) => {
                // Removed since the listing (by a prune elsewhere?).
                let k = problems.add(ProblemKind::PackMissing, &object, e.to_string());
                bad_packs.insert(id, k);
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = pack::open_header_in_store(
            reader.identity(),
            &repo.config.recipients,
            &ends.header,
            &id,
        ) {
            let k = problems.add(ProblemKind::PackHeader, &object, e.to_string());
            bad_packs.insert(id, k);
            continue;
        }
        if indexed.contains_key(&id) {
            let mut from_index = cache.pack_entries(&id)?;
            let mut from_pack = ends.record.entries.clone();
            from_index.sort_by_key(|e| e.position);
            from_pack.sort_by_key(|e| e.position);
            if from_index != from_pack {
                let k = problems.add(
                    ProblemKind::PackIndexMismatch,
                    &object,
                    format!(
                        "pack {name}: the index and the pack's own trailer disagree about its blobs \
                         (the index was altered?); `vault repair index --read-all-packs` rebuilds it from the packs"
                    ),
                );
                bad_packs.insert(id, k);
            }
        }
    }

    // 3. Data: every blob of the selected packs decrypts and matches its id.
    let mut bad_blobs: HashMap<Id, Key> = HashMap::new();
    let candidates: Vec<Id> = stored.keys().filter_map(|n| Id::from_hex(n)).collect();
    let selected = opts.read_data.select(candidates);
    let progress = crate::progress::get();
    if !selected.is_empty() {
        progress.begin_items(
            "check --read-data",
            "packs",
            selected.len() as u64,
            selected
                .iter()
                .map(|id| stored.get(&id.to_hex()).copied().unwrap_or(0))
                .sum(),
        );
    }
    for id in selected {
        crate::progress::check_cancelled("check")?;
        let name = id.to_hex();
        progress.set_current(&name);
        progress.add_files(1);
        progress.add_bytes(stored.get(&name).copied().unwrap_or(0));
        let object = format!("packs/{name}");
        report.packs_read += 1;
        let bytes = match repo.backend.get(Kind::Packs, &name) {
            Ok(b) => b,
            Err(e) if e.is_corruption() || matches!(e, Error::Missing { .. }) => {
                let k = problems.add(ProblemKind::PackMissing, &object, e.to_string());
                bad_packs.insert(id, k);
                continue;
            }
            Err(e) => return Err(e),
        };
        // A damaged pack is reported, but its blobs are judged one by one below: each is
        // authenticated on its own, so the report can name exactly the files hit.
        if Id::hash_public(&bytes) != id {
            problems.add(
                ProblemKind::PackCorrupt,
                &object,
                format!(
                    "corrupt pack {name}: its content does not match its name (altered or damaged)"
                ),
            );
        }
        let entries = match cache.pack_entries(&id)? {
            e if !e.is_empty() => e,
            _ => match pack::read_trailer(keys, &id, &bytes) {
                Ok(r) => r.entries,
                Err(e) => {
                    problems.add(ProblemKind::PackTrailer, &object, e.to_string());
                    continue;
                }
            },
        };
        let header_len = u32::from_le_bytes(
            bytes
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 4]),
        );
        let (off, len) = pack::header_range(header_len);
        let header = bytes
            .get(off as usize..(off as usize).saturating_add(len as usize))
            .unwrap_or(&[]);
        let data_key = match pack::open_header_in_store(
            reader.identity(),
            &repo.config.recipients,
            header,
            &id,
        ) {
            Ok(k) => k,
            Err(e) => {
                let k = problems.add(ProblemKind::PackHeader, &object, e.to_string());
                bad_packs.insert(id, k);
                continue;
            }
        };
        let mut corrupt = 0usize;
        let mut first_error = String::new();
        let blob_key = (ProblemKind::BlobCorrupt, object.clone());
        for e in &entries {
            report.blobs_read += 1;
            let sealed = bytes.get(e.offset as usize..(e.offset as usize + e.length as usize));
            let ok = match sealed {
                Some(s) => pack::open_blob(keys, &data_key, &id, e, s)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "corrupt pack {name}: blob {} lies past the end",
                    e.id
                )),
            };
            if let Err(msg) = ok {
                corrupt += 1;
                if first_error.is_empty() {
                    first_error = msg;
                }
                bad_blobs.insert(e.id, blob_key.clone());
            }
        }
        if corrupt > 0 {
            problems.add(
                ProblemKind::BlobCorrupt,
                &object,
                format!("{corrupt} blobs in pack {name} are corrupt ({first_error})"),
            );
        }
    }

    // 4. Snapshots: every tree loads, every blob lies in a sound pack.
    let mut walk = Walk {
        reader,
        cache,
        bad_blobs: &bad_blobs,
        bad_packs: &bad_packs,
        stored: &stored,
        memo: HashMap::new(),
        problems: &mut problems,
    };
    for info in repo.backend.list(Kind::Snapshots)? {
        report.snapshots += 1;
        let Some(sid) = Id::from_hex(&info.name) else {
            continue;
        };
        let snap = match repo.load_snapshot_checked(keys, &sid) {
            Ok((s, verdict)) => {
                for why in verdict.problems() {
                    walk.problems.add(
                        ProblemKind::SnapshotUnverified,
                        format!("snapshots/{}", info.name),
                        format!(
                            "snapshot {} (host {:?}, {}): {why}",
                            sid.short(),
                            s.hostname,
                            s.time
                        ),
                    );
                }
                s
            }
            Err(e) if e.is_corruption() || matches!(e, Error::Missing { .. }) => {
                walk.problems.add(
                    ProblemKind::SnapshotDamaged,
                    format!("snapshots/{}", info.name),
                    format!("snapshot {}: {e}", sid.short()),
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let findings = walk.walk(&snap.tree)?;
        let label = sid.short();
        for f in findings.iter() {
            let parts: Vec<String> = f.0.iter().map(|c| display_name(c)).collect();
            walk.problems
                .affect(&f.1, &label, format!("/{}", parts.join("/")));
        }
    }
    report.problems = problems.into_vec();
    report.leftovers = repo.backend.leftovers()?;
    Ok(report)
}

/// A path below a tree (relative to it) and the problem that hits it.
type Finding = (Vec<Vec<u8>>, Key);

struct Walk<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    bad_blobs: &'a HashMap<Id, Key>,
    bad_packs: &'a HashMap<Id, Key>,
    stored: &'a HashMap<String, u64>,
    /// What was found below each tree already walked.
    memo: HashMap<Id, Rc<Vec<Finding>>>,
    problems: &'a mut Problems,
}

impl Walk<'_> {
    /// Why a blob cannot be read, if it cannot: the key of the problem that explains it.
    fn blob_problem(&mut self, id: &Id) -> Result<Option<Key>> {
        if let Some(k) = self.bad_blobs.get(id) {
            return Ok(Some(k.clone()));
        }
        let locations = self.cache.locations(id)?;
        if locations.is_empty() {
            return Ok(Some(self.problems.add(
                ProblemKind::BlobMissing,
                "index",
                "blobs that snapshots use are named by no index file and lie in no pack's trailer \
                 (their packs are gone?); `vault repair snapshots` writes snapshots without the lost files",
            )));
        }
        let sound = locations.iter().find(|l| {
            !self.bad_packs.contains_key(&l.pack) && self.stored.contains_key(&l.pack.to_hex())
        });
        match sound {
            Some(_) => Ok(None),
            None => Ok(self.bad_packs.get(&locations[0].pack).cloned().or_else(|| {
                Some(self.problems.add(
                    ProblemKind::PackMissing,
                    format!("packs/{}", locations[0].pack),
                    format!("pack {} is missing from the store", locations[0].pack),
                ))
            })),
        }
    }

    fn walk(&mut self, tree_id: &Id) -> Result<Rc<Vec<Finding>>> {
        if let Some(found) = self.memo.get(tree_id) {
            return Ok(found.clone());
        }
        let mut found: Vec<Finding> = Vec::new();
        let tree = match self.blob_problem(tree_id)? {
            Some(k) => Err(k),
            None => match self.reader.tree(self.cache, tree_id) {
                Ok(t) => Ok(t),
                Err(e) if e.is_corruption() || matches!(e, Error::Missing { .. }) => {
                    Err(self.problems.add(
                        ProblemKind::TreeUnreadable,
                        format!("tree {tree_id}"),
                        format!("folder tree {} cannot be read: {e}", tree_id.short()),
                    ))
                }
                Err(e) => return Err(e),
            },
        };
        match tree {
            Err(k) => found.push((Vec::new(), k)),
            Ok(tree) => {
                for node in &tree.nodes {
                    for c in node.chunks() {
                        if let Some(k) = self.blob_problem(&c.id)? {
                            found.push((vec![node.name.clone()], k));
                            break;
                        }
                    }
                    if let Some(sub) = &node.subtree {
                        for (rel, k) in self.walk(sub)?.iter() {
                            let mut path = vec![node.name.clone()];
                            path.extend(rel.iter().cloned());
                            found.push((path, k.clone()));
                        }
                    }
                }
            }
        }
        let found = Rc::new(found);
        self.memo.insert(*tree_id, found.clone());
        Ok(found)
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
