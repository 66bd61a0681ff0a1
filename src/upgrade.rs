//! `vault upgrade`: turns a store of the first format (version 1: plaintext, unsigned
//! config; records sealed with a label only) into a signed one (version 2), in place.
//!
//! Under an exclusive lease, by the admin (holder of the reader identity):
//! 1. the host registry `keys/hosts` is created (empty, admin-signed) if missing;
//! 2. every snapshot record is re-written under its own name as a bound record signed by
//!    the admin (the admin attests the snapshots taken before signing existed);
//! 3. every index file is re-written under a new name, bound to it, and the old one
//!    deleted (one under retention stays: an unbound index file is still read, it only
//!    points at packs whose blobs are checked against their ids anyway);
//! 4. last, the config is signed and becomes version 2.
//!
//! Until step 4 the store is a version-1 store that still opens everywhere (version-2
//! records are read in both versions), so an interrupted upgrade is simply run again:
//! records already re-bound are skipped.

use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::Result;
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::repo::Repo;
use crate::sign::SigningSecret;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct UpgradeReport {
    /// False when the store was already signed.
    pub upgraded: bool,
    pub snapshots_rebound: usize,
    pub index_files_rebound: usize,
    /// Old index files the store kept under retention.
    pub kept_locked: Vec<String>,
}

pub fn run(
    repo: &mut Repo,
    keys: &WriterKeys,
    identity: &age::x25519::Identity,
    lock_wait: Duration,
) -> Result<UpgradeReport> {
    let mut report = UpgradeReport::default();
    if !repo.is_legacy() {
        return Ok(report);
    }
    let admin = SigningSecret::admin_from_identity(identity);
    let _lease = Lease::acquire_waiting(
        &repo.backend,
        keys,
        LeaseKind::Exclusive,
        "upgrade",
        lock_wait,
    )?;
    if !repo
        .backend
        .exists(Kind::Keys, crate::hosts::HOSTS_OBJECT)?
    {
        crate::hosts::Registry::new(&repo.config.store_id).save(repo.backend.as_ref(), &admin)?;
    }
    for info in repo.backend.list(Kind::Snapshots)? {
        let Some(id) = Id::from_hex(&info.name) else {
            continue;
        };
        if repo.rebind_snapshot(keys, &id, &admin)? {
            report.snapshots_rebound += 1;
        }
    }
    // Index files are written bound once the config says version 2; bind them by hand
    // here through a repo that already sees the new version.
    let mut bound = repo.clone();
    bound.config.version = crate::repo::FORMAT_VERSION;
    for info in repo.backend.list(Kind::Index)? {
        let packs = repo.load_index(keys, &info.name)?;
        if bound.index_is_bound(keys, &info.name)? {
            continue;
        }
        bound.save_index(keys, &packs)?;
        report.index_files_rebound += 1;
        match repo.backend.delete(Kind::Index, &info.name) {
            Ok(()) => {}
            Err(e) if e.is_retention_locked() => {
                report.kept_locked.push(format!("index/{}", info.name))
            }
            Err(e) => return Err(e),
        }
    }
    repo.sign_config(&admin)?;
    report.upgraded = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::repo::{Signer, Snapshot, Summary};
    use std::sync::Arc;

    /// A store exactly as the first release wrote it: version-1 config without admin key
    /// or signature, no host registry, label-only seals.
    pub(crate) fn legacy_store() -> (Repo, WriterKeys, age::x25519::Identity) {
        let created = crate::repo::create_default(Arc::new(MemoryBackend::new("legacy")));
        let mut repo = created.repo;
        repo.config.version = crate::repo::LEGACY_VERSION;
        repo.config.admin_key = None;
        repo.config.signature = None;
        repo.backend
            .put(
                Kind::Config,
                "config",
                &serde_json::to_vec_pretty(&repo.config).unwrap(),
            )
            .unwrap();
        repo.backend
            .delete(Kind::Keys, crate::hosts::HOSTS_OBJECT)
            .unwrap();
        let repo = Repo::open(repo.backend.clone()).unwrap();
        assert!(repo.is_legacy());
        (
            repo,
            WriterKeys::from_id_key(created.id_key),
            created.identity,
        )
    }

    fn snap(host: &str) -> Snapshot {
        Snapshot {
            time: "2026-11-30T10:00:00+00:00".into(),
            hostname: host.into(),
            username: "root".into(),
            paths: vec![],
            tags: vec![],
            tree: Id::random(),
            summary: Summary::default(),
            program: "vault test".into(),
            databases: Vec::new(),
        }
    }

    #[test]
    fn legacy_store_reads_then_upgrades_to_admin_attested_records() {
        let (mut repo, keys, identity) = legacy_store();
        let id = repo.save_snapshot(&keys, &snap("platform-1")).unwrap();
        repo.save_index(&keys, &[]).unwrap();
        let (_, v) = repo.load_snapshot_checked(&keys, &id).unwrap();
        assert_eq!(v.signer, Signer::Legacy);
        assert!(repo.recipients().is_ok(), "unsigned stores keep working");

        let report = run(&mut repo, &keys, &identity, Duration::ZERO).unwrap();
        assert!(report.upgraded);
        assert_eq!(report.snapshots_rebound, 1);
        assert_eq!(report.index_files_rebound, 1);

        let mut reopened = Repo::open(repo.backend.clone()).unwrap();
        assert!(!reopened.is_legacy());
        let admin = SigningSecret::admin_from_identity(&identity);
        reopened.authenticate(&admin.public()).unwrap();
        let (s, v) = reopened.load_snapshot_checked(&keys, &id).unwrap();
        assert_eq!(s.hostname, "platform-1");
        assert_eq!(v.signer, Signer::Admin);
        for info in reopened.backend.list(Kind::Index).unwrap() {
            assert!(reopened.index_is_bound(&keys, &info.name).unwrap());
        }
        // Running it again changes nothing.
        let again = run(&mut reopened, &keys, &identity, Duration::ZERO).unwrap();
        assert!(!again.upgraded);
    }
}
