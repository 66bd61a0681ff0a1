//! 32-byte object ids, shown as lowercase hex.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl Id {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Id> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }

    /// The first 8 hex digits, enough to name a snapshot on the command line.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn random() -> Id {
        let mut out = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut out);
        Id(out)
    }

    /// Plain (unkeyed) BLAKE3 of bytes that are already ciphertext, such as a whole pack.
    pub fn hash_public(data: &[u8]) -> Id {
        Id(*blake3::hash(data).as_bytes())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
