//! Writing a snapshot (or a path in it) as a tar stream, for hosts without vault.
//!
//! The stream is POSIX (PAX) tar as GNU tar writes it, so that `tar --xattrs
//! --xattrs-include='*' --acls -xpf` run as root extracts the same tree a restore makes:
//! - every entry carries a PAX `mtime` with nanoseconds; `path` and `linkpath` when a name
//!   does not fit the header (or is not plain ASCII), `uid`/`gid` when too large for it,
//!   `uname`/`gname` when too long;
//! - every xattr as `SCHILY.xattr.NAME`, and POSIX ACLs also as `SCHILY.acl.access` /
//!   `SCHILY.acl.default` text with numeric ids (exact on any host);
//! - files with holes as PAX sparse 1.0 (`GNU.sparse.*`): only their data is written;
//! - later paths of a hardlink group as hard links to the first path written;
//! - directories before what they hold. Sockets cannot be held by tar and are left out
//!   (listed in the report).
//!
//! Memory: one chunk at a time is read, decrypted and written.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::reader::{locate, BlobReader};
use crate::tree::{display_name, ChunkRef, LinkKey, Node, NodeKind};
use crate::Id;
use std::collections::HashMap;
use std::io::{self, Read, Write};

#[derive(Debug, Default)]
pub struct DumpReport {
    pub entries: u64,
    /// Bytes of file data written (holes not counted).
    pub bytes: u64,
    /// Entries that tar cannot hold, in words.
    pub skipped: Vec<String>,
}

/// Writes the tree `root` (whose entries lie below `/`) as tar to `out`. With `only`
/// (path components below `/`), just that entry and what lies below it.
pub fn dump(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
    only: &[Vec<u8>],
    out: impl Write,
) -> Result<DumpReport> {
    let mut d = Dumper {
        reader,
        cache,
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        report: DumpReport::default(),
    };
    if only.is_empty() {
        d.dir(root, &mut Vec::new())?;
    } else {
        let (node, parent) = find(reader, cache, root, only)?;
        let _ = parent;
        let mut path = only[..only.len() - 1].join(&b'/');
        d.entry(&node, &mut path)?;
    }
    d.builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::io("write the tar stream", e))?;
    Ok(d.report)
}

/// The node at `comps` below the tree `root`, and the id of the tree holding it.
pub fn find(
    reader: &BlobReader,
    cache: &Cache,
    root: &Id,
    comps: &[Vec<u8>],
) -> Result<(Node, Id)> {
    let mut tree_id = *root;
    for (i, c) in comps.iter().enumerate() {
        let tree = reader.tree(cache, &tree_id)?;
        let Some(node) = tree.find(c).cloned() else {
            break;
        };
        if i + 1 == comps.len() {
            return Ok((node, tree_id));
        }
        match node.subtree {
            Some(sub) => tree_id = sub,
            None => break,
        }
    }
    Err(Error::Usage(format!(
        "/{} is not in this snapshot",
        comps
            .iter()
            .map(|c| display_name(c))
            .collect::<Vec<_>>()
            .join("/")
    )))
}

struct Dumper<'a, W: Write> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    builder: tar::Builder<W>,
    links: HashMap<LinkKey, Vec<u8>>,
    report: DumpReport,
}

