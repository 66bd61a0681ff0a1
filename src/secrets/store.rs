//! Escrow sets and sealed versions as objects of kind [`Kind::Secrets`]; see the layout in
//! the [module docs](super).

use super::source::{check_secret_name, Reading, Source};
use super::{format_time, SecretsConfig, SecretsError};
use crate::backend::{Backend, Kind};
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Version of the objects this module writes (the `format` field).
pub const FORMAT: u32 = 1;

/// scrypt work factor (`log2 N`; 18 is 256 MiB) wrapping the escrow passphrase identity.
/// Fixed rather than calibrated to the sealing machine, so a slower restore machine still
/// accepts it; unwrapping accepts up to two more.
pub const ESCROW_SCRYPT_LOG_N: u8 = 18;

const ESCROW_PREFIX: &str = "escrow-";
const PASSPHRASE_SUFFIX: &str = "-passphrase";
const AGE_SUFFIX: &str = "-age";
const META_SUFFIX: &str = "-meta";

type Result<T, E = SecretsError> = std::result::Result<T, E>;

/// One set of escrow recipients. Sets are numbered from 1; the highest is in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowSet {
    pub format: u32,
    pub serial: u32,
    /// When the set was made, in seconds since the Unix epoch.
    pub created: u64,
    /// age X25519 recipients (`age1...`) whose identities are kept offline.
    pub recipients: Vec<String>,
    /// Recipient of the passphrase-wrapped escrow identity, when a passphrase was set.
    pub passphrase_recipient: Option<String>,
}

impl EscrowSet {
    /// `age1abc..., age1def..., passphrase`.
    pub fn describe(&self) -> String {
        describe_recipients(&self.recipients, self.passphrase_recipient.is_some())
    }

    fn all_recipients(&self) -> Result<Vec<age::x25519::Recipient>> {
        self.recipients
            .iter()
            .chain(self.passphrase_recipient.iter())
            .map(|r| parse_recipient(r))
            .collect()
    }
}

fn describe_recipients(recipients: &[String], passphrase: bool) -> String {
    let mut parts: Vec<String> = recipients.to_vec();
    if passphrase {
        parts.push("passphrase".into());
    }
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join(", ")
    }
}

fn parse_recipient(r: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(r.trim())
        .map_err(|e| SecretsError::BadRecipient(r.to_string(), e.to_string()))
}

fn escrow_object(serial: u32) -> String {
    format!("{ESCROW_PREFIX}{serial:08}")
}

