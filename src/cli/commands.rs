//! One function per command: options in, library call, printed result out.

use super::context::Context;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use vault::backup::SnapshotOptions;
use vault::keys::WriterKeyFile;
use vault::repo::{ChunkerParams, Repo};
use vault::tree::{display_name, NodeKind};

pub fn init(
    ctx: &Context,
    extra_recipients: &[String],
    object_lock: Option<vault::backend::ObjectLock>,
) -> Result<Repo> {
    let passphrase = ctx.new_passphrase()?;
    let defaults = ChunkerParams::default();
    let c = &ctx.config.chunker;
    let chunker = ChunkerParams {
        min_size: c.min_size.unwrap_or(defaults.min_size),
        avg_size: c.avg_size.unwrap_or(defaults.avg_size),
        max_size: c.max_size.unwrap_or(defaults.max_size),
    };
    let backend = ctx.backend()?;
    let created = vault::repo::create(
        backend,
        chunker,
        extra_recipients,
        passphrase.as_ref(),
        object_lock,
    )?;
    let repo = created.repo;
    let store_id = repo.config.store_id.clone();
    let writer_path = ctx.writer_key_path(&store_id);
    WriterKeyFile {
        store_id: store_id.clone(),
        store: repo.location(),
        id_key: created.id_key.to_hex().to_string(),
        recipients: repo.config.recipients.clone(),
    }
    .save(&writer_path)?;
    println!("created store {} at {}", store_id, repo.location());
    println!(
        "this host's writer key: {} (lets it write snapshots, not read them)",
        writer_path.display()
    );
    if passphrase.is_some() {
        println!(
            "the reader identity is stored in the store, wrapped with your passphrase: the store plus the \
             passphrase restore everything. Keep the passphrase safe and apart from this host."
        );
    } else {
        let id_path = ctx.default_identity_path(&store_id);
        vault::keys::write_private_file(
            &id_path,
            vault::keys::identity_file_text(&created.identity).as_bytes(),
        )?;
        println!();
        println!("KEEP THIS FILE SAFE: {}", id_path.display());
        println!(
            "  It is the only key that can read these backups (no passphrase was given, so the store holds no \
             copy). Copy it somewhere offline now; without it no snapshot can ever be restored. You may then \
             delete it from this host: snapshots keep working with the writer key alone. To keep a copy in the \
             store wrapped with a passphrase instead, run `vault key set-passphrase`."
        );
    }
    Ok(repo)
}

pub fn snapshot(
    ctx: &Context,
    tags: Vec<String>,
    host: Option<String>,
    paths: Vec<PathBuf>,
) -> Result<u8> {
    let backend = ctx.backend()?;
    if !backend.exists(vault::backend::Kind::Config, "config")? {
        if ctx.store_is_default() {
            eprintln!("vault: no store yet at {}: creating it", backend.location());
            init(ctx, &[], None)?;
        } else {
            return Err(vault::Error::StoreNotFound(backend.location()).into());
        }
    }
    let writer = ctx.writer()?;
    let sources = source_paths(ctx, paths)?;
    let mut cache = ctx.open_cache(&writer.repo)?;
    let hostname = host
        .or_else(|| ctx.config.hostname.clone())
        .unwrap_or_else(system_hostname);
    let opts = SnapshotOptions {
        paths: sources,
        tags,
        hostname,
        excludes: ctx.config.exclude.clone(),
        threads: ctx.threads(),
        lock_wait: ctx.lock_wait(),
    };
    let result = vault::backup::run(
        &writer.repo,
        &writer.keys,
        &writer.recipients,
        &mut cache,
        &opts,
    )?;
    for p in &result.problems {
        eprintln!("vault: could not read {}: {}", p.path.display(), p.error);
    }
    let s = &result.snapshot.summary;
    println!(
        "snapshot {} saved: {} files, {} folders, {} ({} read, {} new data, {} stored) in {:.2} s",
        result.id.short(),
        s.files,
        s.dirs,
        human(s.bytes),
        human(s.bytes_read),
        human(s.new_bytes),
        human(s.stored_bytes),
        s.duration_ms as f64 / 1000.0
    );
    seal_platform_secrets(ctx, &writer);
    if !result.problems.is_empty() {
        eprintln!(
            "vault: the snapshot is partial: {} entr{} could not be read (listed above)",
            result.problems.len(),
            if result.problems.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
        return Ok(crate::exit_partial());
    }
    Ok(0)
}

/// Seals the platform's secrets when their value changed. A host without them (a worker)
/// says nothing; a failure is a warning, because the snapshot itself succeeded.
fn seal_platform_secrets(ctx: &Context, writer: &super::context::Writer) {
    let key = writer
        .keys
        .derive(vault::crypto::SECRET_FINGERPRINT_CONTEXT);
    // The values pass through this process's memory: keep them out of core dumps.
    super::secrets::harden_process();
    match vault::secrets::seal_changed(
        writer.repo.backend.as_ref(),
        &ctx.config.secrets,
        &key,
        std::time::SystemTime::now(),
    ) {
        Ok(outcomes) => {
            super::secrets::report_snapshot_seal(&outcomes, false);
        }
        Err(e) => eprintln!("vault: warning: platform secrets not sealed: {e}"),
    }
}

/// Paths given on the command line, else the configured ones, else the platform's
/// folders; a default that does not exist on this host (a worker host has no
/// /var/travis) is skipped with a note.
fn source_paths(ctx: &Context, given: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given);
    }
    if let Some(paths) = &ctx.config.paths {
        if paths.is_empty() {
            bail!("the configuration lists no paths to snapshot");
        }
        return Ok(paths.clone());
    }
    let mut out = Vec::new();
    for p in vault::config::DEFAULT_PATHS {
        if Path::new(p).exists() {
            out.push(PathBuf::from(p));
        } else {
            eprintln!("vault: {p} does not exist on this host; skipped");
        }
    }
    if out.is_empty() {
        bail!(
            "nothing to snapshot: neither {} exists here; name the paths (`vault snapshot PATH...`) or set `paths` in the configuration",
            vault::config::DEFAULT_PATHS.join(" nor ")
        );
    }
    Ok(out)
}