impl<W: Write> Dumper<'_, W> {
    fn dir(&mut self, tree_id: &Id, path: &mut Vec<u8>) -> Result<()> {
        let tree = self.reader.tree(self.cache, tree_id)?;
        for node in &tree.nodes {
            self.entry(node, path)?;
        }
        Ok(())
    }

    /// Writes `node`, whose parent folder is `path` (no leading slash).
    fn entry(&mut self, node: &Node, path: &mut Vec<u8>) -> Result<()> {
        if !crate::tree::is_safe_name(&node.name) {
            return Err(Error::corrupt(
                format!("snapshot tree entry {}", display_name(&node.name)),
                "the name is not a plain file name",
            ));
        }
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&node.name);
        let result = self.write_node(node, path);
        let result = result.and_then(|()| match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => self.dir(&sub, path),
            _ => Ok(()),
        });
        path.truncate(len);
        result
    }

    fn write_node(&mut self, node: &Node, path: &[u8]) -> Result<()> {
        let shown = || format!("/{}", display_name(path));
        let werr = |e: io::Error| Error::io(format!("write {} to the tar stream", shown()), e);
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut header = tar::Header::new_ustar();
        let mut name = path.to_vec();
        let mut link_target: Option<Vec<u8>> = None;
        let mut size = 0u64;
        let mut sparse: Option<Vec<(u64, u64)>> = None;
        match node.kind {
            NodeKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                name.push(b'/');
            }
            NodeKind::File => {
                if let Some(first) = node.link.and_then(|k| self.links.get(&k)) {
                    header.set_entry_type(tar::EntryType::Link);
                    link_target = Some(first.clone());
                } else {
                    if let Some(k) = node.link {
                        self.links.insert(k, path.to_vec());
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    if node.data_len() < node.size {
                        let regions = sparse_regions(node);
                        size = sparse_map(&regions).len() as u64 + node.data_len();
                        name = sparse_entry(node, path, &mut pax);
                        sparse = Some(regions);
                    } else {
                        size = node.size;
                    }
                }
            }
            NodeKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                link_target = Some(node.target.clone().unwrap_or_default());
            }
            NodeKind::Fifo => header.set_entry_type(tar::EntryType::Fifo),
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                header.set_entry_type(if node.kind == NodeKind::CharDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                let major = libc::major(node.rdev);
                let minor = libc::minor(node.rdev);
                header.set_device_major(major).map_err(werr)?;
                header.set_device_minor(minor).map_err(werr)?;
            }
            NodeKind::Socket => {
                self.report
                    .skipped
                    .push(format!("{}: a socket, which tar cannot hold", shown()));
                return Ok(());
            }
        }
        set_owner_and_time(&mut header, &mut pax, node);
        set_names(&mut header, &mut pax, &name, link_target.as_deref());
        xattr_records(&mut pax, node);
        header.set_size(size);
        header.set_cksum();
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let xh = pax_header(&name, node.mtime, records.len() as u64);
            self.builder.append(&xh, &records[..]).map_err(werr)?;
        }
        let content = Content::new(self.reader, self.cache, node, sparse.as_deref(), size);
        if let Err(e) = self.builder.append(&header, content) {
            return Err(
                match e.get_ref().and_then(|i| i.downcast_ref::<ReadFailed>()) {
                    Some(ReadFailed(msg)) => Error::Restore(format!(
                        "dump stopped at {}: {msg}; the tar stream written so far is incomplete",
                        shown()
                    )),
                    None => werr(e),
                },
            );
        }
        self.report.entries += 1;
        if node.kind == NodeKind::File && link_target.is_none() {
            self.report.bytes += node.data_len();
        }
        Ok(())
    }
}

/// The data regions of a sparse file, ending with an empty one at its size when its data
/// ends earlier (so the size is recorded).
fn sparse_regions(node: &Node) -> Vec<(u64, u64)> {
    let mut regions: Vec<(u64, u64)> = node.extents.iter().map(|e| (e.offset, e.len())).collect();
    if regions.last().map_or(true, |r| r.0 + r.1 < node.size) {
        regions.push((node.size, 0));
    }
    regions
}

/// Adds the PAX records of a GNU sparse 1.0 file at `path` and returns the name its
/// entry is archived under (`DIR/GNUSparseFile.0/BASE`).
fn sparse_entry(node: &Node, path: &[u8], pax: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    pax.push((b"GNU.sparse.major".to_vec(), b"1".to_vec()));
    pax.push((b"GNU.sparse.minor".to_vec(), b"0".to_vec()));
    pax.push((b"GNU.sparse.name".to_vec(), path.to_vec()));
    pax.push((
        "GNU.sparse.realsize".into(),
        node.size.to_string().into_bytes(),
    ));
    let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    [dir, b"GNUSparseFile.0/", base].concat()
}

