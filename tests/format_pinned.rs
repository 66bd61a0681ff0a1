//! The store format, versions 3 (written), 2 and 1 (still read), pinned byte for byte (see
//! `src/FORMAT.md`).
//!
//! Two kinds of pin:
//! - encodings of values built here (a tree, a pack entry, an index record, a snapshot
//!   record; in version 2 the signed config, the host registry, the binding of an index
//!   file and the envelope of a signed snapshot record, under fixed keys) compared with
//!   fixed bytes, and a tree id under a fixed id key: a dependency upgrade that changed
//!   the CBOR or JSON encoding would change tree ids (breaking deduplication) or
//!   signatures (breaking every signed store), and fails here first;
//! - the checked-in stores `tests/fixtures/store-v2` and `tests/fixtures/store-v1` (made
//!   by `tests/fixtures/make-store-v2.sh` and `make-store-v1.sh` with known passphrases,
//!   reader identities and, for version 2, the host's writer key file): their objects are
//!   taken apart by hand (magic, lengths, labels, bindings, nonces, signatures), decrypted
//!   with the known keys, and the plaintext of the pack trailer, index file and snapshot
//!   record compared with fixed bytes; vault's own writers, given what those records
//!   hold, must write exactly those bytes again (and the signed config and registry byte
//!   for byte); then the CLI must open each, check it clean and restore its known
//!   content. These are the stores that prove a later vault still opens what this one
//!   and the first release wrote;
//! - the checked-in store `tests/fixtures/store-v3` (made by `make-store-v3.sh`), whose
//!   long sparse file keeps its chunk references in a chunk list: the folder tree that
//!   names the list and the list's bytes are pinned, and the writer's cut of the same
//!   extents must give that list again; it too must check clean and restore, hole
//!   included.

mod common;

use common::Vault;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vault::backend::{self, memory::MemoryBackend, Backend, Kind};
use vault::crypto::{SecretKey, WriterKeys};
use vault::hosts::{HostEntry, Registry};
use vault::keys::WriterKeyFile;
use vault::pack::{BlobKind, PackEntry, PackRecord, PackWriter};
use vault::repo::{ChunkerParams, Repo, Signer, Snapshot, StoreConfig, Summary, Trust};
use vault::sign::{self, SigningSecret};
use vault::tree::{
    ChunkList, ChunkRef, Extent, LinkKey, Node, NodeKind, Tree, Xattr, INLINE_CHUNKS,
};
use vault::Id;

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
                lists: Vec::new(),
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
                lists: Vec::new(),
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
                lists: Vec::new(),
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
                lists: Vec::new(),
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

// --- Version 2: bindings, signatures and envelopes of values built here -----------------

/// The store id and reader identity of the version-2 values built here.
const SAMPLE_STORE_ID: &str = "00112233445566778899aabbccddeeff";
const SAMPLE_IDENTITY: &str =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
/// The seed of the sample host key.
const SAMPLE_HOST_SEED: [u8; 32] = [0x22; 32];

fn sample_identity() -> age::x25519::Identity {
    SAMPLE_IDENTITY.parse().unwrap()
}

fn sample_admin() -> SigningSecret {
    SigningSecret::admin_from_identity(&sample_identity())
}

fn sample_config() -> StoreConfig {
    StoreConfig {
        format: "vault store".into(),
        version: 1,
        store_id: SAMPLE_STORE_ID.into(),
        created: "2026-01-02T03:04:05+00:00".into(),
        // Named, not the default: the pinned bytes must not move when a new store's
        // default chunk sizes do.
        chunker: ChunkerParams {
            min_size: 128 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        },
        pack_size: 16 << 20,
        compression_level: 2,
        recipients: vec![sample_identity().to_public().to_string()],
        object_lock: None,
        admin_key: None,
        signature: None,
    }
}

/// A version-2 store in memory: the sample config signed by the sample admin, a registry
/// authorising the sample host key as `platform-1`, and that key set as the signer.
fn sample_v2_store() -> Repo {
    let backend: vault::backend::BackendRef = Arc::new(MemoryBackend::new("format-pinned-v2"));
    let host = SigningSecret::from_seed(&SAMPLE_HOST_SEED);
    sample_registry()
        .save(backend.as_ref(), &sample_admin())
        .unwrap();
    let mut repo = Repo {
        backend,
        config: sample_config(),
        trust: Trust::default(),
    };
    repo.config.version = vault::repo::SIGNED_VERSION;
    repo.sign_config(&sample_admin()).unwrap();
    repo.set_signer("platform-1", host);
    repo
}

fn sample_registry() -> Registry {
    let host = SigningSecret::from_seed(&SAMPLE_HOST_SEED);
    Registry {
        store_id: SAMPLE_STORE_ID.into(),
        hosts: vec![
            HostEntry {
                name: "platform-1".into(),
                key: sign::public_hex(&host.public()),
                added: "2026-01-02T03:04:05+00:00".into(),
                revoked: None,
            },
            HostEntry {
                name: "worker-1".into(),
                key: sign::public_hex(&SigningSecret::from_seed(&[0x33; 32]).public()),
                added: "2026-01-02T03:04:06+00:00".into(),
                revoked: Some("2026-01-03T00:00:00+00:00".into()),
            },
        ],
        signature: None,
    }
}

/// `binding("index", SAMPLE_STORE_ID, "index", NAME)` up to NAME's length field:
/// `"vault-bind-v2"`, then each field as u32 big-endian length and bytes.
const SAMPLE_INDEX_BINDING_HEAD: &str = concat!(
    "7661756c742d62696e642d7632",
    "00000005",
    "696e646578",
    "00000020",
    "3030313132323333343435353636373738383939616162626363646465656666",
    "00000005",
    "696e646578",
    "00000040",
);

