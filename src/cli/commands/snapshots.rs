use super::human;
use crate::cli::context::Context;
use anyhow::Result;

// `vault snapshots`'s options.
#[derive(clap::Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: crate::cli::filter::FilterArgs,
}

/// `vault snapshots`.
pub fn snapshots(ctx: &Context, args: &SnapshotsArgs) -> Result<u8> {
    list(ctx, crate::cli::output::json(), &args.filter).map(|_| 0)
}

fn list(ctx: &Context, json: bool, filter: &crate::cli::filter::FilterArgs) -> Result<()> {
    let (repo, keys) = ctx.meta_keys()?;
    let all = repo.list_snapshots(&keys)?;
    let wanted = filter.filter();
    let mut damaged = Vec::new();
    let mut list = Vec::new();
    for l in all {
        match l.record {
            Ok((s, v)) if wanted.matches(&s) => list.push((l.id, s, v)),
            Ok(_) => {}
            // A record that cannot be opened cannot be filtered: it is always shown.
            Err(e) => damaged.push((l.id, e)),
        }
    }
    if json {
        let mut items: Vec<serde_json::Value> = list
            .iter()
            .map(|(id, s, v)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "time": s.time,
                    "hostname": s.hostname,
                    "username": s.username,
                    "paths": s.paths_display(),
                    "tags": s.tags,
                    "tree": s.tree.to_hex(),
                    "summary": s.summary,
                    "program": s.program,
                    "verified": v.is_trusted(),
                    "verified_host": verified_host(v),
                    "problems": v.problems(),
                    "databases": s.databases,
                })
            })
            .collect();
        items.extend(damaged.iter().map(|(id, e)| {
            serde_json::json!({
                "id": id.to_hex(),
                "short_id": id.short(),
                "verified": false,
                "problems": [e],
            })
        }));
        crate::cli::output::print_json_listing(&serde_json::Value::Array(items))?;
        return Ok(());
    }
    dataln!(
        "{:<8}  {:<25}  {:<16}  {:<14}  {:>10}  {:>10}  {:<14}  paths",
        "id",
        "time",
        "host",
        "tags",
        "size",
        "new data",
        "signature"
    );
    for (id, s, v) in &list {
        dataln!(
            "{:<8}  {:<25}  {:<16}  {:<14}  {:>10}  {:>10}  {:<14}  {}",
            id.short(),
            s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
            s.hostname,
            s.tags.join(","),
            human(s.summary.bytes),
            human(s.summary.new_bytes),
            v.label(),
            s.paths_display().join(" ")
        );
        for d in &s.databases {
            dataln!("{:<8}  {}", "", d.describe());
        }
    }
    outln!(
        "{} snapshot{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    for (id, s, v) in &list {
        for p in v.problems() {
            errln!(
                "vault: warning: snapshot {} (host {:?}): {p}",
                id.short(),
                s.hostname
            );
        }
    }
    for (id, e) in &damaged {
        errln!(
            "vault: warning: snapshot record {} cannot be read: {e}",
            id.short()
        );
    }
    if list.iter().any(|(_, _, v)| !v.problems().is_empty()) || !damaged.is_empty() {
        errln!("vault: warning: flagged records are never picked as `latest`; `vault check` reports them");
    }
    Ok(())
}

/// The host a record verifiably comes from, if any.
pub fn verified_host(v: &vault::repo::Verification) -> Option<String> {
    match &v.signer {
        vault::repo::Signer::Host { name, .. } => Some(name.clone()),
        _ => None,
    }
}

/// One line saying who wrote a snapshot, for `ls` and `restore`.
pub fn describe_verification(
    id: &vault::Id,
    s: &vault::repo::Snapshot,
    v: &vault::repo::Verification,
) {
    // Who signed a record is a note, not a warning: `--quiet` leaves it out (problems
    // with the record are still printed below).
    let quiet = crate::cli::output::mode() == crate::cli::output::Mode::Quiet;
    match &v.signer {
        _ if quiet => {}
        vault::repo::Signer::Host { name, revoked } => errln!(
            "vault: snapshot {} of {}: signed by host {name}{}",
            id.short(),
            s.time,
            if *revoked { " (revoked since)" } else { "" }
        ),
        vault::repo::Signer::Admin => errln!(
            "vault: snapshot {} of {} (host {}): attested by the admin",
            id.short(),
            s.time,
            s.hostname
        ),
        vault::repo::Signer::Legacy => errln!(
            "vault: snapshot {} of {} (host {}): unsigned store, the writer cannot be verified",
            id.short(),
            s.time,
            s.hostname
        ),
        vault::repo::Signer::Unverified(_) => {}
    }
    for p in v.problems() {
        errln!(
            "vault: WARNING: snapshot {} claims host {:?} but is NOT VERIFIED: {p}",
            id.short(),
            s.hostname
        );
    }
}
