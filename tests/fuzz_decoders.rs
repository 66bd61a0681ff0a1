//! Random and mutated inputs through every decoder of store objects: pack header (age),
//! whole packs and their trailers, index files, snapshot records, trees, leases, the store
//! config, the TOML config, writer key and identity files, escrow sets and sealed-secret
//! metadata, sealed secrets (age) and the paper sheet.
//!
//! Each decoder starts from valid encodings and mutates them (bit flips, bytes set to
//! edge values, CBOR length headers planted with huge lengths, cuts, splices, repeats),
//! with plain random inputs in between. A decoder must return an error or a value: never
//! panic, never hang, and never ask for an allocation larger than [`ALLOC_CAP`] (this
//! binary's global allocator refuses those and aborts, naming the decoder).
//!
//! `VAULT_FUZZ_INPUTS` sets the inputs per decoder (default 3000, a few seconds in all);
//! `VAULT_FUZZ_SEED` the seed. `benches/fuzz.sh` runs a million per decoder.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vault::crypto::{SecretKey, WriterKeys};
use vault::id::Id;
use vault::pack::{BlobKind, PackRecord, PackWriter};
use vault::tree::{ChunkRef, Extent, LinkKey, Node, NodeKind, Tree, Xattr};

/// Largest single allocation any decoder may make on these inputs (all under 64 KiB).
const ALLOC_CAP: usize = 32 << 20;

/// Names of the decoders, for the abort message.
const NAMES: &[&str] = &[
    "setup",
    "pack header",
    "pack",
    "pack trailer",
    "index file",
    "snapshot record",
    "tree",
    "lease",
    "store config",
    "config file",
    "writer key file",
    "identity file",
    "escrow set",
    "secret metadata",
    "sealed secret",
    "paper sheet",
    "chunk list",
];

/// Index into [`NAMES`] of the decoder running (several may run at once: the last set wins,
/// which is enough to point at a culprit).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Capped;

// SAFETY: every call is forwarded unchanged to the system allocator, except requests above
// ALLOC_CAP, which are refused after a message written with `write(2)` (no allocation);
// refusing (returning null or aborting) is always allowed for a GlobalAlloc.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            oversized(layout.size());
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            oversized(layout.size());
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_CAP {
            oversized(new_size);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

fn oversized(size: usize) -> ! {
    let name = NAMES.get(RUNNING.load(Ordering::Relaxed)).unwrap_or(&"?");
    let mut msg = [0u8; 160];
    let mut n = 0;
    for part in [
        b"fuzz: decoder ".as_slice(),
        name.as_bytes(),
        b" asked for an allocation of ",
    ] {
        let take = part.len().min(msg.len() - n);
        msg[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = size;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in digits[d..].iter().chain(b" bytes\n") {
        if n < msg.len() {
            msg[n] = b;
            n += 1;
        }
    }
    // SAFETY: writes `n` initialised bytes of `msg` to fd 2; no memory is allocated.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), n);
    }
    std::process::abort()
}

/// xorshift64*: deterministic, fast, no allocation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn inputs_per_decoder() -> u64 {
    std::env::var("VAULT_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn seed() -> u64 {
    std::env::var("VAULT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_F00D)
}

/// Edge values that lengths and counts are made of.
const EDGES: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x18, 0x19, 0x1a, 0x1b, 0x5b, 0x7b, 0x9b, 0xbb,
];

/// CBOR headers announcing huge byte strings, text, arrays and maps.
const CBOR_HUGE: &[&[u8]] = &[
    &[0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
    &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x9b, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x5a, 0xff, 0xff, 0xff, 0xff],
    &[0x9a, 0x10, 0x00, 0x00, 0x00],
    &[0x1a, 0xff, 0xff, 0xff, 0xff],
    &[0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f],
];

/// One mutation of a seed (sometimes several stacked), or a random input.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    if rng.below(16) == 0 {
        let len = rng.below(512);
        out.extend((0..len).map(|_| rng.next() as u8));
        return;
    }
    out.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(10) {
            0 | 1 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                out[i] = EDGES[rng.below(EDGES.len())];
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let huge = CBOR_HUGE[rng.below(CBOR_HUGE.len())];
                for (k, b) in huge.iter().enumerate() {
                    if i + k < out.len() {
                        out[i + k] = *b;
                    }
                }
            }
            4 if len > 0 => {
                // A little-endian u32 length field set to something large.
                let i = rng.below(len);
                let v: u32 = [u32::MAX, 0x8000_0000, 0x1000_0000, len as u32 + 1][rng.below(4)];
                for (k, b) in v.to_le_bytes().iter().enumerate() {
                    if i + k < out.len() {
                        out[i + k] = *b;
                    }
                }
            }
            5 => out.truncate(rng.below(len + 1)),
            6 if len > 0 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a + 1);
                out.drain(a..b);
            }
            7 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let piece = out[a..b].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece);
            }
            8 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + rng.below(256)).min(other.len());
                    let at = rng.below(out.len() + 1);
                    out.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
        }
    }
}

