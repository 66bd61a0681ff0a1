//! Which snapshots hold a path or name matching a glob, with each match's size and mtime.
//!
//! A pattern without `/` matches entry names (`*.yml`, `travis.y?ml`); a pattern with `/`
//! matches whole absolute paths, anchored at `/` when it starts with one and anywhere
//! otherwise (`travis/*.yml` is `**/travis/*.yml`). `*` and `?` do not cross `/`; `**`
//! does. Names are matched as bytes, so non-UTF-8 names can be found too.
//!
//! Snapshots share unchanged subtrees; the matches below a tree at a given path are
//! computed once and reused for every snapshot holding it.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::reader::BlobReader;
use crate::repo::Snapshot;
use crate::tree::display_name;
use crate::Id;
use serde::Serialize;
use std::collections::HashMap;
use std::rc::Rc;

/// One matching entry in one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    /// Absolute path, non-UTF-8 bytes shown as `\xNN`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Apparent size (files; 0 otherwise).
    pub size: u64,
    /// Modification time, RFC 3339 UTC with nanoseconds.
    pub mtime: String,
}

/// The matches in one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Hit {
    pub snapshot: String,
    pub short_id: String,
    pub host: String,
    pub time: String,
    pub tags: Vec<String>,
    pub matches: Vec<Match>,
}

pub struct Pattern {
    glob: globset::GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern> {
        let whole_path = pattern.contains('/');
        let text = if whole_path && !pattern.starts_with('/') {
            format!("**/{pattern}")
        } else {
            pattern.to_string()
        };
        let glob = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::Usage(format!("pattern {pattern:?}: {e}")))?;
        Ok(Pattern {
            glob: glob.compile_matcher(),
            whole_path,
        })
    }

    /// Does the entry at `path` (absolute, raw bytes) with this `name` match?
    pub fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let subject = if self.whole_path { path } else { name };
        self.glob
            .is_match(std::path::Path::new(std::ffi::OsStr::from_bytes(subject)))
    }
}

/// Looks for `pattern` in every snapshot given; snapshots without a match are left out.
pub fn find(
    reader: &BlobReader,
    cache: &Cache,
    snapshots: &[(Id, Snapshot)],
    pattern: &Pattern,
) -> Result<Vec<Hit>> {
    let mut memo: HashMap<(Id, Vec<u8>), Rc<Vec<Match>>> = HashMap::new();
    let mut hits = Vec::new();
    for (id, snap) in snapshots {
        let matches = walk(
            reader,
            cache,
            &snap.tree,
            &mut Vec::new(),
            pattern,
            &mut memo,
        )?;
        if matches.is_empty() {
            continue;
        }
        hits.push(Hit {
            snapshot: id.to_hex(),
            short_id: id.short(),
            host: snap.hostname.clone(),
            time: snap.time.clone(),
            tags: snap.tags.clone(),
            matches: matches.as_ref().clone(),
        });
    }
    Ok(hits)
}

fn walk(
    reader: &BlobReader,
    cache: &Cache,
    tree_id: &Id,
    prefix: &mut Vec<u8>,
    pattern: &Pattern,
    memo: &mut HashMap<(Id, Vec<u8>), Rc<Vec<Match>>>,
) -> Result<Rc<Vec<Match>>> {
    let key = (*tree_id, prefix.clone());
    if let Some(m) = memo.get(&key) {
        return Ok(m.clone());
    }
    // Names, kinds, sizes and times only: long files' chunk lists stay unread.
    let tree = reader.tree_shallow(cache, tree_id)?;
    let mut out = Vec::new();
    for node in &tree.nodes {
        let len = prefix.len();
        prefix.push(b'/');
        prefix.extend_from_slice(&node.name);
        if pattern.matches(prefix, &node.name) {
            out.push(Match {
                path: display_path(prefix),
                kind: crate::diff::kind_label(node.kind),
                size: node.size,
                mtime: chrono::DateTime::from_timestamp(node.mtime, node.mtime_nsec)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                    .unwrap_or_default(),
            });
        }
        if let Some(sub) = &node.subtree {
            let below = walk(reader, cache, sub, prefix, pattern, memo)?;
            out.extend(below.iter().cloned());
        }
        prefix.truncate(len);
    }
    let out = Rc::new(out);
    memo.insert(key, out.clone());
    Ok(out)
}

fn display_path(path: &[u8]) -> String {
    path.split(|&b| b == b'/')
        .map(display_name)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let p = Pattern::new("*.yml").unwrap();
        assert!(p.matches(b"/etc/travis/travis.yml", b"travis.yml"));
        assert!(!p.matches(b"/etc/travis/travis.yaml", b"travis.yaml"));
        let p = Pattern::new("travis/*.yml").unwrap();
        assert!(p.matches(b"/etc/travis/travis.yml", b"travis.yml"));
        assert!(!p.matches(b"/etc/travis/sub/x.yml", b"x.yml"));
        let p = Pattern::new("/var/**/*.log").unwrap();
        assert!(p.matches(b"/var/travis/log/a.log", b"a.log"));
        assert!(!p.matches(b"/etc/a.log", b"a.log"));
        let p = Pattern::new("caf*").unwrap();
        assert!(p.matches(b"/x/caf\xe9.txt", b"caf\xe9.txt"));
    }
}
