//! `vault import-tar FILE...`: each tar archive (gzip, zstd, xz or plain; `-` for standard
//! input) becomes one snapshot tagged `imported`.

use super::commands::human;
use super::context::Context;
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;
use vault::import_tar::{ImportOptions, TimeSource};

#[derive(clap::Args)]
pub struct ImportTarArgs {
    /// Archives to import, one snapshot each (`-` reads standard input); the time comes
    /// from a travis-backup-EPOCH name
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Host name to record [default: the configured or the system's]
    #[arg(long)]
    host: Option<String>,
    /// Snapshot time for archives whose name carries no travis-backup-EPOCH: RFC 3339
    /// (2024-05-01T03:00:00Z) or epoch seconds [default: the newest mtime inside]
    #[arg(long)]
    time: Option<String>,
    /// Another tag besides `imported`; repeatable
    #[arg(long = "tag")]
    tags: Vec<String>,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(epoch) = s.parse::<i64>() {
        if let Some(t) = chrono::DateTime::from_timestamp(epoch, 0) {
            return Ok(t.fixed_offset());
        }
    }
    bail!("--time {s:?} is neither RFC 3339 (2024-05-01T03:00:00Z) nor epoch seconds")
}

pub fn run(ctx: &Context, args: ImportTarArgs) -> Result<u8> {
    let time = args.time.as_deref().map(parse_time).transpose()?;
    let backend = ctx.backend()?;
    if !backend.exists(vault::backend::Kind::Config, "config")? {
        if ctx.store_is_default() {
            errln!("vault: no store yet at {}: creating it", backend.location());
            super::commands::create_store(
                ctx,
                &[],
                None,
                &super::commands::ReaderChoice::default(),
            )?;
        } else {
            return Err(vault::Error::StoreNotFound(backend.location()).into());
        }
    }
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        bail!("standard input (`-`) can be imported only once per run");
    }
    let writer = ctx.writer()?;
    let mut cache = ctx.open_cache(&writer.repo)?;
    let hostname = args.host.clone().unwrap_or_else(|| ctx.hostname());
    let mut failed = 0usize;
    let mut imported = Vec::new();
    let mut failures = Vec::new();
    for file in &args.files {
        let stdin = file.as_os_str() == "-";
        let name = if stdin {
            "-".to_string()
        } else {
            file.display().to_string()
        };
        if !stdin && time.is_none() && vault::import_tar::time_from_name(&name).is_none() {
            errln!(
                "vault: note: {name} has no travis-backup-EPOCH name and no --time was given: \
                 its snapshot takes the newest mtime inside"
            );
        }
        let opts = ImportOptions {
            source_name: if stdin {
                "standard input".into()
            } else {
                name.clone()
            },
            time,
            hostname: hostname.clone(),
            tags: args.tags.clone(),
            threads: ctx.threads(),
            lock_wait: ctx.lock_wait(),
        };
        let result = if stdin {
            vault::import_tar::import(
                &writer.repo,
                &writer.keys,
                &writer.recipients,
                &mut cache,
                std::io::stdin().lock(),
                &opts,
            )
        } else {
            match std::fs::File::open(file) {
                Ok(f) => vault::import_tar::import(
                    &writer.repo,
                    &writer.keys,
                    &writer.recipients,
                    &mut cache,
                    f,
                    &opts,
                ),
                Err(e) => Err(vault::Error::io(format!("open {name}"), e)),
            }
        };
        match result {
            Ok(r) => {
                for n in &r.notes {
                    errln!("vault: {name}: {n}");
                }
                let s = &r.snapshot.summary;
                let from = match r.time_source {
                    TimeSource::Name => "from its name",
                    TimeSource::Given => "from --time",
                    TimeSource::NewestMtime => "its newest mtime",
                };
                imported.push(serde_json::json!({
                    "file": name,
                    "compression": r.compression.label(),
                    "id": r.id.to_hex(),
                    "short_id": r.id.short(),
                    "hostname": r.snapshot.hostname,
                    "time": r.snapshot.time,
                    "time_source": match r.time_source {
                        TimeSource::Name => "name",
                        TimeSource::Given => "given",
                        TimeSource::NewestMtime => "newest-mtime",
                    },
                    "files": s.files,
                    "dirs": s.dirs,
                    "others": s.others,
                    "bytes": s.bytes,
                    "bytes_new": s.new_bytes,
                    "bytes_stored": s.stored_bytes,
                    "notes": r.notes,
                }));
                outln!(
                    "imported {name} ({}) as snapshot {} of {} at {} ({from}): {} files, {} folders, {} other, {} ({} new data, {} stored)",
                    r.compression.label(),
                    r.id.short(),
                    r.snapshot.hostname,
                    r.snapshot.time,
                    s.files,
                    s.dirs,
                    s.others,
                    human(s.bytes),
                    human(s.new_bytes),
                    human(s.stored_bytes),
                );
            }
            Err(e) => {
                failed += 1;
                errln!("vault: error: import of {name}: {e}");
                failures.push(serde_json::json!({ "file": name, "error": e.to_string() }));
            }
        }
    }
    super::output::set_result(serde_json::json!({
        "imported": imported,
        "failed": failures,
    }));
    if failed > 0 {
        return Err(anyhow!(
            "{failed} of {} archive{} could not be imported (listed above); no snapshot was made for {}",
            args.files.len(),
            if args.files.len() == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        ));
    }
    Ok(0)
}
