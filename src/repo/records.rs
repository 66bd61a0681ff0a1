//! Writing snapshot records: sealed under a fresh random id, written last. In a version-2
//! store the record is a [`SignedRecord`], signed by the writing host (or the admin) over
//! the binding of (store id, `snapshots`, ID) and the snapshot.

use super::{decode_snapshot, Repo, Snapshot};
use crate::backend::Kind;
use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::id::Id;
use crate::sign::{self, SigningSecret};
use serde::{Deserialize, Serialize};

pub(super) const SNAPSHOT_LABEL: &[u8] = b"vault v1 snapshot";
pub(super) const SNAPSHOT_LABEL_V2: &[u8] = b"vault v2 snapshot";

/// The sealed body of a version-2 snapshot record.
#[derive(Serialize, Deserialize)]
pub(super) struct SignedRecord {
    pub(super) store_id: String,
    pub(super) name: String,
    /// CBOR of the [`Snapshot`].
    pub(super) body: serde_bytes::ByteBuf,
    /// `host` or `admin`.
    pub(super) signer: String,
    pub(super) key: serde_bytes::ByteBuf,
    pub(super) sig: serde_bytes::ByteBuf,
}

impl Repo {
    /// Stores a snapshot record under a fresh id: in a version-2 store signed with this
    /// host's key (see [`Repo::set_signer`]) or, lacking one, the admin's.
    pub fn save_snapshot(&self, keys: &WriterKeys, snapshot: &Snapshot) -> Result<Id> {
        let mut plain = Vec::new();
        ciborium::into_writer(snapshot, &mut plain).expect("serialisable");
        let id = Id::random();
        let sealed = if self.is_legacy() {
            keys.seal_meta(SNAPSHOT_LABEL, &plain)
        } else {
            let (role, key) = match (&self.trust.signer, &self.trust.admin_signer) {
                (Some((_, key)), _) => ("host", key),
                (None, Some(key)) => ("admin", key),
                (None, None) => {
                    return Err(Error::Key(format!(
                        "this host has no host signing key for the store at {}: snapshots of a signed store are \
                         signed by their host",
                        self.location()
                    ))
                    .with_remedy(Remedy::HostWriterKey))
                }
            };
            self.seal_signed_record(keys, &id.to_hex(), plain, role, key)
        };
        self.backend.put(Kind::Snapshots, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    fn seal_signed_record(
        &self,
        keys: &WriterKeys,
        name: &str,
        body: Vec<u8>,
        signer: &str,
        key: &SigningSecret,
    ) -> Vec<u8> {
        let sig = key.sign(&sign::message(
            "snapshot",
            &self.config.store_id,
            "snapshots",
            name,
            &body,
        ));
        let record = SignedRecord {
            store_id: self.config.store_id.clone(),
            name: name.to_string(),
            body: serde_bytes::ByteBuf::from(body),
            signer: signer.to_string(),
            key: serde_bytes::ByteBuf::from(key.public().to_vec()),
            sig: serde_bytes::ByteBuf::from(sig.to_vec()),
        };
        let mut plain = Vec::new();
        ciborium::into_writer(&record, &mut plain).expect("serialisable");
        keys.seal_meta(SNAPSHOT_LABEL_V2, &plain)
    }

    /// Re-writes a record of the first format in place as a signed, bound record attested
    /// by the admin (for `vault upgrade`). False when it already was one.
    pub fn rebind_snapshot(
        &self,
        keys: &WriterKeys,
        id: &Id,
        admin: &SigningSecret,
    ) -> Result<bool> {
        let name = id.to_hex();
        let sealed = self.backend.get(Kind::Snapshots, &name)?;
        if keys.open_meta(SNAPSHOT_LABEL_V2, &sealed, "x").is_ok() {
            return Ok(false);
        }
        let what = format!("snapshot {}", id.short());
        let plain = keys.open_meta(SNAPSHOT_LABEL, &sealed, &what)?;
        decode_snapshot(&plain).map_err(|e| Error::corrupt(what, e))?;
        let resealed = self.seal_signed_record(keys, &name, plain.to_vec(), "admin", admin);
        self.backend.put(Kind::Snapshots, &name, &resealed)?;
        Ok(true)
    }

    pub fn load_snapshot(&self, keys: &WriterKeys, id: &Id) -> Result<Snapshot> {
        Ok(self.load_snapshot_checked(keys, id)?.0)
    }
}
