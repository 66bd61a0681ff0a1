//! `vault upgrade`: brings a store to the current format, in place, by the admin (holder
//! of the reader identity).
//!
//! From version 2 (signed) to 3 the trees gain chunk lists (see [`crate::tree`]); nothing
//! stored changes: the config is signed again as version 3, after which new snapshots may
//! write chunk lists, and vault versions that only know version 2 refuse the store rather
//! than misread a long file as empty.
//!
//! From version 1 (plaintext, unsigned config; records sealed with a label only), under
//! an exclusive lease:
//! 1. the host registry `keys/hosts` is created (empty, admin-signed) if missing;
//! 2. every snapshot record is re-written under its own name as a bound record signed by
//!    the admin (the admin attests the snapshots taken before signing existed);
//! 3. every index file is re-written under a new name, bound to it, and the old one
//!    deleted (one under retention stays: an unbound index file is still read, it only
//!    points at packs whose blobs are checked against their ids anyway);
//! 4. last, the config is signed and becomes the current version.
//!
//! Until step 4 the store is a version-1 store that still opens everywhere (signed
//! records are read in both versions), so an interrupted upgrade is simply run again:
//! records already re-bound are skipped.

use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::Result;
use crate::id::Id;
use crate::lock::{Lease, LeaseKind};
use crate::repo::{Repo, FORMAT_VERSION};
use crate::sign::SigningSecret;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct UpgradeReport {
    /// False when the store was already of the current format.
    pub upgraded: bool,
    /// The format the store had before.
    pub from_version: u32,
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
    let mut report = UpgradeReport {
        from_version: repo.config.version,
        ..UpgradeReport::default()
    };
    if repo.config.version >= FORMAT_VERSION {
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
    if !repo.is_legacy() {
        // Signed already: the config must verify against the admin before it is signed
        // again (a forged config is never re-signed).
        repo.authenticate(&admin.public())?;
        repo.set_version(&admin, FORMAT_VERSION)?;
        report.upgraded = true;
        return Ok(report);
    }
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
    // Index files are written bound once the config says it is signed; bind them by
    // hand here through a repo that already sees the new version.
    let mut bound = repo.clone();
    bound.config.version = FORMAT_VERSION;
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
        assert_eq!(reopened.config.version, FORMAT_VERSION);
        assert!(reopened.has_chunk_lists());
        // Running it again changes nothing.
        let again = run(&mut reopened, &keys, &identity, Duration::ZERO).unwrap();
        assert!(!again.upgraded);
    }

    #[test]
    fn a_signed_version_2_store_becomes_version_3_by_its_admin_only() {
        let created = crate::repo::create_default(Arc::new(MemoryBackend::new("v2")));
        let mut repo = created.repo;
        let identity = created.identity;
        let keys = WriterKeys::from_id_key(created.id_key);
        let admin = SigningSecret::admin_from_identity(&identity);
        repo.set_version(&admin, crate::repo::SIGNED_VERSION)
            .unwrap();
        let mut v2 = Repo::open(repo.backend.clone()).unwrap();
        assert!(!v2.is_legacy() && !v2.has_chunk_lists());

        // Someone else's identity does not verify this store's config: nothing changes.
        let stranger = age::x25519::Identity::generate();
        assert!(run(&mut v2, &keys, &stranger, Duration::ZERO).is_err());
        assert_eq!(
            Repo::open(repo.backend.clone()).unwrap().config.version,
            crate::repo::SIGNED_VERSION
        );

        let report = run(&mut v2, &keys, &identity, Duration::ZERO).unwrap();
        assert!(report.upgraded);
        assert_eq!(report.from_version, crate::repo::SIGNED_VERSION);
        let mut v3 = Repo::open(repo.backend.clone()).unwrap();
        assert!(v3.has_chunk_lists());
        v3.authenticate(&admin.public()).unwrap();
    }
}
