use super::human;
use crate::cli::context::Context;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use vault::backup::SnapshotOptions;

pub fn snapshot(
    ctx: &Context,
    tags: Vec<String>,
    host: Option<String>,
    paths: Vec<PathBuf>,
) -> Result<u8> {
    let backend = ctx.backend()?;
    if !backend.exists(vault::backend::Kind::Config, "config")? {
        if ctx.store_is_default() {
            eprintln!("vault: no store yet at {}: creating it", backend.location());
            super::init(ctx, &[], None)?;
        } else {
            return Err(vault::Error::StoreNotFound(backend.location()).into());
        }
    }
    let writer = ctx.writer()?;
    let sources = source_paths(ctx, paths)?;
    let mut cache = ctx.open_cache(&writer.repo)?;
    let hostname = host
        .or_else(|| ctx.config.hostname.clone())
        .unwrap_or_else(vault::host::hostname);
    let opts = SnapshotOptions {
        paths: sources,
        tags,
        hostname,
        excludes: ctx.config.exclude.clone(),
        threads: ctx.threads(),
        lock_wait: ctx.lock_wait(),
    };
    let result = vault::backup::run(
        &writer.repo,
        &writer.keys,
        &writer.recipients,
        &mut cache,
        &opts,
    )?;
    for p in &result.problems {
        if p.changed {
            eprintln!(
                "vault: {} changed during the snapshot: {}",
                p.path.display(),
                p.error
            );
        } else {
            eprintln!("vault: could not read {}: {}", p.path.display(), p.error);
        }
    }
    let s = &result.snapshot.summary;
    println!(
        "snapshot {} saved: {} files, {} folders, {} ({} read, {} new data, {} stored) in {:.2} s",
        result.id.short(),
        s.files,
        s.dirs,
        human(s.bytes),
        human(s.bytes_read),
        human(s.new_bytes),
        human(s.stored_bytes),
        s.duration_ms as f64 / 1000.0
    );
    seal_platform_secrets(ctx, &writer);
    if !result.problems.is_empty() {
        eprintln!(
            "vault: the snapshot is partial: {} entr{} could not be read or changed while read (listed above)",
            result.problems.len(),
            if result.problems.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
        return Ok(crate::exit_partial());
    }
    Ok(0)
}

/// Seals the platform's secrets when their value changed. A host without them (a worker)
/// says nothing; a failure is a warning, because the snapshot itself succeeded.
fn seal_platform_secrets(ctx: &Context, writer: &crate::cli::context::Writer) {
    let key = writer
        .keys
        .derive(vault::crypto::SECRET_FINGERPRINT_CONTEXT);
    // The values pass through this process's memory: keep them out of core dumps.
    crate::cli::secrets::harden_process();
    match vault::secrets::seal_changed(
        writer.repo.backend.as_ref(),
        &ctx.config.secrets,
        &key,
        std::time::SystemTime::now(),
    ) {
        Ok(outcomes) => {
            crate::cli::secrets::report_snapshot_seal(&outcomes, false);
        }
        Err(e) => eprintln!("vault: warning: platform secrets not sealed: {e}"),
    }
}

/// Paths given on the command line, else the configured ones, else the platform's
/// folders; a default that does not exist on this host (a worker host has no
/// /var/travis) is skipped with a note.
fn source_paths(ctx: &Context, given: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given);
    }
    if let Some(paths) = &ctx.config.paths {
        if paths.is_empty() {
            bail!("the configuration lists no paths to snapshot");
        }
        return Ok(paths.clone());
    }
    let mut out = Vec::new();
    for p in vault::config::DEFAULT_PATHS {
        if Path::new(p).exists() {
            out.push(PathBuf::from(p));
        } else {
            eprintln!("vault: {p} does not exist on this host; skipped");
        }
    }
    if out.is_empty() {
        bail!(
            "nothing to snapshot: neither {} exists here; name the paths (`vault snapshot PATH...`) or set `paths` in the configuration",
            vault::config::DEFAULT_PATHS.join(" nor ")
        );
    }
    Ok(out)
}
