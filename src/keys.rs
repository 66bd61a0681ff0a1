//! Who can do what with a store, and where the keys live.
//!
//! Two roles:
//! - A **writer** (every snapshotting host) holds a *writer key file*: the store id, the
//!   32-byte id key, the public age recipients that pack data keys are wrapped to, the
//!   store's admin public key (pinned when the host was set up), and this host's name and
//!   Ed25519 host signing key (authorised by the admin in `keys/hosts`, see
//!   [`crate::hosts`]). With it a host can deduplicate, write packs, index files and
//!   snapshot records signed as itself, and list snapshots; it cannot open a single file or
//!   directory listing of any snapshot, change the recipients, authorise a host, or sign
//!   as another host. The config is verified against the pinned admin key, so a tampered
//!   config cannot redirect new backups to an attacker's key; files of the first format
//!   (no admin key) use their pinned recipients, as before.
//! - The **admin** is whoever holds the reader identity: the admin signing key is derived
//!   from it ([`crate::sign`]), and signs the config and the host registry.
//! - A **reader** holds the age X25519 *reader identity*. It unwraps pack data keys and
//!   so reads everything. The identity is kept in the store as `keys/reader`, an armored
//!   age file encrypted to the store passphrase (scrypt), so the store plus the passphrase
//!   restore on a new host; and it can be exported as a plain age identity file to keep
//!   offline. The id key is kept in the store as `keys/idkey`, age-encrypted to the reader
//!   recipients, so a reader can become a writer again on a new host.
//!
//! Both `keys/*` objects are standard age files: `age -d keys/reader` (asks for the
//! passphrase) prints the identity, and `age -d -i IDENTITY keys/idkey` prints the id key.

use crate::backend::{Backend, Kind};
use crate::crypto::{self, AgeOpenError, SecretKey, WriterKeys};
use crate::error::{Error, IoContext, Remedy, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const READER_OBJECT: &str = "reader";
pub const IDKEY_OBJECT: &str = "idkey";

/// The contents of a host's writer key file.
#[derive(Serialize, Deserialize)]
pub struct WriterKeyFile {
    pub store_id: String,
    pub store: String,
    pub id_key: String,
    pub recipients: Vec<String>,
    /// The store's admin public key (hex), pinned at setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<String>,
    /// The host name this key is authorised for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// This host's Ed25519 signing key (seed, hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
}

impl WriterKeyFile {
    pub fn load(path: &Path) -> Result<WriterKeyFile> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).ctx(|| format!("read writer key {}", path.display()))?,
        );
        WriterKeyFile::parse(&text).map_err(|e| {
            Error::Key(format!(
                "writer key {} is not valid ({e}); restore it from a backup or set up this host again",
                path.display()
            ))
        })
    }

    /// Parses a writer key file's text. The error never quotes the text (it holds the
    /// id key).
    pub fn parse(text: &str) -> std::result::Result<WriterKeyFile, String> {
        serde_json::from_str(text).map_err(|e| crate::error::redact_quoted(&e.to_string()))
    }

    pub fn writer_keys(&self, path: &Path) -> Result<WriterKeys> {
        let id_key = SecretKey::from_hex(&self.id_key).ok_or_else(|| {
            Error::Key(format!(
                "writer key {}: the id key is not 64 hex digits",
                path.display()
            ))
        })?;
        Ok(WriterKeys::from_id_key(id_key))
    }

    /// The pinned admin key, the host name and its signing key; `None` for a key file of
    /// the first format.
    pub fn host_identity(
        &self,
        path: &Path,
    ) -> Result<Option<([u8; 32], String, crate::sign::SigningSecret)>> {
        let (Some(admin), Some(host), Some(key)) = (&self.admin_key, &self.host, &self.host_key)
        else {
            return Ok(None);
        };
        let bad = |what: &str| {
            Error::Key(format!(
                "writer key {}: the {what} is not valid; restore the file from a backup or enrol this host again",
                path.display()
            ))
        };
        let admin = crate::sign::parse_public(admin).ok_or_else(|| bad("admin key"))?;
        let key = crate::sign::SigningSecret::from_hex(key).ok_or_else(|| bad("host key"))?;
        Ok(Some((admin, host.clone(), key)))
    }

    /// Writes the key file with mode 0600, atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialisable");
        write_private_file(path, text.as_bytes())
    }
}

/// Writes a file only the owner can read, atomically: it either appears whole or not at all.
pub fn write_private_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::id::Id::random().short()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(data)
            .ctx(|| format!("write {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The text of an age identity file, as `age-keygen` writes it.
pub fn identity_file_text(identity: &age::x25519::Identity) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(format!(
        "# vault reader identity: reads every snapshot of the store it belongs to.\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ))
}

/// Reads an age identity file (the first X25519 identity in it).
pub fn load_identity_file(path: &Path) -> Result<age::x25519::Identity> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).ctx(|| format!("read identity file {}", path.display()))?,
    );
    parse_identity(&text).ok_or_else(|| {
        Error::Key(format!(
            "{} holds no age identity (a line starting with AGE-SECRET-KEY-1)",
            path.display()
        ))
    })
}