fn escrow_passphrase_object(serial: u32) -> String {
    format!("{ESCROW_PREFIX}{serial:08}{PASSPHRASE_SUFFIX}")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses an escrow set object (JSON).
pub fn decode_escrow_set(data: &[u8]) -> std::result::Result<EscrowSet, String> {
    serde_json::from_slice(data).map_err(|e| format!("not an escrow set: {e}"))
}

/// Parses a sealed secret's metadata object (JSON); the secret's name when it is one.
pub fn decode_meta(data: &[u8]) -> std::result::Result<String, String> {
    serde_json::from_slice::<Meta>(data)
        .map(|m| m.name)
        .map_err(|e| format!("not sealed-secret metadata: {e}"))
}

/// Every escrow set in the store, oldest first.
pub fn escrow_sets(backend: &dyn Backend) -> Result<Vec<EscrowSet>> {
    let mut sets = Vec::new();
    for obj in backend.list(Kind::Secrets)? {
        let Some(rest) = obj.name.strip_prefix(ESCROW_PREFIX) else {
            continue;
        };
        if rest.len() != 8 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let data = backend.get(Kind::Secrets, &obj.name)?;
        let set = decode_escrow_set(&data).map_err(|detail| SecretsError::Corrupt {
            object: format!("secrets/{}", obj.name),
            detail,
        })?;
        if set.format > FORMAT {
            return Err(SecretsError::Corrupt {
                object: format!("secrets/{}", obj.name),
                detail: format!(
                    "format {} is newer than this vault reads ({FORMAT}); upgrade vault",
                    set.format
                ),
            });
        }
        sets.push(set);
    }
    sets.sort_by_key(|s| s.serial);
    Ok(sets)
}

/// The escrow set in force, if any.
pub fn current_escrow(backend: &dyn Backend) -> Result<Option<EscrowSet>> {
    Ok(escrow_sets(backend)?.pop())
}

/// Sets the first escrow recipients of a new store (`vault init`). Fails if the store
/// already has some: change them with [`set_escrow`].
///
/// `recipients` are age X25519 public keys (`age1...`); `passphrase`, when given, is turned
/// into a fresh escrow identity wrapped by the passphrase (see the module docs). A
/// recipient that the store's `config` lists as a reader is refused (call this after the
/// store config is written), since leaking the reader identity must not leak the secrets.
pub fn init_escrow(
    backend: &dyn Backend,
    recipients: &[String],
    passphrase: Option<SecretString>,
) -> Result<EscrowSet> {
    if current_escrow(backend)?.is_some() {
        return Err(SecretsError::EscrowExists(backend.location()));
    }
    set_escrow_with(backend, recipients, passphrase, None, SystemTime::now())
}

/// Replaces the escrow recipients: secrets sealed from now on use the new set; versions
/// sealed before stay readable only by the set they were sealed to.
pub fn set_escrow(
    backend: &dyn Backend,
    recipients: &[String],
    passphrase: Option<SecretString>,
) -> Result<EscrowSet> {
    set_escrow_with(backend, recipients, passphrase, None, SystemTime::now())
}

/// [`set_escrow`] with an explicit scrypt work factor (`log2 N`) for the passphrase
/// ([`ESCROW_SCRYPT_LOG_N`] when `None`) and creation time.
pub fn set_escrow_with(
    backend: &dyn Backend,
    recipients: &[String],
    passphrase: Option<SecretString>,
    scrypt_log_n: Option<u8>,
    now: SystemTime,
) -> Result<EscrowSet> {
    let mut clean: Vec<String> = Vec::new();
    for r in recipients {
        let parsed = parse_recipient(r)?;
        let text = parsed.to_string();
        if !clean.contains(&text) {
            clean.push(text);
        }
    }
    if let Some(p) = &passphrase {
        if p.expose_secret().is_empty() {
            return Err(SecretsError::EmptyEscrow);
        }
    }
    if clean.is_empty() && passphrase.is_none() {
        return Err(SecretsError::EmptyEscrow);
    }
    let readers = store_reader_recipients(backend)?;
    if let Some(r) = clean.iter().find(|r| readers.contains(r)) {
        return Err(SecretsError::NotSeparate(r.clone()));
    }
    let serial = current_escrow(backend)?.map_or(1, |s| s.serial + 1);
    let mut passphrase_recipient = None;
    if let Some(passphrase) = passphrase {
        let identity = age::x25519::Identity::generate();
        let mut scrypt = age::scrypt::Recipient::new(passphrase);
        scrypt.set_work_factor(scrypt_log_n.unwrap_or(ESCROW_SCRYPT_LOG_N));
        let mut text = Zeroizing::new(identity.to_string().expose_secret().to_string());
        text.push('\n');
        let wrapped = encrypt(&[&scrypt as &dyn age::Recipient], text.as_bytes())?;
        backend.put(Kind::Secrets, &escrow_passphrase_object(serial), &wrapped)?;
        passphrase_recipient = Some(identity.to_public().to_string());
    }
    let set = EscrowSet {
        format: FORMAT,
        serial,
        created: unix(now),
        recipients: clean,
        passphrase_recipient,
    };
    let json = serde_json::to_vec_pretty(&set).expect("serializable");
    backend.put(Kind::Secrets, &escrow_object(serial), &json)?;
    Ok(set)
}

/// The store's own reader recipients, from its plaintext `config` object (none when the
/// store has no config yet or it lists none).
fn store_reader_recipients(backend: &dyn Backend) -> Result<Vec<String>> {
    if !backend.exists(Kind::Config, "config")? {
        return Ok(Vec::new());
    }
    let data = backend.get(Kind::Config, "config")?;
    let value: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
    Ok(value
        .get("recipients")
        .and_then(|r| r.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|r| r.as_str())
                .filter_map(|r| age::x25519::Recipient::from_str(r.trim()).ok())
                .map(|r| r.to_string())
                .collect()
        })
        .unwrap_or_default())
}

