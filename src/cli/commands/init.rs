use crate::cli::context::Context;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use vault::keys::WriterKeyFile;
use vault::repo::{ChunkerParams, Repo};

// `vault init`'s options.
#[derive(clap::Args)]
pub struct InitArgs {
    /// Extra age recipient that can read the store (for example an offline key); repeatable
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
    /// S3 Object Lock for every object: MODE:DAYS (governance or compliance), e.g. governance:30
    #[arg(long)]
    pub object_lock: Option<vault::backend::ObjectLock>,
    #[command(flatten)]
    pub escrow: crate::cli::secrets::EscrowInitArgs,
    #[command(flatten)]
    pub reader: ReaderChoice,
}

/// `vault init`: the store and this host's keys, then the first escrow recipients.
pub fn init(ctx: &Context, args: InitArgs) -> Result<u8> {
    let repo = create_store(ctx, &args.recipients, args.object_lock, &args.reader)?;
    let escrow = crate::cli::secrets::init_escrow_from_args(repo.backend.as_ref(), &args.escrow)?;
    match &escrow {
        Some(set) => outln!("platform secrets will be sealed to {}", set.describe()),
        None => outln!(
            "no escrow recipients yet: platform secrets are sealed once `vault secrets recipients set` names them"
        ),
    }
    crate::cli::output::extend_result(serde_json::json!({
        "escrow": escrow.map(|set| set.describe()),
    }));
    Ok(0)
}

/// How the store will be read back: a passphrase, other recipients, or an identity file
/// the operator takes off this host.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ReaderChoice {
    /// Keep no copy of the reader identity in the store: write it to a file instead
    /// (--identity-out, else the default key folder) for you to move offline
    #[arg(long)]
    pub no_passphrase: bool,
    /// Write the reader identity (a plain age identity file, mode 0600) to FILE; never
    /// under a folder the snapshots save
    #[arg(long, value_name = "FILE")]
    pub identity_out: Option<PathBuf>,
}

/// The passphrase for the new store, or `None` when the operator chose to go without
/// one. Without a terminal, going without one must be an explicit choice: otherwise the
/// only key to the backups would quietly end up on the host they protect.
fn choose_passphrase(
    ctx: &Context,
    extra_recipients: &[String],
    choice: &ReaderChoice,
) -> Result<Option<secrecy::SecretString>> {
    if choice.no_passphrase {
        return Ok(None);
    }
    // A given passphrase is rated like a typed one.
    if ctx.given_passphrase()?.is_some() || crate::cli::terminal::available() {
        return ctx.new_passphrase();
    }
    if !extra_recipients.is_empty() || choice.identity_out.is_some() {
        return Ok(None);
    }
    bail!(
        "refusing to create the store at {} without a passphrase and without a terminal to ask for one: the only key that can read the backups would be left on this host. Give one of: a passphrase (VAULT_PASSPHRASE or --passphrase-file), `vault init --recipient AGE1...` (an offline age key reads the store), or `vault init --no-passphrase --identity-out FILE` (the reader identity goes to FILE; move it offline). Nothing was created",
        ctx.store_location()
    )
}

