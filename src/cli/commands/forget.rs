use super::prune::prune_in;
use crate::cli::context::Context;
use anyhow::Result;
use vault::forget::Rule;

pub fn forget(
    ctx: &Context,
    config: &vault::retention::RetentionConfig,
    narrow: &vault::select::SnapshotFilter,
    dry_run: bool,
    then_prune: bool,
) -> Result<u8> {
    let policy = vault::retention::Policy::from_config(config)?;
    // The reader identity is demanded even though only snapshot records are touched: a
    // snapshotting host's writer key must not be able to drop backups.
    let session = ctx.reader_session()?;
    let snapshots = narrow.apply(session.repo().snapshots(session.keys())?);
    let plan = vault::forget::plan(&policy, &snapshots, &chrono::Local::now())?;
    println!("policy: {policy}");
    let mut group = None;
    for s in &plan.snapshots {
        if group.as_ref() != Some(&s.group) {
            println!("\n{}", s.group);
            println!(
                "{:<8}  {:<19}  {:<14}  {:<6}  reason",
                "id", "time", "tags", "action"
            );
            group = Some(s.group.clone());
        }
        let reason = match &s.rule {
            Rule::NotSelected => "not selected (--host)".to_string(),
            rule => rule.describe(),
        };
        println!(
            "{:<8}  {:<19}  {:<14}  {:<6}  {reason}",
            s.id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.tags.join(","),
            if s.keep { "keep" } else { "remove" }
        );
    }
    let total = plan.snapshots.len();
    if dry_run {
        println!(
            "\ndry run: {} of {total} snapshots would be removed; nothing was changed",
            plan.removals().count()
        );
        return Ok(0);
    }
    let report = vault::forget::execute(session.repo(), &plan)?;
    println!("\nremoved {} of {total} snapshots", report.removed);
    if !report.locked.is_empty() {
        let locked: Vec<String> = report.locked.iter().map(|id| id.short()).collect();
        println!(
            "{} snapshots are still under object lock and stay until it passes: {}",
            locked.len(),
            locked.join(" ")
        );
    }
    if then_prune {
        // The session opened above serves the prune too: one passphrase prompt, not two.
        return prune_in(
            ctx,
            &session,
            false,
            vault::prune::DEFAULT_REPACK_THRESHOLD_PERCENT,
        );
    }
    Ok(0)
}
