//! `vault repair index|snapshots`.

use crate::cli::context::Context;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves, replacing missing or damaged index
    /// files (a writer key suffices)
    Index {
        /// Ignore the index files and read every pack's trailer
        #[arg(long)]
        read_all_packs: bool,
    },
    /// For each snapshot whose data is partly gone, write a new snapshot (tagged
    /// `repaired`) without the lost files, and list them (needs the reader identity)
    Snapshots {
        /// Delete each original once its repaired snapshot is written
        #[arg(long)]
        forget_originals: bool,
        /// List what is lost and write nothing
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(ctx: &Context, cmd: RepairCommand) -> Result<u8> {
    match cmd {
        RepairCommand::Index { read_all_packs } => {
            let (repo, keys) = ctx.meta_keys()?;
            let mut cache = ctx.open_cache(&repo)?;
            let opts = vault::repair::IndexRepairOptions {
                read_all_packs,
                lock_wait: ctx.lock_wait(),
            };
            let r = vault::repair::repair_index(&repo, &keys, &mut cache, &opts)?;
            let named = |list: &[vault::repair::Unreadable]| {
                list.iter()
                    .map(|u| serde_json::json!({ "name": u.name, "error": u.reason }))
                    .collect::<Vec<_>>()
            };
            crate::cli::output::set_result(serde_json::json!({
                "nothing_to_do": r.nothing_to_do,
                "packs": r.packs,
                "packs_read": r.packs_read,
                "index_files_written": r.index_files_written,
                "index_files_removed": r.index_files_removed,
                "missing_packs": r.missing_packs,
                "damaged_index_files": named(&r.damaged),
                "unreadable_packs": named(&r.unreadable_packs),
                "kept_locked": r
                    .kept_locked
                    .iter()
                    .map(|k| format!("{}/{}", k.kind.label(), k.name))
                    .collect::<Vec<_>>(),
            }));
            for u in &r.damaged {
                outln!("index file {} could not be read: {}", u.name, u.reason);
            }
            for u in &r.unreadable_packs {
                errln!("vault: warning: pack {}: {}; its blobs stay unindexed (`vault repair snapshots` drops the files that need them)", u.name, u.reason);
            }
            if r.nothing_to_do {
                outln!(
                    "the index names all {} packs and every index file reads: nothing to repair",
                    r.packs
                );
                return Ok(0);
            }
            outln!(
                "rebuilt the index of {} packs ({} read from their trailers): wrote {} index files, removed {}{}",
                r.packs - r.unreadable_packs.len(),
                r.packs_read,
                r.index_files_written,
                r.index_files_removed,
                if r.missing_packs > 0 {
                    format!("; {} packs the old index named are gone from the store", r.missing_packs)
                } else {
                    String::new()
                }
            );
            if !r.kept_locked.is_empty() {
                outln!(
                    "{} old index files are under retention and were kept; they name nothing the new ones do not",
                    r.kept_locked.len()
                );
            }
            Ok(if r.unreadable_packs.is_empty() {
                0
            } else {
                crate::cli::docs::EXIT_PARTIAL
            })
        }
        RepairCommand::Snapshots {
            forget_originals,
            dry_run,
        } => {
            let (repo, keys, identity) = ctx.reader_keys()?;
            let mut cache = ctx.open_cache(&repo)?;
            let reader = vault::reader::BlobReader::new(repo, keys, identity);
            let opts = vault::repair::SnapshotRepairOptions {
                forget_originals,
                dry_run,
                lock_wait: ctx.lock_wait(),
            };
            let r = vault::repair::repair_snapshots(&reader, &mut cache, &opts)?;
            let damaged: Vec<serde_json::Value> = r
                .damaged
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "original": s.original.to_hex(),
                        "short_id": s.original.short(),
                        "time": s.time,
                        "hostname": s.hostname,
                        "lost": s.lost,
                        "repaired": s.repaired.map(|id| id.to_hex()),
                        "original_forgotten": s.original_forgotten,
                    })
                })
                .collect();
            crate::cli::output::set_result(serde_json::json!({
                "dry_run": dry_run,
                "snapshots": r.snapshots,
                "damaged": damaged,
            }));
            for s in &r.damaged {
                outln!(
                    "snapshot {} ({}, {}) lost {} paths:",
                    s.original.short(),
                    s.time,
                    s.hostname,
                    s.lost.len()
                );
                for p in &s.lost {
                    outln!("  {p}");
                }
                match (s.repaired, dry_run) {
                    (_, true) => {}
                    (Some(new), _) => outln!(
                        "  wrote snapshot {} without them (tagged {}){}",
                        new.short(),
                        vault::repair::REPAIRED_TAG,
                        if s.original_forgotten {
                            "; the original was removed"
                        } else {
                            "; the original is kept (`--forget-originals` removes it)"
                        }
                    ),
                    (None, _) => {
                        outln!("  nothing of it can be read: no repaired snapshot was written")
                    }
                }
            }
            outln!(
                "{} of {} snapshots lost data{}",
                r.damaged.len(),
                r.snapshots,
                if dry_run {
                    "; dry run: nothing was written"
                } else {
                    ""
                }
            );
            Ok(0)
        }
    }
}
