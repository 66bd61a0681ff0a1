use crate::cli::context::Context;
use anyhow::{bail, Result};
use std::path::PathBuf;
use vault::tree::{display_name, NodeKind};

pub fn ls(ctx: &Context, spec: &str, path: Option<PathBuf>) -> Result<()> {
    let (repo, keys, identity) = ctx.reader_keys()?;
    let mut cache = ctx.open_cache(&repo)?;
    for w in cache.sync_index(&repo, &keys)?.warnings() {
        eprintln!("vault: warning: {w}");
    }
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
