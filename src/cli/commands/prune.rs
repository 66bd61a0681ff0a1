use super::human;
use crate::cli::context::Context;
use anyhow::Result;
use vault::prune::{KeptObject, KeptWhy, PackAction, PackReason, PlannedPack, PrunePlan};
use vault::Session;

// `vault prune`'s options.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Show what would be removed and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Repack packs whose unused share exceeds this percentage
    #[arg(long, default_value_t = vault::prune::DEFAULT_REPACK_THRESHOLD_PERCENT)]
    pub repack_threshold: u8,
}

/// `vault prune`.
pub fn prune(ctx: &Context, args: &PruneArgs) -> Result<u8> {
    prune_in(
        ctx,
        &ctx.reader_session()?,
        args.dry_run,
        args.repack_threshold,
    )
}

/// Prune in a session already open (`forget --prune` passes its own).
pub fn prune_in(
    ctx: &Context,
    session: &Session,
    dry_run: bool,
    repack_threshold: u8,
) -> Result<u8> {
    let mut cache = session.open_cache()?;
    let reader = session.blob_reader()?;
    let opts = vault::prune::PruneOptions {
        dry_run,
        repack_threshold: repack_threshold.min(100) as f64 / 100.0,
        lock_wait: ctx.lock_wait(),
    };
    let plan = vault::prune::plan(&reader, &mut cache, &opts)?;
    if dry_run {
        show_plan(&plan);
        return Ok(0);
    }
    let packs = plan.packs.clone();
    let bytes_to_copy = plan.bytes_to_copy;
    let r = vault::prune::execute(&reader, &mut cache, plan)?;
    let kept = r.packs_total - r.packs_deleted.min(r.packs_total) - r.packs_repacked;
    outln!(
        "{} snapshots keep {kept} of {} packs; removed {} packs and repack {} ({} of {} freed); wrote {} new packs",
        r.snapshots,
        r.packs_total,
        r.packs_deleted,
        r.packs_repacked,
        human(r.bytes_freed),
        human(r.bytes_before),
        r.packs_written
    );
    if r.packs_missing > 0 {
        outln!(
            "{} packs the index named were already gone from the store and are no longer indexed",
            r.packs_missing
        );
    }
    if r.leftovers_removed.0 > 0 {
        outln!(
            "removed {} partial writes ({}) left in the store's tmp/ by interrupted runs",
            r.leftovers_removed.0,
            human(r.leftovers_removed.1)
        );
    }
    crate::cli::output::set_result(serde_json::json!({
        "dry_run": false,
        "snapshots": r.snapshots,
        "packs_total": r.packs_total,
        "packs_deleted": r.packs_deleted,
        "packs_repacked": r.packs_repacked,
        "packs_written": r.packs_written,
        "bytes_before": r.bytes_before,
        "bytes_freed": r.bytes_freed,
        "bytes_to_copy": bytes_to_copy,
        "kept_locked": r.kept_locked.iter().map(kept_text).collect::<Vec<_>>(),
        "packs_missing": r.packs_missing,
        "leftovers_removed": r.leftovers_removed.0,
        "plan": packs,
    }));
    if !r.kept_locked.is_empty() {
        outln!(
            "{} objects are still under retention and were kept; a later prune removes them once their lock has passed",
            r.kept_locked.len()
        );
    }
    Ok(0)
}

/// A dry run: the plan, pack by pack, and what it adds up to. Nothing was changed.
fn show_plan(plan: &PrunePlan) {
    let deleted = plan.packs_to_delete();
    let repacked = plan.packs_to_repack();
    let kept = plan.packs_total - deleted.min(plan.packs_total) - repacked;
    outln!(
        "{} snapshots keep {kept} of {} packs; would remove {deleted} packs and repack {repacked} ({} of {} freed); dry run: nothing was changed",
        plan.snapshots,
        plan.packs_total,
        human(plan.bytes_to_free),
        human(plan.bytes_before),
    );
    if plan.packs_missing() > 0 {
        outln!(
            "{} packs the index named were already gone from the store and are no longer indexed",
            plan.packs_missing()
        );
    }
    for p in &plan.packs {
        outln!("  {}", planned_text(p));
    }
    if repacked > 0 {
        outln!(
            "repacking would copy {} of used blobs into new packs",
            human(plan.bytes_to_copy)
        );
    }
    crate::cli::output::set_result(serde_json::json!({
        "dry_run": true,
        "snapshots": plan.snapshots,
        "packs_total": plan.packs_total,
        "packs_deleted": deleted,
        "packs_repacked": repacked,
        "packs_written": 0,
        "bytes_before": plan.bytes_before,
        "bytes_freed": plan.bytes_to_free,
        "bytes_to_copy": plan.bytes_to_copy,
        "kept_locked": Vec::<String>::new(),
        "packs_missing": plan.packs_missing(),
        "leftovers_removed": 0,
        "plan": plan.packs,
    }));
}

/// One line of a dry run's plan: what happens to a pack and why.
fn planned_text(p: &PlannedPack) -> String {
    let action = match p.action {
        PackAction::Delete => "delete",
        PackAction::Repack => "repack",
        PackAction::Unindex => "unindex",
    };
    let why = match p.reason {
        PackReason::Unused => "no snapshot uses it".to_string(),
        PackReason::Unindexed => "no index file names it (left by an interrupted run)".into(),
        PackReason::AboveThreshold => format!(
            "{} of {} unused, above the repack threshold",
            human(p.unused_bytes),
            human(p.size)
        ),
        PackReason::Missing => "the index names it but the store does not hold it".into(),
        PackReason::SizeMismatch => {
            "the store holds it at another size than the index recorded".into()
        }
    };
    format!("{action} packs/{} ({}): {why}", p.pack, human(p.size))
}

/// An object kept under retention, as `kept_locked` has always named it.
fn kept_text(k: &KeptObject) -> String {
    match k.why {
        KeptWhy::Retention => format!("{}/{}", k.kind.label(), k.name),
        KeptWhy::NamedByLockedIndex => {
            format!(
                "{}/{} (named by a locked index file)",
                k.kind.label(),
                k.name
            )
        }
    }
}
