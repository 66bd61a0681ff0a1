//! Importing tar archives (such as the vendor's `travis-backup-EPOCH.tar.gz`) as snapshots.
//!
//! The archive is read once, as a stream: gzip, zstd, xz or plain tar, told apart by their
//! magic bytes. Each file's content goes straight through the snapshot's chunker and
//! packers ([`crate::backup::BlobSink`]), so it deduplicates against everything in the
//! store and memory holds one chunk window, whatever the archive's size. What is kept in
//! memory until the end is the metadata of the entries (names, owners, modes, xattrs, the
//! chunk list of each file), from which the directory trees are stored bottom-up.
//!
//! Paths are taken as archived, made absolute (`var/travis/x` becomes `/var/travis/x`;
//! `./` and leading `/` are dropped); an entry with a `..` component is refused. Parents
//! the archive does not list get mode 0755, owner root and the snapshot's time.
//!
//! Metadata: mode (all 12 bits), uid/gid and user/group names (PAX `uid`, `gid`, `uname`,
//! `gname` over the header's), mtime to the nanosecond (PAX `mtime`), symlink targets,
//! hardlinks (later paths share the first path's content and link group), character and
//! block devices, FIFOs, PAX xattrs (`SCHILY.xattr.*`) and POSIX ACLs (`SCHILY.acl.access`
//! and `SCHILY.acl.default` as GNU tar writes them, turned into the binary
//! `system.posix_acl_*` xattrs unless the archive also carries those directly). Sparse
//! files in the PAX formats GNU tar writes (1.0, and 0.1) keep their holes; old GNU sparse
//! entries keep the holes their header lists when it needs no extension blocks.
//!
//! Damage: a truncated or corrupt archive (a bad header checksum, a short entry, a broken
//! compressed stream, a missing end-of-archive marker) is an error naming the byte offset
//! in the uncompressed tar stream. The snapshot record is written last, only after every
//! pack it needs is durable, so a failed import leaves no snapshot behind (its packs stay
//! unreferenced until prune).

use crate::backup::BlobSink;
use crate::cache::Cache;
use crate::crypto::WriterKeys;
use crate::error::{Error, Result};
use crate::fsmeta::Names;
use crate::id::Id;
use crate::repo::{Repo, Snapshot, Summary};
use crate::tree::{Extent, LinkKey, Node, NodeKind, Tree, Xattr};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;
use std::time::Duration;

/// The tag every imported snapshot carries.
pub const IMPORTED_TAG: &str = "imported";

pub struct ImportOptions {
    /// Name of the archive (a file name, or `-` for standard input): its
    /// `travis-backup-EPOCH` part gives the snapshot time.
    pub source_name: String,
    /// Time to record when the name carries none [default: the newest mtime inside].
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub hostname: String,
    /// Tags besides [`IMPORTED_TAG`].
    pub tags: Vec<String>,
    pub threads: usize,
    pub lock_wait: Duration,
}

/// Where the snapshot's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    Name,
    Given,
    NewestMtime,
}

pub struct ImportResult {
    pub id: Id,
    pub snapshot: Snapshot,
    pub compression: Compression,
    pub time_source: TimeSource,
    /// Entries skipped or approximated, in words.
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    pub fn label(self) -> &'static str {
        match self {
            Compression::None => "plain tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

/// The epoch seconds in a `travis-backup-EPOCH...` name, if any.
pub fn time_from_name(name: &str) -> Option<i64> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let at = base.find("travis-backup-")?;
    let digits: String = base[at + "travis-backup-".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits.parse().ok()
}

/// Tells the compression by the first bytes and returns the decompressed stream.
pub fn decompress<'r>(input: impl Read + 'r) -> io::Result<(Box<dyn Read + 'r>, Compression)> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let head = input.fill_buf()?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    };
    let out: Box<dyn Read + 'r> = match kind {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(input)),
        Compression::None => Box::new(input),
    };
    Ok((out, kind))
}

/// Counts the bytes of the uncompressed stream, so errors can name an offset.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