/// The first X25519 identity in an age identity file's text.
pub fn parse_identity(text: &str) -> Option<age::x25519::Identity> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .and_then(|l| l.parse().ok())
}

/// Stores the reader identity in the store, wrapped with the passphrase.
pub fn put_reader_object(
    backend: &dyn Backend,
    identity: &age::x25519::Identity,
    passphrase: &SecretString,
) -> Result<()> {
    let text = identity_file_text(identity);
    let sealed = crypto::age_encrypt_passphrase(passphrase, text.as_bytes())?;
    backend.put(Kind::Keys, READER_OBJECT, &sealed)
}

/// Unwraps the reader identity stored in the store with the passphrase.
pub fn unlock_reader_object(
    backend: &dyn Backend,
    passphrase: &SecretString,
) -> Result<age::x25519::Identity> {
    let sealed = match backend.get(Kind::Keys, READER_OBJECT) {
        Ok(s) => s,
        Err(Error::Missing { .. }) => {
            return Err(Error::Key(format!(
                "the store at {} keeps no passphrase-wrapped reader identity (it was created without a passphrase)",
                backend.location()
            ))
            .with_remedy(Remedy::ReaderIdentityFile))
        }
        Err(e) => return Err(e),
    };
    let mut identity = age::scrypt::Identity::new(passphrase.clone());
    // Refuse work factors far above ours: a tampered key object must not make every
    // unlock allocate gigabytes.
    identity.set_max_work_factor(crypto::SCRYPT_MAX_LOG_N);
    match crypto::age_decrypt(&identity, &sealed) {
        Ok(text) => {
            let text = std::str::from_utf8(&text).unwrap_or("");
            parse_identity(text).ok_or_else(|| {
                Error::corrupt("keys/reader", "decrypted, but holds no age identity")
            })
        }
        Err(AgeOpenError::NoMatch) => Err(Error::WrongPassphrase(backend.location())),
        Err(AgeOpenError::Damaged(detail)) => Err(Error::corrupt(
            "keys/reader",
            format!("not a readable age file: {detail}"),
        )),
    }
}

pub fn put_idkey_object(
    backend: &dyn Backend,
    recipients: &[age::x25519::Recipient],
    id_key: &SecretKey,
) -> Result<()> {
    let text = zeroize::Zeroizing::new(format!("{}\n", id_key.to_hex().as_str()));
    let sealed = crypto::age_encrypt(recipients, text.as_bytes())?;
    backend.put(Kind::Keys, IDKEY_OBJECT, &sealed)
}

pub fn unlock_idkey_object(
    backend: &dyn Backend,
    identity: &age::x25519::Identity,
) -> Result<SecretKey> {
    let sealed = backend.get(Kind::Keys, IDKEY_OBJECT)?;
    match crypto::age_decrypt(identity, &sealed) {
        Ok(text) => std::str::from_utf8(&text)
            .ok()
            .and_then(SecretKey::from_hex)
            .ok_or_else(|| {
                Error::corrupt("keys/idkey", "decrypted, but holds no 64-hex-digit key")
            }),
        Err(AgeOpenError::NoMatch) => Err(Error::Key(format!(
            "the given identity ({}) is not a reader of the store at {}",
            identity.to_public(),
            backend.location()
        ))),
        Err(AgeOpenError::Damaged(detail)) => Err(Error::corrupt(
            "keys/idkey",
            format!("not a readable age file: {detail}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    #[test]
    fn damaged_writer_key_file_error_does_not_quote_it() {
        let text = r#"{"store_id": "s", "store": "/x", "id_key": "00", "recipients": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}"#;
        let err = WriterKeyFile::parse(text).err().expect("not a key file");
        assert!(!err.contains("0f1e2d3c4b5a"), "{err}");
    }

    #[test]
    fn reader_object_round_trip_and_wrong_passphrase() {
        let b = MemoryBackend::new("keys");
        let id = age::x25519::Identity::generate();
        put_reader_object(&b, &id, &SecretString::from("correct horse")).unwrap();
        let back = unlock_reader_object(&b, &SecretString::from("correct horse")).unwrap();
        assert_eq!(back.to_public().to_string(), id.to_public().to_string());
        assert!(matches!(
            unlock_reader_object(&b, &SecretString::from("wrong")),
            Err(Error::WrongPassphrase(_))
        ));
    }

    #[test]
    fn idkey_needs_the_reader() {
        let b = MemoryBackend::new("idkey");
        let id = age::x25519::Identity::generate();
        let key = SecretKey::random();
        put_idkey_object(&b, &[id.to_public()], &key).unwrap();
        assert_eq!(unlock_idkey_object(&b, &id).unwrap(), key);
        assert!(unlock_idkey_object(&b, &age::x25519::Identity::generate()).is_err());
    }
}