/// Sets mode, owner and time in `header`; what it cannot hold (large ids, long names,
/// the exact time) goes to PAX records.
fn set_owner_and_time(header: &mut tar::Header, pax: &mut Vec<(Vec<u8>, Vec<u8>)>, node: &Node) {
    header.set_mode(node.mode & 0o7777);
    const MAX_ID: u32 = 0o7777777;
    header.set_uid(node.uid.min(MAX_ID) as u64);
    header.set_gid(node.gid.min(MAX_ID) as u64);
    if node.uid > MAX_ID {
        pax.push((b"uid".to_vec(), node.uid.to_string().into_bytes()));
    }
    if node.gid > MAX_ID {
        pax.push((b"gid".to_vec(), node.gid.to_string().into_bytes()));
    }
    for (key, value, set) in [("uname", &node.user, true), ("gname", &node.group, false)] {
        let Some(v) = value else { continue };
        let fits = if set {
            header.set_username(v).is_ok()
        } else {
            header.set_groupname(v).is_ok()
        };
        if !fits {
            pax.push((key.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
    }
    header.set_mtime(node.mtime.max(0) as u64);
    pax.push((
        "mtime".into(),
        pax_time(node.mtime, node.mtime_nsec).into_bytes(),
    ));
}

/// Sets the entry's name and link target in `header`; a long or non-ASCII one also goes
/// to a PAX record.
fn set_names(
    header: &mut tar::Header,
    pax: &mut Vec<(Vec<u8>, Vec<u8>)>,
    name: &[u8],
    link_target: Option<&[u8]>,
) {
    let plain = |b: &[u8]| b.iter().all(|c| (0x20..0x7f).contains(c));
    if name.len() > 100 || !plain(name) {
        pax.push((b"path".to_vec(), name.to_vec()));
    }
    put_field(&mut header.as_old_mut().name, name);
    if let Some(t) = link_target {
        if t.len() > 100 || !plain(t) {
            pax.push((b"linkpath".to_vec(), t.to_vec()));
        }
        put_field(&mut header.as_old_mut().linkname, t);
    }
}

/// Adds the node's extended attributes as PAX records, and its POSIX ACLs also as the
/// text records GNU tar and star read.
fn xattr_records(pax: &mut Vec<(Vec<u8>, Vec<u8>)>, node: &Node) {
    for x in &node.xattrs {
        // Names are bytes, as GNU tar writes them.
        pax.push(([&b"SCHILY.xattr."[..], &x.name].concat(), x.value.clone()));
        let acl_key = match x.name.as_slice() {
            b"system.posix_acl_access" => Some(&b"SCHILY.acl.access"[..]),
            b"system.posix_acl_default" => Some(&b"SCHILY.acl.default"[..]),
            _ => None,
        };
        if let Some(key) = acl_key {
            if let Some(text) = crate::acl::to_text(&x.value) {
                pax.push((key.to_vec(), text.into_bytes()));
            }
        }
    }
}

/// The header of the PAX extension entry (`len` bytes of records) before entry `name`.
fn pax_header(name: &[u8], mtime: i64, len: u64) -> tar::Header {
    let mut xh = tar::Header::new_ustar();
    xh.set_entry_type(tar::EntryType::XHeader);
    let base = name
        .rsplit(|&b| b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"x");
    put_field(
        &mut xh.as_old_mut().name,
        &[&b"PaxHeaders/"[..], base].concat(),
    );
    xh.set_mode(0o644);
    xh.set_mtime(mtime.max(0) as u64);
    xh.set_size(len);
    xh.set_cksum();
    xh
}

/// PAX records `LEN KEY=VALUE\n`, LEN counting the whole record (itself included).
fn pax_records(pax: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pax {
        let body = k.len() + v.len() + 3; // " ", "=", "\n"
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// Copies `value` into a NUL-padded header field, cut to its length (PAX has the rest).
fn put_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A PAX time: seconds and nanoseconds as one decimal, negative times included.
pub fn pax_time(sec: i64, nsec: u32) -> String {
    if nsec == 0 {
        return sec.to_string();
    }
    if sec >= 0 {
        format!("{sec}.{nsec:09}")
    } else {
        // sec + nsec/1e9 with sec < 0: -(|sec| - 1) - (1e9 - nsec)/1e9
        let whole = -(sec + 1);
        format!("-{whole}.{:09}", 1_000_000_000 - nsec)
    }
}

/// The map that starts a PAX 1.0 sparse file's data, padded to a block.
fn sparse_map(regions: &[(u64, u64)]) -> Vec<u8> {
    let mut text = format!("{}\n", regions.len());
    for (off, len) in regions {
        text.push_str(&format!("{off}\n{len}\n"));
    }
    let mut bytes = text.into_bytes();
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

/// A chunk that could not be read back; carried through `io::Error` to name the path.
#[derive(Debug)]
struct ReadFailed(String);

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadFailed {}

/// The bytes of one entry's tar data: a file's content with holes as zeros, or for a
/// sparse file the map and then the data regions only.
struct Content<'a> {
    reader: &'a BlobReader,
    cache: &'a Cache,
    /// What is still to come, in order.
    parts: std::collections::VecDeque<Part<'a>>,
    buf: Vec<u8>,
    at: usize,
    left: u64,
}

enum Part<'a> {
    Bytes(Vec<u8>),
    Zeros(u64),
    Chunk(&'a ChunkRef),
}

impl<'a> Content<'a> {
    fn new(
        reader: &'a BlobReader,
        cache: &'a Cache,
        node: &'a Node,
        sparse: Option<&[(u64, u64)]>,
        size: u64,
    ) -> Content<'a> {
        let mut parts = std::collections::VecDeque::new();
        if size > 0 {
            if let Some(regions) = sparse {
                parts.push_back(Part::Bytes(sparse_map(regions)));
                for e in &node.extents {
                    parts.extend(e.chunks.iter().map(Part::Chunk));
                }
            } else {
                let mut pos = 0u64;
                for e in &node.extents {
                    if e.offset > pos {
                        parts.push_back(Part::Zeros(e.offset - pos));
                    }
                    parts.extend(e.chunks.iter().map(Part::Chunk));
                    pos = e.offset + e.len();
                }
                if node.size > pos {
                    parts.push_back(Part::Zeros(node.size - pos));
                }
            }
        }
        Content {
            reader,
            cache,
            parts,
            buf: Vec::new(),
            at: 0,
            left: size,
        }
    }
}

impl Read for Content<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.left == 0 || out.is_empty() {
                return Ok(0);
            }
            if self.at < self.buf.len() {
                let n = (self.buf.len() - self.at)
                    .min(out.len())
                    .min(self.left as usize);
                out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
                self.at += n;
                self.left -= n as u64;
                return Ok(n);
            }
            match self.parts.pop_front() {
                None => {
                    return Err(io::Error::other(ReadFailed(
                        "the snapshot's chunks are shorter than the file's size".into(),
                    )))
                }
                Some(Part::Bytes(b)) => {
                    self.buf = b;
                    self.at = 0;
                }
                Some(Part::Zeros(n)) => {
                    let take = n.min(1 << 20);
                    self.buf.clear();
                    self.buf.resize(take as usize, 0);
                    self.at = 0;
                    if n > take {
                        self.parts.push_front(Part::Zeros(n - take));
                    }
                }
                Some(Part::Chunk(c)) => {
                    let data = locate(self.cache, &c.id, "data")
                        .and_then(|loc| self.reader.read(&loc))
                        .map_err(|e| io::Error::other(ReadFailed(e.to_string())))?;
                    if data.len() != c.len as usize {
                        return Err(io::Error::other(ReadFailed(format!(
                            "chunk {} holds {} bytes, the tree says {}",
                            c.id.short(),
                            data.len(),
                            c.len
                        ))));
                    }
                    self.buf = data;
                    self.at = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_round_trip() {
        for (s, ns) in [(0i64, 0u32), (12, 5), (-31_535_993, 123_456_789), (-2, 0)] {
            let text = pax_time(s, ns);
            assert_eq!(
                crate::import_tar::parse_pax_time(&text),
                Some((s, ns)),
                "{text}"
            );
        }
    }

    #[test]
    fn pax_records_parse_back() {
        let pax = vec![
            (b"path".to_vec(), vec![b'a'; 95]),
            (
                b"SCHILY.xattr.user.caf\xe9".to_vec(),
                b"line\nbreak".to_vec(),
            ),
        ];
        let bytes = pax_records(&pax);
        assert_eq!(crate::import_tar::parse_pax(&bytes).unwrap(), pax);
    }

    #[test]
    fn sparse_map_is_block_padded() {
        let m = sparse_map(&[(0, 10), (4096, 0)]);
        assert_eq!(m.len(), 512);
        assert!(m.starts_with(b"2\n0\n10\n4096\n0\n"));
    }
}
