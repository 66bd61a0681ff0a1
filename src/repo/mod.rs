//! A store: its config object, index files and snapshot records.
//!
//! Objects (see [`crate::backend`] for where they live):
//! - `config`: plaintext JSON [`StoreConfig`]: format version, store id, chunker sizes,
//!   pack size, compression level, object lock and the reader recipients (public keys
//!   only). In a signed store (version 2 and later) it also holds the admin's public key and the admin's
//!   Ed25519 signature over all of it, bound to the store id (see [`crate::sign`]):
//!   nothing in an unverified config is obeyed where it matters (recipients for new packs,
//!   [`Repo::recipients`]). Version-1 stores (no signature) still open, snapshot and
//!   restore; `vault upgrade` makes them current. Version 3 differs from 2 in the trees
//!   only: a long file's chunk references may live in chunk-list blobs ([`crate::tree`]),
//!   which only version-3 stores receive (a reader of version 2 would miss them).
//! - `keys/reader`, `keys/idkey`: age files, see [`crate::keys`]; `keys/hosts`: the
//!   admin-signed host registry, see [`crate::hosts`].
//! - `packs/ID`: encrypted blobs, see [`crate::pack`].
//! - `index/NAME`: sealed CBOR list of [`PackRecord`]s; written after the packs it names
//!   are durable. Any number of index files may exist; their union is the index. In a
//!   signed store the seal's associated data is the label plus the binding of
//!   (store id, `index`, NAME), so a renamed or foreign index file does not open.
//! - `snapshots/ID`: a sealed CBOR [`Snapshot`] naming the root tree; written last, so a
//!   snapshot is visible only when everything it needs is durable. In a signed store
//!   the sealed record is a `SignedRecord`: the CBOR snapshot, the store id and name it
//!   was written as, and an Ed25519 signature over the binding of (store id, `snapshots`,
//!   ID) and the snapshot, by the writing host's key (authorised in `keys/hosts`) or, for
//!   records re-bound by `vault upgrade`, by the admin. [`Repo::load_snapshot_checked`]
//!   says whether a record verifies and which host wrote it; `latest` only picks
//!   verified records whose time is not in the future.
//!
//! Two writers never touch the same object: packs are named by their hash, index files
//! and snapshots by fresh random ids. So snapshots running at the same time into one store
//! need no lock and both succeed.

use crate::backend::{BackendRef, Kind};
use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::pack::PackRecord;
use crate::sign::{self, SigningSecret};
use std::sync::Arc;

mod config;
mod create;
mod index;
mod listing;
mod records;
mod snapshot;
#[cfg(test)]
mod tests;
mod verify;

pub use config::{decode_store_config, ChunkerParams, StoreConfig, DEFAULT_COMPRESSION_LEVEL};
#[cfg(test)]
pub(crate) use create::create_default;
pub use create::{create, Created};
pub use listing::Listed;
pub use snapshot::{decode_snapshot, DatabaseCapture, Snapshot, Summary};
pub use verify::{Signer, Verification, FUTURE_SKEW_SECS};

pub const FORMAT_NAME: &str = "vault store";
/// The version this vault writes: 3 (a long file's chunk references in chunk-list blobs
/// of their own, see [`crate::tree`]). Stores of versions 1 and 2 are read and written in
/// their own format until `vault upgrade` makes them version 3.
pub const FORMAT_VERSION: u32 = 3;
/// The first signed version (signed config, host registry, bound records).
pub const SIGNED_VERSION: u32 = 2;
/// The first version whose trees may name chunk lists: a reader that does not know them
/// would take a long file for an empty one, so such trees go only into stores that say so.
pub const CHUNK_LISTS_VERSION: u32 = 3;
/// The unsigned format of the first release, still read (see `vault upgrade`).
pub const LEGACY_VERSION: u32 = 1;