/// What the sample admin's config signature covers after the binding: the compact JSON
/// of every field but the signature, in declaration order.
const SAMPLE_CONFIG_SIGNED_BODY: &str = "{\"format\":\"vault store\",\"version\":2,\"store_id\":\"00112233445566778899aabbccddeeff\",\"created\":\"2026-01-02T03:04:05+00:00\",\"chunker\":{\"min_size\":131072,\"avg_size\":262144,\"max_size\":1048576},\"pack_size\":16777216,\"compression_level\":2,\"recipients\":[\"age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\"],\"admin_key\":\"3ec49e80f879805708e516a9c73836b33180bb085d90be79af31981f2396abb3\"}";
/// The config the sample admin signs, as stored: pretty JSON, the signature last.
const SAMPLE_SIGNED_CONFIG: &str = "{\n  \"format\": \"vault store\",\n  \"version\": 2,\n  \"store_id\": \"00112233445566778899aabbccddeeff\",\n  \"created\": \"2026-01-02T03:04:05+00:00\",\n  \"chunker\": {\n    \"min_size\": 131072,\n    \"avg_size\": 262144,\n    \"max_size\": 1048576\n  },\n  \"pack_size\": 16777216,\n  \"compression_level\": 2,\n  \"recipients\": [\n    \"age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\"\n  ],\n  \"admin_key\": \"3ec49e80f879805708e516a9c73836b33180bb085d90be79af31981f2396abb3\",\n  \"signature\": \"15e6544e873e44a094795abc459e081aa2e103b9f069a8152b60d470d559b57dffdacbcca1873eb30bb93c8accd6a57ac18fdab58bf437204252e3d1ae621102\"\n}";

#[test]
fn signed_config_bytes_are_pinned() {
    let repo = sample_v2_store();
    let bytes = repo.backend.get(Kind::Config, "config").unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        SAMPLE_SIGNED_CONFIG,
        "signed config bytes"
    );
    // The signature covers binding("config", store id, "config", "config") and the compact
    // JSON of every other field, in declaration order.
    let config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let sig = sign::parse_signature(config["signature"].as_str().unwrap()).unwrap();
    let body = serde_json::to_vec(&StoreConfig {
        version: 2,
        admin_key: Some(sign::public_hex(&sample_admin().public())),
        ..sample_config()
    })
    .unwrap();
    assert_eq!(
        String::from_utf8(body.clone()).unwrap(),
        SAMPLE_CONFIG_SIGNED_BODY
    );
    let message = sign::message("config", SAMPLE_STORE_ID, "config", "config", &body);
    assert!(sign::verify(&sample_admin().public(), &message, &sig));
    assert_eq!(
        config["admin_key"],
        sign::public_hex(&sample_admin().public())
    );

    let mut opened = Repo::open(repo.backend.clone()).unwrap();
    opened.authenticate(&sample_admin().public()).unwrap();
    // One field changed: the signature no longer verifies.
    let tampered = String::from_utf8(bytes)
        .unwrap()
        .replace("\"compression_level\": 2", "\"compression_level\": 3");
    repo.backend
        .put(Kind::Config, "config", tampered.as_bytes())
        .unwrap();
    let mut opened = Repo::open(repo.backend.clone()).unwrap();
    assert!(opened.authenticate(&sample_admin().public()).is_err());
}

/// The registry the sample admin signs, as stored.
const SAMPLE_REGISTRY: &str = "{\n  \"store_id\": \"00112233445566778899aabbccddeeff\",\n  \"hosts\": [\n    {\n      \"name\": \"platform-1\",\n      \"key\": \"a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0\",\n      \"added\": \"2026-01-02T03:04:05+00:00\"\n    },\n    {\n      \"name\": \"worker-1\",\n      \"key\": \"17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce\",\n      \"added\": \"2026-01-02T03:04:06+00:00\",\n      \"revoked\": \"2026-01-03T00:00:00+00:00\"\n    }\n  ],\n  \"signature\": \"1f060732dd28de9cb12e59f1ce22665f744ba3829191842bfb40b1306e3488cd098ff143e1c9cfe8c7a05f4909a0623d53502babdc7126dfe4ecbce4297c360e\"\n}";

#[test]
fn hosts_registry_bytes_are_pinned() {
    let backend = MemoryBackend::new("format-pinned-hosts");
    let mut registry = sample_registry();
    registry.save(&backend, &sample_admin()).unwrap();
    let bytes = backend.get(Kind::Keys, "hosts").unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        SAMPLE_REGISTRY,
        "host registry bytes"
    );
    let stored: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let sig = sign::parse_signature(stored["signature"].as_str().unwrap()).unwrap();
    let body = serde_json::to_vec(&sample_registry()).unwrap();
    assert!(body.starts_with(b"{\"store_id\":\"00112233445566778899aabbccddeeff\",\"hosts\":[{\"name\":\"platform-1\",\"key\":\""));
    let message = sign::message("host registry", SAMPLE_STORE_ID, "keys", "hosts", &body);
    assert!(sign::verify(&sample_admin().public(), &message, &sig));
    assert_eq!(
        Registry::load(&backend, SAMPLE_STORE_ID, &sample_admin().public()).unwrap(),
        registry
    );
}

/// The associated data of a version-2 index file: label, then the binding to store and name.
fn index_aad(binding_head: &str, name: &str) -> Vec<u8> {
    let mut aad = b"vault v2 index".to_vec();
    aad.extend(hex::decode(binding_head).unwrap());
    aad.extend(name.as_bytes());
    aad
}

#[test]
fn index_file_is_bound_to_store_and_name() {
    let repo = sample_v2_store();
    let keys = WriterKeys::from_id_key(SecretKey([0x11; 32]));
    let record = PackRecord {
        id: Id([0xdd; 32]),
        size: 1 << 20,
        header_len: 200,
        entries: vec![sample_entry()],
    };
    let name = repo.save_index(&keys, &[record]).unwrap();
    let sealed = repo.backend.get(Kind::Index, &name).unwrap();
    let aad = index_aad(SAMPLE_INDEX_BINDING_HEAD, &name);
    assert_eq!(
        aad[14..],
        sign::binding("index", SAMPLE_STORE_ID, "index", &name)[..]
    );
    let plain = keys.open_meta(&aad, &sealed, "index").unwrap();
    assert_eq!(
        hex::encode(&plain),
        SAMPLE_RECORD_CBOR,
        "index file plaintext"
    );
    assert_eq!(sealed.len(), 24 + plain.len() + 16);
    // Neither the first format's label nor another name or store opens it.
    assert!(keys.open_meta(b"vault v1 index", &sealed, "x").is_err());
    let other = Id([0x01; 32]).to_hex();
    assert!(keys
        .open_meta(&index_aad(SAMPLE_INDEX_BINDING_HEAD, &other), &sealed, "x")
        .is_err());
    let foreign = SAMPLE_INDEX_BINDING_HEAD.replacen("3030", "3031", 1);
    assert!(keys
        .open_meta(&index_aad(&foreign, &name), &sealed, "x")
        .is_err());
    repo.backend.put(Kind::Index, &other, &sealed).unwrap();
    assert!(
        repo.load_index(&keys, &other).is_err(),
        "a renamed index file"
    );
}

