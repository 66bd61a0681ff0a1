use super::human;
use crate::cli::context::Context;
use anyhow::{bail, Context as _, Result};

pub fn restore(ctx: &Context, spec: &str, opts: vault::restore::RestoreOptions) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    for w in cache.sync_index(&repo, &keys)?.warnings() {
        eprintln!("vault: warning: {w}");
    }
    let (id, snap) = repo.find_snapshot(&keys, spec)?;
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
            println!("{:<8} {}", line.action.label(), line.path);
        }
        println!(
            "dry run: nothing was written ({} entries planned)",
            report.plan.len()
        );
        return Ok(0);
    }
    if report.leftovers_removed > 0 {
        eprintln!(
            "vault: removed {} temporary file(s) an interrupted restore left in {}",
            report.leftovers_removed,
            opts.target.display()
        );
    }
    for w in &report.warnings {
        eprintln!("vault: warning: {w}");
    }
    if report.owner_not_set > 0 {
        eprintln!(
            "vault: warning: ownership of {} entries was not restored: only root may give files to other users \
             (run the restore as root to restore owners)",
            report.owner_not_set
        );
    }
    for f in &report.failures {
        eprintln!("vault: {f}");
    }
    println!(
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
    if !report.failures.is_empty() {
        bail!(
            "restore incomplete: {} entr{} could not be restored or verified (listed above); nothing unverified was left in their place",
            report.failures.len(),
            if report.failures.len() == 1 { "y" } else { "ies" }
        );
    }
    if !report.warnings.is_empty() || report.owner_not_set > 0 {
        return Ok(crate::exit_partial());
    }
    Ok(0)
}
