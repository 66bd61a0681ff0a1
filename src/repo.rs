//! A store: its config object, index files and snapshot records.
//!
//! Objects (see [`crate::backend`] for where they live):
//! - `config`: plaintext JSON [`StoreConfig`]: format version, store id, chunker sizes,
//!   pack size, compression level, object lock and the reader recipients (public keys
//!   only). In a version-2 store it also holds the admin's public key and the admin's
//!   Ed25519 signature over all of it, bound to the store id (see [`crate::sign`]):
//!   nothing in an unverified config is obeyed where it matters (recipients for new packs,
//!   [`Repo::recipients`]). Version-1 stores (no signature) still open, snapshot and
//!   restore; `vault upgrade` makes them version 2.
//! - `keys/reader`, `keys/idkey`: age files, see [`crate::keys`]; `keys/hosts`: the
//!   admin-signed host registry, see [`crate::hosts`].
//! - `packs/ID`: encrypted blobs, see [`crate::pack`].
//! - `index/NAME`: sealed CBOR list of [`PackRecord`]s; written after the packs it names
//!   are durable. Any number of index files may exist; their union is the index. In a
//!   version-2 store the seal's associated data is the label plus the binding of
//!   (store id, `index`, NAME), so a renamed or foreign index file does not open.
//! - `snapshots/ID`: a sealed CBOR [`Snapshot`] naming the root tree; written last, so a
//!   snapshot is visible only when everything it needs is durable. In a version-2 store
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
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::PackRecord;
use crate::sign::{self, SigningSecret};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const FORMAT_NAME: &str = "vault store";
/// The version this vault writes: 2 (signed config, host registry, bound records).
pub const FORMAT_VERSION: u32 = 2;
/// The unsigned format of the first release, still read (see `vault upgrade`).
pub const LEGACY_VERSION: u32 = 1;
const INDEX_LABEL: &[u8] = b"vault v1 index";
const SNAPSHOT_LABEL: &[u8] = b"vault v1 snapshot";
const INDEX_LABEL_V2: &[u8] = b"vault v2 index";
const SNAPSHOT_LABEL_V2: &[u8] = b"vault v2 snapshot";
/// A snapshot time further ahead of this host's clock than this is flagged.
pub const FUTURE_SKEW_SECS: i64 = 300;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 128 KiB / 256 KiB / 1 MiB. Measured on the benchmark's Travis-like tree (1 GiB,
    /// then "a day of database activity": scattered 8 KiB page rewrites), the new data
    /// the second snapshot had to store was, by average chunk size: 1 MiB 314 MiB,
    /// 512 KiB 265 MiB, 256 KiB 202 MiB, 128 KiB 163 MiB. 256 KiB keeps most of the gain
    /// while the index and trees stay small (4 chunks per MiB) and chunks stay large
    /// enough for one ranged read each to be efficient on S3.
    fn default() -> Self {
        ChunkerParams {
            min_size: 128 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreConfig {
    pub format: String,
    pub version: u32,
    pub store_id: String,
    pub created: String,
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u32,
    pub compression_level: i32,
    /// age recipients that pack data keys are wrapped to.
    pub recipients: Vec<String>,
    /// S3 Object Lock retention given to every object, if the store was created with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::backend::ObjectLock>,
    /// The admin's Ed25519 public key (hex), version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<String>,
    /// The admin's signature over everything else here, version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl StoreConfig {
    fn unsigned(&self) -> StoreConfig {
        StoreConfig {
            signature: None,
            ..self.clone()
        }
    }
}

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

/// Who signed a snapshot record, as far as this host can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A key the admin authorised for the host the record names.
    Host { name: String, revoked: bool },
    /// The admin (records re-bound by `vault upgrade`).
    Admin,
    /// A version-1 store: records carry no signatures.
    Legacy,
    /// The record does not verify; why.
    Unverified(String),
}

/// The verdict on one snapshot record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub signer: Signer,
    /// Set when the record's time lies in the future beyond [`FUTURE_SKEW_SECS`].
    pub future: Option<String>,
}

