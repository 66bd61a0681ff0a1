//! Where the store, keys, passphrase and cache come from: flags first, then environment,
//! then the configuration file, then defaults.

use super::terminal::{confirm, prompt};
use anyhow::{bail, Context as _, Result};
use secrecy::SecretString;
use std::path::PathBuf;
use vault::backend::BackendRef;
use vault::cache::Cache;
use vault::config::Config;
use vault::crypto::WriterKeys;
use vault::keys::{self, WriterKeyFile};
use vault::repo::Repo;

pub struct Overrides {
    pub store: Option<String>,
    pub identity: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    pub writer_key: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub threads: Option<usize>,
    pub lock_wait: std::time::Duration,
    /// Accept a new passphrase the strength check calls weak.
    pub allow_weak_passphrase: bool,
}

pub struct Context {
    pub config: Config,
    ov: Overrides,
}

/// What a snapshotting host holds.
pub struct Writer {
    pub repo: Repo,
    pub keys: WriterKeys,
    pub recipients: Vec<age::x25519::Recipient>,
    /// The host name this host's key is authorised for (signed stores).
    pub host: Option<String>,
}

/// Says once per run that a store of the first format is not authenticated.
pub fn warn_if_legacy(repo: &Repo) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if repo.is_legacy() {
        WARNED.call_once(|| {
            errln!(
                "vault: warning: the store at {} is of the first format: its config, recipients and snapshot \
                 records are not signed, so anyone who can write to the store could redirect new backups or \
                 forge snapshots. Run `vault upgrade` with the reader identity to sign it.",
                repo.location()
            )
        });
    }
}

impl Context {
    pub fn new(config: Config, ov: Overrides) -> Context {
        Context { config, ov }
    }

    pub fn store_location(&self) -> String {
        self.ov
            .store
            .clone()
            .or_else(|| self.config.store.clone())
            .unwrap_or_else(vault::config::default_store)
    }

    /// True when no store was named anywhere, so the embedded default is in use and may
    /// be created on first use.
    pub fn store_is_default(&self) -> bool {
        self.ov.store.is_none() && self.config.store.is_none()
    }