/// Runs `decode` over mutated `seeds`; fails on a panic or a hang, with the input.
fn fuzz(decoder: usize, seeds: Vec<Vec<u8>>, decode: impl Fn(&[u8])) {
    assert!(!seeds.is_empty());
    RUNNING.store(decoder, Ordering::Relaxed);
    let n = inputs_per_decoder();
    let mut rng = Rng(seed() ^ (decoder as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let progress = std::sync::Arc::new(AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let progress = progress.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            let mut since = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > Duration::from_secs(30) {
                    eprintln!("fuzz: decoder {} hangs on input {now}", NAMES[decoder]);
                    std::process::abort();
                }
            }
        })
    };
    let started = Instant::now();
    let mut input = Vec::new();
    for i in 0..n {
        RUNNING.store(decoder, Ordering::Relaxed);
        mutate(&mut rng, &seeds, &mut input);
        if std::panic::catch_unwind(AssertUnwindSafe(|| decode(&input))).is_err() {
            done.store(true, Ordering::Relaxed);
            panic!(
                "decoder {} panicked on input {i}: {}",
                NAMES[decoder],
                hex::encode(&input[..input.len().min(4096)])
            );
        }
        progress.store(i + 1, Ordering::Relaxed);
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    eprintln!(
        "fuzz: {} inputs through the {} decoder in {:.1} s: no panic, hang or oversized allocation",
        n,
        NAMES[decoder],
        started.elapsed().as_secs_f64()
    );
}

struct World {
    keys: WriterKeys,
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
}

fn world() -> World {
    RUNNING.store(0, Ordering::Relaxed);
    let identity = age::x25519::Identity::generate();
    World {
        keys: WriterKeys::from_id_key(SecretKey::random()),
        recipient: identity.to_public(),
        identity,
    }
}

fn sample_pack(w: &World, blobs: usize) -> (Vec<u8>, PackRecord) {
    let mut p = PackWriter::new(std::slice::from_ref(&w.recipient), 1 << 16, 1 << 16).unwrap();
    for i in 0..blobs {
        let data: Vec<u8> = (0..(37 * i + 5)).map(|k| (k * i) as u8).collect();
        let id = w.keys.blob_id(&data);
        let kind = if i % 3 == 0 {
            BlobKind::Tree
        } else {
            BlobKind::Data
        };
        p.add(id, kind, data.len() as u32, false, &data).unwrap();
    }
    let (bytes, record) = p.finish(&w.keys).unwrap();
    (bytes.into_vec().unwrap(), record)
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn sample_node(i: u8) -> Node {
    Node {
        name: vec![b'f', i, 0xe9],
        kind: [NodeKind::File, NodeKind::Dir, NodeKind::Symlink][i as usize % 3],
        mode: 0o4755,
        uid: 1000,
        gid: 1000,
        user: Some("travis".into()),
        group: None,
        mtime: 1_700_000_000,
        mtime_nsec: 123,
        size: 3 << 20,
        xattrs: vec![Xattr {
            name: b"user.note".to_vec(),
            value: vec![i; 9],
        }],
        extents: vec![Extent {
            offset: 4096,
            chunks: vec![
                ChunkRef {
                    id: Id::random(),
                    len: 1 << 20,
                },
                ChunkRef {
                    id: Id::random(),
                    len: 77,
                },
            ],
        }],
        lists: if i % 4 == 3 {
            vec![Id::random(), Id::random()]
        } else {
            Vec::new()
        },
        subtree: (i % 3 == 1).then(Id::random),
        target: (i % 3 == 2).then(|| b"../x".to_vec()),
        rdev: 0,
        link: Some(LinkKey { dev: 2049, ino: 77 }),
    }
}

#[test]
fn fuzz_pack_header() {
    let w = world();
    let seeds: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            vault::crypto::age_encrypt(std::slice::from_ref(&w.recipient), &[7u8; 32]).unwrap()
        })
        .collect();
    let id = Id::random();
    fuzz(1, seeds, |b| {
        let _ = vault::pack::open_header(&w.identity, b, &id);
    });
}