/// A directory being assembled: its own entry (when the archive has one) and children.
#[derive(Default)]
struct Dir {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, Item>,
}

enum Item {
    Dir(Dir),
    Leaf(Node),
}

/// Imports one archive as one snapshot.
pub fn import(
    repo: &Repo,
    keys: &WriterKeys,
    recipients: &[age::x25519::Recipient],
    cache: &mut Cache,
    input: impl Read,
    opts: &ImportOptions,
) -> Result<ImportResult> {
    let started = std::time::Instant::now();
    let what = || format!("archive {}", opts.source_name);
    let (plain, compression) =
        decompress(input).map_err(|e| Error::io(format!("read {}", what()), e))?;
    let pos = Rc::new(Cell::new(0u64));
    let counting = Counting {
        inner: plain,
        pos: pos.clone(),
    };
    let mut sink = BlobSink::start(
        repo,
        keys,
        recipients,
        cache,
        opts.threads,
        &format!("import of {}", opts.source_name),
        opts.lock_wait,
    )?;
    let mut state = State {
        root: Dir::default(),
        names: Names::default(),
        summary: Summary::default(),
        notes: Vec::new(),
        newest: None,
        links: HashMap::new(),
    };
    let archive = tar::Archive::new(counting);
    let read = read_entries(archive, &mut sink, &mut state, &pos, &what());
    if let Err(e) = read {
        sink.abort();
        return Err(e);
    }

    let name_time = time_from_name(&opts.source_name);
    let (time, time_source) = if let Some(epoch) = name_time {
        let t = chrono::DateTime::from_timestamp(epoch, 0)
            .ok_or_else(|| Error::Usage(format!("{}: epoch {epoch} is out of range", what())))?;
        (
            t.with_timezone(&chrono::Local).fixed_offset(),
            TimeSource::Name,
        )
    } else if let Some(t) = opts.time {
        (t, TimeSource::Given)
    } else if let Some((s, ns)) = state.newest {
        let t = chrono::DateTime::from_timestamp(s, ns).unwrap_or_default();
        (
            t.with_timezone(&chrono::Local).fixed_offset(),
            TimeSource::NewestMtime,
        )
    } else {
        sink.abort();
        return Err(Error::Usage(format!(
            "{} holds no entries: nothing to import",
            what()
        )));
    };

    let mut paths = Vec::new();
    let implicit = Implicit {
        mtime: time.timestamp(),
        user: state.names.user(0),
        group: state.names.group(0),
    };
    let stored = store_dir(
        &mut sink,
        &mut state.root,
        &mut Vec::new(),
        &implicit,
        &mut paths,
        false,
    );
    let root = match stored {
        Ok(id) => id,
        Err(e) => {
            sink.abort();
            return Err(e);
        }
    };
    let stored_summary = sink.finish()?;
    let mut summary = state.summary;
    summary.new_bytes = stored_summary.new_bytes;
    summary.stored_bytes = stored_summary.stored_bytes;
    summary.packs = stored_summary.packs;
    summary.bytes_read = stored_summary.bytes_read;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let mut tags = vec![IMPORTED_TAG.to_string()];
    tags.extend(opts.tags.iter().filter(|t| *t != IMPORTED_TAG).cloned());
    let snapshot = Snapshot {
        time: time.to_rfc3339(),
        hostname: opts.hostname.clone(),
        username: Names::default()
            .user(rustix::process::geteuid().as_raw())
            .unwrap_or_default(),
        paths: paths.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        tags,
        tree: root,
        summary,
        program: format!("vault {} import-tar", env!("CARGO_PKG_VERSION")),
        databases: Vec::new(),
    };
    let id = repo.save_snapshot(keys, &snapshot)?;
    Ok(ImportResult {
        id,
        snapshot,
        compression,
        time_source,
        notes: state.notes,
    })
}

struct State {
    root: Dir,
    names: Names,
    summary: Summary,
    notes: Vec<String>,
    newest: Option<(i64, u32)>,
    /// Hardlink group of each path that another entry links to.
    links: HashMap<Vec<Vec<u8>>, u64>,
}