fn system_hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

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
    }
    println!(
        "{} snapshot{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

pub fn ls(ctx: &Context, spec: &str, path: Option<PathBuf>) -> Result<()> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
    let (_, snap) = repo.find_snapshot(&keys, spec)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let filter: Vec<Vec<u8>> = path
        .as_ref()
        .map(|p| {
            use std::os::unix::ffi::OsStrExt;
            p.as_os_str()
                .as_bytes()
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .map(|c| c.to_vec())
                .collect()
        })
        .unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut found = false;
    list_tree(
        &reader,
        &cache,
        &snap.tree,
        &mut Vec::new(),
        &filter,
        &mut found,
        &mut out,
    )?;
    use std::io::Write;
    out.flush()?;
    if !found {
        bail!(
            "{} is not in this snapshot",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

fn list_tree(
    reader: &vault::reader::BlobReader,
    cache: &vault::cache::Cache,
    tree_id: &vault::Id,
    prefix: &mut Vec<Vec<u8>>,
    filter: &[Vec<u8>],
    found: &mut bool,
    out: &mut impl std::io::Write,
) -> Result<()> {
    let tree = reader.tree(cache, tree_id)?;
    for node in &tree.nodes {
        prefix.push(node.name.clone());
        let depth = prefix.len().min(filter.len());
        if prefix[..depth] == filter[..depth] {
            if prefix.len() >= filter.len() {
                *found = true;
                let path: Vec<String> = prefix.iter().map(|c| display_name(c)).collect();
                let mut line = format!(
                    "{} {:>8} {:>8} {:>12} {} /{}",
                    mode_string(node.kind, node.mode),
                    node.user.clone().unwrap_or_else(|| node.uid.to_string()),
                    node.group.clone().unwrap_or_else(|| node.gid.to_string()),
                    node.size,
                    chrono::DateTime::from_timestamp(node.mtime, node.mtime_nsec)
                        .map(|t| t
                            .with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string())
                        .unwrap_or_default(),
                    path.join("/")
                );
                if let Some(t) = &node.target {
                    line.push_str(&format!(" -> {}", display_name(t)));
                }
                writeln!(out, "{line}")?;
            }
            if let Some(sub) = &node.subtree {
                list_tree(reader, cache, sub, prefix, filter, found, out)?;
            }
        }
        prefix.pop();
    }
    Ok(())
}

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
    };
    let mut s = String::from(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            (true, false, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

pub fn restore(ctx: &Context, spec: &str, opts: vault::restore::RestoreOptions) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    cache.sync_index(&repo, &keys)?;
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

pub fn check(ctx: &Context, read_data: bool) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
    let report = vault::check::run(&reader, &mut cache, read_data)?;
    for p in &report.problems {
        println!("{p}");
    }
    println!(
        "checked {} snapshots, {} packs, {} index files{}: {}",
        report.snapshots,
        report.packs,
        report.index_files,
        if read_data {
            format!(", read {} blobs", report.blobs_read)
        } else {
            String::new()
        },
        if report.problems.is_empty() {
            "no errors".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
    if !report.problems.is_empty() {
        bail!(
            "the store at {} has errors (listed above)",
            reader.repo.location()
        );
    }
    Ok(0)
}

/// `vault copy`: the context's store is the source (`--from`).
pub fn copy(ctx: &Context, to: &str, specs: &[String]) -> Result<u8> {
    use vault::copy::{CopyOptions, CopyReport, Tally};
    let opts = CopyOptions {
        threads: ctx.threads(),
        lock_wait: ctx.lock_wait(),
    };
    let mut report = CopyReport::default();
    let dst_backend = vault::backend::open_with(to, &ctx.config)?;
    let src_location;
    let dst_location;
    if specs.is_empty() {
        // The whole store: the metadata key is enough (a writer host can ship its store).
        let (src, keys) = ctx.meta_keys()?;
        let dst = vault::copy::open_destination(&src, dst_backend, &mut report)?;
        (src_location, dst_location) = (src.location(), dst.location());
        vault::copy::copy_all(&src, &dst, &keys, &opts, &mut report)?;
    } else {
        // Chosen snapshots: their trees must be read to find their packs.
        let (src, keys, identity) = ctx.reader_keys()?;
        let mut cache = ctx.open_cache(&src)?;
        cache.sync_index(&src, &keys)?;
        let mut chosen = Vec::new();
        for spec in specs {
            chosen.push(src.find_snapshot(&keys, spec)?);
        }
        let dst = vault::copy::open_destination(&src, dst_backend, &mut report)?;
        (src_location, dst_location) = (src.location(), dst.location());
        let reader = vault::reader::BlobReader::new(src, keys, identity);
        vault::copy::copy_snapshots(&reader, &cache, &dst, &chosen, &opts, &mut report)?;
    }

    if report.created {
        println!("created a copy of the store at {dst_location} (its config and keys come from {src_location})");
    }
    for note in &report.notes {
        eprintln!("vault: note: {note}");
    }
    for p in &report.problems {
        eprintln!("vault: {p}");
    }
    let describe =
        |pick: &dyn Fn(&vault::copy::KindTally) -> Tally, extra: Option<Tally>| -> String {
            let mut parts = Vec::new();
            for (label, k) in report.kinds() {
                let t = pick(&k);
                if t.objects > 0 {
                    parts.push(format!("{} {label} ({})", t.objects, human(t.bytes)));
                }
            }
            if let Some(t) = extra.filter(|t| t.objects > 0) {
                parts.push(format!(
                    "{} new index files ({})",
                    t.objects,
                    human(t.bytes)
                ));
            }
            if parts.is_empty() {
                "nothing".into()
            } else {
                parts.join(", ")
            }
        };
    let copied = report.copied();
    let present = report.present();
    println!(
        "copied {} objects ({}) to {dst_location}: {}",
        copied.objects,
        human(copied.bytes),
        describe(&|k| k.copied, Some(report.new_index_files))
    );
    println!(
        "already there: {} objects ({}): {}",
        present.objects,
        human(present.bytes),
        describe(&|k| k.present, None)
    );
    if report.reindexed_packs > 0 {
        println!(
            "{} packs that were already there are now indexed",
            report.reindexed_packs
        );
    }
    for id in &report.copied_snapshots {
        println!("copied snapshot {}", id.short());
    }
    if !report.withheld.is_empty() {
        let ids: Vec<String> = report.withheld.iter().map(|id| id.short()).collect();
        eprintln!(
            "vault: {} snapshot{} not copied, because not everything {} need{} could be copied: {}",
            ids.len(),
            if ids.len() == 1 { " was" } else { "s were" },
            if ids.len() == 1 { "it" } else { "they" },
            if ids.len() == 1 { "s" } else { "" },
            ids.join(" ")
        );
        if specs.is_empty() && !report.problems.is_empty() {
            eprintln!(
                "vault: a whole-store copy cannot tell which snapshots need the damaged objects without reading their \
                 trees; name the snapshots to copy (`vault copy --from {src_location} --to {dst_location} ID...`, \
                 with the reader identity or passphrase) to copy those that do not"
            );
        }
    }
    if !report.is_complete() {
        bail!(
            "copy incomplete: {} problem{} (listed above); everything else was copied and {dst_location} is consistent",
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

pub fn prune(ctx: &Context, dry_run: bool, repack_threshold: u8) -> Result<u8> {
    let (repo, keys, identity) = ctx.reader_keys()?;
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
        return prune(ctx, false, 20);
    }
    Ok(0)
}

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
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut skip = std::collections::HashSet::new();
    if let Some(policy) = &policy {
        let snapshots = repo.snapshots(&keys)?;
        let candidates = vault::retention::candidates(&snapshots)?;
        for d in vault::retention::apply(policy, &candidates, &chrono::Local::now())? {
            if d.selected && !d.keep {
                skip.insert(d.id);
            }
        }
        println!("policy: {policy}");
    }
    let mut cache = ctx.open_cache(&repo)?;
    let reader = vault::reader::BlobReader::new(repo, keys, identity);
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