impl Verification {
    /// Signed by an authorised host of its name, the admin, or from an unsigned store.
    pub fn is_trusted(&self) -> bool {
        !matches!(self.signer, Signer::Unverified(_))
    }

    /// What `latest` may pick.
    pub fn fit_for_latest(&self) -> bool {
        self.is_trusted() && self.future.is_none()
    }

    /// Problems to flag, empty when there are none.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Signer::Unverified(why) = &self.signer {
            out.push(why.clone());
        }
        if let Some(f) = &self.future {
            out.push(f.clone());
        }
        out
    }

    /// A short word for listings: `verified`, `revoked-host`, `admin`, `unsigned`, `FORGED?`...
    pub fn label(&self) -> &'static str {
        match &self.signer {
            Signer::Host { revoked: false, .. } if self.future.is_none() => "verified",
            Signer::Host { revoked: true, .. } if self.future.is_none() => {
                "verified (host revoked)"
            }
            Signer::Admin if self.future.is_none() => "verified (admin)",
            Signer::Legacy if self.future.is_none() => "unsigned store",
            Signer::Unverified(_) => "UNVERIFIED",
            _ => "FUTURE TIME",
        }
    }
}

/// One entry of [`Repo::list_snapshots`]: a record, or why it could not be read.
pub struct Listed {
    pub id: Id,
    pub record: std::result::Result<(Snapshot, Verification), String>,
}

/// The sealed body of a version-2 snapshot record.
#[derive(Serialize, Deserialize)]
struct SignedRecord {
    store_id: String,
    name: String,
    /// CBOR of the [`Snapshot`].
    body: serde_bytes::ByteBuf,
    /// `host` or `admin`.
    signer: String,
    key: serde_bytes::ByteBuf,
    sig: serde_bytes::ByteBuf,
}

/// One snapshot record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// RFC 3339 with the local offset of the host that took it.
    pub time: String,
    pub hostname: String,
    pub username: String,
    /// The absolute source paths, as raw bytes.
    pub paths: Vec<serde_bytes::ByteBuf>,
    pub tags: Vec<String>,
    /// Root tree: the source paths hang below it under their full path.
    pub tree: Id,
    pub summary: Summary,
    pub program: String,
    /// Database clusters this snapshot saved consistently (online base backups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseCapture>,
}

/// A database cluster saved as an online base backup: restored, it replays its WAL from
/// `start_lsn` to at least `stop_lsn` and is then consistent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCapture {
    /// `postgresql`.
    pub kind: String,
    /// The cluster's data directory (absolute, as saved).
    pub data_dir: String,
    /// `server_version` as the server reported it.
    pub server_version: String,
    pub start_lsn: String,
    pub stop_lsn: String,
    /// Number of WAL segments added under `pg_wal/`.
    pub wal_segments: u32,
}

impl DatabaseCapture {
    /// One line for listings.
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}: consistent online capture, WAL {} to {} ({} segment{})",
            self.kind,
            self.server_version,
            self.data_dir,
            self.start_lsn,
            self.stop_lsn,
            self.wal_segments,
            if self.wal_segments == 1 { "" } else { "s" }
        )
    }
}

impl Snapshot {
    pub fn paths_display(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| crate::tree::display_name(p))
            .collect()
    }

    pub fn time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(&self.time).ok()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Apparent size of all files.
    pub bytes: u64,
    /// Bytes of data read from files (changed or new files).
    pub bytes_read: u64,
    /// Plaintext bytes of file content this snapshot added to the store: the part of
    /// `bytes_read` the store did not hold yet (so never more than `bytes_read`).
    pub new_bytes: u64,
    /// Plaintext bytes of metadata (folder listings) this snapshot added to the store.
    /// Absent from snapshots of earlier releases, whose `new_bytes` included it, and left
    /// out when 0 (so a record without new metadata encodes as before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub new_meta_bytes: u64,
    /// Bytes of packs this snapshot wrote.
    pub stored_bytes: u64,
    pub packs: u64,
    /// Source entries that could not be read.
    pub errors: u64,
    pub duration_ms: u64,
}

/// Parses the store's config object (JSON).
pub fn decode_store_config(bytes: &[u8]) -> std::result::Result<StoreConfig, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a vault store config: {e}"))
}