#[test]
fn fuzz_pack() {
    let w = world();
    let packs: Vec<(Vec<u8>, PackRecord)> = [1, 4, 9].iter().map(|&n| sample_pack(&w, n)).collect();
    let id = packs[0].1.id;
    let seeds = packs.into_iter().map(|(b, _)| b).collect();
    fuzz(2, seeds, |b| {
        let _ = vault::pack::read_trailer(&w.keys, &id, b);
    });
}

#[test]
fn fuzz_pack_trailer() {
    let w = world();
    let mut seeds = Vec::new();
    for n in [1, 4, 9] {
        let (_, r) = sample_pack(&w, n);
        seeds.push(cbor(&r.entries));
    }
    fuzz(3, seeds, |b| {
        let _ = vault::pack::decode_trailer(b, 300, 1 << 20);
    });
}

#[test]
fn fuzz_index_file() {
    let w = world();
    let records: Vec<PackRecord> = [2, 5].iter().map(|&n| sample_pack(&w, n).1).collect();
    let seeds = vec![
        cbor(&records),
        cbor(&records[..1].to_vec()),
        cbor(&Vec::<PackRecord>::new()),
    ];
    fuzz(4, seeds, |b| {
        let _ = vault::pack::decode_index(b);
    });
}

#[test]
fn fuzz_snapshot_record() {
    let snap = vault::repo::Snapshot {
        time: "2026-12-01T10:00:00+00:00".into(),
        hostname: "platform-1".into(),
        username: "root".into(),
        paths: vec![serde_bytes::ByteBuf::from(b"/etc/travis".to_vec())],
        tags: vec!["nightly".into()],
        tree: Id::random(),
        summary: Default::default(),
        program: "vault 0.1".into(),
        databases: Vec::new(),
    };
    fuzz(5, vec![cbor(&snap)], |b| {
        let _ = vault::repo::decode_snapshot(b);
    });
}

#[test]
fn fuzz_tree() {
    let seeds = vec![
        Tree {
            nodes: (0..4).map(sample_node).collect(),
        }
        .encode(),
        Tree { nodes: vec![] }.encode(),
    ];
    fuzz(6, seeds, |b| {
        let _ = Tree::decode(b);
    });
}

#[test]
fn fuzz_chunk_list() {
    let seeds = vec![
        vault::tree::ChunkList {
            extents: sample_node(0).extents,
        }
        .encode(),
        vault::tree::ChunkList::default().encode(),
    ];
    fuzz(16, seeds, |b| {
        let _ = vault::tree::ChunkList::decode(b"f", b);
    });
}

#[test]
fn fuzz_lease() {
    let rec = vault::lock::LeaseRecord {
        kind: vault::lock::LeaseKind::Exclusive,
        host: "worker-2".into(),
        pid: 4242,
        purpose: "prune".into(),
        created: 1_700_000_000,
        expires: 1_700_001_800,
    };
    fuzz(7, vec![serde_json::to_vec(&rec).unwrap()], |b| {
        let _ = vault::lock::decode_lease(b);
    });
}

#[test]
fn fuzz_store_config() {
    let w = world();
    let c = vault::repo::StoreConfig {
        format: vault::repo::FORMAT_NAME.into(),
        version: vault::repo::FORMAT_VERSION,
        store_id: hex::encode([3u8; 16]),
        created: "2026-12-01T10:00:00+00:00".into(),
        chunker: Default::default(),
        pack_size: 16 << 20,
        compression_level: 3,
        recipients: vec![w.recipient.to_string()],
        object_lock: None,
        admin_key: Some(hex::encode([5u8; 32])),
        signature: Some(hex::encode([6u8; 64])),
    };
    fuzz(8, vec![serde_json::to_vec_pretty(&c).unwrap()], |b| {
        let _ = vault::repo::decode_store_config(b);
    });
}