fn encrypt(recipients: &[&dyn age::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let fail = |e: String| SecretsError::Corrupt {
        object: "new age file".into(),
        detail: format!("encryption failed: {e}"),
    };
    let encryptor = age::Encryptor::with_recipients(recipients.iter().copied())
        .map_err(|e| fail(e.to_string()))?;
    let armored = ArmoredWriter::wrap_output(Vec::new(), Format::AsciiArmor)
        .map_err(|e| fail(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armored)
        .map_err(|e| fail(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| fail(e.to_string()))?;
    let armored = writer.finish().map_err(|e| fail(e.to_string()))?;
    armored.finish().map_err(|e| fail(e.to_string()))
}

/// Decrypts an age file (binary or ASCII-armored) with the first identity that opens it.
pub fn open_age(
    data: &[u8],
    identities: &[&dyn age::Identity],
) -> Result<Zeroizing<Vec<u8>>, age::DecryptError> {
    let decryptor = age::Decryptor::new(ArmoredReader::new(data))?;
    let mut reader = decryptor.decrypt(identities.iter().copied())?;
    let mut out = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut out)?;
    Ok(out)
}

/// The keyed fingerprint of a secret's value: BLAKE3 keyed with `key` over
/// `"vault secret v1\0"`, the name's length (u64 little-endian), the name and the value.
pub fn fingerprint(key: &[u8; 32], name: &str, value: &SecretString) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"vault secret v1\0");
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(value.expose_secret().as_bytes());
    *h.finalize().as_bytes()
}

/// The first 64 bits of a fingerprint as `abcd-ef01-2345-6789`.
pub fn short_fingerprint(fp: &[u8; 32]) -> String {
    let h = hex::encode(&fp[..8]);
    format!("{}-{}-{}-{}", &h[0..4], &h[4..8], &h[8..12], &h[12..16])
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    name: String,
    sealed_at: u64,
    host: String,
    source: String,
    fingerprint: String,
    escrow: u32,
    recipients: Vec<String>,
    passphrase: bool,
    age_blake3: String,
}

/// One sealed version of a secret, as its metadata object describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedVersion {
    pub name: String,
    /// `T-R`: sealing time in Unix nanoseconds (20 digits) and 32 random bits (8 hex).
    pub id: String,
    /// 1 for the oldest version of this secret, counting up.
    pub number: usize,
    pub sealed_at: u64,
    pub host: String,
    /// Where the value was read (`FILE, entry ENTRY` or `command `...``).
    pub source: String,
    pub fingerprint: [u8; 32],
    /// Serial of the escrow set it was sealed to.
    pub escrow: u32,
    pub recipients: Vec<String>,
    pub passphrase: bool,
    pub age_blake3: [u8; 32],
    /// Whether the age object is in the store (false means damage).
    pub age_present: bool,
}

impl SealedVersion {
    pub fn age_object(&self) -> String {
        format!("{}--{}{AGE_SUFFIX}", self.name, self.id)
    }

    pub fn meta_object(&self) -> String {
        format!("{}--{}{META_SUFFIX}", self.name, self.id)
    }

    pub fn short_fingerprint(&self) -> String {
        short_fingerprint(&self.fingerprint)
    }

    pub fn sealed_time(&self) -> String {
        format_time(self.sealed_at)
    }

    pub fn describe_recipients(&self) -> String {
        describe_recipients(&self.recipients, self.passphrase)
    }
}

/// Splits `NAME--T-R-{age,meta}`.
fn parse_version_object(object: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = object.rsplit_once("--")?;
    let (id, part) = rest.rsplit_once('-')?;
    let (time, random) = id.split_once('-')?;
    let ok = time.len() == 20
        && time.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 8
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && matches!(part, "age" | "meta")
        && check_secret_name(name).is_ok();
    ok.then_some((name, id, part))
}

fn load_meta(
    backend: &dyn Backend,
    name: &str,
    id: &str,
    age_present: bool,
) -> Result<SealedVersion> {
    let object = format!("{name}--{id}{META_SUFFIX}");
    let data = backend.get(Kind::Secrets, &object)?;
    let corrupt = |detail: String| SecretsError::Corrupt {
        object: format!("secrets/{object}"),
        detail,
    };
    let meta: Meta = serde_json::from_slice(&data)
        .map_err(|e| corrupt(format!("not sealed-secret metadata: {e}")))?;
    if meta.format > FORMAT {
        return Err(corrupt(format!(
            "format {} is newer than this vault reads ({FORMAT}); upgrade vault",
            meta.format
        )));
    }
    if meta.name != name {
        return Err(corrupt(format!(
            "names the secret {:?}, not {name:?}",
            meta.name
        )));
    }
    let mut fingerprint = [0u8; 32];
    hex::decode_to_slice(&meta.fingerprint, &mut fingerprint)
        .map_err(|_| corrupt("fingerprint is not 64 hex digits".into()))?;
    let mut age_blake3 = [0u8; 32];
    hex::decode_to_slice(&meta.age_blake3, &mut age_blake3)
        .map_err(|_| corrupt("age_blake3 is not 64 hex digits".into()))?;
    Ok(SealedVersion {
        name: meta.name,
        id: id.to_string(),
        number: 0,
        sealed_at: meta.sealed_at,
        host: meta.host,
        source: meta.source,
        fingerprint,
        escrow: meta.escrow,
        recipients: meta.recipients,
        passphrase: meta.passphrase,
        age_blake3,
        age_present,
    })
}

