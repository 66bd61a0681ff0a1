//! Directory trees: one blob per directory, listing its entries with their full metadata.
//!
//! A tree is the CBOR encoding of [`Tree`], entries sorted by name bytes. Its blob id is
//! the keyed hash of that encoding, so a directory whose entries and metadata did not
//! change produces the same id and costs nothing in the next snapshot; a changed file
//! changes its own tree and the trees above it, nothing else.
//!
//! Names and symlink targets are raw bytes (Linux allows any byte but `/` and NUL).
//! File content is a list of extents: each extent starts at a byte offset and is a run of
//! chunks; the gaps between extents, and after the last one up to `size`, are holes.

use crate::id::Id;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: Id,
    pub len: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub chunks: Vec<ChunkRef>,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Identifies a hardlink group: every path of a file with more than one link carries the
/// (device, inode) it had when the snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkKey {
    pub dev: u64,
    pub ino: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Apparent size for files, 0 otherwise.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extents: Vec<Extent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub target: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkKey>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Node {
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkRef> {
        self.extents.iter().flat_map(|e| e.chunks.iter())
    }

    /// Bytes of data this file holds (its size less its holes).
    pub fn data_len(&self) -> u64 {
        self.extents.iter().map(Extent::len).sum()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("serialisable");
        out
    }

    /// Parses a tree blob. Chunk lengths are bounded by [`crate::crypto::MAX_BLOB_LEN`]
    /// (they size buffers when a restore verifies what it wrote).
    pub fn decode(bytes: &[u8]) -> Result<Tree, String> {
        let tree: Tree = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        for node in &tree.nodes {
            if let Some(c) = node
                .chunks()
                .find(|c| c.len == 0 || c.len > crate::crypto::MAX_BLOB_LEN)
            {
                return Err(format!(
                    "entry {} has a chunk of length {}",
                    display_name(&node.name),
                    c.len
                ));
            }
        }
        Ok(tree)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// True for a name that may appear in a tree: not empty, not `.` or `..`, no `/` or NUL.
/// Restore refuses anything else, whatever a (possibly hostile) snapshot contains.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Shows a name for humans: UTF-8 as is, other bytes as `\xNN`.
pub fn display_name(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_chunk_lengths_are_refused() {
        let node = |len: u32| Node {
            name: b"f".to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            mtime_nsec: 0,
            size: len as u64,
            xattrs: Vec::new(),
            extents: vec![Extent {
                offset: 0,
                chunks: vec![ChunkRef {
                    id: Id::random(),
                    len,
                }],
            }],
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        };
        let tree = |len| {
            Tree {
                nodes: vec![node(len)],
            }
            .encode()
        };
        assert!(Tree::decode(&tree(4096)).is_ok());
        assert!(Tree::decode(&tree(u32::MAX)).is_err());
        assert!(Tree::decode(&tree(0)).is_err());
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name(b"..."));
        assert!(is_safe_name(b"\xff\xfe name"));
    }

    #[test]
    fn display_escapes_non_utf8() {
        assert_eq!(display_name(b"caf\xe9\n"), "caf\\xe9\\n");
    }
}
