//! The store format, version 1, pinned byte for byte (see `src/FORMAT.md`).
//!
//! Two kinds of pin:
//! - encodings of values built here (a tree, a pack entry, an index record, a snapshot
//!   record) compared with fixed bytes, and a tree id under a fixed id key: a dependency
//!   upgrade that changed the CBOR encoding would change tree ids and break
//!   deduplication, and fails here first;
//! - the checked-in store `tests/fixtures/store-v1` (made by
//!   `tests/fixtures/make-store-v1.sh` with a known passphrase and reader identity):
//!   its objects are taken apart by hand (magic, lengths, labels, nonces), decrypted with
//!   the known keys, and the plaintext of its pack trailer, index file and snapshot record
//!   compared with fixed bytes; vault's own writers (pack, index, snapshot record), given
//!   what those records hold, must write exactly those bytes again; then the CLI must open
//!   it, check it clean and restore its known content. This is the store that proves a
//!   later vault still opens what this one wrote.

mod common;

use common::Vault;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vault::backend::{self, memory::MemoryBackend, Kind};
use vault::crypto::{SecretKey, WriterKeys};
use vault::pack::{BlobKind, PackEntry, PackRecord, PackWriter};
use vault::repo::{Repo, Snapshot, Summary};
use vault::tree::{ChunkRef, Extent, LinkKey, Node, NodeKind, Tree, Xattr};
use vault::Id;

const FIXTURE_PASSPHRASE: &str = "store-v1 fixture passphrase";
/// Where the fixture script took its snapshot from.
const FIXTURE_SOURCE: &str = "/tmp/vault-fixture-v1/etc/travis";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

fn fixture_identity_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1.identity.txt")
}

