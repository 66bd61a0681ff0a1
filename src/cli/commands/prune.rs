use super::human;
use crate::cli::context::Context;
use anyhow::Result;
use vault::Session;

pub fn prune(ctx: &Context, dry_run: bool, repack_threshold: u8) -> Result<u8> {
    prune_in(ctx, &ctx.reader_session()?, dry_run, repack_threshold)
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
    let r = vault::prune::run(&reader, &mut cache, &opts)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let kept = r.packs_total - r.packs_deleted.min(r.packs_total) - r.packs_repacked;
    outln!(
        "{} snapshots keep {kept} of {} packs; {verb} {} packs and repack {} ({} of {} freed){}",
        r.snapshots,
        r.packs_total,
        r.packs_deleted,
        r.packs_repacked,
        human(r.bytes_freed),
        human(r.bytes_before),
        if dry_run {
            "; dry run: nothing was changed".to_string()
        } else {
            format!("; wrote {} new packs", r.packs_written)
        }
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
        "dry_run": dry_run,
        "snapshots": r.snapshots,
        "packs_total": r.packs_total,
        "packs_deleted": r.packs_deleted,
        "packs_repacked": r.packs_repacked,
        "packs_written": r.packs_written,
        "bytes_before": r.bytes_before,
        "bytes_freed": r.bytes_freed,
        "kept_locked": r.kept_locked,
        "packs_missing": r.packs_missing,
        "leftovers_removed": r.leftovers_removed.0,
    }));
    if !r.kept_locked.is_empty() {
        outln!(
            "{} objects are still under retention and were kept; a later prune removes them once their lock has passed",
            r.kept_locked.len()
        );
    }
    Ok(0)
}
