//! Browsing snapshots as a read-only FUSE filesystem.
//!
//! Layout: mounting one snapshot shows its tree at the mount point (`MNT/etc/travis/...`).
//! Mounting all shows `MNT/HOST/TIME/...`, one folder per host and in it one per snapshot,
//! named by its time (`2026-12-01T19:52:45Z`; a snapshot sharing its second with another
//! gets `-SHORTID` appended); `MNT/HOST/latest` is a symlink to the newest.
//!
//! Inodes are handed out as folders are first listed or looked up, and live as long as the
//! mount. Trees are read on demand; file content is read chunk by chunk (the last few
//! chunks kept), holes read as zeros. Metadata is the snapshot's: modes, owners (numeric),
//! mtimes, symlink targets, device numbers and xattrs. Nothing can be written.

use crate::cache::Cache;
use crate::error::Result;
use crate::reader::{locate, BlobReader};
use crate::repo::Snapshot;
use crate::tree::{Node, NodeKind};
use crate::Id;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(3600);
const ROOT: u64 = 1;
const CHUNKS_KEPT: usize = 8;

/// What a mount shows at its root.
pub enum Source {
    One(Box<Snapshot>),
    All(Vec<(Id, Snapshot)>),
}

enum What {
    /// A folder vault makes up (the root of an `all` mount, a host folder).
    Synthetic { mtime: SystemTime },
    /// A snapshot's root tree, or a folder of one.
    Tree {
        tree: Id,
        node: Option<Box<Node>>,
        mtime: SystemTime,
    },
    /// Any other entry of a snapshot.
    Leaf(Box<Node>),
    /// The `latest` link of a host folder.
    Link(Vec<u8>),
}

/// A folder's entries: name and inode.
type Children = Vec<(Vec<u8>, u64)>;

struct Inode {
    parent: u64,
    what: What,
    /// Children by name, once known.
    children: Option<Children>,
}

pub struct SnapshotFs {
    reader: BlobReader,
    cache: Cache,
    inodes: Vec<Inode>,
    /// Recently read chunks, newest last.
    chunks: VecDeque<(Id, Vec<u8>)>,
    /// Owner of the made-up folders.
    uid: u32,
    gid: u32,
}