fn age_open(identity: &age::x25519::Identity, data: &[u8]) -> Vec<u8> {
    match vault::crypto::age_decrypt(identity, data) {
        Ok(plain) => plain.to_vec(),
        Err(_) => panic!("not an age file to the fixture's reader identity"),
    }
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

// --- Encodings of values built here ---------------------------------------------------

fn sample_tree() -> Tree {
    Tree {
        nodes: vec![
            Node {
                name: b"a.txt".to_vec(),
                kind: NodeKind::File,
                mode: 0o640,
                uid: 0,
                gid: 998,
                user: Some("root".into()),
                group: Some("travis".into()),
                mtime: 1_767_323_045,
                mtime_nsec: 123_456_789,
                size: 10,
                xattrs: vec![Xattr {
                    name: b"user.k".to_vec(),
                    value: b"v".to_vec(),
                }],
                extents: vec![Extent {
                    offset: 0,
                    chunks: vec![ChunkRef {
                        id: Id([0xaa; 32]),
                        len: 10,
                    }],
                }],
                subtree: None,
                target: None,
                rdev: 0,
                link: Some(LinkKey { dev: 2049, ino: 7 }),
            },
            Node {
                name: b"d".to_vec(),
                kind: NodeKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                mtime: -1,
                mtime_nsec: 0,
                size: 0,
                xattrs: vec![],
                extents: vec![],
                subtree: Some(Id([0xbb; 32])),
                target: None,
                rdev: 0,
                link: None,
            },
            Node {
                name: b"l\xff".to_vec(),
                kind: NodeKind::Symlink,
                mode: 0o777,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                mtime: 0,
                mtime_nsec: 0,
                size: 0,
                xattrs: vec![],
                extents: vec![],
                subtree: None,
                target: Some(b"a.txt".to_vec()),
                rdev: 0,
                link: None,
            },
            Node {
                name: b"null".to_vec(),
                kind: NodeKind::CharDevice,
                mode: 0o666,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                mtime: 0,
                mtime_nsec: 0,
                size: 0,
                xattrs: vec![],
                extents: vec![],
                subtree: None,
                target: None,
                rdev: 0x103,
                link: None,
            },
        ],
    }
}

/// CBOR of [`sample_tree`]: `{"nodes": [{"name": h'612e747874', "kind": "File", "mode":
/// 416, "uid": 0, "gid": 998, "user": "root", "group": "travis", "mtime": 1767323045,
/// "mtime_nsec": 123456789, "size": 10, "xattrs": [...], "extents": [...], "link": {...}},
/// ...]}`; fields left out when empty, `null` for absent names.
const SAMPLE_TREE_CBOR: &str =
    "a1656e6f64657384ad646e616d6545612e747874646b696e646446696c65646d6f64651901a06375696400636769641903e6647573657264726f6f746567726f757066747261766973656d74696d651a695735a56a6d74696d655f6e7365631a075bcd156473697a650a6678617474727381a2646e616d6546757365722e6b6576616c7565417667657874656e747381a2666f666673657400666368756e6b7381a26269645820aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa636c656e0a646c696e6ba26364657619080163696e6f07ab646e616d654164646b696e6463446972646d6f64651901ed637569640063676964006475736572f66567726f7570f6656d74696d65206a6d74696d655f6e736563006473697a650067737562747265655820bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbab646e616d65426cff646b696e646753796d6c696e6b646d6f64651901ff637569640063676964006475736572f66567726f7570f6656d74696d65006a6d74696d655f6e736563006473697a65006674617267657445612e747874ab646e616d65446e756c6c646b696e646a43686172446576696365646d6f64651901b6637569640063676964006475736572f66567726f7570f6656d74696d65006a6d74696d655f6e736563006473697a65006472646576190103";
/// Its blob id under the id key 32 × 0x11.
const SAMPLE_TREE_ID: &str = "6ce0ba13853487bfdf08de26bbdd10bc25896fcdfb25a476eb0c31f678ed1db6";

#[test]
fn tree_encoding_and_id_are_pinned() {
    let tree = sample_tree();
    let bytes = tree.encode();
    assert_eq!(
        hex::encode(&bytes),
        SAMPLE_TREE_CBOR,
        "tree encoding changed"
    );
    assert_eq!(Tree::decode(&bytes).unwrap(), tree);
    let keys = WriterKeys::from_id_key(SecretKey([0x11; 32]));
    assert_eq!(
        keys.blob_id(&bytes).to_hex(),
        SAMPLE_TREE_ID,
        "tree id changed"
    );
}

/// The derived keys of the id key 32 × 0x11: blob ids and the chunker seed.
#[test]
fn key_derivation_is_pinned() {
    let keys = WriterKeys::from_id_key(SecretKey([0x11; 32]));
    assert_eq!(
        keys.blob_id(b"").to_hex(),
        "aa690fb91dee3e89951521fa5f6c3b388baf8215ef3112d60995436345ad72ed"
    );
    assert_eq!(keys.chunker_seed(), 18_031_447_095_550_748_891);
    assert_eq!(
        hex::encode(keys.derive(vault::crypto::SECRET_FINGERPRINT_CONTEXT)),
        "c4c743f9c189c3c4d260ae4881b210d59f6b691f8eaf864d5515aa1ad257a739"
    );
}

fn sample_entry() -> PackEntry {
    PackEntry {
        id: Id([0xcc; 32]),
        kind: BlobKind::Tree,
        position: 3,
        offset: 4096,
        length: 116,
        raw_len: 100,
        compressed: true,
    }
}

const SAMPLE_ENTRY_CBOR: &str =
    "a76269645820cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc646b696e64645472656568706f736974696f6e03666f6666736574191000666c656e6774681874677261775f6c656e18646a636f6d70726573736564f5";
const SAMPLE_RECORD_CBOR: &str =
    "81a46269645820dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd6473697a651a001000006a6865616465725f6c656e18c867656e747269657381a76269645820cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc646b696e64645472656568706f736974696f6e03666f6666736574191000666c656e6774681874677261775f6c656e18646a636f6d70726573736564f5";

#[test]
fn pack_entry_and_index_record_encodings_are_pinned() {
    assert_eq!(hex::encode(cbor(&sample_entry())), SAMPLE_ENTRY_CBOR);
    let record = PackRecord {
        id: Id([0xdd; 32]),
        size: 1 << 20,
        header_len: 200,
        entries: vec![sample_entry()],
    };
    // An index file's plaintext is a list of records.
    assert_eq!(hex::encode(cbor(&vec![record])), SAMPLE_RECORD_CBOR);
}

const SAMPLE_SNAPSHOT_CBOR: &str =
    "a86474696d657823323032362d30312d30325430333a30343a30352e3132333435363738392b30313a303068686f73746e616d656a706c6174666f726d2d3168757365726e616d6564726f6f74657061746873814b2f6574632f7472617669736474616773816b7072652d7570677261646564747265655820eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee6773756d6d617279aa6566696c657301646469727302666f746865727303656279746573046a62797465735f7265616405696e65775f6279746573066c73746f7265645f627974657307657061636b7308666572726f7273096b6475726174696f6e5f6d730a6770726f6772616d6b7661756c7420302e312e30";

#[test]
fn snapshot_record_encoding_is_pinned() {
    let snapshot = Snapshot {
        time: "2026-01-02T03:04:05.123456789+01:00".into(),
        hostname: "platform-1".into(),
        username: "root".into(),
        paths: vec![serde_bytes::ByteBuf::from(b"/etc/travis".to_vec())],
        tags: vec!["pre-upgrade".into()],
        tree: Id([0xee; 32]),
        summary: Summary {
            files: 1,
            dirs: 2,
            others: 3,
            bytes: 4,
            bytes_read: 5,
            new_bytes: 6,
            stored_bytes: 7,
            packs: 8,
            errors: 9,
            duration_ms: 10,
            new_meta_bytes: 0,
        },
        program: "vault 0.1.0".into(),
        databases: Vec::new(),
    };
    assert_eq!(hex::encode(cbor(&snapshot)), SAMPLE_SNAPSHOT_CBOR);
}

// --- The checked-in store ----------------------------------------------------------------

/// The fixture's one pack: its size, header length and trailer length (bytes).
const FIXTURE_PACK_LAYOUT: (usize, usize, usize) = (2578, 309, 932);
/// The plaintext of that pack's trailer: CBOR of its nine entries (seven trees, two
/// chunks), in the order the pack holds them.
const FIXTURE_TRAILER_PLAIN: &str = concat!(
    "89a762696458204ce7cd2cc28b63f47abb514570cc28682e762d34fc0647405ea588f088bdda34646b696e64",
    "645472656568706f736974696f6e00666f6666736574190141666c656e6774681818677261775f6c656e086a",
    "636f6d70726573736564f4a76269645820c3db477280e8ca3fc2e1bc6cd744d93febbb21fe1c6d5187aac698",
    "21d2ea0a54646b696e64644461746168706f736974696f6e01666f6666736574190159666c656e6774681824",
    "677261775f6c656e146a636f6d70726573736564f4a762696458200e6b2ec72aa8adc74e3ec5cb6ace2a646e",
    "fa92b050f365638b280479f493dbac646b696e64645472656568706f736974696f6e02666f66667365741901",
    "7d666c656e67746818be677261775f6c656e18ae6a636f6d70726573736564f4a7626964582079a0e47fd2cc",
    "c26b1177a011f52b07801ee0a1b3bcd971dd07c99d7ef7a53f6e646b696e64644461746168706f736974696f",
    "6e03666f666673657419023b666c656e6774681838677261775f6c656e18286a636f6d70726573736564f4a7",
    "6269645820d9568e469e3b6a618edfbce5db63ae759d93c5d8393631c1ee55999faae39f28646b696e646454",
    "72656568706f736974696f6e04666f6666736574190273666c656e677468190177677261775f6c656e190291",
    "6a636f6d70726573736564f5a7626964582088e2f7ba246fdbb73897dc8473b210a3ac27e24ec1026e8c024e",
    "176468073e59646b696e64645472656568706f736974696f6e05666f66667365741903ea666c656e67746818",
    "9c677261775f6c656e188c6a636f6d70726573736564f4a762696458205f08a93f338cbaad85d41cc88b865e",
    "7a05959c0888e7646b2f3539a5ce289ce2646b696e64645472656568706f736974696f6e06666f6666736574",
    "190486666c656e677468189d677261775f6c656e188d6a636f6d70726573736564f4a7626964582056da5340",
    "83689b8f1aef1a15f2fa82ba814c93a9c8e564c06eb19832c49bc5ff646b696e64645472656568706f736974",
    "696f6e07666f6666736574190523666c656e67746818aa677261775f6c656e189a6a636f6d70726573736564",
    "f4a76269645820187ff2aa5b38b3c4f3febebdcc696540bffa2747bb0ddcf09000b74f116896bb646b696e64",
    "645472656568706f736974696f6e08666f66667365741905cd666c656e677468189d677261775f6c656e188d",
    "6a636f6d70726573736564f4",
);
/// The plaintext of the fixture's one index file: CBOR of its one pack record, whose
/// `entries` are the trailer's ([`FIXTURE_TRAILER_PLAIN`] follows these bytes).
const FIXTURE_INDEX_HEAD: &str = "81a462696458205decbc376edfdd3b0081a24a0c14c6188c944b8dfd47361ba79bde1a476ae0d96473697a65190a126a6865616465725f6c656e19013567656e7472696573";
/// The plaintext of the fixture's one snapshot record: CBOR of the snapshot.
const FIXTURE_SNAPSHOT_PLAIN: &str = concat!(
    "a86474696d657823323032362d31322d30315432303a33383a32362e3931383832323938332b30303a303068",
    "686f73746e616d656c666978747572652d686f737468757365726e616d6564726f6f74657061746873815820",
    "2f746d702f7661756c742d666978747572652d76312f6574632f747261766973647461677381676669787475",
    "726564747265655820187ff2aa5b38b3c4f3febebdcc696540bffa2747bb0ddcf09000b74f116896bb677375",
    "6d6d617279aa6566696c657303646469727303666f746865727301656279746573183c6a62797465735f7265",
    "6164183c696e65775f62797465731905c36c73746f7265645f6279746573190a12657061636b730166657272",
    "6f7273006b6475726174696f6e5f6d73183b6770726f6772616d6b7661756c7420302e312e30",
);

struct Fixture {
    repo: Repo,
    keys: WriterKeys,
    identity: age::x25519::Identity,
}

fn open_fixture() -> Fixture {
    let backend = backend::open(fixture().to_str().unwrap()).unwrap();
    let repo = Repo::open(backend).expect("the version 1 fixture store opens");
    let identity = vault::keys::load_identity_file(&fixture_identity_file()).unwrap();
    let id_key = vault::keys::unlock_idkey_object(repo.backend.as_ref(), &identity).unwrap();
    Fixture {
        repo,
        keys: WriterKeys::from_id_key(id_key),
        identity,
    }
}

fn names(f: &Fixture, kind: Kind) -> Vec<String> {
    f.repo
        .backend
        .list(kind)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect()
}

/// Opens sealed metadata by hand: 24-byte nonce, XChaCha20-Poly1305 under the metadata
/// key with the label as associated data. Checks that the label is bound, too.
fn open_meta(f: &Fixture, label: &[u8], sealed: &[u8]) -> Vec<u8> {
    let plain = f.keys.open_meta(label, sealed, "fixture").unwrap();
    assert_eq!(
        sealed.len(),
        24 + plain.len() + 16,
        "nonce, ciphertext, tag"
    );
    assert!(f.keys.open_meta(b"vault v1 other", sealed, "x").is_err());
    plain
}

#[test]
fn fixture_config_and_keys() {
    let f = open_fixture();
    let config: serde_json::Value =
        serde_json::from_slice(&f.repo.backend.get(Kind::Config, "config").unwrap()).unwrap();
    assert_eq!(config["format"], "vault store");
    assert_eq!(config["version"], 1);
    assert_eq!(config["store_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        config["recipients"][0].as_str().unwrap(),
        f.identity.to_public().to_string()
    );
    assert_eq!(
        config["chunker"],
        serde_json::json!({"min_size": 131072, "avg_size": 262144, "max_size": 1048576})
    );
    assert_eq!(config["pack_size"], 16 << 20);
    assert_eq!(config["compression_level"], 2);
    assert!(config.get("object_lock").is_none());

    // keys/reader: armored age to the passphrase, holding the identity file's identity.
    let reader = f.repo.backend.get(Kind::Keys, "reader").unwrap();
    assert!(reader.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
    let unwrapped = vault::keys::unlock_reader_object(
        f.repo.backend.as_ref(),
        &secrecy::SecretString::from(FIXTURE_PASSPHRASE),
    )
    .unwrap();
    assert_eq!(
        unwrapped.to_public().to_string(),
        f.identity.to_public().to_string()
    );
    // keys/idkey: binary age to the reader recipients, 64 hex digits and a line break.
    let idkey = f.repo.backend.get(Kind::Keys, "idkey").unwrap();
    assert!(idkey.starts_with(b"age-encryption.org/v1\n-> X25519 "));
    let plain = age_open(&f.identity, &idkey);
    assert_eq!(plain.len(), 65);
    assert_eq!(plain[64], b'\n');
    assert_eq!(&plain[..64], f.keys.id_key().to_hex().as_bytes());
}

/// Splits a pack by the layout of FORMAT.md and checks every part.
#[test]
fn fixture_pack_layout() {
    let f = open_fixture();
    let packs = names(&f, Kind::Packs);
    assert!(!packs.is_empty());
    let mut trees = 0;
    for name in &packs {
        let bytes = f.repo.backend.get(Kind::Packs, name).unwrap();
        assert_eq!(
            Id::hash_public(&bytes).to_hex(),
            *name,
            "name = BLAKE3(pack)"
        );
        assert!(fixture()
            .join("packs")
            .join(&name[..2])
            .join(name)
            .is_file());
        assert_eq!(&bytes[..8], b"VLTPACK1");
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let header = &bytes[12..12 + header_len];
        assert!(header.starts_with(b"age-encryption.org/v1\n-> X25519 "));
        let data_key = age_open(&f.identity, header);
        assert_eq!(data_key.len(), 32);
        let data_key = SecretKey(data_key[..].try_into().unwrap());
        let tlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
        let trailer = &bytes[bytes.len() - 4 - tlen..bytes.len() - 4];
        let plain = open_meta(&f, b"vault v1 pack trailer", trailer);
        assert_eq!((bytes.len(), header_len, tlen), FIXTURE_PACK_LAYOUT);
        assert_eq!(hex::encode(&plain), FIXTURE_TRAILER_PLAIN, "trailer bytes");
        let entries: Vec<PackEntry> = ciborium::from_reader(&plain[..]).unwrap();
        assert_eq!(cbor(&entries), plain, "the trailer re-encodes to its bytes");
        // Blobs follow the header back to back, each at its position's nonce.
        let mut at = 12 + header_len;
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.position as usize, i);
            assert_eq!(e.offset as usize, at);
            let sealed = &bytes[at..at + e.length as usize];
            let payload = vault::crypto::open_blob(
                &data_key,
                e.position,
                &e.id,
                e.kind as u8,
                e.compressed,
                sealed,
            )
            .expect("ChaCha20-Poly1305, nonce = position, aad = id, kind, compressed");
            assert_eq!(payload.len() + 16, e.length as usize);
            let plaintext = if e.compressed {
                zstd::bulk::decompress(&payload, e.raw_len as usize).unwrap()
            } else {
                payload
            };
            assert_eq!(plaintext.len(), e.raw_len as usize);
            assert_eq!(f.keys.blob_id(&plaintext), e.id, "id = keyed BLAKE3");
            if e.kind == BlobKind::Tree {
                let tree = Tree::decode(&plaintext).unwrap();
                assert_eq!(tree.encode(), plaintext, "a tree re-encodes to its bytes");
                trees += 1;
            }
            at += e.length as usize;
        }
        assert_eq!(
            at,
            bytes.len() - 4 - tlen,
            "the trailer follows the last blob"
        );
    }
    // The root, /tmp, vault-fixture-v1, etc, travis, ssl, empty.
    assert_eq!(trees, 7);
}

#[test]
fn fixture_index_and_snapshot_records() {
    let f = open_fixture();
    let mut indexed = Vec::new();
    for name in names(&f, Kind::Index) {
        assert_eq!(name.len(), 64);
        let sealed = f.repo.backend.get(Kind::Index, &name).unwrap();
        let plain = open_meta(&f, b"vault v1 index", &sealed);
        assert_eq!(
            hex::encode(&plain),
            [FIXTURE_INDEX_HEAD, FIXTURE_TRAILER_PLAIN].concat(),
            "index file bytes"
        );
        let records: Vec<PackRecord> = ciborium::from_reader(&plain[..]).unwrap();
        assert_eq!(
            cbor(&records),
            plain,
            "an index file re-encodes to its bytes"
        );
        for r in &records {
            let pack = f.repo.backend.get(Kind::Packs, &r.id.to_hex()).unwrap();
            let trailer = vault::pack::read_trailer(&f.keys, &r.id, &pack).unwrap();
            assert_eq!(trailer.entries, r.entries, "index and trailer agree");
            assert_eq!((r.size, r.header_len), (trailer.size, trailer.header_len));
            indexed.push(r.id.to_hex());
        }
    }
    indexed.sort();
    assert_eq!(indexed, names(&f, Kind::Packs));

    let snapshots = names(&f, Kind::Snapshots);
    assert_eq!(snapshots.len(), 1);
    let sealed = f.repo.backend.get(Kind::Snapshots, &snapshots[0]).unwrap();
    let plain = open_meta(&f, b"vault v1 snapshot", &sealed);
    assert_eq!(
        hex::encode(&plain),
        FIXTURE_SNAPSHOT_PLAIN,
        "snapshot record bytes"
    );
    let snapshot: Snapshot = ciborium::from_reader(&plain[..]).unwrap();
    assert_eq!(
        cbor(&snapshot),
        plain,
        "a snapshot record re-encodes to its bytes"
    );
    assert_eq!(snapshot.hostname, "fixture-host");
    assert_eq!(snapshot.tags, ["fixture"]);
    assert_eq!(snapshot.paths_display(), [FIXTURE_SOURCE]);
    assert!(snapshot.program.starts_with("vault "));
    assert!(snapshot.time().is_some());
    assert_eq!(
        (
            snapshot.summary.files,
            snapshot.summary.dirs,
            snapshot.summary.others
        ),
        (3, 3, 1)
    );
}

/// The one object of `kind` the fixture holds, read and opened by the library.
fn only(f: &Fixture, kind: Kind) -> String {
    let names = names(f, kind);
    assert_eq!(names.len(), 1, "{kind:?}");
    names.into_iter().next().unwrap()
}

/// vault's writers, given what the fixture's records hold, write the fixture's plaintext
/// byte for byte (under fresh nonces and a fresh data key): a change in how vault lays out
/// a pack or encodes a trailer, an index file or a snapshot record fails here.
#[test]
fn writers_reproduce_the_fixture_bytes() {
    let f = open_fixture();
    let mut store = f.repo.clone();
    store.backend = Arc::new(MemoryBackend::new("format-pinned"));
    assert!(store.is_legacy(), "the fixture is of the first format");

    // The pack: the same blobs, added in the same order, with the same payloads.
    let pack_name = only(&f, Kind::Packs);
    let pack = f.repo.backend.get(Kind::Packs, &pack_name).unwrap();
    let records = f.repo.load_index(&f.keys, &only(&f, Kind::Index)).unwrap();
    let record = &records[0];
    let header = &pack[12..12 + record.header_len as usize];
    let data_key = vault::pack::open_header(&f.identity, header, &record.id).unwrap();
    let recipients = [f.identity.to_public()];
    let mut writer = PackWriter::new(&recipients, 16 << 20, 1 << 20).unwrap();
    for e in &record.entries {
        let sealed = &pack[e.offset as usize..(e.offset + e.length) as usize];
        let payload = vault::crypto::open_blob(
            &data_key,
            e.position,
            &e.id,
            e.kind as u8,
            e.compressed,
            sealed,
        )
        .unwrap();
        writer.add(e.id, e.kind, e.raw_len, e.compressed, &payload);
    }
    let written = store.save_pack(&f.keys, writer).unwrap();
    let bytes = store
        .backend
        .get(Kind::Packs, &written.id.to_hex())
        .unwrap();
    // The age header holds a stanza of random length, so blobs start elsewhere; all else
    // is laid out as in the fixture.
    let shift = |at: u64| at - u64::from(record.header_len) + u64::from(written.header_len);
    assert_eq!(&bytes[..8], b"VLTPACK1");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        written.header_len
    );
    assert_eq!(written.size, shift(record.size), "pack size");
    assert_eq!(bytes.len() as u64, written.size);
    let moved: Vec<PackEntry> = record
        .entries
        .iter()
        .map(|e| PackEntry {
            offset: shift(u64::from(e.offset)) as u32,
            ..e.clone()
        })
        .collect();
    assert_eq!(
        written.entries, moved,
        "entries: the fixture's, blobs moved along"
    );
    let tlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
    assert_eq!(tlen, FIXTURE_PACK_LAYOUT.2, "trailer length");
    let trailer = &bytes[bytes.len() - 4 - tlen..bytes.len() - 4];
    let plain = open_meta(&f, b"vault v1 pack trailer", trailer);
    assert_eq!(
        plain,
        cbor(&moved),
        "the trailer is the CBOR of the entries"
    );

    // The index file and the snapshot record.
    let name = store.save_index(&f.keys, &records).unwrap();
    let sealed = store.backend.get(Kind::Index, &name).unwrap();
    assert_eq!(
        hex::encode(open_meta(&f, b"vault v1 index", &sealed)),
        [FIXTURE_INDEX_HEAD, FIXTURE_TRAILER_PLAIN].concat()
    );
    let sealed = f
        .repo
        .backend
        .get(Kind::Snapshots, &only(&f, Kind::Snapshots))
        .unwrap();
    let snapshot =
        vault::repo::decode_snapshot(&open_meta(&f, b"vault v1 snapshot", &sealed)).unwrap();
    let id = store.save_snapshot(&f.keys, &snapshot).unwrap();
    let sealed = store.backend.get(Kind::Snapshots, &id.to_hex()).unwrap();
    assert_eq!(
        hex::encode(open_meta(&f, b"vault v1 snapshot", &sealed)),
        FIXTURE_SNAPSHOT_PLAIN
    );
}