/// The envelope of a version-2 snapshot record, encoded by hand: a CBOR map of six
/// entries, in this order.
fn signed_record(
    store_id: &str,
    name: &str,
    body: &[u8],
    signer: &str,
    key: &[u8],
    sig: &[u8],
) -> Vec<u8> {
    fn head(major: u8, len: usize) -> Vec<u8> {
        match len {
            0..=23 => vec![major << 5 | len as u8],
            24..=255 => vec![major << 5 | 24, len as u8],
            _ => {
                let mut h = vec![major << 5 | 25];
                h.extend((len as u16).to_be_bytes());
                h
            }
        }
    }
    let text = |s: &str| [head(3, s.len()), s.as_bytes().to_vec()].concat();
    let bytes = |b: &[u8]| [head(2, b.len()), b.to_vec()].concat();
    [
        vec![0xa6],
        text("store_id"),
        text(store_id),
        text("name"),
        text(name),
        text("body"),
        bytes(body),
        text("signer"),
        text(signer),
        text("key"),
        bytes(key),
        text("sig"),
        bytes(sig),
    ]
    .concat()
}

/// The fields of a version-2 snapshot record's envelope, as a reader parses them.
#[derive(serde::Deserialize)]
struct Envelope {
    store_id: String,
    name: String,
    body: serde_bytes::ByteBuf,
    signer: String,
    key: serde_bytes::ByteBuf,
    sig: serde_bytes::ByteBuf,
}

#[test]
fn snapshot_record_envelope_is_pinned() {
    let repo = sample_v2_store();
    let keys = WriterKeys::from_id_key(SecretKey([0x11; 32]));
    let snapshot =
        vault::repo::decode_snapshot(&hex::decode(SAMPLE_SNAPSHOT_CBOR).unwrap()).unwrap();
    let id = repo.save_snapshot(&keys, &snapshot).unwrap();
    let name = id.to_hex();
    let sealed = repo.backend.get(Kind::Snapshots, &name).unwrap();
    assert!(keys.open_meta(b"vault v1 snapshot", &sealed, "x").is_err());
    let plain = keys
        .open_meta(b"vault v2 snapshot", &sealed, "snapshot")
        .unwrap();
    assert_eq!(sealed.len(), 24 + plain.len() + 16);
    let body = hex::decode(SAMPLE_SNAPSHOT_CBOR).unwrap();
    let host = SigningSecret::from_seed(&SAMPLE_HOST_SEED);
    // The signature: Ed25519 (deterministic) over the binding of (store id, snapshots,
    // name), then the body.
    let mut message = hex::decode(SAMPLE_SNAPSHOT_BINDING_HEAD).unwrap();
    message.extend(name.as_bytes());
    assert_eq!(
        message,
        sign::binding("snapshot", SAMPLE_STORE_ID, "snapshots", &name)
    );
    message.extend(&body);
    let sig = host.sign(&message);
    assert_eq!(
        plain,
        signed_record(SAMPLE_STORE_ID, &name, &body, "host", &host.public(), &sig),
        "snapshot record envelope"
    );
    let (_, verdict) = repo.load_snapshot_checked(&keys, &id).unwrap();
    assert_eq!(
        verdict.signer,
        Signer::Host {
            name: "platform-1".into(),
            revoked: false
        }
    );
}

/// `binding("snapshot", SAMPLE_STORE_ID, "snapshots", NAME)` up to NAME's length field.
const SAMPLE_SNAPSHOT_BINDING_HEAD: &str = concat!(
    "7661756c742d62696e642d7632",
    "00000008",
    "736e617073686f74",
    "00000020",
    "3030313132323333343435353636373738383939616162626363646465656666",
    "00000009",
    "736e617073686f7473",
    "00000040",
);

// --- The checked-in stores ---------------------------------------------------------------

/// A checked-in store and the keys beside it.
struct Spec {
    /// Folder under `tests/fixtures`.
    dir: &'static str,
    passphrase: &'static str,
    /// Where its script took the snapshot from.
    source: &'static str,
    /// The content of `ssl/note.txt` in it.
    note: &'static [u8],
}

const V1: Spec = Spec {
    dir: "store-v1",
    passphrase: "store-v1 fixture passphrase",
    source: "/tmp/vault-fixture-v1/etc/travis",
    note: b"hello from store v1\n",
};

const V2: Spec = Spec {
    dir: "store-v2",
    passphrase: "store-v2 fixture passphrase",
    source: "/tmp/vault-fixture-v2/etc/travis",
    note: b"hello from store v2\n",
};

impl Spec {
    fn path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.dir)
    }

    fn identity_file(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{}.identity.txt", self.dir))
    }
}

// The version-1 fixture's pins.

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
    spec: &'static Spec,
    repo: Repo,
    keys: WriterKeys,
    identity: age::x25519::Identity,
}

