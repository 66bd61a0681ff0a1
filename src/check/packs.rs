//! Steps 2 and 3 of a check: every pack's presence, size, header and trailer; and, for
//! the packs `--read-data` selects, every blob.

use super::{Checker, DataSubset, ProblemKind};
use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack;
use std::collections::HashMap;

impl Checker<'_> {
    /// Step 2, packs: present with the recorded size; header and trailer sound.
    pub(super) fn packs(&mut self) -> Result<()> {
        self.stored = self
            .reader
            .repo
            .backend
            .list(Kind::Packs)?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        self.report.packs = self.stored.len() as u64;
        let indexed: HashMap<Id, u64> = self.cache.packs()?.into_iter().collect();
        for (id, size) in &indexed {
            match self.stored.get(&id.to_hex()) {
                None => {
                    let k = self.problems.add(
                        ProblemKind::PackMissing,
                        format!("packs/{id}"),
                        format!("pack {id} is missing from the store"),
                    );
                    self.bad_packs.insert(*id, k);
                }
                Some(s) if s != size => {
                    let k = self.problems.add(
                        ProblemKind::PackSize,
                        format!("packs/{id}"),
                        format!("corrupt pack {id}: {s} bytes, the index says {size} (truncated or altered)"),
                    );
                    self.bad_packs.insert(*id, k);
                }
                Some(_) => {}
            }
        }
        let mut names: Vec<String> = self.stored.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(id) = Id::from_hex(&name) else {
                continue;
            };
            if !indexed.contains_key(&id) {
                self.report.unindexed_packs += 1;
            }
            if self.bad_packs.contains_key(&id) {
                continue;
            }
            self.report.packs_verified += 1;
            self.pack_ends(&id, &name, indexed.contains_key(&id))?;
        }
        Ok(())
    }

    /// A pack's header opens for the reader identity and its authenticated trailer fits
    /// the pack and (if the index names the pack) agrees with the index.
    fn pack_ends(&mut self, id: &Id, name: &str, indexed: bool) -> Result<()> {
        let repo = &self.reader.repo;
        let object = format!("packs/{name}");
        let ends = match pack::read_ends(
            repo.backend.as_ref(),
            &self.reader.keys,
            id,
            self.stored[name],
        ) {
            Ok(e) => e,
            Err(e) if e.is_corruption() => {
                let text = e.to_string();
                let kind = if text.contains("trailer") {
                    ProblemKind::PackTrailer
                } else {
                    ProblemKind::PackHeader
                };
                let k = self.problems.add(kind, &object, text);
                if kind == ProblemKind::PackHeader {
                    self.bad_packs.insert(*id, k);
                }
                return Ok(());
            }
            Err(e @ Error::Missing { .. }) => {
                // Removed since the listing (by a prune elsewhere?).
                let k = self
                    .problems
                    .add(ProblemKind::PackMissing, &object, e.to_string());
                self.bad_packs.insert(*id, k);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = pack::open_header_in_store(
            self.reader.identity(),
            &repo.config.recipients,
            &ends.header,
            id,
        ) {
            let k = self
                .problems
                .add(ProblemKind::PackHeader, &object, e.to_string());
            self.bad_packs.insert(*id, k);
            return Ok(());
        }
        if indexed {
            let mut from_index = self.cache.pack_entries(id)?;
            let mut from_pack = ends.record.entries.clone();
            from_index.sort_by_key(|e| e.position);
            from_pack.sort_by_key(|e| e.position);
            if from_index != from_pack {
                let k = self.problems.add(
                    ProblemKind::PackIndexMismatch,
                    &object,
                    format!(
                        "pack {name}: the index and the pack's own trailer disagree about its blobs \
                         (the index was altered?); `vault repair index --read-all-packs` rebuilds it from the packs"
                    ),
                );
                self.bad_packs.insert(*id, k);
            }
        }
        Ok(())
    }

    /// Step 3, data: every blob of the selected packs decrypts and matches its id.
    pub(super) fn read_data(&mut self, subset: &DataSubset) -> Result<()> {
        let candidates: Vec<Id> = self.stored.keys().filter_map(|n| Id::from_hex(n)).collect();
        let selected = subset.select(candidates);
        let progress = crate::progress::get();
        if !selected.is_empty() {
            progress.begin_items(
                "check --read-data",
                "packs",
                selected.len() as u64,
                selected
                    .iter()
                    .map(|id| self.stored.get(&id.to_hex()).copied().unwrap_or(0))
                    .sum(),
            );
        }
        for id in selected {
            crate::progress::check_cancelled("check")?;
            let name = id.to_hex();
            progress.set_current(&name);
            progress.add_files(1);
            progress.add_bytes(self.stored.get(&name).copied().unwrap_or(0));
            self.report.packs_read += 1;
            self.read_pack(&id, &name)?;
        }
        Ok(())
    }

    /// Downloads one pack, compares its hash with its name and authenticates every blob.
    fn read_pack(&mut self, id: &Id, name: &str) -> Result<()> {
        let repo = &self.reader.repo;
        let keys = &self.reader.keys;
        let object = format!("packs/{name}");
        let bytes = match repo.backend.get(Kind::Packs, name) {
            Ok(b) => b,
            Err(e) if e.is_damage() => {
                let k = self
                    .problems
                    .add(ProblemKind::PackMissing, &object, e.to_string());
                self.bad_packs.insert(*id, k);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // A damaged pack is reported, but its blobs are judged one by one below: each is
        // authenticated on its own, so the report can name exactly the files hit.
        if Id::hash_public(&bytes) != *id {
            self.problems.add(
                ProblemKind::PackCorrupt,
                &object,
                format!(
                    "corrupt pack {name}: its content does not match its name (altered or damaged)"
                ),
            );
        }
        let entries = match self.cache.pack_entries(id)? {
            e if !e.is_empty() => e,
            _ => match pack::read_trailer(keys, id, &bytes) {
                Ok(r) => r.entries,
                Err(e) => {
                    self.problems
                        .add(ProblemKind::PackTrailer, &object, e.to_string());
                    return Ok(());
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
            self.reader.identity(),
            &repo.config.recipients,
            header,
            id,
        ) {
            Ok(k) => k,
            Err(e) => {
                let k = self
                    .problems
                    .add(ProblemKind::PackHeader, &object, e.to_string());
                self.bad_packs.insert(*id, k);
                return Ok(());
            }
        };
        let mut corrupt = 0usize;
        let mut first_error = String::new();
        let blob_key = (ProblemKind::BlobCorrupt, object.clone());
        for e in &entries {
            self.report.blobs_read += 1;
            let sealed = bytes.get(e.offset as usize..(e.offset as usize + e.length as usize));
            let ok = match sealed {
                Some(s) => pack::open_blob(keys, &data_key, id, e, s)
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
                self.bad_blobs.insert(e.id, blob_key.clone());
            }
        }
        if corrupt > 0 {
            self.problems.add(
                ProblemKind::BlobCorrupt,
                &object,
                format!("{corrupt} blobs in pack {name} are corrupt ({first_error})"),
            );
        }
        Ok(())
    }
}
