use super::human;
use crate::cli::context::Context;
use anyhow::Result;

pub fn snapshots(ctx: &Context, json: bool) -> Result<()> {
    let (repo, keys) = ctx.meta_keys()?;
    let list = repo.snapshots(&keys)?;
    if json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|(id, s)| {
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
                    "databases": s.databases,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    println!(
        "{:<8}  {:<25}  {:<16}  {:<14}  {:>10}  {:>10}  paths",
        "id", "time", "host", "tags", "size", "new data"
    );
    for (id, s) in &list {
        println!(
            "{:<8}  {:<25}  {:<16}  {:<14}  {:>10}  {:>10}  {}",
            id.short(),
            s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
            s.hostname,
            s.tags.join(","),
            human(s.summary.bytes),
            human(s.summary.new_bytes),
            s.paths_display().join(" ")
        );
        for d in &s.databases {
            println!("{:<8}  {}", "", d.describe());
        }
    }
    println!(
        "{} snapshot{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(())
}
