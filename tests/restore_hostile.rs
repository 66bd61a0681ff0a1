//! Restoring snapshots that a hostile or broken writer crafted: names that climb out of
//! the target, absolute names, repeated names that would let a symlink redirect a write.
//! Each must be refused without writing anything outside the target.

use std::path::Path;
use vault::backend::{local::LocalBackend, Kind};
use vault::cache::Cache;
use vault::crypto::WriterKeys;
use vault::pack::{BlobKind, PackWriter};
use vault::reader::BlobReader;
use vault::repo::{ChunkerParams, Snapshot, Summary};
use vault::restore::RestoreOptions;
use vault::tree::{ChunkRef, Extent, Node, NodeKind, Tree};

struct Crafted {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    reader: BlobReader,
    cache: Cache,
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        size: 0,
        xattrs: vec![],
        extents: vec![],
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: 0,
        link: None,
    }
}

/// Writes `trees` (the last one is the root) and one data blob into a fresh store, exactly
/// as a writer would, but without any of the writer's checks on names.
fn craft(
    build: impl FnOnce(&WriterKeys, &mut Vec<(Vec<u8>, BlobKind)>) -> Vec<u8>,
) -> (Crafted, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let backend = std::sync::Arc::new(LocalBackend::new(root.join("store")));
    let created = vault::repo::create(
        backend,
        ChunkerParams::default(),
        vault::repo::DEFAULT_COMPRESSION_LEVEL,
        &[],
        None,
        None,
    )
    .unwrap();
    let keys = WriterKeys::from_id_key(created.id_key.clone());
    let mut blobs = Vec::new();
    let root_tree = build(&keys, &mut blobs);
    blobs.push((root_tree.clone(), BlobKind::Tree));
    let mut pack = PackWriter::new(&[created.identity.to_public()], 1 << 20, 1 << 20).unwrap();
    for (data, kind) in &blobs {
        pack.add(keys.blob_id(data), *kind, data.len() as u32, false, data)
            .unwrap();
    }
    let (bytes, record) = pack.finish(&keys).unwrap();
    let bytes = bytes.into_vec().unwrap();
    created
        .repo
        .backend
        .put(Kind::Packs, &record.id.to_hex(), &bytes)
        .unwrap();
    let index_name = created
        .repo
        .save_index(&keys, std::slice::from_ref(&record))
        .unwrap();
    let mut cache = Cache::open(&root.join("cache"), &created.repo.config.store_id).unwrap();
    cache.add_index(&index_name, &[record]).unwrap();
    let snapshot = Snapshot {
        time: "2026-01-01T00:00:00+00:00".into(),
        hostname: "evil".into(),
        username: "root".into(),
        paths: vec![serde_bytes::ByteBuf::from(b"/srv".to_vec())],
        tags: vec![],
        tree: keys.blob_id(&root_tree),
        summary: Summary::default(),
        program: "crafted".into(),
        databases: Vec::new(),
    };
    let reader = BlobReader::new(created.repo, keys, created.identity);
    (
        Crafted {
            _dir: dir,
            root,
            reader,
            cache,
        },
        snapshot,
    )
}

fn file_with(
    keys: &WriterKeys,
    blobs: &mut Vec<(Vec<u8>, BlobKind)>,
    name: &[u8],
    content: &[u8],
) -> Node {
    blobs.push((content.to_vec(), BlobKind::Data));
    let mut n = node(name, NodeKind::File);
    n.size = content.len() as u64;
    n.extents = vec![Extent {
        offset: 0,
        chunks: vec![ChunkRef {
            id: keys.blob_id(content),
            len: content.len() as u32,
        }],
    }];
    n
}

fn restore(c: &Crafted, snap: &Snapshot) -> vault::Result<vault::restore::RestoreReport> {
    let target = c.root.join("target/inner");
    vault::restore::run(
        &c.reader,
        &c.cache,
        snap,
        &RestoreOptions {
            target,
            includes: vec![],
            overwrite: Some(vault::restore::Overwrite::Always),
            dry_run: false,
            verify: false,
            numeric_owner: true,
            delete: false,
            no_privileged: false,
            threads: 2,
            spool: None,
        },
    )
}

