//! Pack files: many encrypted blobs in one object.
//!
//! ```text
//! pack    = magic "VLTPACK1"
//!           u32le header_len, header      header: binary age file to the reader recipients;
//!                                                 its plaintext is the pack's 32-byte data key
//!           blob_0 .. blob_n              blob_i: ChaCha20-Poly1305(data key, nonce = i,
//!                                                 aad = id ‖ kind ‖ compressed) of the payload
//!           trailer, u32le trailer_len    trailer: the pack's entries (CBOR), sealed with the
//!                                                 metadata key, so the index can be rebuilt
//!                                                 from packs alone
//! name    = hex(BLAKE3(pack bytes))       so any copy can be checked without keys
//! payload = zstd(plaintext) when that saves at least 1/16, else the plaintext
//! ```
//!
//! A blob is read on its own with one ranged read (offset and length come from the index),
//! after the pack's data key has been unwrapped once from its header.
//!
//! Lengths read from the store (header length, trailer length, each entry's offset and
//! lengths, in a pack trailer or an index file) are checked against [`MAX_HEADER_LEN`],
//! [`MAX_BLOB_LEN`] and the pack's size before they size a read or an allocation, so a
//! damaged or hostile object costs an error, never gigabytes of memory.

use crate::backend::staged::StagedFile;
use crate::crypto::{self, SecretKey, WriterKeys};
use crate::error::{Error, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"VLTPACK1";

/// Largest pack header accepted: an age file wrapping 32 bytes for a few recipients is a
/// few hundred bytes.
pub const MAX_HEADER_LEN: u32 = 1 << 20;
pub use crate::crypto::MAX_BLOB_LEN;
/// What sealing adds to a blob's payload (the AEAD tag).
pub const BLOB_TAG_LEN: u32 = 16;

/// Checks a pack header length read from the store.
pub fn check_header_len(header_len: u32) -> std::result::Result<(), String> {
    if header_len == 0 || header_len > MAX_HEADER_LEN {
        return Err(format!(
            "header length {header_len} is out of range (1 to {MAX_HEADER_LEN})"
        ));
    }
    Ok(())
}
const TRAILER_LABEL: &[u8] = b"vault v1 pack trailer";

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A directory listing (a serialised [`crate::tree::Tree`]).
    Tree = 1,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Option<BlobKind> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Where one blob lies inside its pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: Id,
    pub kind: BlobKind,
    /// Position in the pack, which is also the blob's nonce.
    pub position: u32,
    pub offset: u32,
    /// Sealed length (payload plus tag).
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
    pub compressed: bool,
}

impl PackEntry {
    /// Checks the entry's lengths (and, when known, that it lies inside a pack of
    /// `pack_size` bytes after a header of `header_len`).
    pub fn check_bounds(
        &self,
        header_len: u32,
        pack_size: Option<u64>,
    ) -> std::result::Result<(), String> {
        let blob = format!("blob {}", self.id.short());
        if self.raw_len > MAX_BLOB_LEN {
            return Err(format!(
                "{blob}: length {} exceeds the limit of {MAX_BLOB_LEN}",
                self.raw_len
            ));
        }
        if self.length < BLOB_TAG_LEN || self.length > MAX_BLOB_LEN + BLOB_TAG_LEN {
            return Err(format!(
                "{blob}: sealed length {} is out of range",
                self.length
            ));
        }
        if !self.compressed && self.length != self.raw_len.saturating_add(BLOB_TAG_LEN) {
            return Err(format!(
                "{blob}: sealed length {} does not fit its plain length {}",
                self.length, self.raw_len
            ));
        }
        if (self.offset as u64) < 12 + header_len as u64 {
            return Err(format!("{blob}: offset {} lies in the header", self.offset));
        }
        if let Some(size) = pack_size {
            if self.offset as u64 + self.length as u64 > size {
                return Err(format!(
                    "{blob}: bytes {}..{} lie beyond the pack's {size} bytes",
                    self.offset,
                    self.offset as u64 + self.length as u64
                ));
            }
        }
        Ok(())
    }
}

