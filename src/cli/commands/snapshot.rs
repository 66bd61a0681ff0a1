use super::human;
use crate::cli::context::Context;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use vault::backup::SnapshotOptions;

// `vault snapshot`'s options.
#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// Tag to attach to the snapshot (for example pre-upgrade); repeatable
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record [default: the system's]
    #[arg(long)]
    pub host: Option<String>,
    /// Paths to save instead of the configured ones
    pub paths: Vec<PathBuf>,
    /// Save the standard output of the command after `--` as this file (a bare name
    /// lands at /NAME); only paths named on the command line go along
    #[arg(long, value_name = "NAME", requires = "command")]
    pub stdin_from_command: Option<String>,
    /// The command for --stdin-from-command; its exit status must be 0
    #[arg(last = true, value_name = "CMD", requires = "stdin_from_command")]
    pub command: Vec<String>,
}

/// `vault snapshot`.
pub fn snapshot(ctx: &Context, args: SnapshotArgs) -> Result<u8> {
    let output = args.stdin_from_command.map(|name| CommandOutput {
        name,
        argv: args.command,
    });
    take_snapshot(ctx, args.tags, args.host, args.paths, output)
}

/// A command whose standard output the snapshot stores as a file.
pub struct CommandOutput {
    /// Where it appears in the snapshot (absolute; a bare name goes to `/NAME`).
    pub name: String,
    pub argv: Vec<String>,
}

fn take_snapshot(
    ctx: &Context,
    tags: Vec<String>,
    host: Option<String>,
    paths: Vec<PathBuf>,
    command_output: Option<CommandOutput>,
) -> Result<u8> {
    let cancel = crate::cli::hooks::install_signal_flag();
    let mut hooks = crate::cli::hooks::HookRunner::new(
        "snapshot",
        ctx.config.hooks.snapshot(),
        ctx.store_location(),
        cancel.clone(),
    );
    let mut snapshot_id = None;
    let result = match hooks.before() {
        Ok(()) => snapshot_inner(
            ctx,
            tags,
            host,
            paths,
            command_output,
            cancel,
            &mut snapshot_id,
        ),
        Err(e) => Err(e),
    };
    hooks.finish(crate::cli::hooks::Finished {
        result,
        snapshot_id,
    })
}

