use super::prune::prune_in;
use crate::cli::args::KeepArgs;
use crate::cli::context::Context;
use anyhow::Result;
use vault::forget::Rule;

// `vault forget`'s options.
#[derive(clap::Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Show each snapshot with keep/remove and the rule that decided it; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Then remove the data no kept snapshot needs
    #[arg(long)]
    pub prune: bool,
}

/// `vault forget`: hosts go into the policy (the others are shown as not selected); tags
/// and paths narrow the snapshots it sees.
pub fn forget(ctx: &Context, args: ForgetArgs) -> Result<u8> {
    let narrow = vault::select::SnapshotFilter {
        hosts: Vec::new(),
        ..args.keep.filter.filter()
    };
    let policy = args.keep.into_config(&ctx.config.retention);
    forget_by(ctx, &policy, &narrow, args.dry_run, args.prune)
}

fn forget_by(
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
    outln!("policy: {policy}");
    let mut group = None;
    let mut rows = Vec::new();
    for s in &plan.snapshots {
        if group.as_ref() != Some(&s.group) {
            outln!("\n{}", s.group);
            outln!(
                "{:<8}  {:<19}  {:<14}  {:<6}  reason",
                "id",
                "time",
                "tags",
                "action"
            );
            group = Some(s.group.clone());
        }
        let reason = match &s.rule {
            Rule::NotSelected => "not selected (--host)".to_string(),
            rule => rule.describe(),
        };
        outln!(
            "{:<8}  {:<19}  {:<14}  {:<6}  {reason}",
            s.id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.tags.join(","),
            if s.keep { "keep" } else { "remove" }
        );
        rows.push(serde_json::json!({
            "id": s.id.to_hex(),
            "short_id": s.id.short(),
            "time": s.time.to_rfc3339(),
            "group": s.group,
            "tags": s.tags,
            "action": if s.keep { "keep" } else { "remove" },
            "reason": reason,
        }));
    }
    let total = plan.snapshots.len();
    let to_remove = plan.removals().count();
    let mut result = serde_json::json!({
        "policy": policy.to_string(),
        "dry_run": dry_run,
        "snapshots": rows,
        "total": total,
        "to_remove": to_remove,
        "removed": 0,
        "kept_locked": [],
    });
    if dry_run {
        crate::cli::output::set_result(result);
        outln!("\ndry run: {to_remove} of {total} snapshots would be removed; nothing was changed");
        return Ok(0);
    }
    let report = vault::forget::execute(session.repo(), &plan)?;
    let locked: Vec<String> = report.locked.iter().map(|id| id.short()).collect();
    result["removed"] = report.removed.into();
    result["kept_locked"] = serde_json::json!(&locked);
    crate::cli::output::set_result(result);
    outln!("\nremoved {} of {total} snapshots", report.removed);
    if !locked.is_empty() {
        outln!(
            "{} snapshots are still under object lock and stay until it passes: {}",
            locked.len(),
            locked.join(" ")
        );
    }
    if then_prune {
        // The session opened above serves the prune too: one passphrase prompt, not two.
        let forgot = crate::cli::output::take_result();
        let code = prune_in(
            ctx,
            &session,
            false,
            vault::prune::DEFAULT_REPACK_THRESHOLD_PERCENT,
        )?;
        let pruned = crate::cli::output::take_result();
        if let Some(mut forgot) = forgot {
            forgot["prune"] = pruned.unwrap_or_default();
            crate::cli::output::set_result(forgot);
        }
        return Ok(code);
    }
    Ok(0)
}
