use crate::cli::context::Context;
use anyhow::Result;
use vault::keys::WriterKeyFile;
use vault::repo::{ChunkerParams, Repo};

pub fn init(
    ctx: &Context,
    extra_recipients: &[String],
    object_lock: Option<vault::backend::ObjectLock>,
) -> Result<Repo> {
    let passphrase = ctx.new_passphrase()?;
    let defaults = ChunkerParams::default();
    let c = &ctx.config.chunker;
    let chunker = ChunkerParams {
        min_size: c.min_size.unwrap_or(defaults.min_size),
        avg_size: c.avg_size.unwrap_or(defaults.avg_size),
        max_size: c.max_size.unwrap_or(defaults.max_size),
    };
    let backend = ctx.backend()?;
    let created = vault::repo::create(
        backend,
        chunker,
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
    println!("created store {} at {}", store_id, repo.location());
    println!(
        "this host's writer key: {} (lets it write snapshots as host {host}, not read them)",
        writer_path.display()
    );
    if passphrase.is_some() {
        println!(
            "the reader identity is stored in the store, wrapped with your passphrase: the store plus the \
             passphrase restore everything. Keep the passphrase safe and apart from this host."
        );
    } else {
        let id_path = ctx.default_identity_path(&store_id);
        vault::keys::write_private_file(
            &id_path,
            vault::keys::identity_file_text(&created.identity).as_bytes(),
        )?;
        println!();
        println!("KEEP THIS FILE SAFE: {}", id_path.display());
        println!(
            "  It is the only key that can read these backups (no passphrase was given, so the store holds no \
             copy). Copy it somewhere offline now; without it no snapshot can ever be restored. You may then \
             delete it from this host: snapshots keep working with the writer key alone. To keep a copy in the \
             store wrapped with a passphrase instead, run `vault key set-passphrase`."
        );
    }
    Ok(repo)
}
