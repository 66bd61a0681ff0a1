use super::human;
use crate::cli::context::Context;
use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;
use vault::restore::{Overwrite, Privileged, PrivilegedHandling, RestoreOptions};

// `vault restore`'s options.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Snapshot id (or unique prefix), "latest" (this host's) or "latest:HOST"
    pub snapshot: String,
    /// Target folder; the snapshot's absolute paths are recreated below it
    #[arg(long)]
    pub to: PathBuf,
    /// Restore only this absolute path from the snapshot (and what lies below); repeatable
    #[arg(long = "include")]
    pub includes: Vec<PathBuf>,
    /// Show what would be created, replaced or kept, and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Re-read every restored file and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
    /// What to do with entries already in the target [default: stop and list them]
    #[arg(long, value_enum)]
    pub overwrite: Option<OverwriteArg>,
    /// Use the numeric uid/gid of the snapshot even where the names exist on this host
    #[arg(long)]
    pub numeric_owner: bool,
    /// Make the target identical under the restored paths: remove what the snapshot lacks
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub filter: crate::cli::filter::FilterArgs,
    /// Restore setuid/setgid files and files with capabilities without those bits, skip device nodes
    #[arg(long)]
    pub no_privileged: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OverwriteArg {
    Never,
    Always,
    IfChanged,
    IfNewer,
}

impl From<OverwriteArg> for Overwrite {
    fn from(o: OverwriteArg) -> Overwrite {
        match o {
            OverwriteArg::Never => Overwrite::Never,
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::IfNewer => Overwrite::IfNewer,
        }
    }
}

/// `vault restore`.
pub fn restore(ctx: &Context, args: RestoreArgs) -> Result<u8> {
    let opts = RestoreOptions {
        target: args.to,
        includes: args.includes,
        overwrite: args.overwrite.map(Into::into),
        dry_run: args.dry_run,
        verify: args.verify,
        numeric_owner: args.numeric_owner,
        delete: args.delete,
        no_privileged: args.no_privileged,
        threads: ctx.threads(),
        spool: ctx.restore_spool()?,
    };
    restore_with_hooks(ctx, &args.snapshot, &args.filter, opts)
}

/// Restores inside `[hooks.restore]` (when configured): `after` runs however the restore ends.
fn restore_with_hooks(
    ctx: &Context,
    spec: &str,
    filter: &crate::cli::filter::FilterArgs,
    opts: vault::restore::RestoreOptions,
) -> Result<u8> {
    let hook_set = ctx.config.hooks.restore();
    if hook_set.is_empty() || opts.dry_run {
        return restore_inner(ctx, spec, filter, opts);
    }
    let cancel = crate::cli::hooks::install_signal_flag();
    let mut hooks =
        crate::cli::hooks::HookRunner::new("restore", hook_set, ctx.store_location(), cancel);
    let result = match hooks.before() {
        Ok(()) => restore_inner(ctx, spec, filter, opts),
        Err(e) => Err(e),
    };
    hooks.finish(crate::cli::hooks::Finished {
        result,
        snapshot_id: None,
    })
}

