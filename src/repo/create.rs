//! Creating a store: folders, `keys/*`, and last the `config` object, whose presence is
//! what makes a store a store.

use super::{ChunkerParams, Repo, StoreConfig, Trust, FORMAT_NAME, FORMAT_VERSION};
use crate::backend::BackendRef;
use crate::error::{Error, Result};
use crate::sign::SigningSecret;

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
    compression_level: i32,
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
    if !(1..=22).contains(&compression_level) {
        return Err(Error::Usage(format!(
            "the compression level must be 1 to 22 (got {compression_level})"
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
        compression_level,
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

/// A new store on `backend` with the default chunker and compression, no passphrase and no
/// Object Lock: the store unit tests start from.
#[cfg(test)]
pub(crate) fn create_default(backend: crate::backend::BackendRef) -> Created {
    create(
        backend,
        ChunkerParams::default(),
        crate::repo::DEFAULT_COMPRESSION_LEVEL,
        &[],
        None,
        None,
    )
    .expect("create a store")
}
