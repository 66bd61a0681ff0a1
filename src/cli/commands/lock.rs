use crate::cli::context::Context;
use anyhow::Result;

/// `vault lock extend`: moves the retention of what the kept snapshots need forward.
pub fn lock_extend(
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
        println!("policy: {policy}");
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
    println!(
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
        println!(
            "{} snapshots the retention policy removes were not extended: once their retention runs out, \
             forget and prune remove them",
            r.snapshots_skipped
        );
    }
    if !r.vanished.is_empty() {
        println!(
            "{} objects were removed meanwhile (by a prune?): {}",
            r.vanished.len(),
            r.vanished.join(" ")
        );
    }
    if dry_run {
        println!("dry run: nothing was changed");
    }
    if r.blobs_missing > 0 {
        eprintln!(
            "vault: warning: {} blobs the snapshots use are in no pack: the store is damaged; run `vault check`",
            r.blobs_missing
        );
        return Ok(crate::exit_partial());
    }
    Ok(0)
}