/// Parses a snapshot record's plaintext (CBOR).
pub fn decode_snapshot(plain: &[u8]) -> std::result::Result<Snapshot, String> {
    ciborium::from_reader(plain).map_err(|e| format!("does not parse: {e}"))
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
        if config.version != FORMAT_VERSION && config.version != LEGACY_VERSION {
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
            Err(Error::Usage(_)) if config.object_lock.is_some() => {}
            Err(e) => return Err(e),
        }
        if config.version >= FORMAT_VERSION
            && (config.signature.is_none()
                || config
                    .admin_key
                    .as_deref()
                    .and_then(sign::parse_public)
                    .is_none())
        {
            return Err(Error::corrupt(
                format!("store config at {}", backend.location()),
                "a version-2 config without a valid admin key and signature: it was altered; restore \
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
        self.config.version < FORMAT_VERSION
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
                 key this host cannot check): give the store's reader identity or passphrase, or use a writer \
                 key file made by `vault host add`",
                self.location()
            )));
        }
        crate::crypto::parse_recipients(&self.config.recipients)
    }

    /// Makes the config version 2, signs it with the admin key and stores it.
    pub fn sign_config(&mut self, admin: &SigningSecret) -> Result<()> {
        self.config.version = FORMAT_VERSION;
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

    /// Sets the host key this process signs its snapshot records with.
    pub fn set_signer(&mut self, host: &str, key: SigningSecret) {
        self.trust.signer = Some((host.to_string(), Arc::new(key)));
    }

    fn index_aad(&self, name: &str) -> Vec<u8> {
        let mut aad = INDEX_LABEL_V2.to_vec();
        aad.extend(sign::binding("index", &self.config.store_id, "index", name));
        aad
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Seals a finished pack and stores it under its hash.
    pub fn save_pack(
        &self,
        keys: &WriterKeys,
        pack: crate::pack::PackWriter,
    ) -> Result<PackRecord> {
        let (bytes, record) = pack.finish(keys);
        self.backend
            .put_bytes(Kind::Packs, &record.id.to_hex(), bytes.into())?;
        Ok(record)
    }

    pub fn save_index(&self, keys: &WriterKeys, packs: &[PackRecord]) -> Result<String> {
        let mut plain = Vec::new();
        ciborium::into_writer(packs, &mut plain).expect("serialisable");
        let name = Id::random().to_hex();
        let sealed = if self.is_legacy() {
            keys.seal_meta(INDEX_LABEL, &plain)
        } else {
            keys.seal_meta(&self.index_aad(&name), &plain)
        };
        self.backend.put(Kind::Index, &name, &sealed)?;
        Ok(name)
    }

    /// Opens an index file: bound to its store and name (version 2), or of the first
    /// format (index files carry no authority: a pack's blobs are checked against their
    /// ids when read, so an unbound index file can at worst point at the wrong place).
    pub fn load_index(&self, keys: &WriterKeys, name: &str) -> Result<Vec<PackRecord>> {
        let what = format!("index file {name}");
        let sealed = self.backend.get(Kind::Index, name)?;
        let plain = match keys.open_meta(&self.index_aad(name), &sealed, &what) {
            Ok(p) => p,
            Err(e) => keys.open_meta(INDEX_LABEL, &sealed, &what).map_err(|_| e)?,
        };
        crate::pack::decode_index(&plain).map_err(|d| Error::corrupt(what, d))
    }

    /// True when an index file is sealed bound to this store and its name.
    pub fn index_is_bound(&self, keys: &WriterKeys, name: &str) -> Result<bool> {
        let sealed = self.backend.get(Kind::Index, name)?;
        Ok(keys
            .open_meta(&self.index_aad(name), &sealed, "index")
            .is_ok())
    }

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
                         signed by their host. On the admin host run `vault host add NAME --out FILE` and install \
                         FILE here as the writer key",
                        self.location()
                    )))
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

    /// A snapshot record and whether it verifies. Errors only when the record cannot be
    /// opened at all (damaged, or sealed by another store's keys).
    pub fn load_snapshot_checked(
        &self,
        keys: &WriterKeys,
        id: &Id,
    ) -> Result<(Snapshot, Verification)> {
        let what = format!("snapshot {}", id.short());
        let name = id.to_hex();
        let sealed = self.backend.get(Kind::Snapshots, &name)?;
        let parse = |plain: &[u8]| -> Result<Snapshot> {
            decode_snapshot(plain).map_err(|e| Error::corrupt(&what, e))
        };
        let (snapshot, signer) = match keys.open_meta(SNAPSHOT_LABEL_V2, &sealed, &what) {
            Ok(plain) => {
                let record: SignedRecord = ciborium::from_reader(&plain[..])
                    .map_err(|e| Error::corrupt(&what, format!("does not parse: {e}")))?;
                let snapshot = parse(&record.body)?;
                let signer = self.verify_record(&record, &name, &snapshot);
                (snapshot, signer)
            }
            Err(e) => {
                let plain = keys
                    .open_meta(SNAPSHOT_LABEL, &sealed, &what)
                    .map_err(|_| e)?;
                let snapshot = parse(&plain)?;
                let signer = if self.is_legacy() {
                    Signer::Legacy
                } else {
                    Signer::Unverified(
                        "unsigned record of the first store format, written after the store was upgraded \
                         (by an old vault, or by someone posing as a host)"
                            .into(),
                    )
                };
                (snapshot, signer)
            }
        };
        let future = snapshot.time().and_then(|t| {
            let ahead = t.timestamp() - chrono::Utc::now().timestamp();
            (ahead > FUTURE_SKEW_SECS).then(|| {
                format!(
                    "its time {} lies {} ahead of this host's clock",
                    snapshot.time,
                    ahead_text(ahead)
                )
            })
        });
        Ok((snapshot, Verification { signer, future }))
    }

    fn verify_record(&self, record: &SignedRecord, name: &str, snapshot: &Snapshot) -> Signer {
        let store_id = &self.config.store_id;
        if &record.store_id != store_id {
            return Signer::Unverified(format!(
                "bound to store {}, not this store ({store_id}): copied from another store",
                record.store_id
            ));
        }
        if record.name != name {
            return Signer::Unverified(format!(
                "bound to snapshots/{}, but stored as snapshots/{name}: copied or renamed",
                record.name
            ));
        }
        let (Ok(key), Ok(sig)) = (
            <[u8; 32]>::try_from(&record.key[..]),
            <[u8; 64]>::try_from(&record.sig[..]),
        ) else {
            return Signer::Unverified("malformed signature".into());
        };
        let message = sign::message("snapshot", store_id, "snapshots", name, &record.body);
        if !sign::verify(&key, &message, &sig) {
            return Signer::Unverified(
                "its signature does not verify: the record was altered".into(),
            );
        }
        if self.is_legacy() {
            return Signer::Legacy;
        }
        let (Some(admin), Some(registry)) = (&self.trust.admin, &self.trust.registry) else {
            return Signer::Unverified(
                "the store's admin key is not known to this host, so signatures cannot be checked"
                    .into(),
            );
        };
        match record.signer.as_str() {
            "admin" if &key == admin => Signer::Admin,
            "host" => match registry.by_key(&key) {
                None => Signer::Unverified(format!(
                    "signed by a key the admin never authorised for host {:?}",
                    snapshot.hostname
                )),
                Some(entry) if entry.name != snapshot.hostname => Signer::Unverified(format!(
                    "recorded as host {:?} but signed by the key of host {:?}",
                    snapshot.hostname, entry.name
                )),
                Some(entry) => {
                    let revoked_before = entry
                        .revoked
                        .as_deref()
                        .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
                        .zip(snapshot.time())
                        .is_some_and(|(r, t)| t > r);
                    if revoked_before {
                        Signer::Unverified(format!(
                            "host {:?} was revoked before the time this record claims",
                            entry.name
                        ))
                    } else {
                        Signer::Host {
                            name: entry.name.clone(),
                            revoked: entry.revoked.is_some(),
                        }
                    }
                }
            },
            other => Signer::Unverified(format!(
                "claims signer {other:?} with a key that is not the admin's"
            )),
        }
    }

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
                Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => Err(e.to_string()),
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
        let spec_l = spec.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .backend
            .list(Kind::Snapshots)?
            .iter()
            .filter(|o| o.name.starts_with(&spec_l))
            .filter_map(|o| Id::from_hex(&o.name))
            .collect();
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

