use crate::cli::context::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Write the reader identity as a plain age identity file (keep it offline)
    ExportIdentity {
        /// File to create (must not exist); readable by its owner only
        #[arg(long)]
        out: PathBuf,
    },
    /// Store the reader identity in the store wrapped with a (new) passphrase
    SetPassphrase,
    /// Also wrap new packs to this age recipient, e.g. an offline key (needs the reader identity)
    AddRecipient {
        /// The age recipient (age1...) to add
        recipient: String,
    },
    /// Stop wrapping new packs to this age recipient (needs the reader identity)
    RemoveRecipient {
        /// The age recipient (age1...) to remove
        recipient: String,
    },
    /// Show the recipients and the admin key, and whether the config verified
    List,
}

/// `vault key ...`.
pub fn key(ctx: &Context, cmd: KeyCommand) -> Result<u8> {
    match cmd {
        KeyCommand::ExportIdentity { out } => key_export_identity(ctx, &out),
        KeyCommand::SetPassphrase => key_set_passphrase(ctx),
        KeyCommand::AddRecipient { recipient } => key_add_recipient(ctx, &recipient),
        KeyCommand::RemoveRecipient { recipient } => key_remove_recipient(ctx, &recipient),
        KeyCommand::List => key_list(ctx),
    }
}

/// `vault key export-identity --out FILE`: the reader identity as a plain age identity file.
fn key_export_identity(ctx: &Context, out: &Path) -> Result<u8> {
    let (_, reader) = ctx.reader()?;
    if out.exists() {
        bail!("{} already exists; choose a new file name", out.display());
    }
    vault::keys::write_private_file(out, vault::keys::identity_file_text(&reader).as_bytes())
        .with_context(|| format!("write {}", out.display()))?;
    crate::cli::output::set_result(serde_json::json!({ "identity_file": out }));
    outln!(
        "wrote the reader identity to {}: it reads every snapshot of this store; keep it offline",
        out.display()
    );
    Ok(0)
}

/// `vault key set-passphrase`: (re)wrap the reader identity in the store.
fn key_set_passphrase(ctx: &Context) -> Result<u8> {
    let (repo, reader) = ctx.reader()?;
    let pass = ctx.new_passphrase()?.ok_or_else(|| {
        anyhow!(
            "no passphrase given: set VAULT_PASSPHRASE, --passphrase-file, or run on a terminal"
        )
    })?;
    vault::keys::put_reader_object(repo.backend.as_ref(), &reader, &pass)?;
    crate::cli::output::set_result(serde_json::json!({ "store": repo.location() }));
    outln!(
        "the reader identity is now stored in {} wrapped with the passphrase",
        repo.location()
    );
    Ok(0)
}

/// `vault key add-recipient AGE1...`: new packs are also wrapped to this recipient.
fn key_add_recipient(ctx: &Context, recipient: &str) -> Result<u8> {
    let mut a = ctx.admin()?;
    let recipient = recipient.trim().to_string();
    vault::crypto::parse_recipients(std::slice::from_ref(&recipient))?;
    if a.repo.config.recipients.contains(&recipient) {
        crate::cli::output::set_result(serde_json::json!({
            "recipient": recipient,
            "added": false,
            "store": a.repo.location(),
        }));
        outln!(
            "{recipient} is already a recipient of the store at {}",
            a.repo.location()
        );
        return Ok(0);
    }
    a.repo.config.recipients.push(recipient.clone());
    let all = vault::crypto::parse_recipients(&a.repo.config.recipients)?;
    // The id key first, so the new reader can also set up writers; then the signed config.
    vault::keys::put_idkey_object(a.repo.backend.as_ref(), &all, a.keys.id_key())?;
    a.repo.sign_config(&a.admin)?;
    crate::cli::output::set_result(serde_json::json!({
        "recipient": recipient,
        "added": true,
        "store": a.repo.location(),
    }));
    outln!(
        "added recipient {recipient}: packs written from now on (snapshots and prune's repacks) can be read \
         with its identity; packs written before cannot"
    );
    Ok(0)
}

/// `vault key remove-recipient AGE1...`: new packs are no longer wrapped to it.
fn key_remove_recipient(ctx: &Context, recipient: &str) -> Result<u8> {
    let mut a = ctx.admin()?;
    let recipient = recipient.trim().to_string();
    if recipient == a.identity.to_public().to_string() {
        bail!("{recipient} is the admin's own reader identity; it cannot be removed (the store would become unreadable to its admin)");
    }
    let before = a.repo.config.recipients.len();
    a.repo.config.recipients.retain(|r| r.trim() != recipient);
    if a.repo.config.recipients.len() == before {
        bail!(
            "{recipient} is not a recipient of the store at {} (`vault key list` shows them)",
            a.repo.location()
        );
    }
    a.repo.sign_config(&a.admin)?;
    let all = vault::crypto::parse_recipients(&a.repo.config.recipients)?;
    vault::keys::put_idkey_object(a.repo.backend.as_ref(), &all, a.keys.id_key())?;
    crate::cli::output::set_result(serde_json::json!({
        "recipient": recipient,
        "removed": true,
        "store": a.repo.location(),
    }));
    outln!(
        "removed recipient {recipient}: packs written from now on are not wrapped to it. It can still read \
         the packs written before; to end that, restore or copy what matters and prune with repacking"
    );
    Ok(0)
}

/// `vault key list`: the recipients and admin key, and whether the config verified.
fn key_list(ctx: &Context) -> Result<u8> {
    let (repo, _) = ctx.meta_keys()?;
    crate::cli::output::set_result(serde_json::json!({
        "store_id": repo.config.store_id,
        "store": repo.location(),
        "format": repo.config.version,
        "signed": !repo.is_legacy(),
        "admin_key": repo.config.admin_key,
        "config_verified": !repo.is_legacy() && repo.trust.config_verified,
        "recipients": repo.config.recipients,
    }));
    dataln!("store {} at {}", repo.config.store_id, repo.location());
    if repo.is_legacy() {
        dataln!("format 1: config not signed (run `vault upgrade` with the reader identity)");
    } else {
        dataln!(
            "format {}: config signed by admin key {} ({})",
            repo.config.version,
            repo.config.admin_key.as_deref().unwrap_or("?"),
            if repo.trust.config_verified {
                "verified"
            } else {
                "NOT verified with a key this host trusts"
            }
        );
    }
    dataln!("recipients (pack data keys are wrapped to each):");
    for r in &repo.config.recipients {
        dataln!("  {r}");
    }
    Ok(0)
}