/// Lexically clean absolute form of `p`, with its existing folders' symlinks resolved.
fn resolved(p: &Path) -> Result<PathBuf> {
    let abs = std::env::current_dir()
        .context("read the current folder")?
        .join(p);
    let mut clean = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    // Resolve the longest existing ancestor, so a symlink into a saved folder counts.
    let mut base = clean.clone();
    let mut rest = Vec::new();
    while !base.exists() {
        match (base.file_name().map(|n| n.to_owned()), base.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                base = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&base).unwrap_or(base);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    Ok(out)
}

/// Refuses an identity file location inside a folder that snapshots save (the default
/// paths and the configured ones): the key would travel into the store it opens.
fn check_identity_location(ctx: &Context, path: &Path) -> Result<()> {
    let at = resolved(path)?;
    let mut saved: Vec<PathBuf> = vault::config::DEFAULT_PATHS
        .iter()
        .map(PathBuf::from)
        .collect();
    saved.extend(ctx.config.paths.clone().unwrap_or_default());
    for s in saved {
        let s_res = resolved(&s)?;
        if at.starts_with(&s) || at.starts_with(&s_res) {
            bail!(
                "refusing to write the reader identity to {}: it is inside {}, which snapshots save, so the key                  would be stored beside the backups it opens; choose a file elsewhere (--identity-out). Nothing                  was created",
                path.display(),
                s.display()
            );
        }
    }
    Ok(())
}

pub fn create_store(
    ctx: &Context,
    extra_recipients: &[String],
    object_lock: Option<vault::backend::ObjectLock>,
    choice: &ReaderChoice,
) -> Result<Repo> {
    let passphrase = choose_passphrase(ctx, extra_recipients, choice)?;
    // Where the reader identity goes: the chosen file; without a passphrase and without
    // other recipients, the default key folder; else nowhere (the passphrase or the
    // recipients read the store).
    let identity_out = match (&choice.identity_out, &passphrase) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => None,
        (None, None) if choice.no_passphrase || extra_recipients.is_empty() => Some(PathBuf::new()),
        (None, None) => None,
    };
    if identity_out
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        check_identity_location(ctx, &vault::config::default_key_dir().join("reader.txt"))?;
    }
    if let Some(p) = identity_out.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        check_identity_location(ctx, p)?;
        if p.exists() {
            bail!(
                "{} already exists; choose a new file for the reader identity (--identity-out). Nothing was created",
                p.display()
            );
        }
    }
    let defaults = ChunkerParams::default();
    let c = &ctx.config.chunker;
    let chunker = ChunkerParams {
        min_size: c.min_size.unwrap_or(defaults.min_size),
        avg_size: c.avg_size.unwrap_or(defaults.avg_size),
        max_size: c.max_size.unwrap_or(defaults.max_size),
    };
    let backend = ctx.backend()?;
    let compression_level = ctx
        .config
        .compression
        .level
        .unwrap_or(vault::repo::DEFAULT_COMPRESSION_LEVEL);
    let created = vault::repo::create(
        backend,
        chunker,
        compression_level,
        extra_recipients,
        passphrase.as_ref(),
        object_lock,
    )?;
    let mut repo = created.repo;
    let store_id = repo.config.store_id.clone();
    let writer_path = ctx.writer_key_path(&store_id);
    let admin = vault::sign::SigningSecret::admin_from_identity(&created.identity);
    let host = ctx.hostname();
    let host_key = crate::cli::context::enrol_host(&mut repo, &admin, &host)?;
    WriterKeyFile {
        store_id: store_id.clone(),
        store: repo.location(),
        id_key: created.id_key.to_hex().to_string(),
        recipients: repo.config.recipients.clone(),
        admin_key: Some(vault::sign::public_hex(&admin.public())),
        host: Some(host.clone()),
        host_key: Some(host_key.seed_hex().to_string()),
    }
    .save(&writer_path)?;
    outln!("created store {} at {}", store_id, repo.location());
    outln!(
        "this host's writer key: {} (lets it write snapshots as host {host}, not read them)",
        writer_path.display()
    );
    crate::cli::output::set_result(serde_json::json!({
        "store_id": store_id,
        "store": repo.location(),
        "writer_key": writer_path,
        "passphrase": passphrase.is_some(),
        "identity_file": passphrase.is_none().then(|| ctx.default_identity_path(&store_id)),
    }));
    if passphrase.is_some() {
        outln!(
            "the reader identity is stored in the store, wrapped with your passphrase: the store plus the \
             passphrase restore everything. Keep the passphrase safe and apart from this host."
        );
    }
    if let Some(chosen) = identity_out {
        let id_path = if chosen.as_os_str().is_empty() {
            ctx.default_identity_path(&store_id)
        } else {
            chosen
        };
        vault::keys::write_private_file(
            &id_path,
            vault::keys::identity_file_text(&created.identity).as_bytes(),
        )
        .with_context(|| format!("write the reader identity to {}", id_path.display()))?;
        dataln!("");
        dataln!("KEEP THIS FILE SAFE: {}", id_path.display());
        if passphrase.is_some() {
            dataln!(
                "  It reads every snapshot of this store, as the passphrase does. Move it offline, off this \
                 host: snapshots keep working with the writer key alone."
            );
        } else {
            dataln!(
                "  It is the only key that can read these backups (no passphrase was given, so the store holds no \
                 copy). Copy it somewhere offline now; without it no snapshot can ever be restored. You may then \
                 delete it from this host: snapshots keep working with the writer key alone. To keep a copy in the \
                 store wrapped with a passphrase instead, run `vault key set-passphrase`."
            );
        }
    } else if passphrase.is_none() {
        dataln!(
            "no passphrase and no identity file: the store is read with the identity of a recipient you gave \
             (--recipient); this host holds no key that can read it"
        );
    }
    Ok(repo)
}