/// Object ids per secret name: (id, has age, has meta), sorted by name then id.
fn version_ids(backend: &dyn Backend) -> Result<Vec<(String, String, bool, bool)>> {
    let mut map: std::collections::BTreeMap<(String, String), (bool, bool)> = Default::default();
    for obj in backend.list(Kind::Secrets)? {
        if let Some((name, id, part)) = parse_version_object(&obj.name) {
            let e = map.entry((name.to_string(), id.to_string())).or_default();
            match part {
                "age" => e.0 = true,
                _ => e.1 = true,
            }
        }
    }
    Ok(map
        .into_iter()
        .map(|((n, i), (a, m))| (n, i, a, m))
        .collect())
}

/// Every sealed version in the store, by name, oldest first. An age object without its
/// metadata (a seal interrupted before it finished) is not a version.
pub fn list(backend: &dyn Backend) -> Result<Vec<SealedVersion>> {
    let mut out: Vec<SealedVersion> = Vec::new();
    for (name, id, age, meta) in version_ids(backend)? {
        if !meta {
            continue;
        }
        let mut v = load_meta(backend, &name, &id, age)?;
        v.number = 1 + out.iter().filter(|o| o.name == name).count();
        out.push(v);
    }
    Ok(out)
}

/// The versions of one secret, oldest first.
pub fn versions(backend: &dyn Backend, name: &str) -> Result<Vec<SealedVersion>> {
    Ok(list(backend)?
        .into_iter()
        .filter(|v| v.name == name)
        .collect())
}

/// The newest version of `name`, reading only its metadata.
pub fn newest(backend: &dyn Backend, name: &str) -> Result<Option<SealedVersion>> {
    let ids: Vec<_> = version_ids(backend)?
        .into_iter()
        .filter(|(n, _, _, meta)| n == name && *meta)
        .collect();
    match ids.last() {
        None => Ok(None),
        Some((n, id, age, _)) => {
            let mut v = load_meta(backend, n, id, *age)?;
            v.number = ids.len();
            Ok(Some(v))
        }
    }
}

/// Finds version `number` (1 = oldest) of `name`, or the newest when `None`.
pub fn find_version(
    backend: &dyn Backend,
    name: &str,
    number: Option<usize>,
) -> Result<SealedVersion> {
    find_version_on(backend, name, number, &[])
}

/// [`find_version`] among the versions sealed on one of `hosts` (any host when empty).
/// Version numbers count every host's versions, as [`list`] shows them; a `number` whose
/// version another host sealed is an error naming that host.
pub fn find_version_on(
    backend: &dyn Backend,
    name: &str,
    number: Option<usize>,
    hosts: &[String],
) -> Result<SealedVersion> {
    let not_sealed = |hint: String, other_hosts: bool| SecretsError::NotSealed {
        name: name.to_string(),
        location: backend.location(),
        hint,
        other_hosts,
    };
    let on_hosts = |v: &SealedVersion| hosts.is_empty() || hosts.contains(&v.host);
    match number {
        None if hosts.is_empty() => {
            newest(backend, name)?.ok_or_else(|| not_sealed(String::new(), false))
        }
        None => {
            let all = versions(backend, name)?;
            let mut sealed_on: Vec<&str> = all.iter().map(|v| v.host.as_str()).collect();
            sealed_on.sort_unstable();
            sealed_on.dedup();
            all.iter()
                .rev()
                .find(|v| on_hosts(v))
                .cloned()
                .ok_or_else(|| {
                    not_sealed(
                        format!(
                            " sealed on host {} ({})",
                            hosts.join(" or "),
                            if sealed_on.is_empty() {
                                "no host sealed it".to_string()
                            } else {
                                format!("sealed on: {}", sealed_on.join(", "))
                            }
                        ),
                        true,
                    )
                })
        }
        Some(n) => {
            let all = versions(backend, name)?;
            let count = all.len();
            match all.into_iter().find(|v| v.number == n) {
                None => Err(not_sealed(
                    format!(" with version number {n} (it has {count})"),
                    false,
                )),
                Some(v) if !on_hosts(&v) => Err(not_sealed(
                    format!(
                        " with version number {n} sealed on host {} (version {n} was sealed on {})",
                        hosts.join(" or "),
                        v.host
                    ),
                    false,
                )),
                Some(v) => Ok(v),
            }
        }
    }
}

