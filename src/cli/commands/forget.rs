use crate::cli::context::Context;
use anyhow::Result;

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
    let (repo, keys, _) = ctx.reader_keys()?;
    let snapshots = narrow.apply(repo.snapshots(&keys)?);
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
    println!("policy: {policy}");
    let mut group = None;
    let mut removed = 0;
    let mut locked = Vec::new();
    for d in &decisions {
        if group.as_ref() != Some(&d.group) {
            println!("\n{}", d.group);
            println!(
                "{:<8}  {:<19}  {:<14}  {:<6}  reason",
                "id", "time", "tags", "action"
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
        println!(
            "{:<8}  {:<19}  {:<14}  {:<6}  {reason}",
            d.id.short(),
            d.time.format("%Y-%m-%d %H:%M:%S"),
            tags,
            action
        );
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
    if dry_run {
        println!(
            "\ndry run: {to_remove} of {} snapshots would be removed; nothing was changed",
            decisions.len()
        );
        return Ok(0);
    }
    println!("\nremoved {removed} of {} snapshots", decisions.len());
    if !locked.is_empty() {
        println!(
            "{} snapshots are still under object lock and stay until it passes: {}",
            locked.len(),
            locked.join(" ")
        );
    }
    if then_prune {
        return super::prune(ctx, false, 20);
    }
    Ok(0)
}
