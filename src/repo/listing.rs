//! Listing snapshot records and resolving `latest`, a full id or an id prefix. `latest`
//! only picks records that verify and whose time is not in the future.

use super::{Repo, Snapshot, Verification};
use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::id::Id;

/// One entry of [`Repo::list_snapshots`]: a record, or why it could not be read.
pub struct Listed {
    pub id: Id,
    pub record: std::result::Result<(Snapshot, Verification), String>,
}

impl Repo {
    /// Every snapshot record with its verdict, oldest first; a record that cannot be
    /// opened is listed with the reason instead of failing the whole listing.
    pub fn list_snapshots(&self, keys: &WriterKeys) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for info in self.backend.list(Kind::Snapshots)? {
            let Some(id) = Id::from_hex(&info.name) else {
                continue;
            };
            let record = match self.load_snapshot_checked(keys, &id) {
                Ok(r) => Ok(r),
                Err(e) if e.is_damage() => Err(e.to_string()),
                Err(e) => return Err(e),
            };
            out.push(Listed { id, record });
        }
        let key = |l: &Listed| match &l.record {
            Ok((s, _)) => s.time().map(|t| t.timestamp_nanos_opt().unwrap_or(0)),
            Err(_) => None,
        };
        out.sort_by(|a, b| key(a).cmp(&key(b)).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// All snapshots, oldest first. A damaged record is an error naming it: listing must
    /// not quietly hide a snapshot.
    /// Ids of the snapshot records whose name starts with `prefix` (any case).
    pub fn snapshot_ids_starting(&self, prefix: &str) -> Result<Vec<Id>> {
        let prefix = prefix.to_ascii_lowercase();
        Ok(self
            .backend
            .list(Kind::Snapshots)?
            .iter()
            .filter(|o| o.name.starts_with(&prefix))
            .filter_map(|o| Id::from_hex(&o.name))
            .collect())
    }

    pub fn snapshots(&self, keys: &WriterKeys) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        for info in self.backend.list(Kind::Snapshots)? {
            let Some(id) = Id::from_hex(&info.name) else {
                continue;
            };
            out.push((id, self.load_snapshot(keys, &id)?));
        }
        out.sort_by(|a, b| {
            let ta = a.1.time().map(|t| t.timestamp_nanos_opt().unwrap_or(0));
            let tb = b.1.time().map(|t| t.timestamp_nanos_opt().unwrap_or(0));
            ta.cmp(&tb).then(a.0.cmp(&b.0))
        });
        Ok(out)
    }

    /// Resolves `latest`, a full id, or a unique id prefix.
    pub fn find_snapshot(&self, keys: &WriterKeys, spec: &str) -> Result<(Id, Snapshot)> {
        let (id, snap, _) = self.find_snapshot_checked(keys, spec)?;
        Ok((id, snap))
    }

    /// Like [`Repo::find_snapshot`], with the record's verdict. `latest` is the newest
    /// record that verifies and whose time is not in the future.
    pub fn find_snapshot_checked(
        &self,
        keys: &WriterKeys,
        spec: &str,
    ) -> Result<(Id, Snapshot, Verification)> {
        if spec == "latest" {
            let all = self.list_snapshots(keys)?;
            let total = all.len();
            let mut skipped = Vec::new();
            let mut fit = None;
            for l in all {
                match l.record {
                    Ok((s, v)) if v.fit_for_latest() => fit = Some((l.id, s, v)),
                    Ok((_, v)) => {
                        skipped.push(format!("{}: {}", l.id.short(), v.problems().join("; ")))
                    }
                    Err(e) => skipped.push(format!("{}: {e}", l.id.short())),
                }
            }
            return fit.ok_or_else(|| {
                Error::SnapshotNotFound(if total == 0 {
                    "latest (the store has no snapshots yet)".into()
                } else {
                    format!(
                        "latest (none of the {total} snapshot records verifies as written by an authorised \
                         host at a time not in the future; skipped {})",
                        skipped.join(", ")
                    )
                })
            });
        }
        let matches = self.snapshot_ids_starting(spec)?;
        match matches.as_slice() {
            [id] => {
                let (s, v) = self.load_snapshot_checked(keys, id)?;
                Ok((*id, s, v))
            }
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            _ => Err(Error::Usage(format!(
                "snapshot prefix {spec:?} matches {} snapshots; give more digits",
                matches.len()
            ))),
        }
    }
}
