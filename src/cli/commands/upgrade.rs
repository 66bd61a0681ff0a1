use crate::cli::context::Context;
use anyhow::Result;
use vault::keys::WriterKeyFile;

/// `vault upgrade`: bring a store to the current format (needs the reader identity).
pub fn upgrade(ctx: &Context) -> Result<u8> {
    let (mut repo, keys, identity) = ctx.reader_keys()?;
    let report = vault::upgrade::run(&mut repo, &keys, &identity, ctx.lock_wait())?;
    let mut result = serde_json::json!({
        "store": repo.location(),
        "upgraded": report.upgraded,
        "format": repo.config.version,
        "from_format": report.from_version,
        "snapshots_rebound": report.snapshots_rebound,
        "index_files_rebound": report.index_files_rebound,
        "kept_locked": report.kept_locked,
        "host_authorised": null,
    });
    if !report.upgraded {
        crate::cli::output::set_result(result);
        outln!(
            "the store at {} is already of the current format ({})",
            repo.location(),
            repo.config.version
        );
        return Ok(0);
    }
    if report.from_version >= vault::repo::SIGNED_VERSION {
        crate::cli::output::set_result(result);
        outln!(
            "upgraded the store at {} from format {} to {}: long files' chunk references now go into chunk lists \
             of their own; vault releases that only read format {} refuse the store from now on, so upgrade \
             vault on every host that uses it",
            repo.location(),
            report.from_version,
            repo.config.version,
            report.from_version
        );
        return Ok(0);
    }
    outln!(
        "upgraded the store at {} to format {}: config signed, host registry created, {} snapshot records and \
         {} index files bound to the store (the admin attests the snapshots taken before){}",
        repo.location(),
        repo.config.version,
        report.snapshots_rebound,
        report.index_files_rebound,
        if report.kept_locked.is_empty() {
            String::new()
        } else {
            format!("; {} old index files are under retention and stay", report.kept_locked.len())
        }
    );
    // This host's writer key, if it has one, becomes a signing host key.
    let path = ctx.writer_key_path(&repo.config.store_id);
    if path.exists() {
        let mut file = WriterKeyFile::load(&path)?;
        if file.host_key.is_none() {
            let admin = vault::sign::SigningSecret::admin_from_identity(&identity);
            let name = ctx.hostname();
            let key = crate::cli::context::enrol_host(&mut repo, &admin, &name)?;
            file.admin_key = Some(vault::sign::public_hex(&admin.public()));
            file.host = Some(name.clone());
            file.host_key = Some(key.seed_hex().to_string());
            file.recipients = repo.config.recipients.clone();
            file.save(&path)?;
            result["host_authorised"] = name.clone().into();
            outln!(
                "this host is authorised as {name}; its writer key {} now signs its snapshots",
                path.display()
            );
        }
    }
    crate::cli::output::set_result(result);
    outln!(
        "other snapshotting hosts need new writer keys: run `vault host add NAME --out FILE` for each and install FILE there"
    );
    Ok(0)
}