#[test]
fn fuzz_config_file() {
    let seeds = vec![
        include_bytes!("../config/vault.toml").to_vec(),
        include_bytes!("../config/vault-worker.toml").to_vec(),
    ];
    fuzz(9, seeds, |b| {
        let _ = vault::config::Config::parse(&String::from_utf8_lossy(b));
    });
}

#[test]
fn fuzz_writer_key_file() {
    let w = world();
    let k = vault::keys::WriterKeyFile {
        store_id: hex::encode([3u8; 16]),
        store: "s3://bucket/prefix".into(),
        id_key: hex::encode([9u8; 32]),
        recipients: vec![w.recipient.to_string()],
        admin_key: Some(hex::encode([5u8; 32])),
        host: Some("platform-1".into()),
        host_key: Some(hex::encode([7u8; 32])),
    };
    fuzz(10, vec![serde_json::to_vec_pretty(&k).unwrap()], |b| {
        if let Ok(f) = vault::keys::WriterKeyFile::parse(&String::from_utf8_lossy(b)) {
            let _ = f.writer_keys(std::path::Path::new("writer.key"));
        }
    });
}

#[test]
fn fuzz_identity_file() {
    let w = world();
    let text = vault::keys::identity_file_text(&w.identity);
    fuzz(11, vec![text.as_bytes().to_vec()], |b| {
        let _ = vault::keys::parse_identity(&String::from_utf8_lossy(b));
    });
}

#[test]
fn fuzz_escrow_set() {
    let w = world();
    let set = vault::secrets::store::EscrowSet {
        format: 1,
        serial: 2,
        created: 1_700_000_000,
        recipients: vec![w.recipient.to_string()],
        passphrase_recipient: Some(w.recipient.to_string()),
    };
    fuzz(12, vec![serde_json::to_vec(&set).unwrap()], |b| {
        let _ = vault::secrets::store::decode_escrow_set(b);
    });
}

#[test]
fn fuzz_secret_metadata() {
    let w = world();
    let meta = serde_json::json!({
        "format": 1, "name": "travis-encryption-key", "sealed_at": 1_700_000_000u64,
        "host": "platform-1", "source": "/etc/travis/travis.yml", "fingerprint": hex::encode([1u8; 32]),
        "escrow": 1, "recipients": [w.recipient.to_string()], "passphrase": true,
        "age_blake3": hex::encode([2u8; 32]),
    });
    let seeds = vec![serde_json::to_vec(&meta).unwrap()];
    assert!(
        vault::secrets::store::decode_meta(&seeds[0]).is_ok(),
        "the seed is metadata"
    );
    fuzz(13, seeds, |b| {
        let _ = vault::secrets::store::decode_meta(b);
    });
}

#[test]
fn fuzz_sealed_secret() {
    let w = world();
    let seeds = vec![
        vault::crypto::age_encrypt(
            std::slice::from_ref(&w.recipient),
            b"0123456789abcdef0123456789abcdef",
        )
        .unwrap(),
        vault::crypto::age_encrypt(
            &[
                w.recipient.clone(),
                age::x25519::Identity::generate().to_public(),
            ],
            &[0u8; 300],
        )
        .unwrap(),
    ];
    fuzz(14, seeds, |b| {
        let _ = vault::crypto::age_decrypt(&w.identity, b);
    });
}

#[test]
fn fuzz_paper_sheet() {
    use vault::secrets::paper;
    let info = paper::SheetInfo {
        name: "travis-encryption-key".into(),
        store: "s3://bucket/prefix".into(),
        sealed: "2026-12-01 10:00:00".into(),
        version: "00000000001700000000-0a1b2c3d".into(),
        source: "/etc/travis/travis.yml".into(),
        fingerprint: "ab12cd34".into(),
        printed: "2026-12-01 10:05:00".into(),
    };
    let seeds: Vec<Vec<u8>> = ["5f2b8e3c9a7d4e1f", "\u{1}\u{2}binary\u{ff}secret"]
        .iter()
        .map(|s| {
            paper::render(&vault::secrets::SecretString::from(s.to_string()), &info)
                .as_bytes()
                .to_vec()
        })
        .collect();
    fuzz(15, seeds, |b| {
        let _ = paper::read_back(&String::from_utf8_lossy(b));
    });
}
