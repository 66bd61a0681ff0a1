use super::human;
use crate::cli::context::Context;
use anyhow::Result;
use vault::crypto::WriterKeys;
use vault::repo::Repo;

pub fn prune(ctx: &Context, dry_run: bool, repack_threshold: u8) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    prune_with(ctx, repo, keys, identity, dry_run, repack_threshold)
}

/// Prune with keys already unlocked (by `forget --prune`).
pub fn prune_with(
    ctx: &Context,
    repo: Repo,
    keys: WriterKeys,
    identity: age::x25519::Identity,
    dry_run: bool,
    repack_threshold: u8,
) -> Result<u8> {
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let opts = vault::prune::PruneOptions {
        dry_run,
        repack_threshold: repack_threshold.min(100) as f64 / 100.0,
        lock_wait: ctx.lock_wait(),
    };
    let r = vault::prune::run(&reader, &mut cache, &opts)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
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
    if !r.kept_locked.is_empty() {
        println!(
            "{} objects are still under retention and were kept; a later prune removes them once their lock has passed",
            r.kept_locked.len()
        );
    }
    Ok(0)
}
