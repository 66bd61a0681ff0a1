use super::human;
use crate::cli::context::Context;
use anyhow::Result;

pub fn prune(ctx: &Context, dry_run: bool, repack_threshold: u8) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let opts = vault::prune::PruneOptions {
        dry_run,
        repack_threshold: repack_threshold.min(100) as f64 / 100.0,
        lock_wait: ctx.lock_wait(),
    };
    let r = vault::prune::run(&reader, &mut cache, &opts)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    outln!(
        "{} snapshots keep {} of {} packs; {verb} {} packs and repack {} ({} of {} freed){}",
        r.snapshots,
        r.packs_total - r.packs_deleted.min(r.packs_total) - r.packs_repacked,
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
    }));
    if !r.kept_locked.is_empty() {
        outln!(
            "{} objects are still under retention and were kept; a later prune removes them once their lock has passed",
            r.kept_locked.len()
        );
    }
    Ok(0)
}