    /// Workers: one more than the cores, because a worker waiting for its pack to be
    /// fsynced (or uploaded) would otherwise leave a core idle; measured 17 % faster
    /// first snapshots on two cores.
    pub fn threads(&self) -> usize {
        self.ov
            .threads
            .or(self.config.threads)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    + 1
            })
            .max(1)
    }

    pub fn lock_wait(&self) -> std::time::Duration {
        self.ov.lock_wait
    }

    pub fn backend(&self) -> Result<BackendRef> {
        Ok(vault::backend::open_with(
            &self.store_location(),
            &self.config.s3,
        )?)
    }

    pub fn open_repo(&self) -> Result<Repo> {
        let repo = Repo::open(self.backend()?)?;
        warn_if_legacy(&repo);
        Ok(repo)
    }

    /// The host name this host records: the configured one, else the system's.
    pub fn hostname(&self) -> String {
        vault::select::this_host(self.config.hostname.as_deref())
    }

    fn cache_dir(&self) -> PathBuf {
        self.ov
            .cache_dir
            .clone()
            .or_else(|| self.config.cache_dir.clone())
            .unwrap_or_else(vault::config::default_cache_dir)
    }

    pub fn open_cache(&self, repo: &Repo) -> Result<Cache> {
        Ok(Cache::open(&self.cache_dir(), &repo.config.store_id)?)
    }

    /// Where a restore from a remote store spools the pack ranges it needs: beside the
    /// cache (restores from a local folder read it directly).
    pub fn restore_spool(&self) -> Result<Option<PathBuf>> {
        if !self.store_location().starts_with("s3://") {
            return Ok(None);
        }
        Ok(Some(
            self.cache_dir()
                .join(format!("restore-spool-{}", std::process::id())),
        ))
    }

    pub fn writer_key_path(&self, store_id: &str) -> PathBuf {
        self.ov
            .writer_key
            .clone()
            .or_else(|| self.config.writer_key.clone())
            .unwrap_or_else(|| {
                vault::config::default_key_dir().join(format!("writer-{store_id}.json"))
            })
    }

    pub fn default_identity_path(&self, store_id: &str) -> PathBuf {
        vault::config::default_key_dir().join(format!("reader-{store_id}.txt"))
    }

    fn explicit_identity(&self) -> Option<PathBuf> {
        self.ov
            .identity
            .clone()
            .or_else(|| self.config.identity_file.clone())
    }

    /// The passphrase given without asking: VAULT_PASSPHRASE, or a passphrase file.
    pub fn given_passphrase(&self) -> Result<Option<SecretString>> {
        if let Some(p) = super::passphrase::from_env("VAULT_PASSPHRASE") {
            return Ok(Some(p));
        }
        let file = self
            .ov
            .passphrase_file
            .clone()
            .or_else(|| self.config.passphrase_file.clone());
        file.map(|path| super::passphrase::from_file(&path))
            .transpose()
    }

    /// A passphrase for a new wrapping: given, or asked twice on the terminal; refused
    /// when weak unless `--allow-weak-passphrase`.
    pub fn new_passphrase(&self) -> Result<Option<SecretString>> {
        let pass = self.new_passphrase_unrated()?;
        if let Some(p) = &pass {
            if !self.ov.allow_weak_passphrase {
                vault::passphrase::check_strength(p, &[&self.hostname(), "vault", "travis"])?;
            }
        }
        Ok(pass)
    }

    fn new_passphrase_unrated(&self) -> Result<Option<SecretString>> {
        if let Some(p) = self.given_passphrase()? {
            return Ok(Some(p));
        }
        let Some(first) = prompt("New store passphrase (empty for none): ")? else {
            return Ok(None);
        };
        if secrecy::ExposeSecret::expose_secret(&first).is_empty() {
            return Ok(None);
        }
        let pass = confirm(
            first,
            "Repeat the passphrase: ",
            "the two passphrases differ; nothing was changed",
        )?;
        Ok(Some(pass))
    }

    /// The reader identity: an identity file if one is named, else the passphrase (given,
    /// or asked on the terminal), else this host's default identity file.
    pub fn reader(&self) -> Result<(Repo, age::x25519::Identity)> {
        self.reader_in(self.open_repo()?)
    }

    fn reader_in(&self, mut repo: Repo) -> Result<(Repo, age::x25519::Identity)> {
        let id = self.reader_identity(&repo)?;
        self.authenticate_reader(&mut repo, &id)?;
        Ok((repo, id))
    }

    /// Verifies the config with the admin key the reader identity derives. An identity
    /// that is not the admin's (an extra recipient) cannot check it: then the admin key
    /// pinned in this host's writer key file is used if there is one; else nothing is
    /// verified: recipients stay unauthenticated (prune and host setup refuse) and no
    /// snapshot counts as verified (`latest` finds none; ids still restore, flagged).
    fn authenticate_reader(&self, repo: &mut Repo, id: &age::x25519::Identity) -> Result<()> {
        if repo.is_legacy() {
            return Ok(());
        }
        let secret = vault::sign::SigningSecret::admin_from_identity(id);
        let admin = secret.public();
        if repo.claimed_admin() == Some(admin) {
            repo.authenticate(&admin)?;
            repo.trust.admin_signer = Some(std::sync::Arc::new(secret));
            return Ok(());
        }
        let path = self.writer_key_path(&repo.config.store_id);
        if path.exists() {
            let file = WriterKeyFile::load(&path)?;
            if let Some((pinned, _, _)) = file.host_identity(&path)? {
                repo.authenticate(&pinned)?;
                return Ok(());
            }
        }
        errln!(
            "vault: warning: the reader identity {} is not the admin identity of the store at {} (an extra \
             recipient, or the config's admin key was replaced by someone without the reader identity): the \
             config and snapshot signatures cannot be checked, so no snapshot counts as verified",
            id.to_public(),
            repo.location()
        );
        Ok(())
    }

    fn reader_identity(&self, repo: &Repo) -> Result<age::x25519::Identity> {
        if let Some(path) = self.explicit_identity() {
            return Ok(keys::load_identity_file(&path)?);
        }
        if let Some(pass) = self.given_passphrase()? {
            return Ok(keys::unlock_reader_object(repo.backend.as_ref(), &pass)?);
        }
        let default = self.default_identity_path(&repo.config.store_id);
        if default.exists() {
            return Ok(keys::load_identity_file(&default)?);
        }
        if let Some(pass) = prompt(&format!(
            "Passphrase for the store at {}: ",
            repo.location()
        ))? {
            return Ok(keys::unlock_reader_object(repo.backend.as_ref(), &pass)?);
        }
        bail!(
            "reading the store at {} needs its reader identity: give --identity FILE, or the store passphrase \
             (VAULT_PASSPHRASE or --passphrase-file); a snapshotting host's writer key cannot read backups",
            repo.location()
        )
    }

    /// The admin: the reader identity whose derived admin key signed the config.
    pub fn admin(&self) -> Result<Admin> {
        let (repo, keys, identity) = self.reader_keys()?;
        if repo.is_legacy() {
            bail!(
                "the store at {} is of the first format (unsigned): run `vault upgrade` with the reader identity first",
                repo.location()
            );
        }
        let admin = vault::sign::SigningSecret::admin_from_identity(&identity);
        if repo.claimed_admin() != Some(admin.public()) || !repo.trust.config_verified {
            bail!(
                "the reader identity {} is not the admin identity of the store at {}: only the identity the \
                 store was created with (or its passphrase) can change recipients or authorise hosts",
                identity.to_public(),
                repo.location()
            );
        }
        Ok(Admin {
            repo,
            keys,
            identity,
            admin,
        })
    }

    /// A reader's session: the store, its keys unlocked once (one passphrase prompt at
    /// most), and the cache folder.
    pub fn reader_session(&self) -> Result<vault::Session> {
        let (repo, identity) = self.reader()?;
        Ok(vault::Session::unlock(repo, identity, self.cache_dir())?)
    }

    /// Reader identity plus the derived keys.
    pub fn reader_keys(&self) -> Result<(Repo, WriterKeys, age::x25519::Identity)> {
        self.reader_keys_in(self.open_repo()?)
    }

    fn reader_keys_in(&self, repo: Repo) -> Result<(Repo, WriterKeys, age::x25519::Identity)> {
        let (repo, identity) = self.reader_in(repo)?;
        let id_key = keys::unlock_idkey_object(repo.backend.as_ref(), &identity)?;
        Ok((repo, WriterKeys::from_id_key(id_key), identity))
    }

    /// The writer's keys: this host's writer key file, or, failing that, the reader's
    /// (given without prompting), from which a writer key file is made for next time.
    pub fn writer(&self) -> Result<Writer> {
        self.writer_in(self.open_repo()?)
    }

    /// True when the reader identity can be had without asking anyone.
    fn reader_given(&self, store_id: &str) -> Result<bool> {
        Ok(self.explicit_identity().is_some()
            || self.given_passphrase()?.is_some()
            || self.default_identity_path(store_id).exists())
    }

    fn writer_in(&self, mut repo: Repo) -> Result<Writer> {
        let path = self.writer_key_path(&repo.config.store_id);
        if path.exists() {
            let file = WriterKeyFile::load(&path)?;
            if file.store_id != repo.config.store_id {
                bail!(
                    "writer key {} belongs to store {}, but the store at {} is {}; use --writer-key to pick the right one",
                    path.display(),
                    file.store_id,
                    repo.location(),
                    repo.config.store_id
                );
            }
            let keys = file.writer_keys(&path)?;
            let host = match file.host_identity(&path)? {
                Some((admin, host, key)) => {
                    repo.authenticate(&admin).with_context(|| {
                        format!(
                            "the store's config does not verify with the admin key pinned in {}",
                            path.display()
                        )
                    })?;
                    repo.set_signer(&host, key);
                    Some(host)
                }
                None if repo.is_legacy() => None,
                None => bail!(
                    "writer key {} is of the first format (no host signing key), but the store at {} is signed: \
                     on the admin host run `vault host add NAME --out FILE` and install FILE here (or give the \
                     store passphrase or --identity once to enrol this host)",
                    path.display(),
                    repo.location()
                ),
            };
            // Signed stores: the recipients of the verified config (so `vault key
            // add-recipient` reaches every host). First format: the ones pinned here.
            let recipients = if repo.is_legacy() {
                vault::crypto::parse_recipients(&file.recipients)?
            } else {
                repo.recipients()?
            };
            return Ok(Writer {
                repo,
                keys,
                recipients,
                host,
            });
        }
        if !self.reader_given(&repo.config.store_id)? {
            bail!(
                "this host has no writer key for the store at {} (looked for {}): copy it from the host that ran \
                 `vault init`, or give the store passphrase (VAULT_PASSPHRASE or --passphrase-file) or --identity \
                 once so this host can make its own",
                repo.location(),
                path.display()
            );
        }
        let (mut repo, keys, identity) = self.reader_keys_in(repo)?;
        // Refuses a config it cannot authenticate: a new host must not pin recipients an
        // attacker put there.
        let recipients = repo.recipients()?;
        let mut file = WriterKeyFile {
            store_id: repo.config.store_id.clone(),
            store: repo.location(),
            id_key: keys.id_key().to_hex().to_string(),
            recipients: repo.config.recipients.clone(),
            admin_key: None,
            host: None,
            host_key: None,
        };
        let mut host = None;
        if !repo.is_legacy() {
            let admin = vault::sign::SigningSecret::admin_from_identity(&identity);
            let name = self.hostname();
            let key = enrol_host(&mut repo, &admin, &name)?;
            file.admin_key = Some(vault::sign::public_hex(&admin.public()));
            file.host = Some(name.clone());
            file.host_key = Some(key.seed_hex().to_string());
            repo.set_signer(&name, key);
            host = Some(name);
        }
        file.save(&path)?;
        errln!("vault: wrote this host's writer key to {}", path.display());
        Ok(Writer {
            repo,
            keys,
            recipients,
            host,
        })
    }

    /// The derived keys if this host can get them without asking anyone: its writer key
    /// file, or a reader identity or passphrase given by flag, file or environment.
    pub fn keys_without_prompt(&self) -> Result<Option<WriterKeys>> {
        let repo = self.open_repo()?;
        if self.writer_key_path(&repo.config.store_id).exists() {
            return Ok(Some(self.writer_in(repo)?.keys));
        }
        if self.reader_given(&repo.config.store_id)? {
            return Ok(Some(self.reader_keys_in(repo)?.1));
        }
        Ok(None)
    }

    /// Keys to read metadata (index, snapshot list): the writer key if this host has one,
    /// else the reader's.
    pub fn meta_keys(&self) -> Result<(Repo, WriterKeys)> {
        let repo = self.open_repo()?;
        if self.writer_key_path(&repo.config.store_id).exists() {
            let w = self.writer_in(repo)?;
            return Ok((w.repo, w.keys));
        }
        let (repo, keys, _) = self.reader_keys_in(repo)?;
        Ok((repo, keys))
    }
}

/// What the admin holds: the reader identity and the admin signing key derived from it.
pub struct Admin {
    pub repo: Repo,
    pub keys: WriterKeys,
    pub identity: age::x25519::Identity,
    pub admin: vault::sign::SigningSecret,
}

/// Authorises a fresh host key for `name` in the store's registry (signed by the admin).
pub fn enrol_host(
    repo: &mut Repo,
    admin: &vault::sign::SigningSecret,
    name: &str,
) -> Result<vault::sign::SigningSecret> {
    let mut registry = vault::hosts::Registry::load(
        repo.backend.as_ref(),
        &repo.config.store_id,
        &admin.public(),
    )?;
    let key = vault::sign::SigningSecret::generate();
    registry.add(name, &key.public())?;
    registry.save(repo.backend.as_ref(), admin)?;
    repo.trust.registry = Some(std::sync::Arc::new(registry));
    Ok(key)
}
