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
//!
//! A file of more than [`INLINE_CHUNKS`] chunks (stores of version 3 and later) keeps its
//! extents out of the folder's tree, in chunk-list blobs of its own ([`ChunkList`], kind
//! tree, at most [`LIST_CHUNKS`] chunks each), which the node names in `lists`. So a
//! folder of large files is a small blob whoever reads or writes it, and the writer never
//! holds a folder's whole chunk list at once. The split is a function of the extents
//! alone: the same file content gives the same list blobs and the same tree id. A reader
//! ([`crate::reader::BlobReader::tree`]) loads the lists back into `extents`; a node that
//! has both encodes with its lists only, so a tree read and written again is unchanged.

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
    /// Chunk-list blobs holding this file's extents, in order (empty: they are inline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<Id>,
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

    /// Every blob this entry's content needs but its subtree: its chunks and, for a
    /// long file, the chunk lists that name them.
    pub fn content_blobs(&self) -> impl Iterator<Item = Id> + '_ {
        self.lists
            .iter()
            .copied()
            .chain(self.chunks().map(|c| c.id))
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
    /// The tree's blob. A node whose extents were loaded from its lists is written with
    /// its lists only.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self
            .nodes
            .iter()
            .any(|n| !n.lists.is_empty() && !n.extents.is_empty())
        {
            let stripped = Tree {
                nodes: self
                    .nodes
                    .iter()
                    .map(|n| {
                        let mut n = n.clone();
                        if !n.lists.is_empty() {
                            n.extents = Vec::new();
                        }
                        n
                    })
                    .collect(),
            };
            ciborium::into_writer(&stripped, &mut out).expect("serialisable");
        } else {
            ciborium::into_writer(self, &mut out).expect("serialisable");
        }
        out
    }

    /// Parses a tree blob. Chunk lengths are bounded by [`crate::crypto::MAX_BLOB_LEN`]
    /// (they size buffers when a restore verifies what it wrote).
    pub fn decode(bytes: &[u8]) -> Result<Tree, String> {
        let tree: Tree = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        for node in &tree.nodes {
            check_chunk_lens(&node.name, &node.extents)?;
            if !node.lists.is_empty() && !node.extents.is_empty() {
                return Err(format!(
                    "entry {} has both inline extents and chunk lists",
                    display_name(&node.name)
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

fn check_chunk_lens(name: &[u8], extents: &[Extent]) -> Result<(), String> {
    match extents
        .iter()
        .flat_map(|e| &e.chunks)
        .find(|c| c.len == 0 || c.len > crate::crypto::MAX_BLOB_LEN)
    {
        Some(c) => Err(format!(
            "entry {} has a chunk of length {}",
            display_name(name),
            c.len
        )),
        None => Ok(()),
    }
}

/// A file keeps at most this many chunk references in its folder's tree; more go to
/// chunk lists. 32 references are about 1.3 KB of CBOR, a file of 2 MiB at the default
/// chunk size: the many small files of a host stay inline (one blob read per folder),
/// and a database segment of 1 GiB (about 16,000 chunks) no longer weighs 650 KB in its
/// folder's tree.
pub const INLINE_CHUNKS: usize = 32;

/// Chunk references per chunk-list blob: 4096 are about 170 KB of CBOR (a little more
/// than one average chunk costs to hold), 256 MiB of content at the default chunk size.
pub const LIST_CHUNKS: usize = 4096;

/// One part of a long file's extents, in order: the blob a node's `lists` names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    pub extents: Vec<Extent>,
}

impl ChunkList {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("serialisable");
        out
    }

    /// Parses a chunk-list blob of entry `name`, bounding its chunk lengths as
    /// [`Tree::decode`] does.
    pub fn decode(name: &[u8], bytes: &[u8]) -> Result<ChunkList, String> {
        let list: ChunkList = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        if list.extents.iter().all(Extent::is_empty) {
            return Err(format!(
                "chunk list of entry {} holds no chunk",
                display_name(name)
            ));
        }
        check_chunk_lens(name, &list.extents)?;
        Ok(list)
    }

    /// Splits a file's extents into chunk lists of at most [`LIST_CHUNKS`] references
    /// each, or `None` when they fit inline ([`INLINE_CHUNKS`] or fewer). An extent cut
    /// at a list boundary continues, in the next list, as an extent starting where the
    /// first part ends; [`ChunkList::join`] puts them back together.
    pub fn split(extents: &[Extent]) -> Option<Vec<ChunkList>> {
        let total: usize = extents.iter().map(|e| e.chunks.len()).sum();
        if total <= INLINE_CHUNKS {
            return None;
        }
        let mut lists = Vec::with_capacity(total.div_ceil(LIST_CHUNKS));
        let mut current = ChunkList::default();
        let mut room = LIST_CHUNKS;
        for e in extents {
            let mut offset = e.offset;
            let mut rest = &e.chunks[..];
            while !rest.is_empty() {
                if room == 0 {
                    lists.push(std::mem::take(&mut current));
                    room = LIST_CHUNKS;
                }
                let (part, tail) = rest.split_at(rest.len().min(room));
                current.extents.push(Extent {
                    offset,
                    chunks: part.to_vec(),
                });
                offset += part.iter().map(|c| c.len as u64).sum::<u64>();
                room -= part.len();
                rest = tail;
            }
        }
        lists.push(current);
        Some(lists)
    }

    /// The extents the lists hold together, an extent that continues where the previous
    /// one ends joined to it.
    pub fn join(lists: impl IntoIterator<Item = ChunkList>) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        for list in lists {
            for e in list.extents {
                match out.last_mut() {
                    Some(last) if last.offset + last.len() == e.offset => {
                        last.chunks.extend(e.chunks)
                    }
                    _ => out.push(e),
                }
            }
        }
        out
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
            lists: Vec::new(),
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

    fn chunks(n: usize, len: u32) -> Vec<ChunkRef> {
        (0..n)
            .map(|_| ChunkRef {
                id: Id::random(),
                len,
            })
            .collect()
    }

    #[test]
    fn short_files_stay_inline() {
        let e = vec![Extent {
            offset: 0,
            chunks: chunks(INLINE_CHUNKS, 10),
        }];
        assert!(ChunkList::split(&e).is_none());
    }

    #[test]
    fn split_lists_join_back_to_the_same_extents() {
        // A hole, a long extent cut across three lists, a short extent after a hole.
        let extents = vec![
            Extent {
                offset: 100,
                chunks: chunks(3, 7),
            },
            Extent {
                offset: 1000,
                chunks: chunks(2 * LIST_CHUNKS + 5, 3),
            },
            Extent {
                offset: 1_000_000,
                chunks: chunks(4, 9),
            },
        ];
        let lists = ChunkList::split(&extents).unwrap();
        assert_eq!(lists.len(), 3);
        assert!(lists
            .iter()
            .all(|l| l.extents.iter().map(|e| e.chunks.len()).sum::<usize>() <= LIST_CHUNKS));
        // Each list survives its encoding, and together they are the file again.
        let decoded: Vec<ChunkList> = lists
            .iter()
            .map(|l| ChunkList::decode(b"f", &l.encode()).unwrap())
            .collect();
        assert_eq!(ChunkList::join(decoded), extents);
        // The split depends on the extents alone.
        assert_eq!(ChunkList::split(&extents).unwrap(), lists);
    }

    #[test]
    fn a_node_with_loaded_lists_encodes_as_written() {
        let mut node = Node {
            name: b"f".to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            xattrs: Vec::new(),
            extents: Vec::new(),
            lists: vec![Id::random()],
            subtree: None,
            target: None,
            rdev: 0,
            link: None,
        };
        let written = Tree {
            nodes: vec![node.clone()],
        }
        .encode();
        node.extents = vec![Extent {
            offset: 0,
            chunks: chunks(40, 5),
        }];
        let loaded = Tree { nodes: vec![node] };
        assert_eq!(loaded.encode(), written);
        // A blob that has both is not what a writer makes.
        let mut both = Vec::new();
        ciborium::into_writer(&loaded, &mut both).unwrap();
        assert!(Tree::decode(&both).is_err());
        assert!(ChunkList::decode(b"f", &ChunkList::default().encode()).is_err());
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
