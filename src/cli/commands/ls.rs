use crate::cli::context::Context;
use anyhow::{bail, Result};
use std::path::PathBuf;
use vault::tree::{display_name, NodeKind};

// `vault ls`'s options.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), "latest" (this host's) or "latest:HOST"
    pub snapshot: String,
    /// Only this path and what lies below it
    pub path: Option<PathBuf>,
    /// Long listing like `ls -l`: type and mode, owner, group, size, mtime
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    #[command(flatten)]
    pub filter: crate::cli::filter::FilterArgs,
}

/// `vault ls`.
pub fn ls(ctx: &Context, args: LsArgs) -> Result<u8> {
    let json = crate::cli::output::json();
    list(
        ctx,
        &args.snapshot,
        args.path,
        args.long,
        json,
        &args.filter,
    )
    .map(|_| 0)
}

/// How `ls` prints each entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Short,
    Long,
    Json,
}

fn list(
    ctx: &Context,
    spec: &str,
    path: Option<PathBuf>,
    long: bool,
    json: bool,
    filter: &crate::cli::filter::FilterArgs,
) -> Result<()> {
    let style = if json {
        Style::Json
    } else if long {
        Style::Long
    } else {
        Style::Short
    };
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    for w in cache.sync_index(&repo, &keys)?.warnings() {
        errln!("vault: warning: {w}");
    }
    let (id, snap, verdict) = crate::cli::filter::resolve(ctx, &repo, &keys, spec, filter)?;
    super::describe_verification(&id, &snap, &verdict);
    for d in &snap.databases {
        dataln!("# {}", d.describe());
    }
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
    use std::io::Write;
    // Through the output module: a closed stdout ends the listing quietly.
    let mut out = crate::cli::output::Stdout::new();
    if style == Style::Json {
        crate::cli::output::mark_printed();
    }
    let mut found = false;
    if style == Style::Json {
        write!(out, "[")?;
    }
    list_tree(
        &reader,
        &cache,
        &snap.tree,
        &mut Vec::new(),
        &filter,
        &mut found,
        style,
        &mut out,
    )?;
    if style == Style::Json {
        writeln!(out, "{}]", if found { "\n" } else { "" })?;
    }
    out.flush()?;
    if !found {
        bail!(
            "{} is not in this snapshot",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn list_tree(
    reader: &vault::reader::BlobReader,
    cache: &vault::cache::Cache,
    tree_id: &vault::Id,
    prefix: &mut Vec<Vec<u8>>,
    filter: &[Vec<u8>],
    found: &mut bool,
    style: Style,
    out: &mut impl std::io::Write,
) -> Result<()> {
    // Names, kinds, sizes and times only: long files' chunk lists stay unread.
    let tree = reader.tree_shallow(cache, tree_id)?;
    for node in &tree.nodes {
        prefix.push(node.name.clone());
        let depth = prefix.len().min(filter.len());
        if prefix[..depth] == filter[..depth] {
            if prefix.len() >= filter.len() {
                let first = !*found;
                *found = true;
                let path: Vec<String> = prefix.iter().map(|c| display_name(c)).collect();
                let path = format!("/{}", path.join("/"));
                let mtime = chrono::DateTime::from_timestamp(node.mtime, node.mtime_nsec);
                match style {
                    Style::Short => writeln!(out, "{path}")?,
                    Style::Long => {
                        let mut line = format!(
                            "{} {:<8} {:<8} {:>10} {} {path}",
                            mode_string(node.kind, node.mode),
                            node.user.clone().unwrap_or_else(|| node.uid.to_string()),
                            node.group.clone().unwrap_or_else(|| node.gid.to_string()),
                            match node.kind {
                                NodeKind::CharDevice | NodeKind::BlockDevice => format!(
                                    "{}, {}",
                                    libc::major(node.rdev),
                                    libc::minor(node.rdev)
                                ),
                                _ => super::human(node.size),
                            },
                            mtime
                                .map(|t| t
                                    .with_timezone(&chrono::Local)
                                    .format("%Y-%m-%d %H:%M")
                                    .to_string())
                                .unwrap_or_default(),
                        );
                        if let Some(t) = &node.target {
                            line.push_str(&format!(" -> {}", display_name(t)));
                        }
                        writeln!(out, "{line}")?;
                    }
                    Style::Json => {
                        let mut v = serde_json::json!({
                            "path": path,
                            "type": vault::diff::kind_label(node.kind),
                            "mode": format!("{:04o}", node.mode),
                            "permissions": mode_string(node.kind, node.mode),
                            "uid": node.uid,
                            "gid": node.gid,
                            "user": node.user,
                            "group": node.group,
                            "size": node.size,
                            "mtime": mtime
                                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                                .unwrap_or_default(),
                        });
                        if let Some(t) = &node.target {
                            v["target"] = display_name(t).into();
                        }
                        if node.kind == NodeKind::CharDevice || node.kind == NodeKind::BlockDevice {
                            v["rdev"] =
                                serde_json::json!([libc::major(node.rdev), libc::minor(node.rdev)]);
                        }
                        write!(out, "{}\n  {v}", if first { "" } else { "," })?;
                    }
                }
            }
            if let Some(sub) = &node.subtree {
                list_tree(reader, cache, sub, prefix, filter, found, style, out)?;
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