fn ahead_text(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86400 => format!("{} days", s / 86400),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s / 60),
    }
}

/// What `create` made: the store, and the keys the caller must hand out.
pub struct Created {
    pub repo: Repo,
    pub identity: age::x25519::Identity,
    pub id_key: crate::crypto::SecretKey,
}

/// Creates a new store: folders, `keys/*`, and last the `config` object, whose presence
/// is what makes a store a store (so an interrupted create leaves no half store behind
/// that anything would open).
pub fn create(
    backend: BackendRef,
    chunker: ChunkerParams,
    extra_recipients: &[String],
    passphrase: Option<&secrecy::SecretString>,
    object_lock: Option<crate::backend::ObjectLock>,
) -> Result<Created> {
    if chunker.min_size < 64
        || chunker.min_size > chunker.avg_size
        || chunker.avg_size > chunker.max_size
    {
        return Err(Error::Usage(format!(
            "chunker sizes must satisfy 64 <= min <= avg <= max (got {}/{}/{})",
            chunker.min_size, chunker.avg_size, chunker.max_size
        )));
    }
    backend.set_object_lock(object_lock.as_ref())?;
    backend.create()?;
    let identity = age::x25519::Identity::generate();
    let mut recipient_strings = vec![identity.to_public().to_string()];
    recipient_strings.extend(extra_recipients.iter().map(|r| r.trim().to_string()));
    let recipients = crate::crypto::parse_recipients(&recipient_strings)?;
    let id_key = crate::crypto::SecretKey::random();
    if let Some(pass) = passphrase {
        crate::keys::put_reader_object(backend.as_ref(), &identity, pass)?;
    }
    crate::keys::put_idkey_object(backend.as_ref(), &recipients, &id_key)?;
    let mut store_id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut store_id);
    let config = StoreConfig {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        store_id: hex::encode(store_id),
        created: chrono::Local::now().to_rfc3339(),
        chunker,
        pack_size: 16 << 20,
        // Measured on the benchmark tree: level 1 stores 3% more than level 3 at 20% less
        // CPU; level 2 sits between (2% more than 3, 10% less CPU) and keeps the store no
        // larger than restic's while snapshots stay twice as fast.
        compression_level: 2,
        recipients: recipient_strings,
        object_lock,
        admin_key: None,
        signature: None,
    };
    let admin = SigningSecret::admin_from_identity(&identity);
    crate::hosts::Registry::new(&config.store_id).save(backend.as_ref(), &admin)?;
    let mut repo = Repo {
        backend,
        config,
        trust: Trust::default(),
    };
    repo.sign_config(&admin)?;
    Ok(Created {
        repo,
        identity,
        id_key,
    })
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    fn store() -> (Repo, WriterKeys, SigningSecret) {
        let backend: BackendRef = Arc::new(MemoryBackend::new("repo"));
        let created = create(backend, ChunkerParams::default(), &[], None, None).unwrap();
        let admin = SigningSecret::admin_from_identity(&created.identity);
        let mut repo = Repo::open(created.repo.backend.clone()).unwrap();
        repo.authenticate(&admin.public()).unwrap();
        (repo, WriterKeys::from_id_key(created.id_key), admin)
    }

    fn enrol(repo: &mut Repo, admin: &SigningSecret, name: &str) -> SigningSecret {
        let mut reg = crate::hosts::Registry::load(
            repo.backend.as_ref(),
            &repo.config.store_id,
            &admin.public(),
        )
        .unwrap();
        let key = SigningSecret::generate();
        reg.add(name, &key.public()).unwrap();
        reg.save(repo.backend.as_ref(), admin).unwrap();
        repo.trust.registry = Some(Arc::new(reg));
        key
    }

    fn snap(host: &str, time: &str) -> Snapshot {
        Snapshot {
            time: time.into(),
            hostname: host.into(),
            username: "root".into(),
            paths: vec![],
            tags: vec![],
            tree: Id::random(),
            summary: Summary::default(),
            program: "test".into(),
            databases: Vec::new(),
        }
    }

    #[test]
    fn host_signatures_decide_latest() {
        let (mut repo, keys, admin) = store();
        let platform = enrol(&mut repo, &admin, "platform-1");
        let worker = enrol(&mut repo, &admin, "worker-1");
        repo.set_signer("platform-1", platform);
        let real = repo
            .save_snapshot(&keys, &snap("platform-1", "2026-11-01T00:00:00+00:00"))
            .unwrap();
        repo.set_signer("worker-1", worker);
        let forged = repo
            .save_snapshot(&keys, &snap("platform-1", "2026-11-02T00:00:00+00:00"))
            .unwrap();
        let future = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
        let ahead = repo
            .save_snapshot(&keys, &snap("worker-1", &future))
            .unwrap();
        let (_, v) = repo.load_snapshot_checked(&keys, &forged).unwrap();
        assert!(
            matches!(&v.signer, Signer::Unverified(w) if w.contains("worker-1")),
            "{v:?}"
        );
        let (_, v) = repo.load_snapshot_checked(&keys, &ahead).unwrap();
        assert!(v.is_trusted() && !v.fit_for_latest(), "{v:?}");
        assert!(v.future.as_deref().unwrap().contains("ahead"));
        assert_eq!(repo.find_snapshot(&keys, "latest").unwrap().0, real);
        // Without a signing key a signed store takes no snapshot.
        repo.trust.signer = None;
        assert!(repo
            .save_snapshot(&keys, &snap("x", "2026-11-03T00:00:00+00:00"))
            .is_err());
    }

    #[test]
    fn tampered_config_is_refused_naming_it() {
        let (repo, _, admin) = store();
        let mut c = repo.config.clone();
        c.recipients = vec![age::x25519::Identity::generate().to_public().to_string()];
        repo.backend
            .put(Kind::Config, "config", &serde_json::to_vec(&c).unwrap())
            .unwrap();
        let mut reopened = Repo::open(repo.backend.clone()).unwrap();
        assert!(
            reopened.recipients().is_err(),
            "unverified recipients are not used"
        );
        let err = reopened.authenticate(&admin.public()).unwrap_err();
        assert!(err.to_string().contains("store config"), "{err}");
        assert!(reopened.recipients().is_err());
    }

    #[test]
    fn config_signature_vector_is_fixed() {
        // Exact bytes: a change to the signed form (field order, JSON encoding, binding)
        // would make every store's config fail to verify.
        let admin = SigningSecret::from_seed(&[7u8; 32]);
        let config = StoreConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            store_id: "00112233445566778899aabbccddeeff".into(),
            created: "2026-12-01T00:00:00+00:00".into(),
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            compression_level: 2,
            recipients: vec![
                "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
            ],
            object_lock: None,
            admin_key: Some(sign::public_hex(&admin.public())),
            signature: None,
        };
        let body = serde_json::to_vec(&config.unsigned()).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(
                "{{\"format\":\"vault store\",\"version\":2,\"store_id\":\"00112233445566778899aabbccddeeff\",\
                 \"created\":\"2026-12-01T00:00:00+00:00\",\"chunker\":{{\"min_size\":131072,\"avg_size\":262144,\
                 \"max_size\":1048576}},\"pack_size\":16777216,\"compression_level\":2,\"recipients\":\
                 [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"],\"admin_key\":\"{}\"}}",
                sign::public_hex(&admin.public())
            )
        );
        let sig = sign::sign_json(
            &admin,
            "config",
            &config.store_id,
            "config",
            "config",
            &config.unsigned(),
        );
        assert_eq!(sig, CONFIG_SIG_VECTOR);
    }

    const CONFIG_SIG_VECTOR: &str = "f0190ce39f1682cb41da3d4fd7a36f7fdc42ca0cca4ceaaa64f2301f1db72f66752e80b2a51a058b12d26ca305ffbea01e32d59a73861d52399538e1850f8d05";
}
