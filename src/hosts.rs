//! The host registry: which snapshotting hosts the admin authorised, and with which keys.
//!
//! `keys/hosts` is a JSON [`Registry`] signed by the store's admin key (see [`crate::sign`];
//! purpose `host registry`, kind `keys`, name `hosts`). Each entry names a host and one
//! Ed25519 public key; a host set up again gets a further entry, so the records its
//! earlier keys signed keep verifying. Revoking a host marks all its entries revoked
//! (with the time): records they signed before still verify, and are shown as written by
//! a revoked host; records they claim to have written after the revocation are flagged.
//!
//! Invariants: the registry is only ever written by a holder of the reader identity (the
//! admin key signs it); readers and writers verify it against the admin key they pinned,
//! and refuse a registry that does not verify, naming it.

use crate::backend::{Backend, Kind};
use crate::error::{Error, Result};
use crate::sign::{self, SigningSecret};
use serde::{Deserialize, Serialize};

pub const HOSTS_OBJECT: &str = "hosts";
const PURPOSE: &str = "host registry";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registry {
    pub store_id: String,
    pub hosts: Vec<HostEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostEntry {
    pub name: String,
    /// Ed25519 public key, hex.
    pub key: String,
    /// RFC 3339 time the admin authorised it.
    pub added: String,
    /// RFC 3339 time the admin revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl Registry {
    pub fn new(store_id: &str) -> Registry {
        Registry {
            store_id: store_id.to_string(),
            hosts: Vec::new(),
            signature: None,
        }
    }

    fn unsigned(&self) -> Registry {
        Registry {
            signature: None,
            ..self.clone()
        }
    }

    /// Loads and verifies `keys/hosts`. A store without one has no authorised hosts.
    pub fn load(backend: &dyn Backend, store_id: &str, admin: &[u8; 32]) -> Result<Registry> {
        let what = "host registry keys/hosts";
        let bytes = match backend.get(Kind::Keys, HOSTS_OBJECT) {
            Ok(b) => b,
            Err(Error::Missing { .. }) => return Ok(Registry::new(store_id)),
            Err(e) => return Err(e),
        };
        let reg: Registry = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(what, format!("not a host registry: {e}")))?;
        sign::verify_json(
            admin,
            reg.signature.as_deref(),
            PURPOSE,
            store_id,
            "keys",
            HOSTS_OBJECT,
            &reg.unsigned(),
            what,
        )?;
        if reg.store_id != store_id {
            return Err(Error::corrupt(
                what,
                format!("belongs to store {}, not {store_id}", reg.store_id),
            ));
        }
        Ok(reg)
    }

    /// Signs with the admin key and stores it.
    pub fn save(&mut self, backend: &dyn Backend, admin: &SigningSecret) -> Result<()> {
        let unsigned = self.unsigned();
        self.signature = Some(sign::sign_json(
            admin,
            PURPOSE,
            &self.store_id,
            "keys",
            HOSTS_OBJECT,
            &unsigned,
        ));
        let bytes = serde_json::to_vec_pretty(self).expect("serialisable");
        backend.put(Kind::Keys, HOSTS_OBJECT, &bytes)
    }

    /// Authorises a new key for `name`.
    pub fn add(&mut self, name: &str, key: &[u8; 32]) -> Result<()> {
        validate_name(name)?;
        self.hosts.push(HostEntry {
            name: name.to_string(),
            key: sign::public_hex(key),
            added: chrono::Utc::now().to_rfc3339(),
            revoked: None,
        });
        Ok(())
    }

    /// Revokes every key of `name`; the number revoked.
    pub fn revoke(&mut self, name: &str) -> usize {
        let now = chrono::Utc::now().to_rfc3339();
        let mut n = 0;
        for h in self.hosts.iter_mut().filter(|h| h.name == name) {
            if h.revoked.is_none() {
                h.revoked = Some(now.clone());
                n += 1;
            }
        }
        n
    }

    /// The entry holding this public key, if the admin ever authorised it.
    pub fn by_key(&self, key: &[u8; 32]) -> Option<&HostEntry> {
        let hex = sign::public_hex(key);
        self.hosts.iter().find(|h| h.key == hex)
    }
}

/// Host names: what `hostname` prints, without whitespace or control characters.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 253
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "host name {name:?} is not valid: use the host's name (1 to 253 characters, no spaces)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    #[test]
    fn registry_round_trip_and_tamper() {
        let b = MemoryBackend::new("hosts");
        let admin = SigningSecret::generate();
        let host = SigningSecret::generate();
        let mut reg = Registry::new("00ff");
        reg.add("platform-1", &host.public()).unwrap();
        reg.save(&b, &admin).unwrap();
        let back = Registry::load(&b, "00ff", &admin.public()).unwrap();
        assert_eq!(back.by_key(&host.public()).unwrap().name, "platform-1");
        // Another store's id, or another admin: refused.
        assert!(Registry::load(&b, "00fe", &admin.public()).is_err());
        assert!(Registry::load(&b, "00ff", &SigningSecret::generate().public()).is_err());
        // An entry added by someone without the admin key: refused.
        let mut forged: Registry =
            serde_json::from_slice(&b.get(Kind::Keys, HOSTS_OBJECT).unwrap()).unwrap();
        forged.hosts[0].name = "worker-1".into();
        b.put(
            Kind::Keys,
            HOSTS_OBJECT,
            &serde_json::to_vec(&forged).unwrap(),
        )
        .unwrap();
        let err = Registry::load(&b, "00ff", &admin.public()).unwrap_err();
        assert!(err.to_string().contains("keys/hosts"), "{err}");
    }
}