fn restore_inner(
    ctx: &Context,
    spec: &str,
    filter: &crate::cli::filter::FilterArgs,
    opts: vault::restore::RestoreOptions,
) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    // Choose the snapshot before the index sync: a wrong choice fails fast.
    let (id, snap, verdict) = crate::cli::filter::resolve(ctx, &repo, &keys, spec, filter)?;
    super::describe_verification(&id, &snap, &verdict);
    let mut cache = ctx.open_cache(&repo)?;
    for w in cache.sync_index(&repo, &keys)?.warnings() {
        errln!("vault: warning: {w}");
    }
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let started = std::time::Instant::now();
    let result = vault::restore::run(&reader, &cache, &snap, &opts);
    if let Some(spool) = &opts.spool {
        let _ = std::fs::remove_dir_all(spool);
    }
    let report = result.with_context(|| {
        format!(
            "restore of snapshot {} into {}",
            id.short(),
            opts.target.display()
        )
    })?;
    if opts.dry_run {
        for line in &report.plan {
            dataln!("{:<8} {}", line.action.label(), line.path);
        }
        crate::cli::output::set_result(serde_json::json!({
            "snapshot": id.to_hex(),
            "short_id": id.short(),
            "target": opts.target,
            "dry_run": true,
            "plan": report.plan.iter().map(|l| serde_json::json!({
                "action": l.action.label(),
                "path": l.path,
            })).collect::<Vec<_>>(),
        }));
        if opts.delete {
            for e in &report.extras {
                let label = if e.mount_point { "mount" } else { "delete" };
                outln!("{label:<8} {}", e.path);
            }
        }
        print_privileged(&report.privileged);
        outln!(
            "dry run: nothing was written ({} entries planned{})",
            report.plan.len(),
            extras_note(&report, &opts)
        );
        return Ok(0);
    }
    if report.leftovers_removed > 0 {
        errln!(
            "vault: removed {} temporary file(s) an interrupted restore left in {}",
            report.leftovers_removed,
            opts.target.display()
        );
    }
    for w in &report.warnings {
        errln!("vault: warning: {w}");
    }
    if report.owner_not_set > 0 {
        errln!(
            "vault: warning: ownership of {} entries was not restored: only root may give files to other users \
             (run the restore as root to restore owners)",
            report.owner_not_set
        );
    }
    for f in &report.failures {
        errln!("vault: {f}");
    }
    print_privileged(&report.privileged);
    outln!(
        "restored snapshot {} into {}: {} files, {} folders, {} other, {} in {:.2} s{}",
        id.short(),
        opts.target.display(),
        report.files,
        report.dirs,
        report.others,
        human(report.bytes),
        started.elapsed().as_secs_f64(),
        if opts.verify {
            format!(", {} files verified", report.verified_files)
        } else {
            String::new()
        }
    );
    crate::cli::output::set_result(serde_json::json!({
        "snapshot": id.to_hex(),
        "short_id": id.short(),
        "target": opts.target,
        "dry_run": false,
        "files": report.files,
        "dirs": report.dirs,
        "others": report.others,
        "bytes": report.bytes,
        "verified_files": opts.verify.then_some(report.verified_files),
        "owner_not_set": report.owner_not_set,
        "warnings": report.warnings,
        "problems": report.failures,
    }));
    let note = extras_note(&report, &opts);
    if !note.is_empty() {
        outln!("{}", note.trim_start_matches([',', ' ']));
    }
    if !report.failures.is_empty() {
        bail!(
            "restore incomplete: {} entr{} could not be restored or verified (listed above); nothing unverified was left in their place",
            report.failures.len(),
            if report.failures.len() == 1 { "y" } else { "ies" }
        );
    }
    if !report.warnings.is_empty() || report.owner_not_set > 0 {
        return Ok(crate::cli::docs::EXIT_PARTIAL);
    }
    Ok(0)
}

/// What happens to the target's entries the snapshot lacks: `, N entries not in the
/// snapshot ...`, or nothing when there are none.
fn extras_note(
    report: &vault::restore::RestoreReport,
    opts: &vault::restore::RestoreOptions,
) -> String {
    let n = report.extras.len();
    if n == 0 {
        return String::new();
    }
    let entries = if n == 1 { "entry" } else { "entries" };
    match (opts.delete, opts.dry_run) {
        (true, true) => format!(", {n} {entries} not in the snapshot to delete"),
        (true, false) => format!(
            ", {} of {n} {entries} not in the snapshot deleted",
            report.extras_removed
        ),
        (false, _) => {
            format!(", {n} {entries} not in the snapshot left in place (--delete removes them)")
        }
    }
}

/// Lists the privileged entries a restore creates (or would create).
fn print_privileged(list: &[Privileged]) {
    if list.is_empty() {
        return;
    }
    outln!("privileged entries ({}):", list.len());
    for p in list {
        let handling = match p.handling {
            PrivilegedHandling::Restored => "",
            PrivilegedHandling::Skipped => " (skipped: --no-privileged)",
            PrivilegedHandling::Stripped => " (restored without it: --no-privileged)",
        };
        outln!("  {}: {}{handling}", p.path, p.what);
    }
}
