//! The cryptography of a store, in one place.
//!
//! - **Id key** (32 random bytes, held by every snapshotting host). Everything else a
//!   writer needs is derived from it with BLAKE3's key derivation:
//!   - the *blob id key*: blob ids are `BLAKE3-keyed(blob id key, plaintext)`, so ids
//!     deduplicate without revealing content to anyone lacking the key;
//!   - the *metadata key*: index files, pack trailers and snapshot records are sealed with
//!     XChaCha20-Poly1305 under it (random 192-bit nonces), so writers can find existing
//!     blobs and list snapshots, but these records hold only ids, sizes, times and paths;
//!   - the *chunker seed*: the gear table of FastCDC is seeded from it, so chunk
//!     boundaries (and thus chunk sizes) do not fingerprint known files.
//! - **Data keys**: each pack has its own random 32-byte key, wrapped with age to the
//!   store's reader recipients and stored in the pack header. Blobs inside are sealed with
//!   ChaCha20-Poly1305 under the pack's data key; the nonce is the blob's position in the
//!   pack (unique per key, because a key is never reused across packs) and the associated
//!   data binds the blob id, kind and compression flag, so a blob cannot be swapped,
//!   moved or relabelled without failing authentication.
//!
//! A writer therefore holds no key that opens file contents or directory trees: those need
//! a data key, which only the reader identity unwraps.

/// Largest blob plaintext accepted: chunks are at most the chunker's maximum (a few MiB)
/// and trees of folders with hundreds of thousands of entries stay below this. Trees and
/// packs both bound lengths read from the store by it, so it lives below both.
pub const MAX_BLOB_LEN: u32 = 256 << 20;

use crate::error::{Error, Result};
use crate::id::Id;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use rand::RngCore;
use std::io::{Read, Write};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub const KEY_LEN: usize = 32;
/// Key-derivation context of the key that fingerprints sealed platform secrets.
pub const SECRET_FINGERPRINT_CONTEXT: &str = "vault v1 secret fingerprint";
const XNONCE_LEN: usize = 24;
/// What [`WriterKeys::seal_meta`] adds to its plaintext: the nonce and the tag.
pub const META_SEAL_OVERHEAD: usize = XNONCE_LEN + 16;
pub const TAG_LEN: usize = 16;

/// A 32-byte secret that is wiped when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey(pub [u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        SecretKey(k)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut k = [0u8; KEY_LEN];
        hex::decode_to_slice(s.trim(), &mut k).ok()?;
        Some(SecretKey(k))
    }

    pub fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.0))
    }
}

/// The keys derived from a store's id key; see the module docs.
#[derive(Clone)]
pub struct WriterKeys {
    id_key: SecretKey,
    blob_id_key: SecretKey,
    meta_key: SecretKey,
    chunker_seed: u64,
}

impl WriterKeys {
    pub fn from_id_key(id_key: SecretKey) -> Self {
        let blob_id_key = SecretKey(blake3::derive_key("vault v1 blob id", &id_key.0));
        let meta_key = SecretKey(blake3::derive_key("vault v1 metadata seal", &id_key.0));
        let seed = blake3::derive_key("vault v1 chunker seed", &id_key.0);
        let chunker_seed = u64::from_le_bytes(seed[..8].try_into().unwrap());
        WriterKeys {
            id_key,
            blob_id_key,
            meta_key,
            chunker_seed,
        }
    }