fn damaged(what: &str, offset: u64, detail: impl std::fmt::Display) -> Error {
    Error::corrupt(
        what.to_string(),
        format!(
            "damaged or truncated at byte {offset} of the uncompressed tar stream: {detail}; nothing was imported"
        ),
    )
}

fn read_entries<R: Read>(
    mut archive: tar::Archive<Counting<R>>,
    sink: &mut BlobSink<'_>,
    state: &mut State,
    pos: &Rc<Cell<u64>>,
    what: &str,
) -> Result<()> {
    // Raw entries: PAX records are parsed here (the tar crate's reader splits values at
    // newlines, which ACL texts and binary xattrs hold), GNU long names likewise.
    let entries = archive
        .entries()
        .map_err(|e| damaged(what, pos.get(), e))?
        .raw(true);
    // End of the last entry's data, padded to the block size.
    let mut data_end = 0u64;
    let mut pending = Pending::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            // A bad header was just read whole: name where it starts.
            let msg = e.to_string();
            let at = if msg.contains("header") || msg.contains("cksum") {
                pos.get().saturating_sub(512)
            } else {
                pos.get()
            };
            damaged(what, at, e)
        })?;
        let offset = entry.raw_header_position();
        let padded = entry.header().entry_size().unwrap_or(0).div_ceil(512) * 512;
        data_end = entry.raw_file_position() + padded;
        let etype = entry.header().entry_type();
        let extension = matches!(
            etype,
            tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        );
        if extension {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| damaged(what, offset, e))?;
            if data.len() as u64 != entry.size() {
                return Err(damaged(what, offset, "an extension header is cut short"));
            }
            match etype {
                tar::EntryType::XHeader => {
                    pending.pax = parse_pax(&data).map_err(|e| damaged(what, offset, e))?
                }
                tar::EntryType::XGlobalHeader => {}
                tar::EntryType::GNULongName => pending.name = Some(trim_nul(data)),
                _ => pending.link = Some(trim_nul(data)),
            }
            continue;
        }
        let taken = std::mem::take(&mut pending);
        add_entry(&mut entry, taken, sink, state, offset, what)?;
    }
    if pos.get() == 0 {
        return Err(Error::Usage(format!("{what} is empty: nothing to import")));
    }
    // An archive ends with zero blocks; a stream that stops right after an entry was cut.
    if pos.get() < data_end + 512 {
        return Err(damaged(
            what,
            pos.get(),
            "the archive ends without its end-of-archive blocks (cut short?)",
        ));
    }
    // Read to the end so a compressed stream's own check (gzip CRC, xz check) runs.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| damaged(what, pos.get(), e))?;
    Ok(())
}

/// PAX records as (key, value) byte strings.
type Pax = Vec<(Vec<u8>, Vec<u8>)>;