/// What vault has verified about a store it opened, and who this host writes as.
#[derive(Clone, Default)]
pub struct Trust {
    /// The admin public key the config verified against (version-2 stores only).
    pub admin: Option<[u8; 32]>,
    /// The verified host registry.
    pub registry: Option<Arc<crate::hosts::Registry>>,
    /// This host's name and signing key, for the snapshot records it writes.
    pub signer: Option<(String, Arc<SigningSecret>)>,
    /// The admin key, when this process holds the admin's reader identity: records it
    /// writes without a host key (such as repaired snapshots) are attested by the admin.
    pub admin_signer: Option<Arc<SigningSecret>>,
    /// True when the config verified against a key this host trusts (pinned, or derived
    /// from the admin's reader identity); only then are its recipients obeyed.
    pub config_verified: bool,
}

#[derive(Clone)]
pub struct Repo {
    pub backend: BackendRef,
    pub config: StoreConfig,
    pub trust: Trust,
}

impl Repo {
    pub fn open(backend: BackendRef) -> Result<Repo> {
        let bytes = backend.get(Kind::Config, "config")?;
        let config = decode_store_config(&bytes)
            .map_err(|e| Error::corrupt(format!("store config at {}", backend.location()), e))?;
        if config.format != FORMAT_NAME {
            return Err(Error::corrupt(
                format!("store config at {}", backend.location()),
                format!("format {:?} is not {FORMAT_NAME:?}", config.format),
            ));
        }
        if !(LEGACY_VERSION..=FORMAT_VERSION).contains(&config.version) {
            return Err(Error::UnsupportedVersion {
                location: backend.location(),
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        // A copy of a locked store kept in a folder (or any store without object lock)
        // must still open, for restores: the lock only applies where the store has it.
        match backend.set_object_lock(config.object_lock.as_ref()) {
            Ok(()) => {}
            Err(e) if matches!(e.unremedied(), Error::Usage(_)) && config.object_lock.is_some() => {
            }
            Err(e) => return Err(e),
        }
        if config.version >= SIGNED_VERSION
            && (config.signature.is_none()
                || config
                    .admin_key
                    .as_deref()
                    .and_then(sign::parse_public)
                    .is_none())
        {
            return Err(Error::corrupt(
                format!("store config at {}", backend.location()),
                "a signed-format config without a valid admin key and signature: it was altered; restore \
                 it from a copy or an earlier object version",
            ));
        }
        Ok(Repo {
            backend,
            config,
            trust: Trust::default(),
        })
    }

    /// True for stores of the first format (no signatures): see `vault upgrade`.
    pub fn is_legacy(&self) -> bool {
        self.config.version < SIGNED_VERSION
    }

    /// True when this store's trees may keep long files' chunk references in chunk
    /// lists (version 3 and later); older stores keep them inline.
    pub fn has_chunk_lists(&self) -> bool {
        self.config.version >= CHUNK_LISTS_VERSION
    }

    /// The admin key the config claims (not yet verified).
    pub fn claimed_admin(&self) -> Option<[u8; 32]> {
        self.config
            .admin_key
            .as_deref()
            .and_then(sign::parse_public)
    }

    /// Verifies the config against the admin public key (pinned by a writer, or derived
    /// from the reader identity) and loads the verified host registry. A version-1 store
    /// has nothing to verify.
    pub fn authenticate(&mut self, admin: &[u8; 32]) -> Result<()> {
        if self.is_legacy() {
            return Ok(());
        }
        sign::verify_json(
            admin,
            self.config.signature.as_deref(),
            "config",
            &self.config.store_id,
            "config",
            "config",
            &self.config.unsigned(),
            &format!("store config at {}", self.location()),
        )?;
        let registry =
            crate::hosts::Registry::load(self.backend.as_ref(), &self.config.store_id, admin)?;
        self.trust.admin = Some(*admin);
        self.trust.registry = Some(Arc::new(registry));
        self.trust.config_verified = true;
        Ok(())
    }

    /// True when the config verified (or the store is of the unsigned first format).
    pub fn is_authenticated(&self) -> bool {
        self.is_legacy() || self.trust.config_verified
    }

    /// The recipients new pack data keys are wrapped to, from the verified config. A
    /// version-1 store's config is not signed: its recipients are taken as they are.
    pub fn recipients(&self) -> Result<Vec<age::x25519::Recipient>> {
        if !self.is_authenticated() {
            return Err(Error::Key(format!(
                "the recipients of the store at {} could not be authenticated (its config is signed by an admin \
                 key this host cannot check)",
                self.location()
            ))
            .with_remedy(Remedy::ReaderOrHostWriterKey));
        }
        crate::crypto::parse_recipients(&self.config.recipients)
    }

    /// Signs the config with the admin key and stores it. An unsigned (version-1) config
    /// becomes the current version; a signed one keeps its version (`vault upgrade`
    /// raises it, with [`Repo::set_version`]).
    pub fn sign_config(&mut self, admin: &SigningSecret) -> Result<()> {
        if self.config.version < SIGNED_VERSION {
            self.config.version = FORMAT_VERSION;
        }
        self.config.admin_key = Some(sign::public_hex(&admin.public()));
        self.config.signature = None;
        let sig = sign::sign_json(
            admin,
            "config",
            &self.config.store_id,
            "config",
            "config",
            &self.config.unsigned(),
        );
        self.config.signature = Some(sig);
        let bytes = serde_json::to_vec_pretty(&self.config).expect("serialisable");
        self.backend.put(Kind::Config, "config", &bytes)?;
        if self.trust.registry.is_none() {
            self.trust.registry = Some(Arc::new(crate::hosts::Registry::load(
                self.backend.as_ref(),
                &self.config.store_id,
                &admin.public(),
            )?));
        }
        self.trust.admin = Some(admin.public());
        self.trust.config_verified = true;
        Ok(())
    }

    /// Raises a signed store to `version` and signs its config again (the admin only).
    pub fn set_version(&mut self, admin: &SigningSecret, version: u32) -> Result<()> {
        debug_assert!((SIGNED_VERSION..=FORMAT_VERSION).contains(&version));
        self.config.version = version;
        self.sign_config(admin)
    }

    /// Sets the host key this process signs its snapshot records with.
    pub fn set_signer(&mut self, host: &str, key: SigningSecret) {
        self.trust.signer = Some((host.to_string(), Arc::new(key)));
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// A new, empty pack for blobs of up to `max_blob` bytes, closed at the store's pack
    /// size; built in the backend's staging folder when it has one (the local store's
    /// `tmp/`: storing it is then a rename), else in memory.
    pub fn new_pack(
        &self,
        recipients: &[age::x25519::Recipient],
        max_blob: usize,
    ) -> Result<crate::pack::PackWriter> {
        crate::pack::PackWriter::reusing(
            Vec::new(),
            recipients,
            self.config.pack_size as usize,
            max_blob,
            self.backend.staging_dir().as_deref(),
        )
    }

    /// Seals a finished pack and stores it under its hash.
    pub fn save_pack(
        &self,
        keys: &WriterKeys,
        pack: crate::pack::PackWriter,
    ) -> Result<PackRecord> {
        Ok(self.save_pack_reclaiming(keys, pack)?.0)
    }

    /// [`Repo::save_pack`] that also hands back the pack's buffer once the backend let go
    /// of it (`None` if it kept a reference), for [`PackWriter::reusing`].
    ///
    /// [`PackWriter::reusing`]: crate::pack::PackWriter::reusing
    pub fn save_pack_reclaiming(
        &self,
        keys: &WriterKeys,
        pack: crate::pack::PackWriter,
    ) -> Result<(PackRecord, Option<Vec<u8>>)> {
        let (bytes, record) = pack.finish(keys)?;
        let name = record.id.to_hex();
        let buf = match bytes {
            crate::pack::PackBytes::Memory(bytes) => {
                // Handed over, not copied: on S3 the pack is sent from this buffer.
                let bytes = bytes::Bytes::from(bytes);
                self.backend.put_bytes(Kind::Packs, &name, bytes.clone())?;
                bytes.try_into_mut().ok().map(Vec::from)
            }
            crate::pack::PackBytes::Staged(mut file, buf) => {
                self.backend.put_staged(Kind::Packs, &name, &mut file)?;
                Some(buf)
            }
        };
        Ok((record, buf))
    }
}