/// Opens a checked-in store with its reader identity; a version-2 one is authenticated
/// against the admin key derived from that identity.
fn open_fixture(spec: &'static Spec) -> Fixture {
    let backend = backend::open(spec.path().to_str().unwrap()).unwrap();
    let mut repo = Repo::open(backend).expect("the fixture store opens");
    let identity = vault::keys::load_identity_file(&spec.identity_file()).unwrap();
    let id_key = vault::keys::unlock_idkey_object(repo.backend.as_ref(), &identity).unwrap();
    repo.authenticate(&SigningSecret::admin_from_identity(&identity).public())
        .expect("the fixture's config and registry verify");
    Fixture {
        spec,
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

/// The one object of `kind` the fixture holds.
fn only(f: &Fixture, kind: Kind) -> String {
    let names = names(f, kind);
    assert_eq!(names.len(), 1, "{kind:?}");
    names.into_iter().next().unwrap()
}

/// Opens sealed metadata by hand: 24-byte nonce, XChaCha20-Poly1305 under the metadata
/// key with `aad` as associated data. Checks that the associated data is bound, too.
fn open_meta(f: &Fixture, aad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let plain = f.keys.open_meta(aad, sealed, "fixture").unwrap();
    assert_eq!(
        sealed.len(),
        24 + plain.len() + 16,
        "nonce, ciphertext, tag"
    );
    assert!(f.keys.open_meta(b"vault v1 other", sealed, "x").is_err());
    plain
}

/// The config fields both formats share, and `keys/reader` and `keys/idkey`.
fn check_config_and_keys(f: &Fixture, version: u32) -> serde_json::Value {
    let config: serde_json::Value =
        serde_json::from_slice(&f.repo.backend.get(Kind::Config, "config").unwrap()).unwrap();
    assert_eq!(config["format"], "vault store");
    assert_eq!(config["version"], version);
    assert_eq!(config["store_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        config["recipients"][0].as_str().unwrap(),
        f.identity.to_public().to_string()
    );
    // The chunker sizes a store was made with stay its own: the version-3 fixture was made
    // after the defaults became smaller.
    let chunker = if version < 3 {
        serde_json::json!({"min_size": 131072, "avg_size": 262144, "max_size": 1048576})
    } else {
        serde_json::json!({"min_size": 32768, "avg_size": 65536, "max_size": 262144})
    };
    assert_eq!(config["chunker"], chunker);
    assert_eq!(config["pack_size"], 16 << 20);
    assert_eq!(config["compression_level"], 2);
    assert!(config.get("object_lock").is_none());

    // keys/reader: armored age to the passphrase, holding the identity file's identity.
    let reader = f.repo.backend.get(Kind::Keys, "reader").unwrap();
    assert!(reader.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
    let unwrapped = vault::keys::unlock_reader_object(
        f.repo.backend.as_ref(),
        &secrecy::SecretString::from(f.spec.passphrase),
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
    config
}

/// The payload of entry `e` of `pack` (still compressed where `e.compressed`), opened
/// with the pack's data key.
fn open_entry(data_key: &SecretKey, e: &PackEntry, pack: &[u8]) -> Vec<u8> {
    let sealed = &pack[e.offset as usize..(e.offset + e.length) as usize];
    vault::crypto::open_blob(
        data_key,
        e.position,
        &e.id,
        e.kind as u8,
        e.compressed,
        sealed,
    )
    .expect("ChaCha20-Poly1305, nonce = position, aad = id, kind, compressed")
}

/// A blob's plaintext from its opened payload.
fn decompressed(e: &PackEntry, payload: Vec<u8>) -> Vec<u8> {
    if e.compressed {
        zstd::bulk::decompress(&payload, e.raw_len as usize).unwrap()
    } else {
        payload
    }
}

/// Splits the fixture's one pack by the layout of FORMAT.md and checks every part: its
/// (size, header length, trailer length) and trailer plaintext must be the pinned ones.
fn check_pack_layout(f: &Fixture, layout: (usize, usize, usize), trailer_plain: &str) {
    let name = only(f, Kind::Packs);
    let bytes = f.repo.backend.get(Kind::Packs, &name).unwrap();
    assert_eq!(
        Id::hash_public(&bytes).to_hex(),
        name,
        "name = BLAKE3(pack)"
    );
    assert!(f
        .spec
        .path()
        .join("packs")
        .join(&name[..2])
        .join(&name)
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
    let plain = open_meta(f, b"vault v1 pack trailer", trailer);
    assert_eq!((bytes.len(), header_len, tlen), layout);
    assert_eq!(hex::encode(&plain), trailer_plain, "trailer bytes");
    let entries: Vec<PackEntry> = ciborium::from_reader(&plain[..]).unwrap();
    assert_eq!(cbor(&entries), plain, "the trailer re-encodes to its bytes");
    // Blobs follow the header back to back, each at its position's nonce.
    let mut at = 12 + header_len;
    let mut trees = 0;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.position as usize, i);
        assert_eq!(e.offset as usize, at);
        let payload = open_entry(&data_key, e, &bytes);
        assert_eq!(payload.len() + 16, e.length as usize);
        let plaintext = decompressed(e, payload);
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
    // The root, /tmp, vault-fixture-vN, etc, travis, ssl, empty.
    assert_eq!(trees, 7);
}

/// The fixture's one index file opens with `aad`, its plaintext is `plain_hex`, and it
/// agrees with the pack's trailer.
fn check_index(f: &Fixture, name: &str, aad: &[u8], plain_hex: &str) {
    assert_eq!(name.len(), 64);
    let sealed = f.repo.backend.get(Kind::Index, name).unwrap();
    let plain = open_meta(f, aad, &sealed);
    assert_eq!(hex::encode(&plain), plain_hex, "index file bytes");
    let records: Vec<PackRecord> = ciborium::from_reader(&plain[..]).unwrap();
    assert_eq!(
        cbor(&records),
        plain,
        "an index file re-encodes to its bytes"
    );
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.id.to_hex(), only(f, Kind::Packs));
    let pack = f.repo.backend.get(Kind::Packs, &r.id.to_hex()).unwrap();
    let trailer = vault::pack::read_trailer(&f.keys, &r.id, &pack).unwrap();
    assert_eq!(trailer.entries, r.entries, "index and trailer agree");
    assert_eq!((r.size, r.header_len), (trailer.size, trailer.header_len));
}

/// What the fixture's snapshot holds (both fixtures took the same tree).
fn check_snapshot(f: &Fixture, snapshot: &Snapshot, plain: &[u8]) {
    assert_eq!(
        cbor(snapshot),
        plain,
        "a snapshot record re-encodes to its bytes"
    );
    assert_eq!(snapshot.hostname, "fixture-host");
    assert_eq!(snapshot.tags, ["fixture"]);
    assert_eq!(snapshot.paths_display(), [f.spec.source]);
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

/// vault's pack writer, given the blobs of the fixture's one pack in its order, lays
/// them out as the fixture does (under a fresh data key and nonce); the index records
/// of the fixture, for comparison.
fn reproduce_pack(f: &Fixture, store: &Repo, trailer_len: usize) -> Vec<PackRecord> {
    let pack = f
        .repo
        .backend
        .get(Kind::Packs, &only(f, Kind::Packs))
        .unwrap();
    let records = f.repo.load_index(&f.keys, &only(f, Kind::Index)).unwrap();
    let record = &records[0];
    let header = &pack[12..12 + record.header_len as usize];
    let data_key = vault::pack::open_header(&f.identity, header, &record.id).unwrap();
    let recipients = [f.identity.to_public()];
    let mut writer = PackWriter::new(&recipients, 16 << 20, 1 << 20).unwrap();
    for e in &record.entries {
        let payload = open_entry(&data_key, e, &pack);
        writer
            .add(e.id, e.kind, e.raw_len, e.compressed, &payload)
            .unwrap();
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
    assert_eq!(tlen, trailer_len, "trailer length");
    let trailer = &bytes[bytes.len() - 4 - tlen..bytes.len() - 4];
    let plain = open_meta(f, b"vault v1 pack trailer", trailer);
    assert_eq!(
        plain,
        cbor(&moved),
        "the trailer is the CBOR of the entries"
    );
    records
}

fn fixture_vault(spec: &Spec) -> Vault {
    let mut v = Vault::new();
    v.store = spec.path();
    v.passphrase = spec.passphrase.into();
    v
}

fn checks_clean(spec: &Spec) {
    let v = fixture_vault(spec);
    let out = v.run(["check", "--read-data"]).ok();
    assert!(
        out.stdout.contains("checked 1 snapshots") && out.stdout.contains("no errors"),
        "{}",
        out.describe()
    );
}

/// The CLI restores a fixture with the identity file alone (no passphrase), byte for
/// byte, with modes and times.
fn restores_its_content(spec: &Spec) {
    restore_and_compare(&fixture_vault(spec), spec, "restored");
}

/// Restores `v`'s store (a fixture's, or a copy) into `name` as [`restores_its_content`]
/// describes, and returns what the command said.
fn restore_and_compare(v: &Vault, spec: &Spec, name: &str) -> common::Out {
    let to = v.path(name);
    let mut cmd = v.command([
        "--identity".as_ref(),
        spec.identity_file().as_os_str(),
        "restore".as_ref(),
        "latest:fixture-host".as_ref(),
        "--to".as_ref(),
        to.as_os_str(),
        "--verify".as_ref(),
    ]);
    cmd.env_remove("VAULT_PASSPHRASE");
    let out = common::run_command(cmd).restore_ok();
    let root = common::restored(&to, Path::new(spec.source));
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    assert_eq!(
        read("travis.yml"),
        b"encryption:\n  key: fixture-not-a-secret\n"
    );
    assert_eq!(read("ssl/note.txt"), spec.note);
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
    out
}

// --- Version 1: the store of the first release -------------------------------------------

#[test]
fn fixture_v1_config_and_keys() {
    let f = open_fixture(&V1);
    let config = check_config_and_keys(&f, 1);
    assert!(config.get("admin_key").is_none() && config.get("signature").is_none());
    assert!(!f.repo.backend.exists(Kind::Keys, "hosts").unwrap());
}

#[test]
fn fixture_v1_pack_layout() {
    check_pack_layout(
        &open_fixture(&V1),
        FIXTURE_PACK_LAYOUT,
        FIXTURE_TRAILER_PLAIN,
    );
}

#[test]
fn fixture_v1_index_and_snapshot_records() {
    let f = open_fixture(&V1);
    check_index(
        &f,
        &only(&f, Kind::Index),
        b"vault v1 index",
        &[FIXTURE_INDEX_HEAD, FIXTURE_TRAILER_PLAIN].concat(),
    );
    let sealed = f
        .repo
        .backend
        .get(Kind::Snapshots, &only(&f, Kind::Snapshots))
        .unwrap();
    let plain = open_meta(&f, b"vault v1 snapshot", &sealed);
    assert_eq!(
        hex::encode(&plain),
        FIXTURE_SNAPSHOT_PLAIN,
        "snapshot record bytes"
    );
    let snapshot: Snapshot = ciborium::from_reader(&plain[..]).unwrap();
    check_snapshot(&f, &snapshot, &plain);
    let id = Id::from_hex(&only(&f, Kind::Snapshots)).unwrap();
    let (_, verdict) = f.repo.load_snapshot_checked(&f.keys, &id).unwrap();
    assert_eq!(verdict.signer, Signer::Legacy);
}

/// vault's writers, given what the version-1 fixture's records hold, write its plaintext
/// byte for byte (under fresh nonces and a fresh data key), in the first format: a
/// version-1 store keeps getting version-1 records until it is upgraded.
#[test]
fn writers_reproduce_the_fixture_v1_bytes() {
    let f = open_fixture(&V1);
    let mut store = f.repo.clone();
    store.backend = Arc::new(MemoryBackend::new("format-pinned"));
    assert!(store.is_legacy(), "the fixture is of the first format");
    let records = reproduce_pack(&f, &store, FIXTURE_PACK_LAYOUT.2);

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

#[test]
fn fixture_store_checks_clean() {
    checks_clean(&V1);
}

#[test]
fn fixture_store_restores_its_content() {
    restores_its_content(&V1);
}

// --- Version 2: the store this vault writes ----------------------------------------------

/// The version-2 fixture's one pack: its size, header length and trailer length (bytes).
const FIXTURE_V2_PACK_LAYOUT: (usize, usize, usize) = (2574, 305, 932);
/// The plaintext of that pack's trailer: CBOR of its nine entries (seven trees, two
/// chunks), in the order the pack holds them.
const FIXTURE_V2_TRAILER_PLAIN: &str = concat!(
    "89a7626964582075ea1d4ce7867fb48f23971cb31c41c6a27497f9aac7a000605844d937651418646b696e64",
    "645472656568706f736974696f6e00666f666673657419013d666c656e6774681818677261775f6c656e086a",
    "636f6d70726573736564f4a762696458205bdbfef3670fcf33eb7c9fef430890e280eb3c11cc5961b0eae53b",
    "2015491386646b696e64644461746168706f736974696f6e01666f6666736574190155666c656e6774681824",
    "677261775f6c656e146a636f6d70726573736564f4a762696458202e9ec3041e8011968ffe04db952aca23dc",
    "1f0e5c899287fec71b71d847062aaf646b696e64645472656568706f736974696f6e02666f66667365741901",
    "79666c656e67746818be677261775f6c656e18ae6a636f6d70726573736564f4a7626964582054082ab9ace8",
    "a1fbc386e6c99898cdf41389bd4b4d27a489c046dd903bdc2815646b696e64644461746168706f736974696f",
    "6e03666f6666736574190237666c656e6774681838677261775f6c656e18286a636f6d70726573736564f4a7",
    "6269645820c58a4776ca7215258e5e7c8d8b59912470aa1a30b807f8e61f4acabc9fcc4aec646b696e646454",
    "72656568706f736974696f6e04666f666673657419026f666c656e677468190177677261775f6c656e190291",
    "6a636f6d70726573736564f5a76269645820a657210b94772cec774ce382ecb87abf96d4f711c8210d760fe0",
    "9f761c212865646b696e64645472656568706f736974696f6e05666f66667365741903e6666c656e67746818",
    "9c677261775f6c656e188c6a636f6d70726573736564f4a76269645820e9f95c8b003b10962b046ba0af9fa0",
    "4a71ae3cfd7404c2c08c0c70c2c5e0ccee646b696e64645472656568706f736974696f6e06666f6666736574",
    "190482666c656e677468189d677261775f6c656e188d6a636f6d70726573736564f4a76269645820f6eab9cf",
    "f90266290d97e81562a5a178e15a7657945df408bb69b1ba7a0ca893646b696e64645472656568706f736974",
    "696f6e07666f666673657419051f666c656e67746818aa677261775f6c656e189a6a636f6d70726573736564",
    "f4a76269645820b3f53f0039445c3b221e8127f75f25262ea5080f46e26fde333aeb12626c733e646b696e64",
    "645472656568706f736974696f6e08666f66667365741905c9666c656e677468189d677261775f6c656e188d",
    "6a636f6d70726573736564f4",
);
/// The plaintext of the version-2 fixture's one index file up to its entries
/// ([`FIXTURE_V2_TRAILER_PLAIN`] follows these bytes).
const FIXTURE_V2_INDEX_HEAD: &str = "81a4626964582018bd0ab8a4d748f203ff12516c4a14923d9aac08d67c07191c08b70a5b671ff06473697a65190a0e6a6865616465725f6c656e19013167656e7472696573";
/// The CBOR snapshot the version-2 fixture's one snapshot record signs (its `body`).
const FIXTURE_V2_SNAPSHOT_BODY: &str = concat!(
    "a86474696d657823323032362d31322d30325430353a30383a30332e3638393838363535322b30303a303068",
    "686f73746e616d656c666978747572652d686f737468757365726e616d6564726f6f74657061746873815820",
    "2f746d702f7661756c742d666978747572652d76322f6574632f747261766973647461677381676669787475",
    "726564747265655820b3f53f0039445c3b221e8127f75f25262ea5080f46e26fde333aeb12626c733e677375",
    "6d6d617279ab6566696c657303646469727303666f746865727301656279746573183c6a62797465735f7265",
    "6164183c696e65775f6279746573183c6e6e65775f6d6574615f62797465731905876c73746f7265645f6279",
    "746573190a0e657061636b7301666572726f7273006b6475726174696f6e5f6d7318336770726f6772616d6b",
    "7661756c7420302e312e30",
);

/// The version-2 fixture's writer key file: host `fixture-host`'s keys.
fn fixture_v2_writer() -> WriterKeyFile {
    WriterKeyFile::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v2.writer.json"),
    )
    .unwrap()
}

fn fixture_v2_host_key() -> SigningSecret {
    let file = fixture_v2_writer();
    let (_, host, key) = file
        .host_identity(Path::new("store-v2.writer.json"))
        .unwrap()
        .unwrap();
    assert_eq!(host, "fixture-host");
    key
}

fn v2_index_aad(f: &Fixture, name: &str) -> Vec<u8> {
    let mut aad = b"vault v2 index".to_vec();
    aad.extend(sign::binding(
        "index",
        &f.repo.config.store_id,
        "index",
        name,
    ));
    aad
}

#[test]
fn fixture_v2_config_registry_and_keys() {
    let f = open_fixture(&V2);
    let config = check_config_and_keys(&f, 2);
    let admin = SigningSecret::admin_from_identity(&f.identity);
    let writer = fixture_v2_writer();
    assert_eq!(config["admin_key"], sign::public_hex(&admin.public()));
    assert_eq!(writer.admin_key.as_deref(), config["admin_key"].as_str());
    assert_eq!(writer.store_id, f.repo.config.store_id);
    assert_eq!(writer.id_key, f.keys.id_key().to_hex().as_str());
    assert_eq!(writer.recipients, f.repo.config.recipients);

    // The config's signature: binding("config", store id, "config", "config") and the
    // compact JSON of the other fields; vault signing that config writes it byte for byte.
    let bytes = f.repo.backend.get(Kind::Config, "config").unwrap();
    let sig = sign::parse_signature(config["signature"].as_str().unwrap()).unwrap();
    let unsigned = StoreConfig {
        signature: None,
        ..f.repo.config.clone()
    };
    let body = serde_json::to_vec(&unsigned).unwrap();
    let store_id = &f.repo.config.store_id;
    let message = sign::message("config", store_id, "config", "config", &body);
    assert!(sign::verify(&admin.public(), &message, &sig));
    let mut resigned = Repo {
        backend: Arc::new(MemoryBackend::new("format-pinned-config")),
        config: f.repo.config.clone(),
        trust: Trust::default(),
    };
    resigned.sign_config(&admin).unwrap();
    assert_eq!(
        resigned.backend.get(Kind::Config, "config").unwrap(),
        bytes,
        "the signed config, written again"
    );

    // keys/hosts: signed by the admin, authorising this fixture's host key alone.
    let bytes = f.repo.backend.get(Kind::Keys, "hosts").unwrap();
    let registry = Registry::load(f.repo.backend.as_ref(), store_id, &admin.public()).unwrap();
    assert_eq!(&registry.store_id, store_id);
    assert_eq!(registry.hosts.len(), 1);
    let entry = &registry.hosts[0];
    assert_eq!(entry.name, "fixture-host");
    assert_eq!(entry.key, sign::public_hex(&fixture_v2_host_key().public()));
    assert!(entry.revoked.is_none());
    let stored: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let sig = sign::parse_signature(stored["signature"].as_str().unwrap()).unwrap();
    let body = serde_json::to_vec(&Registry {
        signature: None,
        ..registry.clone()
    })
    .unwrap();
    let message = sign::message("host registry", store_id, "keys", "hosts", &body);
    assert!(sign::verify(&admin.public(), &message, &sig));
    let again = MemoryBackend::new("format-pinned-hosts");
    registry.clone().save(&again, &admin).unwrap();
    assert_eq!(
        again.get(Kind::Keys, "hosts").unwrap(),
        bytes,
        "the registry, written again"
    );
}

#[test]
fn fixture_v2_pack_layout() {
    check_pack_layout(
        &open_fixture(&V2),
        FIXTURE_V2_PACK_LAYOUT,
        FIXTURE_V2_TRAILER_PLAIN,
    );
}

/// The fixture's one snapshot record: its envelope, and the body and signature in it.
fn check_v2_record(f: &Fixture, store: &Repo, name: &str) -> Vec<u8> {
    let sealed = store.backend.get(Kind::Snapshots, name).unwrap();
    assert!(f
        .keys
        .open_meta(b"vault v1 snapshot", &sealed, "x")
        .is_err());
    let plain = open_meta(f, b"vault v2 snapshot", &sealed);
    let envelope: Envelope = ciborium::from_reader(&plain[..]).unwrap();
    assert_eq!(
        hex::encode(&envelope.body),
        FIXTURE_V2_SNAPSHOT_BODY,
        "snapshot body"
    );
    let host = fixture_v2_host_key();
    let store_id = &f.repo.config.store_id;
    let message = sign::message("snapshot", store_id, "snapshots", name, &envelope.body);
    let sig = host.sign(&message);
    assert_eq!(
        plain,
        signed_record(store_id, name, &envelope.body, "host", &host.public(), &sig),
        "snapshot record envelope"
    );
    assert_eq!(
        (
            &envelope.store_id[..],
            &envelope.name[..],
            &envelope.signer[..]
        ),
        (&store_id[..], name, "host")
    );
    assert_eq!((envelope.key.len(), envelope.sig.len()), (32, 64));
    envelope.body.into_vec()
}

#[test]
fn fixture_v2_index_and_snapshot_records() {
    let f = open_fixture(&V2);
    let name = only(&f, Kind::Index);
    check_index(
        &f,
        &name,
        &v2_index_aad(&f, &name),
        &[FIXTURE_V2_INDEX_HEAD, FIXTURE_V2_TRAILER_PLAIN].concat(),
    );
    let sealed = f.repo.backend.get(Kind::Index, &name).unwrap();
    assert!(f.keys.open_meta(b"vault v1 index", &sealed, "x").is_err());
    assert!(f.repo.index_is_bound(&f.keys, &name).unwrap());

    let name = only(&f, Kind::Snapshots);
    let body = check_v2_record(&f, &f.repo, &name);
    let snapshot = vault::repo::decode_snapshot(&body).unwrap();
    check_snapshot(&f, &snapshot, &body);
    let id = Id::from_hex(&name).unwrap();
    let (_, verdict) = f.repo.load_snapshot_checked(&f.keys, &id).unwrap();
    assert_eq!(
        verdict.signer,
        Signer::Host {
            name: "fixture-host".into(),
            revoked: false
        }
    );
}

/// vault's writers, given what the version-2 fixture's records hold and its host key,
/// write its plaintext byte for byte (under fresh nonces, a fresh data key and new names):
/// the pack, the bound index file and the signed snapshot record.
#[test]
fn writers_reproduce_the_fixture_v2_bytes() {
    let f = open_fixture(&V2);
    let mut store = f.repo.clone();
    store.backend = Arc::new(MemoryBackend::new("format-pinned-v2"));
    assert!(!store.is_legacy());
    store.set_signer("fixture-host", fixture_v2_host_key());
    let records = reproduce_pack(&f, &store, FIXTURE_V2_PACK_LAYOUT.2);

    let name = store.save_index(&f.keys, &records).unwrap();
    let sealed = store.backend.get(Kind::Index, &name).unwrap();
    assert_eq!(
        hex::encode(open_meta(&f, &v2_index_aad(&f, &name), &sealed)),
        [FIXTURE_V2_INDEX_HEAD, FIXTURE_V2_TRAILER_PLAIN].concat()
    );
    let body = hex::decode(FIXTURE_V2_SNAPSHOT_BODY).unwrap();
    let snapshot = vault::repo::decode_snapshot(&body).unwrap();
    let id = store.save_snapshot(&f.keys, &snapshot).unwrap();
    check_v2_record(&f, &store, &id.to_hex());
}

#[test]
fn fixture_v2_checks_clean() {
    checks_clean(&V2);
}

#[test]
fn fixture_v2_restores_its_content() {
    restores_its_content(&V2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A damaged index file: `check` fails naming it, and a restore still writes the
/// content byte for byte, because it never relies on an index file for the bytes it
/// writes (every blob and every pack trailer is authenticated on its own). With a cache
/// that loaded the index file before the damage, the restore uses the locations the
/// cache holds and does not read index files again; with a fresh cache it locates the
/// blobs from the packs' trailers and warns, naming the index file and the repair.
#[test]
fn fixture_v2_with_a_damaged_index_file_restores_exactly_and_fails_check() {
    let mut v = fixture_vault(&V2);
    v.store = v.path("store");
    copy_dir(&V2.path(), &v.store);
    restore_and_compare(&v, &V2, "before");
    let index = only(&open_fixture(&V2), Kind::Index);
    let file = v.store.join("index").join(&index);
    let mut sealed = std::fs::read(&file).unwrap();
    sealed[40] ^= 0x10;
    std::fs::write(&file, sealed).unwrap();

    let warm = restore_and_compare(&v, &V2, "warm");
    assert!(!warm.stderr.contains(&index), "{}", warm.describe());
    let check = v.run(["check"]).failed();
    assert!(
        check.stdout.contains(&index) && check.stdout.contains("repair index"),
        "{}",
        check.describe()
    );

    std::fs::remove_dir_all(&v.cache).unwrap();
    let fresh = restore_and_compare(&v, &V2, "fresh");
    assert!(
        fresh.stderr.contains("warning")
            && fresh.stderr.contains(&index)
            && fresh.stderr.contains("looked up in the packs")
            && fresh.stderr.contains("`vault repair index`"),
        "{}",
        fresh.describe()
    );
}

// --- Version 3: chunk lists ---------------------------------------------------------------

const V3: Spec = Spec {
    dir: "store-v3",
    passphrase: "store-v3 fixture passphrase",
    source: "/tmp/vault-fixture-v3/etc/travis",
    note: b"hello from store v3\n",
};

/// The version-3 fixture's folder `travis` (the tree that names `segment`'s chunk list),
/// and that list: their ids under the fixture's id key.
const FIXTURE_V3_TRAVIS_TREE: &str =
    "a4cc51797e266a856c1d50e0f5b616a999a38625d6ca5675b8f8c140dc2f7fda";
const FIXTURE_V3_SEGMENT_LIST: &str =
    "070dcf57b99a2219e6566b306fd3972d72fc10a99e6c19472a8e5c9f6db2e15a";
/// The list's plaintext: BLAKE3 (unkeyed) of its bytes and their length.
const FIXTURE_V3_LIST_HASH: &str =
    "d486f69d18e80e471e65eeddf1ff975db026b7f74151547669f10831cb225596";
const FIXTURE_V3_LIST_LEN: usize = 7570;

/// `segment`'s content as `make-store-v3.sh` writes it: 20 MiB of a 32-byte line, a
/// 20 MiB hole, 20 MiB of the line.
fn fixture_v3_segment_region() -> Vec<u8> {
    b"travis fixture segment line 01\n"
        .iter()
        .copied()
        .cycle()
        .take(20 << 20)
        .collect()
}

/// Every blob of the fixture's one pack, opened: id -> (kind, plaintext).
fn fixture_blobs(f: &Fixture) -> std::collections::HashMap<Id, (BlobKind, Vec<u8>)> {
    let name = only(f, Kind::Packs);
    let pack = f.repo.backend.get(Kind::Packs, &name).unwrap();
    let id = Id::from_hex(&name).unwrap();
    let record = vault::pack::read_trailer(&f.keys, &id, &pack).unwrap();
    let header = &pack[12..12 + record.header_len as usize];
    let data_key = vault::pack::open_header(&f.identity, header, &id).unwrap();
    record
        .entries
        .iter()
        .map(|e| {
            let plain = decompressed(e, open_entry(&data_key, e, &pack));
            assert_eq!(f.keys.blob_id(&plain), e.id, "id = keyed BLAKE3");
            (e.id, (e.kind, plain))
        })
        .collect()
}

#[test]
fn fixture_v3_config_and_keys() {
    let f = open_fixture(&V3);
    let config = check_config_and_keys(&f, 3);
    assert_eq!(
        config["admin_key"],
        sign::public_hex(&SigningSecret::admin_from_identity(&f.identity).public())
    );
    assert!(f.repo.has_chunk_lists());
    assert!(f.repo.backend.exists(Kind::Keys, "hosts").unwrap());
}

/// The long file's chunk references lie in a chunk list of their own: its folder's tree
/// names the list and holds no extents for it; the list holds both data regions with the
/// hole between them; both encode back to their bytes, and vault's writer cuts the same
/// list from the same extents.
#[test]
fn fixture_v3_long_file_is_in_a_chunk_list() {
    let f = open_fixture(&V3);
    let blobs = fixture_blobs(&f);
    let snapshot_name = only(&f, Kind::Snapshots);
    let (snapshot, _) = f
        .repo
        .load_snapshot_checked(&f.keys, &Id::from_hex(&snapshot_name).unwrap())
        .unwrap();
    // Down from the root along /tmp/vault-fixture-v3/etc/travis.
    let mut tree_id = snapshot.tree;
    for name in ["tmp", "vault-fixture-v3", "etc", "travis"] {
        let (kind, plain) = &blobs[&tree_id];
        assert_eq!(*kind, BlobKind::Tree);
        let tree = Tree::decode(plain).unwrap();
        assert_eq!(&tree.encode(), plain, "a tree re-encodes to its bytes");
        tree_id = tree.find(name.as_bytes()).unwrap().subtree.unwrap();
    }
    assert_eq!(tree_id.to_hex(), FIXTURE_V3_TRAVIS_TREE);
    let (_, plain) = &blobs[&tree_id];
    let travis = Tree::decode(plain).unwrap();
    assert_eq!(&travis.encode(), plain);
    let segment = travis.find(b"segment").unwrap();
    assert_eq!(segment.size, 60 << 20);
    assert!(segment.extents.is_empty(), "no inline extents beside lists");
    assert_eq!(segment.lists.len(), 1);
    let list_id = segment.lists[0];
    assert_eq!(list_id.to_hex(), FIXTURE_V3_SEGMENT_LIST);
    let (kind, list_plain) = &blobs[&list_id];
    assert_eq!(*kind, BlobKind::Tree, "a chunk list is a blob of kind tree");
    assert_eq!(
        (Id::hash_public(list_plain).to_hex(), list_plain.len()),
        (FIXTURE_V3_LIST_HASH.to_string(), FIXTURE_V3_LIST_LEN),
        "chunk list bytes"
    );
    let list = ChunkList::decode(b"segment", list_plain).unwrap();
    assert_eq!(&list.encode(), list_plain, "a list re-encodes to its bytes");
    let offsets: Vec<(u64, u64)> = list.extents.iter().map(|e| (e.offset, e.len())).collect();
    assert_eq!(
        offsets,
        [(0, 20 << 20), (40 << 20, 20 << 20)],
        "the hole stays a hole"
    );
    assert!(list.extents.iter().map(|e| e.chunks.len()).sum::<usize>() > INLINE_CHUNKS);
    // The writer's cut of those extents is this one list, byte for byte.
    let again = ChunkList::split(&list.extents).expect("a long file gets lists");
    assert_eq!(again.len(), 1);
    assert_eq!(&again[0].encode(), list_plain);
    // Every chunk the list names is in the pack, as data.
    for chunk in list.extents.iter().flat_map(|e| e.chunks.iter()) {
        assert_eq!(blobs[&chunk.id].0, BlobKind::Data);
    }
}

#[test]
fn fixture_v3_checks_clean() {
    checks_clean(&V3);
}

/// The CLI restores the version-3 fixture, the long file byte for byte with its hole.
#[test]
fn fixture_v3_restores_its_content() {
    let v = fixture_vault(&V3);
    restore_and_compare(&v, &V3, "restored");
    let segment = common::restored(&v.path("restored"), Path::new(V3.source)).join("segment");
    let bytes = std::fs::read(&segment).unwrap();
    let region = fixture_v3_segment_region();
    assert_eq!(bytes.len(), 60 << 20);
    assert!(bytes[..20 << 20] == region[..], "first data region");
    assert!(
        bytes[20 << 20..40 << 20].iter().all(|&b| b == 0),
        "the hole"
    );
    assert!(bytes[40 << 20..] == region[..], "second data region");
    let meta = std::fs::metadata(&segment).unwrap();
    assert!(
        meta.blocks() * 512 < 50 << 20,
        "the hole is restored as a hole ({} blocks)",
        meta.blocks()
    );
}