/// What extension headers said about the next entry.
#[derive(Default)]
struct Pending {
    pax: Pax,
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Parses PAX records: `LEN KEY=VALUE\n`, LEN counting the whole record; values may hold
/// any byte, newlines included.
pub fn parse_pax(data: &[u8]) -> std::result::Result<Pax, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        if data[at..].iter().all(|&b| b == 0) {
            break;
        }
        let space = data[at..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[at..at + space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a PAX record length is not a number")?;
        if len <= space + 1 || at + len > data.len() || data[at + len - 1] != b'\n' {
            return Err(format!("a PAX record of length {len} is malformed"));
        }
        let kv = &data[at + space + 1..at + len - 1];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without `=`")?;
        out.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        at += len;
    }
    Ok(out)
}

fn pax_get<'p>(pax: &'p [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'p [u8]> {
    pax.iter()
        .rev()
        .find(|(k, _)| k.as_slice() == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn pax_str<'p>(pax: &'p [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'p str> {
    pax_get(pax, key).and_then(|v| std::str::from_utf8(v).ok())
}

/// A PAX time (`-12.5`, `1796154774.566034888`) as seconds and nanoseconds.
pub fn parse_pax_time(s: &str) -> Option<(i64, u32)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = int.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let ns: u32 = digits.parse().ok()?;
    if !neg {
        return Some((sec, ns));
    }
    if ns == 0 {
        Some((-sec, 0))
    } else {
        Some((-sec - 1, 1_000_000_000 - ns))
    }
}

/// Splits an archived path into safe components: `./` and `/` dropped, `..` refused.
fn components(path: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("it climbs out of the archive (`..`)".into()),
            c if c.contains(&0) => return Err("it holds a NUL byte".into()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// Adds one archive entry to the tree being built: its path and metadata from PAX records,
/// GNU long names and the header; its data, for a file, into `sink`.
fn add_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    pending: Pending,
    sink: &mut BlobSink<'_>,
    state: &mut State,
    offset: u64,
    what: &str,
) -> Result<()> {
    let bad = |detail: String| damaged(what, offset, detail);
    let header = entry.header().clone();
    let etype = header.entry_type();
    let Pending { pax, name, link } = pending;
    let (path, link_name) = entry_paths(&pax, name, link, &header, entry.size(), what, offset)?;
    let comps = components(&path).map_err(|why| {
        Error::Usage(format!(
            "{what}: entry {} at byte {offset} is refused: {why}; nothing was imported",
            crate::tree::display_name(&path)
        ))
    })?;
    let Some(kind) = node_kind(etype) else {
        state.notes.push(format!(
            "entry {} at byte {offset}: type {:?} is not a file, folder or link; skipped",
            crate::tree::display_name(&path),
            etype.as_byte() as char
        ));
        return Ok(());
    };
    if comps.is_empty() {
        // The archive's own top folder (`./`): nothing to record, the root is implicit.
        return Ok(());
    }
    let name = comps.last().unwrap().clone();
    let mut node = entry_node(&pax, &header, name, kind, state, what, offset)?;

    match etype {
        tar::EntryType::Link => {
            let target = link_name.ok_or_else(|| bad("hardlink without a target".into()))?;
            return add_hardlink(state, &comps, &path, &target, node.name, what, offset);
        }
        tar::EntryType::Directory => {
            state.summary.dirs += 1;
            let dir = dir_at(&mut state.root, &comps);
            dir.node = Some(node);
            return Ok(());
        }
        tar::EntryType::Symlink => {
            state.summary.others += 1;
            node.target = Some(link_name.ok_or_else(|| bad("symlink without a target".into()))?);
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            state.summary.others += 1;
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            node.rdev = libc::makedev(major, minor);
        }
        tar::EntryType::Fifo => state.summary.others += 1,
        _ => {
            state.summary.files += 1;
            let (size, extents) = file_data(entry, &header, &pax, sink, what, offset)?;
            node.size = size;
            node.extents = extents;
            state.summary.bytes += size;
        }
    }
    insert(&mut state.root, &comps, Item::Leaf(node));
    Ok(())
}

/// The entry's path and link target: PAX records first, then GNU long names, then the
/// header; a PAX sparse file's real name replaces its archived one. Refuses a size given
/// only in a PAX record (`size` is the header's).
fn entry_paths(
    pax: &Pax,
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    header: &tar::Header,
    size: u64,
    what: &str,
    offset: u64,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut path = pax_get(pax, "path")
        .map(<[u8]>::to_vec)
        .or(name)
        .unwrap_or_else(|| header.path_bytes().into_owned());
    let link_name = pax_get(pax, "linkpath")
        .map(<[u8]>::to_vec)
        .or(link)
        .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
    if let Some(pax_size) = pax_str(pax, "size").and_then(|v| v.parse::<u64>().ok()) {
        if pax_size != size {
            return Err(damaged(
                what,
                offset,
                format!(
                    "entry {} gives its size ({pax_size} bytes) only in a PAX record, which this reader does not follow",
                    crate::tree::display_name(&path)
                ),
            ));
        }
    }
    if pax_str(pax, "GNU.sparse.major").is_some() || pax_str(pax, "GNU.sparse.map").is_some() {
        if let Some(name) = pax_get(pax, "GNU.sparse.name") {
            path = name.to_vec();
        }
    }
    Ok((path, link_name))
}

/// The kind of node an entry type records; `None` for types that are not a file, folder
/// or link (they are skipped).
fn node_kind(etype: tar::EntryType) -> Option<NodeKind> {
    Some(match etype {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            NodeKind::File
        }
        tar::EntryType::Link => NodeKind::File,
        tar::EntryType::Directory => NodeKind::Dir,
        tar::EntryType::Symlink => NodeKind::Symlink,
        tar::EntryType::Char => NodeKind::CharDevice,
        tar::EntryType::Block => NodeKind::BlockDevice,
        tar::EntryType::Fifo => NodeKind::Fifo,
        _ => return None,
    })
}

/// The entry's node without data, target or device: owner, times, mode and extended
/// attributes, PAX records first, then the header. Records the newest time in `state`.
fn entry_node(
    pax: &Pax,
    header: &tar::Header,
    name: Vec<u8>,
    kind: NodeKind,
    state: &mut State,
    what: &str,
    offset: u64,
) -> Result<Node> {
    let uid = pax_str(pax, "uid")
        .and_then(|v| v.parse().ok())
        .or_else(|| header.uid().ok().map(|u| u as u32))
        .unwrap_or(0);
    let gid = pax_str(pax, "gid")
        .and_then(|v| v.parse().ok())
        .or_else(|| header.gid().ok().map(|g| g as u32))
        .unwrap_or(0);
    let user = pax_str(pax, "uname")
        .map(str::to_string)
        .or_else(|| header.username().ok().flatten().map(str::to_string))
        .filter(|s| !s.is_empty());
    let group = pax_str(pax, "gname")
        .map(str::to_string)
        .or_else(|| header.groupname().ok().flatten().map(str::to_string))
        .filter(|s| !s.is_empty());
    let (mtime, mtime_nsec) = pax_str(pax, "mtime")
        .and_then(parse_pax_time)
        .or_else(|| header.mtime().ok().map(|m| (m as i64, 0)))
        .unwrap_or((0, 0));
    if state.newest.map_or(true, |n| (mtime, mtime_nsec) > n) {
        state.newest = Some((mtime, mtime_nsec));
    }
    let mode = header
        .mode()
        .map_err(|e| damaged(what, offset, e.to_string()))?
        & 0o7777;
    let xattrs = xattrs_from_pax(pax, &mut state.names);
    Ok(Node {
        name,
        kind,
        mode,
        uid,
        gid,
        user,
        group,
        mtime,
        mtime_nsec,
        size: 0,
        xattrs,
        extents: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: 0,
        link: None,
    })
}

/// Records hardlink `path` (its leaf named `name`) to `target`, an earlier file of the
/// archive: both share everything but their names, and one link group.
fn add_hardlink(
    state: &mut State,
    comps: &[Vec<u8>],
    path: &[u8],
    target: &[u8],
    name: Vec<u8>,
    what: &str,
    offset: u64,
) -> Result<()> {
    let tcomps = components(target).map_err(|why| {
        Error::Usage(format!(
            "{what}: hardlink {} at byte {offset} is refused: its target {why}; nothing was imported",
            crate::tree::display_name(path)
        ))
    })?;
    let next_group = state.links.len() as u64 + 1;
    let group = *state.links.entry(tcomps.clone()).or_insert(next_group);
    let Some(first) = find_leaf(&mut state.root, &tcomps) else {
        return Err(damaged(
            what,
            offset,
            format!(
                "hardlink {} names {}, which is not an earlier file of the archive",
                crate::tree::display_name(path),
                crate::tree::display_name(target)
            ),
        ));
    };
    let key = LinkKey { dev: 0, ino: group };
    first.link = Some(key);
    // A hard link shares everything but its name with its first path.
    let mut linked = first.clone();
    linked.name = name;
    if linked.kind == NodeKind::File {
        state.summary.files += 1;
        state.summary.bytes += linked.size;
    } else {
        state.summary.others += 1;
    }
    insert(&mut state.root, comps, Item::Leaf(linked));
    Ok(())
}

/// A file entry's real size and extents, its data stored through `sink`: plain, PAX
/// sparse (format 1.0 or a map) or old GNU sparse.
fn file_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    header: &tar::Header,
    pax: &Pax,
    sink: &mut BlobSink<'_>,
    what: &str,
    offset: u64,
) -> Result<(u64, Vec<Extent>)> {
    let bad = |detail: String| damaged(what, offset, detail);
    let archived = entry.size();
    if let Some(major) = pax_str(pax, "GNU.sparse.major") {
        if major != "1" {
            return Err(bad(format!("GNU sparse format {major} is not supported")));
        }
        let real = pax_str(pax, "GNU.sparse.realsize")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("sparse file without GNU.sparse.realsize".into()))?;
        let extents = sparse_1_0(entry, sink, archived).map_err(|e| e.at(what, offset))?;
        Ok((real, extents))
    } else if let Some(map) = pax_str(pax, "GNU.sparse.map") {
        let real = pax_str(pax, "GNU.sparse.size")
            .or_else(|| pax_str(pax, "GNU.sparse.realsize"))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("sparse file without GNU.sparse.size".into()))?;
        let regions = parse_map(map.split(',')).map_err(bad)?;
        let extents = regions_data(entry, sink, &regions).map_err(|e| e.at(what, offset))?;
        Ok((real, extents))
    } else if header.entry_type() == tar::EntryType::GNUSparse {
        old_gnu_sparse(entry, header, sink).map_err(|e| e.at(what, offset))
    } else {
        let regions = [(0u64, archived)];
        let extents = regions_data(entry, sink, &regions).map_err(|e| e.at(what, offset))?;
        Ok((archived, extents))
    }
}