/// A finished pack as the index records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackRecord {
    pub id: Id,
    pub size: u64,
    pub header_len: u32,
    pub entries: Vec<PackEntry>,
}

// zstd contexts cost more to set up than a small blob takes to (de)compress, so each
// thread keeps one instead of making one per blob.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("a zstd context"));
}

fn with_compressor(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<Vec<u8>>,
) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        f(&mut slot.as_mut()?.1).ok()
    })
}

/// Compresses a blob unless that does not pay (already compressed data, random data).
pub fn compress(plaintext: &[u8], level: i32) -> Option<Vec<u8>> {
    if plaintext.len() < 64 || looks_incompressible(plaintext) {
        return None;
    }
    let out = with_compressor(level, |c| c.compress(plaintext))?;
    (out.len() <= plaintext.len() - plaintext.len() / 16).then_some(out)
}

/// True when samples of the data have near-maximal byte entropy, as compressed or
/// encrypted data (WAL pages of compressed columns, TLS material, archives) does: zstd
/// would spend as long on it as on text and save nothing. A byte histogram of 16 KiB
/// costs a few microseconds, where compressing a 64 KiB probe costs a hundred.
fn looks_incompressible(data: &[u8]) -> bool {
    const SAMPLE: usize = 4096;
    if data.len() < 4 * SAMPLE {
        return false;
    }
    // Four histograms, one per sample, summed at the end: consecutive increments of one
    // table stall on each other whenever neighbouring bytes are equal (zeroed space).
    let mut tables = [[0u32; 256]; 4];
    let samples: [&[u8; SAMPLE]; 4] = std::array::from_fn(|i| {
        let start = (data.len() - SAMPLE) * i / 3;
        data[start..start + SAMPLE]
            .try_into()
            .expect("SAMPLE bytes")
    });
    for j in 0..SAMPLE {
        for (table, sample) in tables.iter_mut().zip(samples) {
            table[sample[j] as usize] += 1;
        }
    }
    let counts: [u32; 256] = std::array::from_fn(|b| tables.iter().map(|t| t[b]).sum());
    let n = (4 * SAMPLE) as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // Random bytes measure about 7.99 bits here; text and database pages well under 7.
    entropy > 7.9
}

/// Most bytes one entry takes in a pack's CBOR trailer: a map of seven named fields with
/// a 32-byte id and every number at its largest (checked by a unit test).
const TRAILER_ENTRY_BOUND: usize = 128;

/// Most bytes the trailer (and its length field) of a pack of `entries` blobs takes: the
/// entries, the CBOR array head, the seal's nonce and tag, the u32 length.
fn trailer_bound(entries: usize) -> usize {
    entries * TRAILER_ENTRY_BOUND + 9 + crypto::META_SEAL_OVERHEAD + 4
}

/// Most blobs one pack holds, whatever their size. A pack of small files' blobs (a few
/// hundred bytes each once compressed) would otherwise hold 40,000 of them, and what a
/// pack's blobs cost beside their bytes is held while the pack is finished, uploaded and
/// indexed: its entries, its CBOR trailer and the sealed copy, then the index file's
/// entries, CBOR and seal, about 500 bytes per blob, twice over (the pack being filled and
/// the one being uploaded); the pack buffer, reused from pack to pack, also stays as
/// large as the largest pack it held. On 200,000 JSON files of 0.1-2 KB (heaptrack: 10 MB
/// of trailer and index serialisation at the peak) this cap took the first snapshot's
/// peak RSS from 72 to 38 MiB. 8,192 such blobs are about 3 MiB; the cap changes nothing
/// for packs of chunks (chunks are at least 32 KiB, so 16 MiB of them is at most 512).
pub const MAX_PACK_BLOBS: usize = 8192;