fn fixture_vault() -> Vault {
    let mut v = Vault::new();
    v.store = fixture();
    v.passphrase = FIXTURE_PASSPHRASE.into();
    v
}

#[test]
fn fixture_store_checks_clean() {
    let v = fixture_vault();
    let out = v.run(["check", "--read-data"]).ok();
    assert!(
        out.stdout.contains("checked 1 snapshots") && out.stdout.contains("no errors"),
        "{}",
        out.describe()
    );
}

/// The CLI restores the fixture with the identity file alone (no passphrase).
#[test]
fn fixture_store_restores_its_content() {
    let v = fixture_vault();
    let to = v.path("restored");
    let mut cmd = v.command([
        "--identity".as_ref(),
        fixture_identity_file().as_os_str(),
        "restore".as_ref(),
        "latest:fixture-host".as_ref(),
        "--to".as_ref(),
        to.as_os_str(),
        "--verify".as_ref(),
    ]);
    cmd.env_remove("VAULT_PASSPHRASE");
    common::run_command(cmd).restore_ok();
    let root = common::restored(&to, Path::new(FIXTURE_SOURCE));
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    assert_eq!(
        read("travis.yml"),
        b"encryption:\n  key: fixture-not-a-secret\n"
    );
    assert_eq!(read("ssl/note.txt"), b"hello from store v1\n");
    assert_eq!(read("empty.conf"), b"");
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        Path::new("ssl/note.txt")
    );
    assert!(root.join("empty").is_dir());
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(meta("travis.yml").mode() & 0o7777, 0o640);
    assert_eq!(meta("ssl/note.txt").mode() & 0o7777, 0o600);
    assert_eq!(meta("ssl").mode() & 0o7777, 0o750);
    // 2026-01-02 03:04:05.123456789 UTC.
    assert_eq!(
        (meta("travis.yml").mtime(), meta("travis.yml").mtime_nsec()),
        (1_767_323_045, 123_456_789)
    );
    assert_eq!(meta("link").mtime(), 1_767_323_045);
}