fn to_time(sec: i64, nsec: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn snapshot_time(s: &Snapshot) -> SystemTime {
    s.time()
        .map(|t| to_time(t.timestamp(), t.timestamp_subsec_nanos()))
        .unwrap_or(UNIX_EPOCH)
}

impl SnapshotFs {
    pub fn new(reader: BlobReader, cache: Cache, source: Source) -> SnapshotFs {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let mut fs = SnapshotFs {
            reader,
            cache,
            inodes: Vec::new(),
            chunks: VecDeque::new(),
            uid,
            gid,
        };
        // Inode numbers start at 1: index 0 is a placeholder.
        fs.inodes.push(Inode {
            parent: 0,
            what: What::Synthetic { mtime: UNIX_EPOCH },
            children: Some(Vec::new()),
        });
        match source {
            Source::One(s) => {
                fs.inodes.push(Inode {
                    parent: ROOT,
                    what: What::Tree {
                        tree: s.tree,
                        node: None,
                        mtime: snapshot_time(&s),
                    },
                    children: None,
                });
            }
            Source::All(snaps) => {
                let newest = snaps.iter().map(|(_, s)| snapshot_time(s)).max();
                fs.inodes.push(Inode {
                    parent: ROOT,
                    what: What::Synthetic {
                        mtime: newest.unwrap_or(UNIX_EPOCH),
                    },
                    children: Some(Vec::new()),
                });
                let mut hosts: Vec<String> =
                    snaps.iter().map(|(_, s)| s.hostname.clone()).collect();
                hosts.sort();
                hosts.dedup();
                for host in hosts {
                    let mine: Vec<&(Id, Snapshot)> =
                        snaps.iter().filter(|(_, s)| s.hostname == host).collect();
                    let newest = mine.iter().map(|(_, s)| snapshot_time(s)).max();
                    let hino = fs.add(
                        ROOT,
                        What::Synthetic {
                            mtime: newest.unwrap_or(UNIX_EPOCH),
                        },
                        Some(Vec::new()),
                    );
                    fs.child(ROOT, host_name(&host), hino);
                    let mut names: Vec<(String, &Snapshot, SystemTime)> = Vec::new();
                    for (id, s) in &mine {
                        let base = time_name(s);
                        let clash = mine.iter().filter(|(_, o)| time_name(o) == base).count() > 1;
                        let name = if clash {
                            format!("{base}-{}", id.short())
                        } else {
                            base
                        };
                        names.push((name, s, snapshot_time(s)));
                    }
                    names.sort_by(|a, b| a.0.cmp(&b.0));
                    let latest = names.iter().max_by_key(|n| n.2).map(|n| n.0.clone());
                    for (name, s, mtime) in names {
                        let sino = fs.add(
                            hino,
                            What::Tree {
                                tree: s.tree,
                                node: None,
                                mtime,
                            },
                            None,
                        );
                        fs.child(hino, name.into_bytes(), sino);
                    }
                    if let Some(latest) = latest {
                        let lino = fs.add(hino, What::Link(latest.into_bytes()), Some(Vec::new()));
                        fs.child(hino, b"latest".to_vec(), lino);
                    }
                }
            }
        }
        fs
    }

    fn add(&mut self, parent: u64, what: What, children: Option<Children>) -> u64 {
        self.inodes.push(Inode {
            parent,
            what,
            children,
        });
        (self.inodes.len() - 1) as u64
    }

    fn child(&mut self, parent: u64, name: Vec<u8>, ino: u64) {
        let kids = self.inodes[parent as usize]
            .children
            .get_or_insert_with(Vec::new);
        kids.push((name, ino));
        kids.sort();
    }

    fn get(&self, ino: u64) -> Option<&Inode> {
        if ino == 0 {
            return None;
        }
        self.inodes.get(ino as usize)
    }

    /// The children of a folder, reading its tree the first time.
    fn children(&mut self, ino: u64) -> Result<Option<Children>> {
        let Some(inode) = self.get(ino) else {
            return Ok(None);
        };
        if let Some(c) = &inode.children {
            return Ok(Some(c.clone()));
        }
        let tree_id = match &inode.what {
            What::Tree { tree, .. } => *tree,
            _ => return Ok(None),
        };
        let tree = self.reader.tree(&self.cache, &tree_id)?;
        let mut kids = Vec::with_capacity(tree.nodes.len());
        for node in tree.nodes {
            let name = node.name.clone();
            let what = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => What::Tree {
                    tree: sub,
                    mtime: to_time(node.mtime, node.mtime_nsec),
                    node: Some(Box::new(node)),
                },
                _ => What::Leaf(Box::new(node)),
            };
            let cino = self.add(ino, what, None);
            kids.push((name, cino));
        }
        self.inodes[ino as usize].children = Some(kids.clone());
        Ok(Some(kids))
    }

    /// Reads `size` bytes at `offset` of a file's content.
    fn read_file(&mut self, node: &Node, offset: u64, size: u64) -> Result<Vec<u8>> {
        let end = (offset + size).min(node.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        for ext in &node.extents {
            let mut pos = ext.offset;
            for c in &ext.chunks {
                let (cs, ce) = (pos, pos + c.len as u64);
                pos = ce;
                if ce <= offset || cs >= end {
                    continue;
                }
                let data = self.chunk(&c.id)?;
                let from = offset.max(cs);
                let to = end.min(ce);
                let src = &data[(from - cs) as usize..(to - cs) as usize];
                out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(src);
            }
        }
        Ok(out)
    }

    fn chunk(&mut self, id: &Id) -> Result<Vec<u8>> {
        if let Some(i) = self.chunks.iter().position(|(c, _)| c == id) {
            let entry = self.chunks.remove(i).expect("present");
            let data = entry.1.clone();
            self.chunks.push_back(entry);
            return Ok(data);
        }
        let loc = locate(&self.cache, id, "data")?;
        let data = self.reader.read(&loc)?;
        if self.chunks.len() >= CHUNKS_KEPT {
            self.chunks.pop_front();
        }
        self.chunks.push_back((*id, data.clone()));
        Ok(data)
    }

    fn attr(&self, ino: u64) -> Option<fuser::FileAttr> {
        let inode = self.get(ino)?;
        let dir = |mtime: SystemTime, node: Option<&Node>| {
            let (perm, uid, gid) = node
                .map(|n| (n.mode as u16, n.uid, n.gid))
                .unwrap_or((0o555, self.uid, self.gid));
            attr(
                ino,
                fuser::FileType::Directory,
                0,
                perm,
                uid,
                gid,
                mtime,
                0,
                2,
            )
        };
        Some(match &inode.what {
            What::Synthetic { mtime } => dir(*mtime, None),
            What::Tree { node, mtime, .. } => dir(*mtime, node.as_deref()),
            What::Link(target) => attr(
                ino,
                fuser::FileType::Symlink,
                target.len() as u64,
                0o777,
                self.uid,
                self.gid,
                UNIX_EPOCH,
                0,
                1,
            ),
            What::Leaf(n) => {
                let kind = match n.kind {
                    NodeKind::File => fuser::FileType::RegularFile,
                    NodeKind::Dir => fuser::FileType::Directory,
                    NodeKind::Symlink => fuser::FileType::Symlink,
                    NodeKind::Fifo => fuser::FileType::NamedPipe,
                    NodeKind::CharDevice => fuser::FileType::CharDevice,
                    NodeKind::BlockDevice => fuser::FileType::BlockDevice,
                    NodeKind::Socket => fuser::FileType::Socket,
                };
                let size = match n.kind {
                    NodeKind::Symlink => n.target.as_ref().map_or(0, |t| t.len() as u64),
                    _ => n.size,
                };
                attr(
                    ino,
                    kind,
                    size,
                    n.mode as u16,
                    n.uid,
                    n.gid,
                    to_time(n.mtime, n.mtime_nsec),
                    n.rdev as u32,
                    1,
                )
            }
        })
    }

    fn xattrs(&self, ino: u64) -> &[crate::tree::Xattr] {
        match self.get(ino).map(|i| &i.what) {
            Some(What::Leaf(n)) => &n.xattrs,
            Some(What::Tree { node: Some(n), .. }) => &n.xattrs,
            _ => &[],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn attr(
    ino: u64,
    kind: fuser::FileType,
    size: u64,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    rdev: u32,
    nlink: u32,
) -> fuser::FileAttr {
    fuser::FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm,
        nlink,
        uid,
        gid,
        rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn host_name(host: &str) -> Vec<u8> {
    let safe: String = host
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if safe.is_empty() || safe == "." || safe == ".." {
        b"_".to_vec()
    } else {
        safe.into_bytes()
    }
}

fn time_name(s: &Snapshot) -> String {
    match s.time() {
        Some(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        None => s.time.replace('/', "_"),
    }
}

fn errno(e: &crate::Error) -> i32 {
    match e {
        crate::Error::Missing { .. } | crate::Error::Corrupt { .. } => libc::EIO,
        _ => libc::EIO,
    }
}

impl fuser::Filesystem for SnapshotFs {
    fn lookup(
        &mut self,
        _req: &fuser::Request<'_>,
        parent: u64,
        name: &OsStr,
        reply: fuser::ReplyEntry,
    ) {
        match self.children(parent) {
            Ok(Some(kids)) => match kids.iter().find(|(n, _)| n.as_slice() == name.as_bytes()) {
                Some((_, ino)) => match self.attr(*ino) {
                    Some(a) => reply.entry(&TTL, &a, 0),
                    None => reply.error(libc::ENOENT),
                },
                None => reply.error(libc::ENOENT),
            },
            Ok(None) => reply.error(libc::ENOTDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        _fh: Option<u64>,
        reply: fuser::ReplyAttr,
    ) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &fuser::Request<'_>, ino: u64, reply: fuser::ReplyData) {
        match self.get(ino).map(|i| &i.what) {
            Some(What::Link(t)) => reply.data(t),
            Some(What::Leaf(n)) if n.kind == NodeKind::Symlink => {
                reply.data(n.target.as_deref().unwrap_or_default())
            }
            _ => reply.error(libc::EINVAL),
        }
    }

    fn open(&mut self, _req: &fuser::Request<'_>, ino: u64, flags: i32, reply: fuser::ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        match self.get(ino) {
            Some(_) => reply.opened(0, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: fuser::ReplyData,
    ) {
        let node = match self.get(ino).map(|i| &i.what) {
            Some(What::Leaf(n)) if n.kind == NodeKind::File => (**n).clone(),
            Some(_) => return reply.error(libc::EISDIR),
            None => return reply.error(libc::ENOENT),
        };
        match self.read_file(&node, offset.max(0) as u64, size as u64) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: fuser::ReplyDirectory,
    ) {
        let kids = match self.children(ino) {
            Ok(Some(k)) => k,
            Ok(None) => return reply.error(libc::ENOTDIR),
            Err(e) => return reply.error(errno(&e)),
        };
        let parent = self.get(ino).map(|i| i.parent).unwrap_or(ROOT).max(ROOT);
        let mut all: Vec<(u64, fuser::FileType, Vec<u8>)> = vec![
            (ino, fuser::FileType::Directory, b".".to_vec()),
            (parent, fuser::FileType::Directory, b"..".to_vec()),
        ];
        for (name, cino) in kids {
            let kind = self
                .attr(cino)
                .map(|a| a.kind)
                .unwrap_or(fuser::FileType::RegularFile);
            all.push((cino, kind, name));
        }
        for (i, (cino, kind, name)) in all.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(cino, (i + 1) as i64, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: fuser::ReplyXattr,
    ) {
        let Some(x) = self
            .xattrs(ino)
            .iter()
            .find(|x| x.name.as_slice() == name.as_bytes())
        else {
            return reply.error(libc::ENODATA);
        };
        if size == 0 {
            reply.size(x.value.len() as u32);
        } else if (size as usize) < x.value.len() {
            reply.error(libc::ERANGE);
        } else {
            reply.data(&x.value);
        }
    }

    fn listxattr(
        &mut self,
        _req: &fuser::Request<'_>,
        ino: u64,
        size: u32,
        reply: fuser::ReplyXattr,
    ) {
        let mut list = Vec::new();
        for x in self.xattrs(ino) {
            list.extend_from_slice(&x.name);
            list.push(0);
        }
        if size == 0 {
            reply.size(list.len() as u32);
        } else if (size as usize) < list.len() {
            reply.error(libc::ERANGE);
        } else {
            reply.data(&list);
        }
    }
}

/// Mounts `fs` read-only at `mountpoint` and serves it until it is unmounted
/// (`fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`).
pub fn serve(fs: SnapshotFs, mountpoint: &std::path::Path) -> std::io::Result<()> {
    let options = [
        fuser::MountOption::RO,
        fuser::MountOption::FSName("vault".into()),
        fuser::MountOption::Subtype("vault".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    fuser::mount2(fs, mountpoint, &options)
}