/// Seals `reading` as a new version of `name` to the escrow set `escrow`.
pub fn seal_value(
    backend: &dyn Backend,
    escrow: &EscrowSet,
    name: &str,
    reading: &Reading,
    fingerprint_key: &[u8; 32],
    now: SystemTime,
    host: &str,
) -> Result<SealedVersion> {
    check_secret_name(name)?;
    let recipients = escrow.all_recipients()?;
    if recipients.is_empty() {
        return Err(SecretsError::NoEscrow(backend.location()));
    }
    let dyns: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r as &dyn age::Recipient)
        .collect();
    let sealed = encrypt(&dyns, reading.value.expose_secret().as_bytes())?;
    let fp = fingerprint(fingerprint_key, name, &reading.value);
    let sealed_at = unix(now);
    // Ids sort by time; a version always sorts after the newest one already there, even
    // when the clock says otherwise or two seals fall in the same nanosecond.
    let mut nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    if let Some(last) = version_ids(backend)?
        .iter()
        .filter(|(n, ..)| n == name)
        .filter_map(|(_, id, ..)| id.split_once('-')?.0.parse::<u64>().ok())
        .max()
    {
        nanos = nanos.max(last + 1);
    }
    let id = format!("{nanos:020}-{:08x}", rand::random::<u32>());
    let age_blake3 = *blake3::hash(&sealed).as_bytes();
    let meta = Meta {
        format: FORMAT,
        name: name.to_string(),
        sealed_at,
        host: host.to_string(),
        source: reading.from.clone(),
        fingerprint: hex::encode(fp),
        escrow: escrow.serial,
        recipients: escrow.recipients.clone(),
        passphrase: escrow.passphrase_recipient.is_some(),
        age_blake3: hex::encode(age_blake3),
    };
    let version = SealedVersion {
        name: name.to_string(),
        id: id.clone(),
        number: 0,
        sealed_at,
        host: meta.host.clone(),
        source: meta.source.clone(),
        fingerprint: fp,
        escrow: escrow.serial,
        recipients: meta.recipients.clone(),
        passphrase: meta.passphrase,
        age_blake3,
        age_present: true,
    };
    // The age object first: metadata makes the version visible, so a crash in between
    // leaves only an unlisted age object.
    backend.put(Kind::Secrets, &version.age_object(), &sealed)?;
    let json = serde_json::to_vec_pretty(&meta).expect("serializable");
    backend.put(Kind::Secrets, &version.meta_object(), &json)?;
    Ok(version)
}

/// Why a source was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealReason {
    /// No version of this secret was sealed before.
    First,
    /// The value's fingerprint differs from the newest version's.
    Changed,
    /// Same value, but the newest version was sealed to an older escrow set.
    NewRecipients,
    /// Sealed on request although nothing changed.
    Forced,
}

/// What sealing did with one source.
#[derive(Debug)]
pub enum SealStatus {
    Sealed {
        version: SealedVersion,
        reason: SealReason,
    },
    /// The newest version already holds this value for the current escrow set.
    Unchanged { version: SealedVersion },
    /// The source does not exist on this host (e.g. a worker host has no travis.yml):
    /// `reason` says what was looked for.
    Absent { reason: String },
    /// The source exists but could not be read or sealed.
    Failed(SecretsError),
}

#[derive(Debug)]
pub struct SealOutcome {
    pub name: String,
    pub status: SealStatus,
}

/// Seals every configured source whose value differs from the newest version sealed on
/// `host` (or whose newest version predates the current escrow set). `host` is this
/// host's name as its snapshots record it; each host's values are compared only with its
/// own versions, so two platform hosts sharing a store do not reseal each other's values.
/// Sources absent from this host are quietly reported as [`SealStatus::Absent`]; a source
/// that fails does not stop the others. `Err` only for a bad configuration or an
/// unreachable store.
pub fn seal_changed(
    backend: &dyn Backend,
    config: &SecretsConfig,
    fingerprint_key: &[u8; 32],
    now: SystemTime,
    host: &str,
) -> Result<Vec<SealOutcome>> {
    seal_sources(
        backend,
        &config.sources()?,
        fingerprint_key,
        now,
        false,
        host,
    )
}