/// A staged pack's bytes go to its file once this many wait in memory: few writes for a
/// pack of chunks (16 per pack) or of thousands of small blobs alike, for 1 MiB held.
const WRITE_BEHIND: usize = 1 << 20;

/// Builds one pack, in memory or in a [`StagedFile`] (then only [`WRITE_BEHIND`] bytes
/// and one blob are held).
pub struct PackWriter {
    data_key: SecretKey,
    /// The pack's bytes not yet in the staged file: all of them when there is none.
    buf: Vec<u8>,
    /// The file the pack is built in.
    staged: Option<StagedFile>,
    header_len: u32,
    entries: Vec<PackEntry>,
    capacity: usize,
}

/// A finished pack's bytes.
pub enum PackBytes {
    Memory(Vec<u8>),
    /// In a staged file, with the (emptied) buffer the pack was written through, for
    /// [`PackWriter::reusing`].
    Staged(StagedFile, Vec<u8>),
}

impl PackBytes {
    pub fn len(&self) -> u64 {
        match self {
            PackBytes::Memory(b) => b.len() as u64,
            PackBytes::Staged(f, _) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pack's bytes in memory (read from its file when staged).
    pub fn into_vec(self) -> Result<Vec<u8>> {
        match self {
            PackBytes::Memory(b) => Ok(b),
            PackBytes::Staged(mut f, _) => f.read_all(),
        }
    }
}

impl PackWriter {
    /// `capacity` is the pack size at which the caller closes the pack; room for one more
    /// blob of up to `max_blob` bytes is reserved so the buffer never has to grow (a
    /// doubling would briefly hold two copies of a whole pack).
    pub fn new(
        recipients: &[age::x25519::Recipient],
        capacity: usize,
        max_blob: usize,
    ) -> Result<PackWriter> {
        PackWriter::reusing(Vec::new(), recipients, capacity, max_blob, None)
    }

    /// [`PackWriter::new`] building the pack in `buf` (the buffer of a pack already
    /// stored, its contents dropped), so a long run of packs allocates no new buffers;
    /// and, given a `staging` folder, in a [`StagedFile`] there, so that `buf` holds only
    /// [`WRITE_BEHIND`] bytes and a blob.
    pub fn reusing(
        mut buf: Vec<u8>,
        recipients: &[age::x25519::Recipient],
        capacity: usize,
        max_blob: usize,
        staging: Option<&Path>,
    ) -> Result<PackWriter> {
        let data_key = SecretKey::random();
        let header = crypto::age_encrypt(recipients, &data_key.0)?;
        buf.clear();
        let staged = match staging {
            Some(dir) => Some(StagedFile::create(dir, "pack")?),
            None => None,
        };
        // In memory, the whole pack and its trailer; staged, what is written behind, one
        // blob, and a trailer.
        let room = if staged.is_some() {
            WRITE_BEHIND + max_blob + trailer_bound(MAX_PACK_BLOBS)
        } else {
            capacity + max_blob + 64 * 1024
        };
        buf.reserve(room);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(&header);
        Ok(PackWriter {
            data_key,
            header_len: header.len() as u32,
            buf,
            staged,
            entries: Vec::new(),
            capacity,
        })
    }

    /// True once the pack should be closed: its size (with the trailer's bound) reached
    /// the capacity it was made with, or it holds [`MAX_PACK_BLOBS`] blobs.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity || self.entries.len() >= MAX_PACK_BLOBS
    }

    /// The pack's size if it were finished now: its bytes so far plus a bound on the
    /// trailer that will list them. [`PackWriter::is_full`] closes the pack when this
    /// reaches its capacity, so the trailer always fits in the room [`PackWriter::new`]
    /// reserved: a pack of many small blobs (a trailer of megabytes) never grows its
    /// buffer, which would briefly hold the pack twice.
    pub fn len(&self) -> usize {
        self.written() + self.buf.len() + trailer_bound(self.entries.len())
    }

    /// Bytes already in the staged file.
    fn written(&self) -> usize {
        self.staged.as_ref().map_or(0, |f| f.len() as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a blob whose payload is already compressed (or deliberately not). Fails only
    /// when a staged pack's file cannot be written.
    pub fn add(
        &mut self,
        id: Id,
        kind: BlobKind,
        raw_len: u32,
        compressed: bool,
        payload: &[u8],
    ) -> Result<()> {
        let position = self.entries.len() as u32;
        let offset = self.written() + self.buf.len();
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        let tag = crypto::seal_blob_in_place(
            &self.data_key,
            position,
            &id,
            kind as u8,
            compressed,
            &mut self.buf[start..],
        );
        self.buf.extend_from_slice(&tag);
        self.entries.push(PackEntry {
            id,
            kind,
            position,
            offset: offset as u32,
            length: (self.buf.len() - start) as u32,
            raw_len,
            compressed,
        });
        if self.buf.len() >= WRITE_BEHIND {
            self.write_behind()?;
        }
        Ok(())
    }

    /// Moves the buffered bytes of a staged pack to its file.
    fn write_behind(&mut self) -> Result<()> {
        if let Some(file) = self.staged.as_mut() {
            file.append(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Seals the trailer and returns the pack's bytes and its record.
    pub fn finish(mut self, keys: &WriterKeys) -> Result<(PackBytes, PackRecord)> {
        let mut plain = Vec::with_capacity(trailer_bound(self.entries.len()));
        ciborium::into_writer(&self.entries, &mut plain).expect("serialisable");
        let trailer = keys.seal_meta(TRAILER_LABEL, &plain);
        debug_assert!(trailer.len() + 4 <= trailer_bound(self.entries.len()));
        self.buf.extend_from_slice(&trailer);
        self.buf
            .extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        let (bytes, id) = match self.staged.take() {
            None => {
                let id = Id::hash_public(&self.buf);
                (PackBytes::Memory(std::mem::take(&mut self.buf)), id)
            }
            Some(mut file) => {
                file.append(&self.buf)?;
                // Hashed here, by whoever finishes the pack (the upload thread), and not
                // as blobs are added: `add` runs under the lock the workers share.
                let id = Id(*file.hash_with(&mut self.buf)?.as_bytes());
                (PackBytes::Staged(file, std::mem::take(&mut self.buf)), id)
            }
        };
        let record = PackRecord {
            id,
            size: bytes.len(),
            header_len: self.header_len,
            entries: std::mem::take(&mut self.entries),
        };
        Ok((bytes, record))
    }
}

/// Range of the age header within a pack.
pub fn header_range(header_len: u32) -> (u64, u64) {
    (12, header_len as u64)
}

/// Unwraps a pack's data key from its header bytes.
pub fn open_header(
    identity: &age::x25519::Identity,
    header: &[u8],
    pack: &Id,
) -> Result<SecretKey> {
    match crypto::age_decrypt(identity, header) {
        Ok(key) if key.len() == 32 => Ok(SecretKey(key[..].try_into().unwrap())),
        Ok(_) => Err(Error::corrupt(
            format!("pack {pack}"),
            "header holds no 32-byte data key",
        )),
        Err(crypto::AgeOpenError::NoMatch) => Err(Error::Key(format!(
            "pack {pack} was not written for this reader identity ({})",
            identity.to_public()
        ))),
        Err(crypto::AgeOpenError::Damaged(d)) => Err(Error::corrupt(
            format!("pack {pack}"),
            format!("header: {d}"),
        )),
    }
}

/// Decrypts, decompresses and verifies one blob read from a pack.
pub fn open_blob(
    keys: &WriterKeys,
    data_key: &SecretKey,
    pack: &Id,
    entry: &PackEntry,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let corrupt = |detail: &str| {
        Error::corrupt(
            format!(
                "{} blob {} in pack {}",
                kind_name(entry.kind),
                entry.id,
                pack.short()
            ),
            detail.to_string(),
        )
    };
    let payload = crypto::open_blob(
        data_key,
        entry.position,
        &entry.id,
        entry.kind as u8,
        entry.compressed,
        sealed,
    )
    .ok_or_else(|| corrupt("authentication failed (the pack was altered or damaged)"))?;
    if entry.raw_len > MAX_BLOB_LEN {
        return Err(corrupt("its recorded length exceeds the limit"));
    }
    let plain = if entry.compressed {
        DECOMPRESSOR
            .with(|d| d.borrow_mut().decompress(&payload, entry.raw_len as usize))
            .map_err(|e| corrupt(&format!("does not decompress: {e}")))?
    } else {
        payload
    };
    if plain.len() != entry.raw_len as usize || keys.blob_id(&plain) != entry.id {
        return Err(corrupt("content does not match its id"));
    }
    Ok(plain)
}

fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    }
}

/// Reads the entry list from a whole pack (for check and index rebuilds).
pub fn read_trailer(keys: &WriterKeys, pack: &Id, bytes: &[u8]) -> Result<PackRecord> {
    let what = format!("pack {pack}");
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(Error::corrupt(
            &what,
            "not a vault pack (bad magic or truncated)",
        ));
    }
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    check_header_len(header_len).map_err(|d| Error::corrupt(&what, d))?;
    let tlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as u64;
    if tlen + 4 + 12 + header_len as u64 > bytes.len() as u64 {
        return Err(Error::corrupt(
            &what,
            "trailer length out of range (truncated?)",
        ));
    }
    let tlen = tlen as usize;
    let trailer = &bytes[bytes.len() - 4 - tlen..bytes.len() - 4];
    let plain = keys.open_meta(TRAILER_LABEL, trailer, &what)?;
    let entries = decode_trailer(&plain, header_len, bytes.len() as u64)
        .map_err(|d| Error::corrupt(&what, d))?;
    Ok(PackRecord {
        id: *pack,
        size: bytes.len() as u64,
        header_len,
        entries,
    })
}

/// Parses a pack trailer's plaintext and checks every entry against the pack's layout.
pub fn decode_trailer(
    plain: &[u8],
    header_len: u32,
    pack_size: u64,
) -> std::result::Result<Vec<PackEntry>, String> {
    let entries: Vec<PackEntry> =
        ciborium::from_reader(plain).map_err(|e| format!("trailer does not parse: {e}"))?;
    for e in &entries {
        e.check_bounds(header_len, Some(pack_size))
            .map_err(|d| format!("trailer: {d}"))?;
    }
    Ok(entries)
}

/// Parses an index file's plaintext: the packs it names and their entries, each checked
/// against its pack's recorded layout.
pub fn decode_index(plain: &[u8]) -> std::result::Result<Vec<PackRecord>, String> {
    let records: Vec<PackRecord> =
        ciborium::from_reader(plain).map_err(|e| format!("does not parse: {e}"))?;
    for r in &records {
        check_header_len(r.header_len).map_err(|d| format!("pack {}: {d}", r.id.short()))?;
        for e in &r.entries {
            e.check_bounds(r.header_len, Some(r.size))
                .map_err(|d| format!("pack {}: {d}", r.id.short()))?;
        }
    }
    Ok(records)
}

/// The two ends of a pack, read with ranged reads (no need to fetch its body).
pub struct PackEnds {
    /// The age header (which wraps the data key).
    pub header: Vec<u8>,
    /// The blob list from the authenticated trailer.
    pub record: PackRecord,
}

/// How much of each end is fetched in the first read: enough for the header and the
/// trailer of an ordinary pack, so most packs cost two ranged reads.
const END_PROBE: u64 = 64 * 1024;

/// Reads a pack's header and trailer with ranged reads and checks that they fit the
/// pack's `size` and that the trailer's entries lie inside the body. Only the metadata
/// key (a writer key) is needed; the header is returned unopened.
pub fn read_ends(
    backend: &dyn crate::backend::Backend,
    keys: &WriterKeys,
    pack: &Id,
    size: u64,
) -> Result<PackEnds> {
    use crate::backend::Kind;
    let what = format!("pack {pack}");
    let name = pack.to_hex();
    if size < 16 {
        return Err(Error::corrupt(
            &what,
            format!("only {size} bytes (truncated?)"),
        ));
    }
    let head = backend.get_range(Kind::Packs, &name, 0, size.min(END_PROBE))?;
    if &head[..8] != MAGIC {
        return Err(Error::corrupt(&what, "not a vault pack (bad magic)"));
    }
    let header_len = u32::from_le_bytes(head[8..12].try_into().unwrap());
    check_header_len(header_len).map_err(|d| Error::corrupt(&what, d))?;
    let header_len = header_len as u64;
    if 12 + header_len + 4 > size {
        return Err(Error::corrupt(
            &what,
            format!(
                "header length {header_len} does not fit a pack of {size} bytes (damaged header)"
            ),
        ));
    }
    let header = if 12 + header_len <= head.len() as u64 {
        head[12..12 + header_len as usize].to_vec()
    } else {
        backend.get_range(Kind::Packs, &name, 12, header_len)?
    };
    let tail_len = size.min(END_PROBE);
    let tail = backend.get_range(Kind::Packs, &name, size - tail_len, tail_len)?;
    let tlen = u32::from_le_bytes(tail[tail.len() - 4..].try_into().unwrap()) as u64;
    let body_start = 12 + header_len;
    if tlen + 4 + body_start > size {
        return Err(Error::corrupt(
            &what,
            "trailer length out of range (truncated or damaged trailer)",
        ));
    }
    let trailer = if tlen + 4 <= tail_len {
        tail[(tail_len - 4 - tlen) as usize..(tail_len - 4) as usize].to_vec()
    } else {
        backend.get_range(Kind::Packs, &name, size - 4 - tlen, tlen)?
    };
    let plain = keys
        .open_meta(TRAILER_LABEL, &trailer, &what)
        .map_err(|e| match e {
            Error::Corrupt { what, detail } => Error::Corrupt {
                what,
                detail: format!("trailer: {detail}"),
            },
            other => other,
        })?;
    let entries =
        decode_trailer(&plain, header_len as u32, size).map_err(|d| Error::corrupt(&what, d))?;
    let body_end = size - 4 - tlen;
    for (i, e) in entries.iter().enumerate() {
        let (off, len) = (e.offset as u64, e.length as u64);
        if e.position as usize != i || off < body_start || off + len > body_end {
            return Err(Error::corrupt(
                &what,
                format!("trailer entry {i} lies outside the pack's body"),
            ));
        }
    }
    Ok(PackEnds {
        header,
        record: PackRecord {
            id: *pack,
            size,
            header_len: header_len as u32,
            entries,
        },
    })
}

/// [`read_ends`], keeping only the blob list (for index rebuilds).
pub fn read_trailer_ranged(
    backend: &dyn crate::backend::Backend,
    keys: &WriterKeys,
    pack: &Id,
    size: u64,
) -> Result<PackRecord> {
    read_ends(backend, keys, pack, size).map(|e| e.record)
}

/// Unwraps a pack's data key, knowing the store's recipients: when the identity is one of
/// them, every pack of the store was written for it, so a header that does not open for
/// it is damaged, not foreign.
pub fn open_header_in_store(
    identity: &age::x25519::Identity,
    store_recipients: &[String],
    header: &[u8],
    pack: &Id,
) -> Result<SecretKey> {
    match open_header(identity, header, pack) {
        Err(Error::Key(msg))
            if store_recipients
                .iter()
                .any(|r| r.trim() == identity.to_public().to_string()) =>
        {
            let _ = msg;
            Err(Error::corrupt(
                format!("pack {pack}"),
                "header is damaged: it does not open for the store's reader identity",
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_in_index_and_trailer_are_refused() {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let reader = age::x25519::Identity::generate();
        let mut w = PackWriter::new(&[reader.to_public()], 1 << 20, 1 << 16).unwrap();
        let data = vec![5u8; 1000];
        w.add(keys.blob_id(&data), BlobKind::Data, 1000, false, &data)
            .unwrap();
        let (bytes, record) = w.finish(&keys).unwrap();
        let bytes = bytes.into_vec().unwrap();
        let encode = |r: &PackRecord| {
            let mut out = Vec::new();
            ciborium::into_writer(&vec![r.clone()], &mut out).unwrap();
            out
        };
        assert!(
            decode_index(&encode(&record)).is_ok(),
            "an honest index decodes"
        );
        assert!(read_trailer(&keys, &record.id, &bytes).is_ok());
        let mutations: [fn(&mut PackRecord); 6] = [
            |r| r.entries[0].raw_len = u32::MAX,
            |r| {
                r.entries[0].length = u32::MAX;
                r.entries[0].compressed = true
            },
            |r| r.entries[0].length = 3,
            |r| r.entries[0].offset = 2,
            |r| r.entries[0].offset = (r.size - 10) as u32,
            |r| r.header_len = u32::MAX,
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut bad = record.clone();
            m(&mut bad);
            let err = decode_index(&encode(&bad)).expect_err(&format!("mutation {i}"));
            assert!(
                err.contains("range")
                    || err.contains("exceeds")
                    || err.contains("lie")
                    || err.contains("fit"),
                "mutation {i}: {err}"
            );
        }
        // A whole pack whose header length field claims 4 GiB.
        let mut bad = bytes.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_trailer(&keys, &record.id, &bad).is_err());
        assert!(check_header_len(u32::MAX).is_err() && check_header_len(300).is_ok());
    }

    #[test]
    fn trailer_entry_bound_holds_for_the_largest_entry() {
        let entry = PackEntry {
            id: Id([0xff; 32]),
            kind: BlobKind::Tree,
            position: u32::MAX,
            offset: u32::MAX,
            length: u32::MAX,
            raw_len: u32::MAX,
            compressed: true,
        };
        let mut one = Vec::new();
        ciborium::into_writer(&entry, &mut one).unwrap();
        assert!(one.len() <= TRAILER_ENTRY_BOUND, "{} bytes", one.len());
    }

    /// Adds distinct 4-byte blobs until the pack is full; returns how many it took.
    fn fill_with_tiny_blobs(w: &mut PackWriter, keys: &WriterKeys) -> usize {
        let mut n = 0u32;
        while !w.is_full() {
            let data = n.to_le_bytes();
            w.add(keys.blob_id(&data), BlobKind::Data, 4, false, &data)
                .unwrap();
            n += 1;
        }
        n as usize
    }

    #[test]
    fn a_pack_of_many_small_blobs_never_grows_its_buffer() {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let reader = age::x25519::Identity::generate();
        let capacity = 1 << 20;
        let mut w = PackWriter::new(&[reader.to_public()], capacity, 64).unwrap();
        let reserved = w.buf.capacity();
        fill_with_tiny_blobs(&mut w, &keys);
        let (bytes, record) = w.finish(&keys).unwrap();
        let bytes = bytes.into_vec().unwrap();
        assert!(
            record.entries.len() > 5000,
            "{} entries",
            record.entries.len()
        );
        assert_eq!(bytes.capacity(), reserved, "the buffer was reallocated");
    }

    #[test]
    fn a_pack_closes_at_its_size_or_at_its_most_blobs_whichever_comes_first() {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let reader = age::x25519::Identity::generate();
        // Tiny blobs: the count closes the pack long before its size would.
        let capacity = 16 << 20;
        let mut w = PackWriter::new(&[reader.to_public()], capacity, 64).unwrap();
        assert_eq!(fill_with_tiny_blobs(&mut w, &keys), MAX_PACK_BLOBS);
        assert!(w.len() < capacity / 4, "{} bytes", w.len());
        // Large blobs: the size closes it.
        let blob = vec![7u8; 1 << 20];
        let mut w = PackWriter::new(&[reader.to_public()], 4 << 20, blob.len()).unwrap();
        let mut n = 0u32;
        while !w.is_full() {
            w.add(
                keys.blob_id(&n.to_le_bytes()),
                BlobKind::Data,
                1 << 20,
                false,
                &blob,
            )
            .unwrap();
            n += 1;
        }
        assert_eq!(n, 4);
        assert!(w.len() >= 4 << 20);
    }

    #[test]
    fn pack_round_trip_and_tamper_detection() {
        round_trip(None);
    }

    #[test]
    fn a_staged_pack_round_trips_and_holds_little_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(Some(dir.path()));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "a dropped staged pack leaves no file"
        );
    }

    /// Builds a pack (staged in `staging`, or in memory) of blobs that span several
    /// write-behinds; checks its name, header, every blob, tampering and its trailer.
    fn round_trip(staging: Option<&Path>) {
        let keys = WriterKeys::from_id_key(SecretKey::random());
        let reader = age::x25519::Identity::generate();
        let mut w = PackWriter::reusing(
            Vec::new(),
            &[reader.to_public()],
            16 << 20,
            1 << 20,
            staging,
        )
        .unwrap();
        let mut blobs: Vec<Vec<u8>> = vec![
            b"a".repeat(5000),
            (0..3000u32).map(|i| (i * 7) as u8).collect(),
            vec![],
        ];
        // Three and a half write-behinds of incompressible blobs.
        blobs.extend((0..7u64).map(|i| {
            let mut noise = vec![0u8; 512 << 10];
            let mut xof = blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof();
            xof.fill(&mut noise);
            noise
        }));
        let mut most_held = 0;
        for b in &blobs {
            let c = compress(b, 1);
            let payload = c.as_deref().unwrap_or(b);
            w.add(
                keys.blob_id(b),
                BlobKind::Data,
                b.len() as u32,
                c.is_some(),
                payload,
            )
            .unwrap();
            most_held = most_held.max(w.buf.len());
        }
        if staging.is_some() {
            assert!(
                most_held < WRITE_BEHIND + (512 << 10) + 64,
                "{most_held} bytes held"
            );
        }
        let (bytes, record) = w.finish(&keys).unwrap();
        assert_eq!(matches!(bytes, PackBytes::Staged(..)), staging.is_some());
        assert_eq!(record.size, bytes.len());
        let bytes = bytes.into_vec().unwrap();
        assert_eq!(record.size, bytes.len() as u64);
        assert_eq!(record.id, Id::hash_public(&bytes));
        assert!(record.entries[0].compressed);
        let (off, len) = header_range(record.header_len);
        let data_key = open_header(
            &reader,
            &bytes[off as usize..(off + len) as usize],
            &record.id,
        )
        .unwrap();
        for (e, b) in record.entries.iter().zip(&blobs) {
            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(
                &open_blob(&keys, &data_key, &record.id, e, sealed).unwrap(),
                b
            );
            let mut bad = sealed.to_vec();
            let middle = bad.len() / 2;
            bad[middle] ^= 0x40;
            let err = open_blob(&keys, &data_key, &record.id, e, &bad).unwrap_err();
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
        assert_eq!(
            read_trailer(&keys, &record.id, &bytes).unwrap().entries,
            record.entries
        );
        assert!(read_trailer(&keys, &record.id, &bytes[..bytes.len() - 10]).is_err());
        assert!(open_header(
            &age::x25519::Identity::generate(),
            &bytes[off as usize..(off + len) as usize],
            &record.id
        )
        .is_err());
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut x = 0x12345678u64;
        let random: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(compress(&random, 1).is_none());
        assert!(compress(&vec![7u8; 1 << 20], 1).is_some());
    }
}
