//! Checking a store: every index file opens, every pack the index names exists with the
//! size the index says, every snapshot's trees load and name only blobs the index knows;
//! with `read_data`, every pack is downloaded, its hash compared with its name, and every
//! blob in it decrypted and checked against its id. Problems are reported with the
//! snapshots and paths they affect. A snapshot record that is not signed by an authorised
//! host of its name, is bound to another name or store, or claims a time in the future, is
//! a problem too (see [`crate::repo::Verification`]).

use crate::backend::Kind;
use crate::cache::Cache;
use crate::error::Result;
use crate::id::Id;
use crate::pack;
use crate::reader::BlobReader;
use crate::tree::{display_name, Tree};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub struct CheckReport {
    pub snapshots: u64,
    pub packs: u64,
    pub index_files: u64,
    pub blobs_read: u64,
    pub problems: Vec<String>,
}

pub fn run(reader: &BlobReader, cache: &mut Cache, read_data: bool) -> Result<CheckReport> {
    let repo = &reader.repo;
    let keys = &reader.keys;
    let mut report = CheckReport::default();

    // Index files: each must open. The good ones are brought into the cache.
    let mut indexed: HashMap<Id, u64> = HashMap::new();
    for info in repo.backend.list(Kind::Index)? {
        report.index_files += 1;
        match repo.load_index(keys, &info.name) {
            Ok(packs) => {
                for p in &packs {
                    indexed.insert(p.id, p.size);
                }
                cache.add_index(&info.name, &packs)?;
            }
            Err(e) => report
                .problems
                .push(format!("index file {}: {e}", info.name)),
        }
    }

    // Packs: every indexed pack is present with its recorded size.
    let stored: HashMap<String, u64> = repo
        .backend
        .list(Kind::Packs)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    report.packs = stored.len() as u64;
    let mut bad_packs: HashSet<Id> = HashSet::new();
    for (id, size) in &indexed {
        match stored.get(&id.to_hex()) {
            None => {
                bad_packs.insert(*id);
                report
                    .problems
                    .push(format!("pack {id} is missing from the store"));
            }
            Some(s) if s != size => {
                bad_packs.insert(*id);
                report.problems.push(format!(
                    "corrupt pack {id}: {s} bytes, the index says {size} (truncated or altered)"
                ));
            }
            Some(_) => {}
        }
    }

    // Data: every blob decrypts and matches its id.
    let mut bad_blobs: HashSet<Id> = HashSet::new();
    if read_data {
        for name in stored.keys() {
            let Some(id) = Id::from_hex(name) else {
                continue;
            };
            let bytes = match repo.backend.get(Kind::Packs, name) {
                Ok(b) => b,
                Err(e) => {
                    report.problems.push(format!("pack {name}: {e}"));
                    continue;
                }
            };
            // A damaged pack is reported, but its blobs are judged one by one below: each
            // is authenticated on its own, so the report can name exactly the files hit.
            if Id::hash_public(&bytes) != id {
                report.problems.push(format!(
                    "corrupt pack {name}: its content does not match its name (altered or damaged)"
                ));
            }
            let entries = match cache.pack_entries(&id)? {
                e if !e.is_empty() => e,
                _ => match pack::read_trailer(keys, &id, &bytes) {
                    Ok(r) => r.entries,
                    Err(e) => {
                        report.problems.push(format!("pack {name}: {e}"));
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
            let header = bytes.get(off as usize..(off + len) as usize).unwrap_or(&[]);
            let data_key = match pack::open_header(reader.identity(), header, &id) {
                Ok(k) => k,
                Err(e) => {
                    report.problems.push(format!("pack {name}: {e}"));
                    for e in &entries {
                        bad_blobs.insert(e.id);
                    }
                    continue;
                }
            };
            for e in &entries {
                report.blobs_read += 1;
                let sealed = bytes.get(e.offset as usize..(e.offset as usize + e.length as usize));
                let ok = match sealed {
                    Some(s) => {
                        pack::open_blob(keys, &data_key, &id, e, s).map_err(|e| e.to_string())
                    }
                    None => Err(format!(
                        "corrupt pack {name}: blob {} lies past the end",
                        e.id
                    )),
                };
                if let Err(msg) = ok {
                    bad_blobs.insert(e.id);
                    report.problems.push(msg);
                }
            }
        }
    }

    // Snapshots: every tree loads, every blob is indexed in a sound pack.
    let mut tree_cache: HashMap<Id, std::result::Result<Tree, String>> = HashMap::new();
    for info in repo.backend.list(Kind::Snapshots)? {
        report.snapshots += 1;
        let Some(sid) = Id::from_hex(&info.name) else {
            continue;
        };
        let snap = match repo.load_snapshot_checked(keys, &sid) {
            Ok((s, verdict)) => {
                for why in verdict.problems() {
                    report.problems.push(format!(
                        "snapshot {} (host {:?}, {}): {why}",
                        sid.short(),
                        s.hostname,
                        s.time
                    ));
                }
                s
            }
            Err(e) => {
                report
                    .problems
                    .push(format!("snapshot {}: {e}", sid.short()));
                continue;
            }
        };
        let label = format!("snapshot {} ({})", sid.short(), snap.time);
        let mut ctx = Walk {
            reader,
            cache,
            bad_blobs: &bad_blobs,
            bad_packs: &bad_packs,
            trees: &mut tree_cache,
            problems: &mut report.problems,
            label: &label,
        };
        ctx.walk(&snap.tree, &mut Vec::new())?;
    }
    Ok(report)
}

struct Walk<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    bad_blobs: &'a HashSet<Id>,
    bad_packs: &'a HashSet<Id>,
    trees: &'a mut HashMap<Id, std::result::Result<Tree, String>>,
    problems: &'a mut Vec<String>,
    label: &'a str,
}

impl Walk<'_> {
    fn path(prefix: &[Vec<u8>]) -> String {
        let parts: Vec<String> = prefix.iter().map(|c| display_name(c)).collect();
        format!("/{}", parts.join("/"))
    }

    /// Why a blob cannot be read, if it cannot.
    fn blob_problem(&self, id: &Id) -> Result<Option<String>> {
        if self.bad_blobs.contains(id) {
            return Ok(Some("corrupt data".into()));
        }
        match self.cache.locate(id)? {
            None => Ok(Some(format!(
                "blob {} is missing (no index file names it)",
                id.short()
            ))),
            Some(loc) if self.bad_packs.contains(&loc.pack) => Ok(Some(format!(
                "its pack {} is missing or corrupt",
                loc.pack.short()
            ))),
            Some(_) => Ok(None),
        }
    }

    fn walk(&mut self, tree_id: &Id, prefix: &mut Vec<Vec<u8>>) -> Result<()> {
        if !self.trees.contains_key(tree_id) {
            let loaded = match self.blob_problem(tree_id)? {
                Some(p) => Err(p),
                None => self
                    .reader
                    .tree(self.cache, tree_id)
                    .map_err(|e| e.to_string()),
            };
            self.trees.insert(*tree_id, loaded);
        }
        let tree = match &self.trees[tree_id] {
            Ok(t) => t.clone(),
            Err(e) => {
                self.problems.push(format!(
                    "{}: folder {} cannot be read: {e}",
                    self.label,
                    Self::path(prefix)
                ));
                return Ok(());
            }
        };
        for node in &tree.nodes {
            prefix.push(node.name.clone());
            let mut reported = false;
            for c in node.chunks() {
                if reported {
                    break;
                }
                if let Some(p) = self.blob_problem(&c.id)? {
                    self.problems.push(format!(
                        "{}: {}: {p}; this file cannot be restored whole",
                        self.label,
                        Self::path(prefix)
                    ));
                    reported = true;
                }
            }
            if let Some(sub) = &node.subtree {
                self.walk(sub, prefix)?;
            }
            prefix.pop();
        }
        Ok(())
    }
}
