//! Signatures and bindings of the store's metadata (store format version 2).
//!
//! Two kinds of Ed25519 keys sign what vault obeys:
//! - the **admin key**, derived from the store's reader identity:
//!   `seed = BLAKE3-derive-key("vault v2 admin signing key", "AGE-SECRET-KEY-1...")`. Only
//!   a holder of the reader identity can make it; its public key is recorded in the config
//!   (`admin_key`) and pinned in every writer key file when the host is set up. It signs
//!   the store config and the host registry (`keys/hosts`, see [`crate::hosts`]), and
//!   attests the records that `vault upgrade` re-binds;
//! - a **host key** per snapshotting host, random, kept only in that host's writer key
//!   file and authorised by name in the admin-signed host registry. It signs that host's
//!   snapshot records.
//!
//! **Binding.** Every signed message starts with the binding of the object it is about:
//!
//! ```text
//! binding = "vault-bind-v2" || field(purpose) || field(store id) || field(kind) || field(name)
//! field(x) = u32 big-endian length of x || x
//! ```
//!
//! followed by the object's body. Index files are sealed with the binding as associated
//! data. So a record copied under a new name, into another folder or into another store no
//! longer verifies, and a config cannot be presented as a host registry.
//!
//! The exact bytes are fixed by the test vectors below: a dependency upgrade that changed
//! them would make every signed store unreadable, and fails the tests first.

use crate::error::{Error, Result};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use secrecy::ExposeSecret;

pub const PUBLIC_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

const BINDING_MAGIC: &[u8] = b"vault-bind-v2";
const ADMIN_CONTEXT: &str = "vault v2 admin signing key";

/// The binding of an object: see the module docs.
pub fn binding(purpose: &str, store_id: &str, kind: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(BINDING_MAGIC.len() + 16 + 64 + 64);
    out.extend_from_slice(BINDING_MAGIC);
    for field in [purpose, store_id, kind, name] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// The message a signature covers: binding, then body.
pub fn message(purpose: &str, store_id: &str, kind: &str, name: &str, body: &[u8]) -> Vec<u8> {
    let mut m = binding(purpose, store_id, kind, name);
    m.extend_from_slice(body);
    m
}

/// A public Ed25519 key as stored in JSON: 64 lowercase hex digits.
pub fn public_hex(key: &[u8; PUBLIC_LEN]) -> String {
    hex::encode(key)
}

pub fn parse_public(s: &str) -> Option<[u8; PUBLIC_LEN]> {
    let mut k = [0u8; PUBLIC_LEN];
    hex::decode_to_slice(s.trim(), &mut k).ok()?;
    VerifyingKey::from_bytes(&k).ok()?;
    Some(k)
}

pub fn parse_signature(s: &str) -> Option<[u8; SIGNATURE_LEN]> {
    let mut k = [0u8; SIGNATURE_LEN];
    hex::decode_to_slice(s.trim(), &mut k).ok()?;
    Some(k)
}

/// True when `signature` is `public`'s (strict) Ed25519 signature of `message`.
pub fn verify(public: &[u8; PUBLIC_LEN], message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &sig).is_ok() && key.verify(message, &sig).is_ok()
}

/// An Ed25519 signing key (the admin's or a host's); wiped when dropped, never printed.
#[derive(Clone)]
pub struct SigningSecret(SigningKey);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret({})", public_hex(&self.public()))
    }
}