    pub fn id_key(&self) -> &SecretKey {
        &self.id_key
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// A key for another purpose (such as secret fingerprints), derived so that it says
    /// nothing about the id key or the other derived keys.
    pub fn derive(&self, context: &str) -> [u8; KEY_LEN] {
        blake3::derive_key(context, &self.id_key.0)
    }

    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.blob_id_key.0, plaintext).as_bytes())
    }

    /// Seals a metadata record; `label` names the record's purpose and is authenticated,
    /// so an index file cannot be presented as a snapshot.
    pub fn seal_meta(&self, label: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.meta_key.0).into());
        let mut nonce = [0u8; XNONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad: label,
                },
            )
            .expect("encryption of in-memory data cannot fail");
        let mut out = Vec::with_capacity(XNONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// [`WriterKeys::seal_meta`] in the plaintext's own buffer: the same bytes, without a
    /// second and third copy of a large plaintext (an index file of a million small
    /// blobs is tens of megabytes).
    pub fn seal_meta_owned(&self, label: &[u8], mut buf: Vec<u8>) -> Vec<u8> {
        use chacha20poly1305::aead::AeadInPlace;
        let cipher = XChaCha20Poly1305::new((&self.meta_key.0).into());
        let mut nonce = [0u8; XNONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let tag = cipher
            .encrypt_in_place_detached((&nonce).into(), label, &mut buf)
            .expect("encryption of in-memory data cannot fail");
        buf.reserve_exact(XNONCE_LEN + TAG_LEN);
        buf.splice(0..0, nonce);
        buf.extend_from_slice(&tag);
        buf
    }

    pub fn open_meta(&self, label: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        if sealed.len() < XNONCE_LEN + TAG_LEN {
            return Err(Error::corrupt(
                what,
                format!(
                    "only {} bytes, too short to be sealed (truncated?)",
                    sealed.len()
                ),
            ));
        }
        let cipher = XChaCha20Poly1305::new((&self.meta_key.0).into());
        let (nonce, ct) = sealed.split_at(XNONCE_LEN);
        cipher
            .decrypt(nonce.into(), Payload { msg: ct, aad: label })
            .map_err(|_| {
                Error::corrupt(
                    what,
                    "authentication failed: the object was altered or truncated, or belongs to another store or name",
                )
            })
    }
}

/// Associated data binding a blob's identity to its ciphertext.
fn blob_aad(id: &Id, kind: u8, compressed: bool) -> [u8; 34] {
    let mut aad = [0u8; 34];
    aad[..32].copy_from_slice(&id.0);
    aad[32] = kind;
    aad[33] = compressed as u8;
    aad
}

fn blob_nonce(position: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&position.to_le_bytes());
    nonce
}

/// Seals one blob under its pack's data key.
pub fn seal_blob(
    data_key: &SecretKey,
    position: u32,
    id: &Id,
    kind: u8,
    compressed: bool,
    payload: &[u8],
) -> Vec<u8> {
    ChaCha20Poly1305::new((&data_key.0).into())
        .encrypt(
            (&blob_nonce(position)).into(),
            Payload {
                msg: payload,
                aad: &blob_aad(id, kind, compressed),
            },
        )
        .expect("encryption of in-memory data cannot fail")
}

/// Seals one blob in place and returns its tag, which follows the ciphertext in a pack.
pub fn seal_blob_in_place(
    data_key: &SecretKey,
    position: u32,
    id: &Id,
    kind: u8,
    compressed: bool,
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    use chacha20poly1305::aead::AeadInPlace;
    ChaCha20Poly1305::new((&data_key.0).into())
        .encrypt_in_place_detached(
            (&blob_nonce(position)).into(),
            &blob_aad(id, kind, compressed),
            buf,
        )
        .expect("encryption of in-memory data cannot fail")
        .into()
}

pub fn open_blob(
    data_key: &SecretKey,
    position: u32,
    id: &Id,
    kind: u8,
    compressed: bool,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new((&data_key.0).into())
        .decrypt(
            (&blob_nonce(position)).into(),
            Payload {
                msg: sealed,
                aad: &blob_aad(id, kind, compressed),
            },
        )
        .ok()
}

/// Parses age X25519 recipients (`age1...`), naming the bad one on failure.
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>> {
    list.iter()
        .map(|r| {
            r.trim()
                .parse::<age::x25519::Recipient>()
                .map_err(|e| Error::Key(format!("invalid age recipient {r:?}: {e}")))
        })
        .collect()
}

/// Encrypts `plaintext` as a standard (binary) age file to the given recipients.
pub fn age_encrypt(recipients: &[age::x25519::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let boxed: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r as &dyn age::Recipient)
        .collect();
    let encryptor = age::Encryptor::with_recipients(boxed.into_iter())
        .map_err(|e| Error::Key(format!("age: {e}")))?;
    let mut out = Vec::with_capacity(plaintext.len() + 300);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| Error::io("age encrypt", e))?;
    writer
        .write_all(plaintext)
        .and_then(|_| writer.finish().map(|_| ()))
        .map_err(|e| Error::io("age encrypt", e))?;
    Ok(out)
}