fn nothing_outside_target(root: &Path) {
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            ["store", "cache", "target"].contains(&name.to_str().unwrap()),
            "restore wrote {name:?} outside the target"
        );
    }
    if let Ok(rd) = std::fs::read_dir(root.join("target")) {
        for entry in rd {
            assert_eq!(
                entry.unwrap().file_name(),
                "inner",
                "restore wrote next to the target"
            );
        }
    }
}

#[test]
fn dot_dot_names_are_refused() {
    for evil in [&b".."[..], b"../escaped", b"/abs", b"a/../../escaped", b"."] {
        let (c, snap) = craft(|keys, blobs| {
            let f = file_with(keys, blobs, evil, b"owned");
            Tree { nodes: vec![f] }.encode()
        });
        let err = restore(&c, &snap).expect_err("an unsafe name must be refused");
        assert!(err.to_string().contains("refusing"), "{err}");
        nothing_outside_target(&c.root);
    }
}

#[test]
fn unsafe_name_deep_in_the_tree_is_refused_before_anything_is_written() {
    let (c, snap) = craft(|keys, blobs| {
        let good = file_with(keys, blobs, b"fine", b"harmless");
        let evil = file_with(keys, blobs, b"../../escaped", b"owned");
        let sub = Tree { nodes: vec![evil] }.encode();
        blobs.push((sub.clone(), BlobKind::Tree));
        let mut d = node(b"sub", NodeKind::Dir);
        d.mode = 0o755;
        d.subtree = Some(keys.blob_id(&sub));
        Tree {
            nodes: vec![good, d],
        }
        .encode()
    });
    assert!(restore(&c, &snap).is_err());
    nothing_outside_target(&c.root);
    assert!(
        !c.root.join("target/inner/fine").exists(),
        "the plan is checked whole before the first write"
    );
}

#[test]
fn repeated_name_cannot_turn_a_symlink_into_a_path() {
    // A symlink "d" pointing outside, then a folder "d" holding a file: restoring the
    // folder's file through the symlink would write outside the target.
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().to_path_buf();
    let (c, snap) = craft(|keys, blobs| {
        let mut link = node(b"d", NodeKind::Symlink);
        link.target = Some(outside_path.to_str().unwrap().as_bytes().to_vec());
        let f = file_with(keys, blobs, b"planted", b"owned");
        let sub = Tree { nodes: vec![f] }.encode();
        blobs.push((sub.clone(), BlobKind::Tree));
        let mut d = node(b"d", NodeKind::Dir);
        d.subtree = Some(keys.blob_id(&sub));
        Tree {
            nodes: vec![link, d],
        }
        .encode()
    });
    let err = restore(&c, &snap).expect_err("a tree with a repeated name must be refused");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(
        !outside_path.join("planted").exists(),
        "wrote through a symlink"
    );
    nothing_outside_target(&c.root);
}

#[test]
fn symlink_restored_earlier_is_not_followed_by_a_later_entry() {
    // A symlink "a" -> outside, and a folder "b" whose file is named like an absolute
    // path would be; neither may reach outside. Restoring twice (the second run finds
    // the symlink in place) must not follow it either.
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().to_path_buf();
    let (c, snap) = craft(|keys, blobs| {
        let mut link = node(b"a", NodeKind::Symlink);
        link.target = Some(outside_path.to_str().unwrap().as_bytes().to_vec());
        let f = file_with(keys, blobs, b"x", b"data");
        let sub = Tree { nodes: vec![f] }.encode();
        blobs.push((sub.clone(), BlobKind::Tree));
        let mut d = node(b"b", NodeKind::Dir);
        d.mode = 0o755;
        d.subtree = Some(keys.blob_id(&sub));
        Tree {
            nodes: vec![link, d],
        }
        .encode()
    });
    restore(&c, &snap).expect("a well-formed snapshot restores");
    restore(&c, &snap).expect("and restores again over itself with --overwrite always");
    let target = c.root.join("target/inner");
    assert_eq!(std::fs::read_link(target.join("a")).unwrap(), outside_path);
    assert_eq!(std::fs::read(target.join("b/x")).unwrap(), b"data");
    assert_eq!(
        std::fs::read_dir(&outside_path).unwrap().count(),
        0,
        "nothing written through the symlink"
    );
}