/// Why reading one entry's data failed.
enum DataError {
    Store(Error),
    Archive(String),
}

impl DataError {
    fn at(self, what: &str, offset: u64) -> Error {
        match self {
            DataError::Store(e) => e,
            DataError::Archive(detail) => damaged(what, offset, detail),
        }
    }
}

/// Stores the regions (offset in the file, length) read back to back from `data`.
fn regions_data(
    mut data: impl Read,
    sink: &mut BlobSink<'_>,
    regions: &[(u64, u64)],
) -> std::result::Result<Vec<Extent>, DataError> {
    let mut extents = Vec::new();
    for &(offset, len) in regions {
        if len == 0 {
            continue;
        }
        let chunks = sink
            .put_data((&mut data).take(len))
            .map_err(DataError::Store)?
            .map_err(|e| DataError::Archive(e.to_string()))?;
        let got: u64 = chunks.iter().map(|c| c.len as u64).sum();
        if got != len {
            return Err(DataError::Archive(format!(
                "the entry's data stops after {got} of {len} bytes (the archive is cut short)"
            )));
        }
        extents.push(Extent { offset, chunks });
    }
    Ok(extents)
}

fn parse_map<'s>(
    mut numbers: impl Iterator<Item = &'s str>,
) -> std::result::Result<Vec<(u64, u64)>, String> {
    let mut regions = Vec::new();
    while let Some(off) = numbers.next() {
        let off = off.trim();
        if off.is_empty() {
            break;
        }
        let len = numbers
            .next()
            .ok_or_else(|| "sparse map with an odd number of values".to_string())?;
        let off: u64 = off
            .parse()
            .map_err(|_| format!("sparse map value {off:?}"))?;
        let len: u64 = len
            .trim()
            .parse()
            .map_err(|_| format!("sparse map value {len:?}"))?;
        regions.push((off, len));
    }
    Ok(regions)
}

