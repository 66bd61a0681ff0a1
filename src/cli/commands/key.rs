use crate::cli::context::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use std::path::Path;

/// `vault key export-identity --out FILE`: the reader identity as a plain age identity file.
pub fn key_export_identity(ctx: &Context, out: &Path) -> Result<u8> {
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
pub fn key_set_passphrase(ctx: &Context) -> Result<u8> {
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