/// scrypt work factor (log2 N) for new passphrase wraps: 2^18 with age's r = 8 costs
/// 256 MiB of memory (vault's whole unlock peaks at 270 MiB resident) and four times the
/// time of the first release's 2^16 (64 MiB): measured on the 2-core development machine
/// under a load average of 21, one unlock took 4.1 to 4.8 s, and OpenSSL's scrypt took
/// 1.45 s at 2^16 and 5.3 s at 2^18 there, so about half a second on an idle core. A
/// guess at a stolen `keys/reader` costs four times as much as before. 2^19 (512 MiB)
/// would not fit a 512 MiB restore host. age itself calibrates to one second, which on a fast machine means
/// 1 GiB or more of memory at every unlock and a cost that differs from host to host.
pub const SCRYPT_LOG_N: u8 = 18;

/// The highest work factor an unlock accepts: wraps of the first release (2^16) and ours
/// open; a tampered key object must not make every unlock allocate gigabytes.
pub const SCRYPT_MAX_LOG_N: u8 = 18;

/// Encrypts `plaintext` as an ASCII-armored age file to a passphrase (scrypt), as
/// `age -p -a` does; the stock `age -d` opens it.
pub fn age_encrypt_passphrase(
    passphrase: &secrecy::SecretString,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
    recipient.set_work_factor(SCRYPT_LOG_N);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| Error::Key(format!("age: {e}")))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| Error::io("age encrypt", e))?;
    let mut writer = encryptor
        .wrap_output(armor)
        .map_err(|e| Error::io("age encrypt", e))?;
    writer
        .write_all(plaintext)
        .map_err(|e| Error::io("age encrypt", e))?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| Error::io("age encrypt", e))?;
    Ok(out)
}

/// Why an age file could not be opened.
pub enum AgeOpenError {
    /// None of the given identities (or the passphrase) fits.
    NoMatch,
    /// The file is not a well-formed age file, or its payload fails authentication.
    Damaged(String),
}

pub fn age_decrypt(
    identity: &dyn age::Identity,
    data: &[u8],
) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, AgeOpenError> {
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(data))
        .map_err(|e| AgeOpenError::Damaged(e.to_string()))?;
    let mut reader = match decryptor.decrypt(std::iter::once(identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) | Err(age::DecryptError::DecryptionFailed) => {
            return Err(AgeOpenError::NoMatch)
        }
        Err(e) => return Err(AgeOpenError::Damaged(e.to_string())),
    };
    let mut out = zeroize::Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|e| AgeOpenError::Damaged(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_seal_binds_id_kind_and_position() {
        let key = SecretKey::random();
        let id = Id::random();
        let sealed = seal_blob(&key, 3, &id, 1, true, b"hello");
        assert_eq!(open_blob(&key, 3, &id, 1, true, &sealed).unwrap(), b"hello");
        assert!(open_blob(&key, 4, &id, 1, true, &sealed).is_none());
        assert!(open_blob(&key, 3, &Id::random(), 1, true, &sealed).is_none());
        assert!(open_blob(&key, 3, &id, 2, true, &sealed).is_none());
        assert!(open_blob(&key, 3, &id, 1, false, &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(open_blob(&key, 3, &id, 1, true, &flipped).is_none());
    }

    #[test]
    fn meta_sealed_in_its_own_buffer_opens_like_any_other() {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let plain = b"records of an index file".to_vec();
        let sealed = keys.seal_meta_owned(b"index", plain.clone());
        assert_eq!(sealed.len(), keys.seal_meta(b"index", &plain).len());
        assert_eq!(keys.open_meta(b"index", &sealed, "x").unwrap(), plain);
        assert!(keys.open_meta(b"snapshot", &sealed, "x").is_err());
    }

    #[test]
    fn meta_seal_detects_label_swap_and_truncation() {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let sealed = keys.seal_meta(b"index", b"records");
        assert_eq!(keys.open_meta(b"index", &sealed, "x").unwrap(), b"records");
        assert!(keys
            .open_meta(b"snapshot", &sealed, "x")
            .unwrap_err()
            .is_corruption());
        assert!(keys
            .open_meta(b"index", &sealed[..sealed.len() - 1], "x")
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn blob_ids_depend_on_the_key() {
        let a = WriterKeys::from_id_key(SecretKey::random());
        let b = WriterKeys::from_id_key(SecretKey::random());
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.chunker_seed(), b.chunker_seed());
    }

    #[test]
    fn age_round_trip_and_wrong_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let ct = age_encrypt(&[id.to_public()], b"data key").unwrap();
        assert_eq!(&age_decrypt(&id, &ct).ok().unwrap()[..], b"data key");
        assert!(matches!(
            age_decrypt(&other, &ct),
            Err(AgeOpenError::NoMatch)
        ));
    }
}
