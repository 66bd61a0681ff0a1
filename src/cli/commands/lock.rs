use crate::cli::args::KeepArgs;
use crate::cli::context::Context;
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum LockCommand {
    /// Extend the retention of everything the kept snapshots need by the store's lock
    /// period (needs the reader identity; run after forget/prune, more often than the period)
    Extend {
        /// Snapshots this policy removes are not extended (flags, else [retention] in the config)
        #[command(flatten)]
        keep: KeepArgs,
        /// Count what would be extended and change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// `vault lock ...`.
pub fn lock(ctx: &Context, cmd: LockCommand) -> Result<u8> {
    match cmd {
        LockCommand::Extend { keep, dry_run } => {
            if !keep.filter.tags.is_empty() || !keep.filter.paths.is_empty() {
                anyhow::bail!("`vault lock extend` takes --host only: a snapshot left out by --tag or --path would lose its lock");
            }
            lock_extend(ctx, &keep.into_config(&ctx.config.retention), dry_run)
        }
    }
}

/// `vault lock extend`: moves the retention of what the kept snapshots need forward.
fn lock_extend(
    ctx: &Context,
    config: &vault::retention::RetentionConfig,
    dry_run: bool,
) -> Result<u8> {
    let policy = match vault::retention::Policy::from_config(config) {
        Ok(p) => Some(p),
        Err(vault::retention::RetentionError::EmptyPolicy) => None,
        Err(e) => return Err(e.into()),
    };
    let session = ctx.reader_session()?;
    // The same plan as `forget`: what it keeps (the guard included) is extended, only
    // what it removes is skipped.
    let mut skip = std::collections::HashSet::new();
    if let Some(policy) = &policy {
        let snapshots = session.repo().snapshots(session.keys())?;
        skip = vault::forget::plan(policy, &snapshots, &chrono::Local::now())?.removed_ids();
        outln!("policy: {policy}");
    }
    let mut cache = session.open_cache()?;
    let reader = session.blob_reader()?;
    let opts = vault::object_lock::ExtendOptions {
        dry_run,
        skip_snapshots: skip,
        ..Default::default()
    };
    let r = vault::object_lock::extend(&reader, &mut cache, std::time::SystemTime::now(), &opts)?;
    let until = r
        .until
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_default();
    let mode = match r.lock.as_ref().map(|l| l.mode) {
        Some(vault::backend::LockMode::Compliance) => "compliance",
        _ => "governance",
    };
    outln!(
        "{} the retention ({mode}) of {} objects to {until}: config, {} keys, {} secrets, {} snapshot records, \
         {} of {} index files, {} of {} packs",
        if dry_run { "would extend" } else { "extended" },
        r.objects,
        r.keys,
        r.secrets,
        r.snapshots,
        r.index_files,
        r.index_files_total,
        r.packs,
        r.packs_total
    );
    if r.snapshots_skipped > 0 {
        outln!(
            "{} snapshots the retention policy removes were not extended: once their retention runs out, \
             forget and prune remove them",
            r.snapshots_skipped
        );
    }
    if !r.vanished.is_empty() {
        outln!(
            "{} objects were removed meanwhile (by a prune?): {}",
            r.vanished.len(),
            r.vanished.join(" ")
        );
    }
    if dry_run {
        outln!("dry run: nothing was changed");
    }
    crate::cli::output::set_result(serde_json::json!({
        "dry_run": dry_run,
        "mode": mode,
        "until": until,
        "objects": r.objects,
        "keys": r.keys,
        "secrets": r.secrets,
        "snapshots": r.snapshots,
        "snapshots_skipped": r.snapshots_skipped,
        "index_files": r.index_files,
        "index_files_total": r.index_files_total,
        "packs": r.packs,
        "packs_total": r.packs_total,
        "vanished": r.vanished,
        "blobs_missing": r.blobs_missing,
    }));
    if r.blobs_missing > 0 {
        errln!(
            "vault: warning: {} blobs the snapshots use are in no pack: the store is damaged; run `vault check`",
            r.blobs_missing
        );
        return Ok(crate::cli::docs::EXIT_PARTIAL);
    }
    Ok(0)
}