/// PAX sparse 1.0: the data starts with the map in decimal lines (count, then offset and
/// length of each region), padded to a block, then the regions' bytes back to back.
fn sparse_1_0<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    sink: &mut BlobSink<'_>,
    archived: u64,
) -> std::result::Result<Vec<Extent>, DataError> {
    let mut consumed = 0u64;
    let mut line = || -> std::result::Result<u64, DataError> {
        let mut digits = Vec::new();
        loop {
            let mut b = [0u8; 1];
            match entry.read(&mut b) {
                Ok(1) => {}
                Ok(_) => return Err(DataError::Archive("sparse map cut short".into())),
                Err(e) => return Err(DataError::Archive(e.to_string())),
            }
            consumed += 1;
            if b[0] == b'\n' {
                break;
            }
            if !b[0].is_ascii_digit() || digits.len() > 20 {
                return Err(DataError::Archive("sparse map is not decimal".into()));
            }
            digits.push(b[0]);
        }
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| DataError::Archive("sparse map holds an empty line".into()))
    };
    let count = line()?;
    if count > archived {
        return Err(DataError::Archive(format!(
            "sparse map claims {count} regions"
        )));
    }
    let mut regions = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = line()?;
        let len = line()?;
        regions.push((off, len));
    }
    let pad = consumed.div_ceil(512) * 512 - consumed;
    let skipped = io::copy(&mut (&mut *entry).take(pad), &mut io::sink())
        .map_err(|e| DataError::Archive(e.to_string()))?;
    if skipped != pad {
        return Err(DataError::Archive("sparse map cut short".into()));
    }
    regions_data(entry, sink, &regions)
}

