use crate::cli::context::Context;
use anyhow::Result;

pub fn forget(
    ctx: &Context,
    config: &vault::retention::RetentionConfig,
    dry_run: bool,
    then_prune: bool,
) -> Result<u8> {
    let policy = vault::retention::Policy::from_config(config)?;
    // The reader identity is demanded even though only snapshot records are touched: a
    // snapshotting host's writer key must not be able to drop backups.
    let (repo, keys, _) = ctx.reader_keys()?;
    let snapshots = repo.snapshots(&keys)?;
    let candidates = vault::retention::candidates(&snapshots)?;
    let mut decisions = vault::retention::apply(&policy, &candidates, &chrono::Local::now())?;
    // A rule relative to now (keep-within) or to tags can leave a group with nothing, for
    // example a host that stopped snapshotting a while ago. Losing a host's last backup
    // to a retention rule is never what an operator meant: its newest snapshot stays.
    let mut guarded = std::collections::HashSet::new();
    let groups: std::collections::BTreeSet<String> =
        decisions.iter().map(|d| d.group.clone()).collect();
    for g in groups {
        let members: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].group == g && decisions[i].selected)
            .collect();
        if !members.is_empty() && members.iter().all(|&i| !decisions[i].keep) {
            let newest = *members
                .iter()
                .max_by_key(|&&i| (decisions[i].time, decisions[i].id))
                .unwrap();
            decisions[newest].keep = true;
            guarded.insert(decisions[newest].id);
        }
    }
    let by_id: std::collections::HashMap<vault::Id, &vault::repo::Snapshot> =
        snapshots.iter().map(|(id, s)| (*id, s)).collect();
    outln!("policy: {policy}");
    let mut group = None;
    let mut removed = 0;
    let mut locked = Vec::new();
    let mut rows = Vec::new();
    for d in &decisions {
        if group.as_ref() != Some(&d.group) {
            outln!("\n{}", d.group);
            outln!(
                "{:<8}  {:<19}  {:<14}  {:<6}  reason",
                "id",
                "time",
                "tags",
                "action"
            );
            group = Some(d.group.clone());
        }
        let tags = by_id
            .get(&d.id)
            .map(|s| s.tags.join(","))
            .unwrap_or_default();
        let (action, reason) = match (d.selected, d.keep) {
            (false, _) => ("keep", "not selected (--host)".to_string()),
            (true, true) if guarded.contains(&d.id) => (
                "keep",
                "newest of its group (the policy would keep none)".to_string(),
            ),
            (true, true) => ("keep", d.reason_text()),
            (true, false) => ("remove", String::new()),
        };
        outln!(
            "{:<8}  {:<19}  {:<14}  {:<6}  {reason}",
            d.id.short(),
            d.time.format("%Y-%m-%d %H:%M:%S"),
            tags,
            action
        );
        rows.push(serde_json::json!({
            "id": d.id.to_hex(),
            "short_id": d.id.short(),
            "time": d.time.to_rfc3339(),
            "group": d.group,
            "tags": tags,
            "action": action,
            "reason": reason,
        }));
        if d.selected && !d.keep && !dry_run {
            match repo
                .backend
                .delete(vault::backend::Kind::Snapshots, &d.id.to_hex())
            {
                Ok(()) => removed += 1,
                Err(e) if e.is_retention_locked() => locked.push(d.id.short()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let to_remove = decisions.iter().filter(|d| d.selected && !d.keep).count();
    crate::cli::output::set_result(serde_json::json!({
        "policy": policy.to_string(),
        "dry_run": dry_run,
        "snapshots": rows,
        "total": decisions.len(),
        "to_remove": to_remove,
        "removed": if dry_run { 0 } else { removed },
        "kept_locked": &locked,
    }));
    if dry_run {
        outln!(
            "\ndry run: {to_remove} of {} snapshots would be removed; nothing was changed",
            decisions.len()
        );
        return Ok(0);
    }
    outln!("\nremoved {removed} of {} snapshots", decisions.len());
    if !locked.is_empty() {
        outln!(
            "{} snapshots are still under object lock and stay until it passes: {}",
            locked.len(),
            locked.join(" ")
        );
    }
    if then_prune {
        let forgot = crate::cli::output::take_result();
        let code = super::prune(ctx, false, 20)?;
        let pruned = crate::cli::output::take_result();
        if let Some(mut forgot) = forgot {
            forgot["prune"] = pruned.unwrap_or_default();
            crate::cli::output::set_result(forgot);
        }
        return Ok(code);
    }
    Ok(0)
}