/// [`seal_changed`] over the given sources; `force` seals unchanged values too.
pub fn seal_sources(
    backend: &dyn Backend,
    sources: &[Source],
    fingerprint_key: &[u8; 32],
    now: SystemTime,
    force: bool,
    host: &str,
) -> Result<Vec<SealOutcome>> {
    let mut escrow: Option<Option<EscrowSet>> = None;
    let mut out = Vec::new();
    for source in sources {
        let status = match source.read(None) {
            Ok(None) => SealStatus::Absent {
                reason: source.absent_error(None).to_string(),
            },
            Err(e) => SealStatus::Failed(e),
            Ok(Some(reading)) => {
                if escrow.is_none() {
                    escrow = Some(current_escrow(backend)?);
                }
                match escrow.as_ref().expect("loaded") {
                    None => SealStatus::Failed(SecretsError::NoEscrow(backend.location())),
                    Some(set) => seal_one(
                        backend,
                        set,
                        source,
                        &reading,
                        fingerprint_key,
                        now,
                        force,
                        host,
                    )?,
                }
            }
        };
        out.push(SealOutcome {
            name: source.name.clone(),
            status,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn seal_one(
    backend: &dyn Backend,
    escrow: &EscrowSet,
    source: &Source,
    reading: &Reading,
    fingerprint_key: &[u8; 32],
    now: SystemTime,
    force: bool,
    host: &str,
) -> Result<SealStatus> {
    let fp = fingerprint(fingerprint_key, &source.name, &reading.value);
    let all = versions(backend, &source.name)?;
    let count = all.len();
    let previous = all.into_iter().rev().find(|v| v.host == host);
    let reason = match &previous {
        None => SealReason::First,
        Some(v) if v.fingerprint != fp => SealReason::Changed,
        Some(v) if v.escrow != escrow.serial => SealReason::NewRecipients,
        Some(_) if force => SealReason::Forced,
        Some(v) => return Ok(SealStatus::Unchanged { version: v.clone() }),
    };
    Ok(
        match seal_value(
            backend,
            escrow,
            &source.name,
            reading,
            fingerprint_key,
            now,
            host,
        ) {
            Ok(mut version) => {
                version.number = count + 1;
                SealStatus::Sealed { version, reason }
            }
            Err(SecretsError::Store(e)) => return Err(SecretsError::Store(e)),
            Err(e) => SealStatus::Failed(e),
        },
    )
}

/// What opens sealed versions: escrow identities (age X25519 identity files, as made by
/// `age-keygen`) and/or the escrow passphrase. Never the store's reader identity.
#[derive(Default)]
pub struct EscrowKey {
    identities: Vec<Box<dyn age::Identity>>,
    passphrase: Option<SecretString>,
}

impl EscrowKey {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the identities of an age identity file (`AGE-SECRET-KEY-1...` lines).
    pub fn add_identity_file(&mut self, path: &Path) -> Result<()> {
        let data = Zeroizing::new(std::fs::read(path).map_err(|e| SecretsError::IdentityFile {
            file: path.display().to_string(),
            detail: e.to_string(),
        })?);
        self.add_identities(&data, &path.display().to_string())
    }

    /// Adds the identities of an identity file's contents; `label` names it in errors.
    pub fn add_identities(&mut self, data: &[u8], label: &str) -> Result<()> {
        let bad = |detail: String| SecretsError::IdentityFile {
            file: label.to_string(),
            detail,
        };
        let file = age::IdentityFile::from_buffer(data).map_err(|_| {
            bad("not an age identity file (expected AGE-SECRET-KEY-1... lines)".into())
        })?;
        let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
        if ids.is_empty() {
            return Err(bad("holds no identity".into()));
        }
        self.identities.extend(ids);
        Ok(())
    }

    pub fn set_passphrase(&mut self, passphrase: SecretString) {
        self.passphrase = Some(passphrase);
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }
}

/// Opens a sealed version. The age object must match the metadata's hash; when
/// `fingerprint_key` is given the value must also match the recorded fingerprint.
pub fn unseal(
    backend: &dyn Backend,
    version: &SealedVersion,
    key: &EscrowKey,
    fingerprint_key: Option<&[u8; 32]>,
) -> Result<SecretString> {
    if key.is_empty() {
        return Err(SecretsError::NeedKey(
            "opening a sealed secret needs an escrow identity file or the escrow passphrase".into(),
        ));
    }
    let object = format!("secrets/{}", version.age_object());
    let data = backend.get(Kind::Secrets, &version.age_object())?;
    if blake3::hash(&data).as_bytes() != &version.age_blake3 {
        return Err(SecretsError::Corrupt {
            object,
            detail: "its hash differs from the one its metadata records (damaged or replaced)"
                .into(),
        });
    }
    let mut tried_identities = false;
    let mut plain = None;
    if !key.identities.is_empty() {
        tried_identities = true;
        let ids: Vec<&dyn age::Identity> = key.identities.iter().map(|b| b.as_ref()).collect();
        match open_age(&data, &ids) {
            Ok(p) => plain = Some(p),
            Err(age::DecryptError::NoMatchingKeys) => {}
            Err(e) => {
                return Err(SecretsError::Corrupt {
                    object,
                    detail: e.to_string(),
                })
            }
        }
    }
    if plain.is_none() {
        if let Some(passphrase) = &key.passphrase {
            if !version.passphrase {
                return Err(SecretsError::NoPassphraseRecipient {
                    object,
                    recipients: version.describe_recipients(),
                });
            }
            let identity = unwrap_passphrase_identity(backend, version.escrow, passphrase)?;
            match open_age(&data, &[&identity as &dyn age::Identity]) {
                Ok(p) => plain = Some(p),
                Err(age::DecryptError::NoMatchingKeys) => {
                    return Err(SecretsError::Corrupt {
                        object,
                        detail: format!(
                            "not sealed to the passphrase identity of escrow set {}",
                            version.escrow
                        ),
                    })
                }
                Err(e) => {
                    return Err(SecretsError::Corrupt {
                        object,
                        detail: e.to_string(),
                    })
                }
            }
        }
    }
    let Some(plain) = plain else {
        debug_assert!(tried_identities);
        return Err(SecretsError::NotARecipient {
            object,
            recipients: version.describe_recipients(),
        });
    };
    let text = std::str::from_utf8(&plain).map_err(|_| SecretsError::Corrupt {
        object: object.clone(),
        detail: "opens, but does not hold UTF-8 text".into(),
    })?;
    let value = SecretString::from(text);
    if let Some(k) = fingerprint_key {
        if fingerprint(k, &version.name, &value) != version.fingerprint {
            return Err(SecretsError::Corrupt {
                object,
                detail: "opens, but its value does not match the fingerprint in its metadata"
                    .into(),
            });
        }
    }
    Ok(value)
}

/// Opens `escrow-NNNNNNNN-passphrase` with the passphrase.
fn unwrap_passphrase_identity(
    backend: &dyn Backend,
    serial: u32,
    passphrase: &SecretString,
) -> Result<age::x25519::Identity> {
    let name = escrow_passphrase_object(serial);
    let object = format!("secrets/{name}");
    let data = backend.get(Kind::Secrets, &name)?;
    let mut scrypt = age::scrypt::Identity::new(passphrase.clone());
    scrypt.set_max_work_factor(ESCROW_SCRYPT_LOG_N + 2);
    let plain = match open_age(&data, &[&scrypt as &dyn age::Identity]) {
        Ok(p) => p,
        Err(age::DecryptError::DecryptionFailed) | Err(age::DecryptError::NoMatchingKeys) => {
            return Err(SecretsError::WrongPassphrase { object })
        }
        Err(e) => {
            return Err(SecretsError::Corrupt {
                object,
                detail: e.to_string(),
            })
        }
    };
    let text = std::str::from_utf8(&plain).map_err(|_| SecretsError::Corrupt {
        object: object.clone(),
        detail: "does not hold an age identity".into(),
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .ok_or_else(|| SecretsError::Corrupt {
            object: object.clone(),
            detail: "does not hold an age identity".into(),
        })?;
    age::x25519::Identity::from_str(line).map_err(|_| SecretsError::Corrupt {
        object,
        detail: "holds an invalid age identity".into(),
    })
}

/// Result of comparing a (restored) source with the sealed versions.
#[derive(Debug)]
pub enum VerifyStatus {
    /// The source holds the value of the newest sealed version.
    Matches,
    /// The source holds the value of an older version (`number`), not the newest.
    MatchesOlder { number: usize },
    /// The source holds a value no sealed version has (checked by fingerprint), or not
    /// the newest version's (checked by opening it).
    Differs,
    /// Nothing was ever sealed under this name.
    NotSealed,
    /// The source does not exist (under the root); `reason` names what was looked for.
    Absent { reason: String },
    /// The source exists but could not be read.
    Failed(SecretsError),
}

#[derive(Debug)]
pub struct VerifyOutcome {
    pub name: String,
    /// Where the value was read, when it was.
    pub from: Option<String>,
    /// The newest sealed version, when there is one.
    pub newest: Option<SealedVersion>,
    pub status: VerifyStatus,
}

impl VerifyOutcome {
    pub fn ok(&self) -> bool {
        matches!(self.status, VerifyStatus::Matches)
    }
}

/// Checks that each source (files looked for under `root` when given, as after a
/// restore) holds the sealed value. Compares keyed fingerprints when `fingerprint_key` is
/// given (no decryption needed; older versions are recognised too), else opens the newest
/// version with `key`. Never returns or prints either value.
pub fn verify(
    backend: &dyn Backend,
    sources: &[Source],
    root: Option<&Path>,
    fingerprint_key: Option<&[u8; 32]>,
    key: Option<&EscrowKey>,
) -> Result<Vec<VerifyOutcome>> {
    verify_on(backend, sources, root, fingerprint_key, key, &[])
}

/// [`verify`] against the versions sealed on one of `hosts` (every host's when empty):
/// "newest" and "older" then mean that host's newest and older versions.
pub fn verify_on(
    backend: &dyn Backend,
    sources: &[Source],
    root: Option<&Path>,
    fingerprint_key: Option<&[u8; 32]>,
    key: Option<&EscrowKey>,
    hosts: &[String],
) -> Result<Vec<VerifyOutcome>> {
    if fingerprint_key.is_none() && key.map_or(true, EscrowKey::is_empty) {
        return Err(SecretsError::NeedKey(
            "verifying needs this host's fingerprint key (a writer key or the reader identity), or an escrow identity file or passphrase".into(),
        ));
    }
    let mut out = Vec::new();
    for source in sources {
        let all: Vec<SealedVersion> = versions(backend, &source.name)?
            .into_iter()
            .filter(|v| hosts.is_empty() || hosts.contains(&v.host))
            .collect();
        let newest = all.last().cloned();
        let (from, status) = match source.read(root) {
            Ok(None) => (
                None,
                VerifyStatus::Absent {
                    reason: source.absent_error(root).to_string(),
                },
            ),
            Err(e) => (None, VerifyStatus::Failed(e)),
            Ok(Some(reading)) => {
                let status = match (&newest, fingerprint_key) {
                    (None, _) => VerifyStatus::NotSealed,
                    (Some(_), Some(k)) => {
                        let fp = fingerprint(k, &source.name, &reading.value);
                        match all.iter().rev().find(|v| v.fingerprint == fp) {
                            Some(v) if Some(v) == newest.as_ref() => VerifyStatus::Matches,
                            Some(v) => VerifyStatus::MatchesOlder { number: v.number },
                            None => VerifyStatus::Differs,
                        }
                    }
                    (Some(v), None) => {
                        let sealed = unseal(backend, v, key.expect("checked above"), None)?;
                        let a = blake3::hash(sealed.expose_secret().as_bytes());
                        let b = blake3::hash(reading.value.expose_secret().as_bytes());
                        // blake3::Hash compares in constant time.
                        if a == b {
                            VerifyStatus::Matches
                        } else {
                            VerifyStatus::Differs
                        }
                    }
                };
                (Some(reading.from), status)
            }
        };
        out.push(VerifyOutcome {
            name: source.name.clone(),
            from,
            newest,
            status,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_parse() {
        assert_eq!(
            parse_version_object("encryption-key--01714567890123456789-0a1b2c3d-age"),
            Some(("encryption-key", "01714567890123456789-0a1b2c3d", "age"))
        );
        assert_eq!(parse_version_object("escrow-00000001"), None);
        assert_eq!(parse_version_object("escrow-00000001-passphrase"), None);
        assert_eq!(
            parse_version_object("x--01714567890123456789-0a1b2c3d-other"),
            None
        );
        assert_eq!(parse_version_object("x--1714567890-0a1b2c3d-age"), None);
    }

    #[test]
    fn fingerprints_depend_on_key_name_and_value() {
        let v = SecretString::from("v");
        let a = fingerprint(&[1; 32], "a", &v);
        assert_ne!(a, fingerprint(&[2; 32], "a", &v));
        assert_ne!(a, fingerprint(&[1; 32], "b", &v));
        assert_ne!(a, fingerprint(&[1; 32], "a", &SecretString::from("w")));
        assert_eq!(short_fingerprint(&a).len(), 19);
    }
}