/// Old GNU sparse entries: the header lists up to four data regions, whose bytes follow
/// back to back; the header's real size gives the length. Entries needing extension
/// blocks (more than four regions) are refused with a clear message.
fn old_gnu_sparse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    header: &tar::Header,
    sink: &mut BlobSink<'_>,
) -> std::result::Result<(u64, Vec<Extent>), DataError> {
    let gnu = header
        .as_gnu()
        .ok_or_else(|| DataError::Archive("a sparse entry without a GNU header".into()))?;
    if gnu.is_extended() {
        return Err(DataError::Archive(
            "old GNU sparse files with more than four regions are not supported; re-create the archive with --format=posix".into(),
        ));
    }
    let size = gnu
        .real_size()
        .map_err(|e| DataError::Archive(e.to_string()))?;
    let regions: Vec<(u64, u64)> = gnu
        .sparse
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| Ok((s.offset()?, s.length()?)))
        .collect::<io::Result<_>>()
        .map_err(|e| DataError::Archive(e.to_string()))?;
    Ok((size, regions_data(entry, sink, &regions)?))
}

/// `SCHILY.xattr.*` records as xattrs, and `SCHILY.acl.*` turned into the binary ACL
/// xattrs where the archive does not carry those directly.
fn xattrs_from_pax(pax: &[(Vec<u8>, Vec<u8>)], names: &mut Names) -> Vec<Xattr> {
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (k, v) in pax {
        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
            map.insert(name.to_vec(), v.clone());
        }
    }
    for (key, xattr, is_default) in [
        ("SCHILY.acl.access", &b"system.posix_acl_access"[..], false),
        ("SCHILY.acl.default", &b"system.posix_acl_default"[..], true),
    ] {
        if map.contains_key(xattr) {
            continue;
        }
        let Some(text) = pax_str(pax, key) else {
            continue;
        };
        if let Some(bin) = crate::acl::from_text(text, names, is_default) {
            map.insert(xattr.to_vec(), bin);
        }
    }
    map.into_iter()
        .map(|(name, value)| Xattr { name, value })
        .collect()
}

fn dir_at<'d>(root: &'d mut Dir, comps: &[Vec<u8>]) -> &'d mut Dir {
    let mut dir = root;
    for c in comps {
        let item = dir
            .children
            .entry(c.clone())
            .or_insert_with(|| Item::Dir(Dir::default()));
        if let Item::Leaf(_) = item {
            // A file replaced by a folder of the same name later in the archive.
            *item = Item::Dir(Dir::default());
        }
        let Item::Dir(d) = item else { unreachable!() };
        dir = d;
    }
    dir
}