impl SigningSecret {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningSecret(SigningKey::from_bytes(seed))
    }

    pub fn generate() -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed[..]);
        Self::from_seed(&seed)
    }

    /// The store's admin key, derived from its reader identity.
    pub fn admin_from_identity(identity: &age::x25519::Identity) -> Self {
        let text = identity.to_string();
        let seed = zeroize::Zeroizing::new(blake3::derive_key(
            ADMIN_CONTEXT,
            text.expose_secret().as_bytes(),
        ));
        Self::from_seed(&seed)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s.trim(), &mut seed[..]).ok()?;
        Some(Self::from_seed(&seed))
    }

    pub fn seed_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    pub fn public(&self) -> [u8; PUBLIC_LEN] {
        self.0.verifying_key().to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

/// Signs a JSON-serialisable body: the signature covers the binding and the compact JSON
/// of `body` as serialised by this struct's field order.
pub fn sign_json<T: serde::Serialize>(
    key: &SigningSecret,
    purpose: &str,
    store_id: &str,
    kind: &str,
    name: &str,
    body: &T,
) -> String {
    let json = serde_json::to_vec(body).expect("serialisable");
    hex::encode(key.sign(&message(purpose, store_id, kind, name, &json)))
}

/// Verifies what [`sign_json`] made; `what` names the object in the error.
#[allow(clippy::too_many_arguments)]
pub fn verify_json<T: serde::Serialize>(
    public: &[u8; PUBLIC_LEN],
    signature: Option<&str>,
    purpose: &str,
    store_id: &str,
    kind: &str,
    name: &str,
    body: &T,
    what: &str,
) -> Result<()> {
    let sig = signature.and_then(parse_signature).ok_or_else(|| {
        Error::corrupt(
            what,
            "carries no valid signature; it was altered or written by an old or foreign tool",
        )
    })?;
    let json = serde_json::to_vec(body).expect("serialisable");
    if verify(public, &message(purpose, store_id, kind, name, &json), &sig) {
        Ok(())
    } else {
        Err(Error::corrupt(
            what,
            format!(
                "its signature does not verify with the store's admin key {}: it was altered (or moved here \
                 from another store or name) by someone without the reader identity; do not use it, and \
                 restore the object from a copy or an earlier object version",
                &public_hex(public)[..16]
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_bytes_are_fixed() {
        let b = binding("snapshot", "00ff", "snapshots", "ab");
        let mut want = b"vault-bind-v2".to_vec();
        want.extend_from_slice(&[0, 0, 0, 8]);
        want.extend_from_slice(b"snapshot");
        want.extend_from_slice(&[0, 0, 0, 4]);
        want.extend_from_slice(b"00ff");
        want.extend_from_slice(&[0, 0, 0, 9]);
        want.extend_from_slice(b"snapshots");
        want.extend_from_slice(&[0, 0, 0, 2]);
        want.extend_from_slice(b"ab");
        assert_eq!(b, want);
        assert_eq!(
            hex::encode(&b),
            "7661756c742d62696e642d763200000008736e617073686f74000000043030666600000009736e617073686f7473000000026162"
        );
        // Field boundaries are unambiguous.
        assert_ne!(binding("a", "bc", "d", "e"), binding("ab", "c", "d", "e"));
    }

    #[test]
    fn signature_vector_is_fixed() {
        // RFC 8032 test 1 key: the signature over a fixed binding and body must never change.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningSecret::from_seed(&seed);
        assert_eq!(
            public_hex(&key.public()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        // RFC 8032's own vector (empty message) still holds.
        assert_eq!(
            hex::encode(key.sign(b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let m = message("config", "00ff", "config", "config", b"{}");
        let sig = key.sign(&m);
        assert_eq!(hex::encode(sig), SIG_VECTOR);
        assert!(verify(&key.public(), &m, &sig));
        let moved = message("config", "00ff", "config", "config2", b"{}");
        assert!(!verify(&key.public(), &moved, &sig));
        let other_store = message("config", "00fe", "config", "config", b"{}");
        assert!(!verify(&key.public(), &other_store, &sig));
    }

    const SIG_VECTOR: &str = "fdbcc8b670911641d14d4c12207f9ec4e619d7d09759df1a0b6257e41d3191e5f60c9d4b3a44b9beade47422d28de3398de7570db9272a0f2ae5616d22c3960a";

    #[test]
    fn admin_key_derivation_is_fixed() {
        let id: age::x25519::Identity =
            "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
                .parse()
                .unwrap();
        let admin = SigningSecret::admin_from_identity(&id);
        assert_eq!(public_hex(&admin.public()), ADMIN_VECTOR);
        let other = SigningSecret::admin_from_identity(&age::x25519::Identity::generate());
        assert_ne!(admin.public(), other.public());
    }

    const ADMIN_VECTOR: &str = "3ec49e80f879805708e516a9c73836b33180bb085d90be79af31981f2396abb3";
}