fn snapshot_inner(
    ctx: &Context,
    tags: Vec<String>,
    host: Option<String>,
    paths: Vec<PathBuf>,
    command_output: Option<CommandOutput>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    snapshot_id: &mut Option<String>,
) -> Result<u8> {
    let backend = ctx.backend()?;
    if !backend.exists(vault::backend::Kind::Config, "config")? {
        if ctx.store_is_default() {
            errln!("vault: no store yet at {}: creating it", backend.location());
            super::create_store(ctx, &[], None, &super::ReaderChoice::default())?;
        } else {
            return Err(vault::Error::StoreNotFound(backend.location()).into());
        }
    }
    let writer = ctx.writer()?;
    let mut files = Vec::new();
    let sources = match command_output {
        Some(c) => {
            let path = if c.name.starts_with('/') {
                PathBuf::from(&c.name)
            } else {
                Path::new("/").join(&c.name)
            };
            files.push(vault::backup::ExtraFile {
                path,
                source: vault::backup::ExtraSource::Command(
                    c.argv.into_iter().map(Into::into).collect(),
                ),
                mode: 0o600,
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
            });
            // Only the paths named on the command line go along with a command's output.
            paths
        }
        None => source_paths(ctx, paths)?,
    };
    let mut cache = ctx.open_cache(&writer.repo)?;
    let hostname = host.unwrap_or_else(|| vault::select::this_host(ctx.config.hostname.as_deref()));
    if let Some(own) = writer.host.as_deref().filter(|own| *own != hostname) {
        errln!(
            "vault: warning: this host's key is authorised as host {own:?}, so a snapshot recorded as {hostname:?} \
             will be flagged as not verified and never be picked as `latest`"
        );
    }
    let opts = SnapshotOptions {
        paths: sources.clone(),
        tags,
        hostname,
        excludes: ctx.config.exclude.clone(),
        threads: ctx.threads(),
        lock_wait: ctx.lock_wait(),
    };
    let mut captures = postgres_captures(ctx, &sources)?;
    let additions = vault::backup::Additions {
        captures: captures
            .iter_mut()
            .map(|c| c as &mut dyn vault::backup::Capture)
            .collect(),
        files,
        cancel: Some(cancel),
    };
    let result = vault::backup::run_with(
        &writer.repo,
        &writer.keys,
        &writer.recipients,
        &mut cache,
        &opts,
        additions,
    )?;
    *snapshot_id = Some(result.id.to_hex());
    for c in &captures {
        if !c.began() {
            errln!(
                "vault: warning: {} was not reached by this snapshot (missing or excluded): no online capture",
                vault::backup::Capture::dir(c).display()
            );
        }
    }
    for d in &result.snapshot.databases {
        errln!("vault: {}", d.describe());
    }
    for p in &result.problems {
        if p.changed {
            errln!(
                "vault: {} changed during the snapshot: {}",
                p.path.display(),
                p.error
            );
        } else {
            errln!("vault: could not read {}: {}", p.path.display(), p.error);
        }
    }
    let s = &result.snapshot.summary;
    outln!(
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
    crate::cli::output::set_result(serde_json::json!({
        "id": result.id.to_hex(),
        "short_id": result.id.short(),
        "time": result.snapshot.time,
        "hostname": result.snapshot.hostname,
        "paths": result.snapshot.paths_display(),
        "tags": result.snapshot.tags,
        "files": s.files,
        "dirs": s.dirs,
        "others": s.others,
        "bytes": s.bytes,
        "bytes_read": s.bytes_read,
        "bytes_new": s.new_bytes,
        "bytes_new_metadata": s.new_meta_bytes,
        "bytes_stored": s.stored_bytes,
        "packs": s.packs,
        "snapshot_ms": s.duration_ms,
        "problems": result.problems.iter().map(|p| serde_json::json!({
            "path": p.path.display().to_string(),
            "error": p.error,
        })).collect::<Vec<_>>(),
    }));
    seal_platform_secrets(ctx, &writer, &result.snapshot.hostname);
    if !result.problems.is_empty() {
        errln!(
            "vault: the snapshot is partial: {} entr{} could not be read or changed while read (listed above)",
            result.problems.len(),
            if result.problems.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
        return Ok(crate::cli::docs::EXIT_PARTIAL);
    }
    Ok(0)
}

/// Seals the platform's secrets when their value changed. A host without them (a worker)
/// says nothing; a failure is a warning, because the snapshot itself succeeded. Versions
/// record `host`, the name the snapshot recorded.
fn seal_platform_secrets(ctx: &Context, writer: &crate::cli::context::Writer, host: &str) {
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
        host,
    ) {
        Ok(outcomes) => {
            crate::cli::secrets::report_snapshot_seal(&outcomes, false);
        }
        Err(e) => errln!("vault: warning: platform secrets not sealed: {e}"),
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
            errln!("vault: {p} does not exist on this host; skipped");
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

/// An online capture for every configured cluster whose data directory lies in the
/// snapshot's paths.
fn postgres_captures(
    ctx: &Context,
    sources: &[PathBuf],
) -> Result<Vec<vault::postgres::PgCapture>> {
    use vault::backup::Capture as _;
    let sources = vault::backup::normalise_sources(sources)?;
    let mut out = Vec::new();
    for pg in &ctx.config.postgres {
        if !pg.data_dir.is_absolute() {
            bail!(
                "[[postgres]] data_dir {} must be an absolute path",
                pg.data_dir.display()
            );
        }
        let dir = match vault::backup::normalise_sources(std::slice::from_ref(&pg.data_dir)) {
            Ok(mut clean) if !clean.is_empty() => clean.remove(0),
            Ok(_) => continue,
            Err(e) => {
                if sources.iter().any(|s| pg.data_dir.starts_with(s)) {
                    errln!("vault: warning: [[postgres]] data_dir: {e}; no online capture");
                }
                continue;
            }
        };
        if sources.iter().any(|s| dir.starts_with(s)) {
            let mut config = pg.clone();
            config.data_dir = dir;
            let label = format!("vault snapshot {}", chrono::Local::now().to_rfc3339());
            let capture = vault::postgres::PgCapture::new(config, &label);
            debug_assert!(!capture.dir().as_os_str().is_empty());
            out.push(capture);
        }
    }
    Ok(out)
}