fn insert(root: &mut Dir, comps: &[Vec<u8>], item: Item) {
    let (last, parents) = comps.split_last().expect("non-empty path");
    let dir = dir_at(root, parents);
    // A later entry of the same path wins, as when the archive is extracted.
    dir.children.insert(last.clone(), item);
}

fn find_leaf<'d>(root: &'d mut Dir, comps: &[Vec<u8>]) -> Option<&'d mut Node> {
    let (last, parents) = comps.split_last()?;
    let mut dir = root;
    for c in parents {
        match dir.children.get_mut(c)? {
            Item::Dir(d) => dir = d,
            Item::Leaf(_) => return None,
        }
    }
    match dir.children.get_mut(last)? {
        Item::Leaf(n) => Some(n),
        Item::Dir(_) => None,
    }
}

/// Metadata of the folders the archive does not list.
struct Implicit {
    mtime: i64,
    user: Option<String>,
    group: Option<String>,
}

/// Stores `dir`'s children bottom-up and returns the id of its tree. `paths` collects the
/// snapshot's source paths: the outermost entries the archive lists (what lies inside a
/// listed folder is part of it, not a source of its own).
fn store_dir(
    sink: &mut BlobSink<'_>,
    dir: &mut Dir,
    prefix: &mut Vec<u8>,
    implicit: &Implicit,
    paths: &mut Vec<Vec<u8>>,
    inside_listed: bool,
) -> Result<Id> {
    let mut nodes = Vec::with_capacity(dir.children.len());
    for (name, item) in std::mem::take(&mut dir.children) {
        let len = prefix.len();
        prefix.push(b'/');
        prefix.extend_from_slice(&name);
        match item {
            Item::Leaf(node) => {
                if !inside_listed {
                    paths.push(prefix.clone());
                }
                nodes.push(node);
            }
            Item::Dir(mut sub) => {
                let listed = sub.node.is_some();
                if !inside_listed && listed {
                    paths.push(prefix.clone());
                }
                let mut node = sub.node.take().unwrap_or_else(|| Node {
                    name: name.clone(),
                    kind: NodeKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    user: implicit.user.clone(),
                    group: implicit.group.clone(),
                    mtime: implicit.mtime,
                    mtime_nsec: 0,
                    size: 0,
                    xattrs: Vec::new(),
                    extents: Vec::new(),
                    lists: Vec::new(),
                    subtree: None,
                    target: None,
                    rdev: 0,
                    link: None,
                });
                let id = store_dir(
                    sink,
                    &mut sub,
                    prefix,
                    implicit,
                    paths,
                    inside_listed || listed,
                )?;
                node.kind = NodeKind::Dir;
                node.subtree = Some(id);
                nodes.push(node);
            }
        }
        prefix.truncate(len);
    }
    sink.put_tree(&Tree { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_comes_from_the_vendor_name() {
        assert_eq!(
            time_from_name("/backups/travis-backup-1700000000.tar.gz"),
            Some(1_700_000_000)
        );
        assert_eq!(time_from_name("travis-backup-.tar.gz"), None);
        assert_eq!(time_from_name("other-1700000000.tar"), None);
    }

    #[test]
    fn pax_times_keep_nanoseconds_and_sign() {
        assert_eq!(
            parse_pax_time("1796154774.566034888"),
            Some((1_796_154_774, 566_034_888))
        );
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("-1.25"), Some((-2, 750_000_000)));
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        // The length counts the whole record, the newline inside the value included.
        let rec = b"32 SCHILY.acl.access=user::rw-\n\n12 path=a/b\n";
        let pax = parse_pax(rec).unwrap();
        assert_eq!(pax[0].1, b"user::rw-\n");
        assert_eq!(pax[1], (b"path".to_vec(), b"a/b".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
    }

    #[test]
    fn climbing_paths_are_refused() {
        assert!(components(b"../etc/passwd").is_err());
        assert_eq!(
            components(b"./var//travis/").unwrap(),
            vec![b"var".to_vec(), b"travis".to_vec()]
        );
    }
}
