//! Long files keep their chunk references in chunk-list blobs of their own (store format
//! 3): the folder's tree names the lists, readers load them back, and everything that
//! decides what a snapshot needs (prune, copy, check) counts them. Stores of format 2 keep
//! writing inline lists until `vault upgrade`, and a copy never puts lists into a store
//! whose readers would not see them.

mod common;

use common::{random_bytes, restored, Vault};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use vault::backend::memory::MemoryBackend;
use vault::cache::Cache;
use vault::crypto::WriterKeys;
use vault::reader::BlobReader;
use vault::repo::{Repo, SIGNED_VERSION};
use vault::tree::{Node, Tree, INLINE_CHUNKS};
use vault::Id;

/// A long file (about 190 chunks at the default sizes), a sparse one whose two data
/// regions are long, and small files.
fn fill(src: &Path) {
    fs::create_dir_all(src.join("db")).unwrap();
    fs::write(src.join("db/segment"), random_bytes(1, 12 << 20)).unwrap();
    let sparse = fs::File::create(src.join("db/sparse")).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(&random_bytes(2, 3 << 20), 0).unwrap();
    sparse
        .write_all_at(&random_bytes(3, 3 << 20), 40 << 20)
        .unwrap();
    sparse.set_len(48 << 20).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("small{i}")), random_bytes(10 + i, 3000)).unwrap();
    }
}

fn same_tree(a: &Path, b: &Path) {
    for (rel, size) in common::files_by_size(a) {
        let theirs = b.join(&rel);
        assert_eq!(
            fs::read(a.join(&rel)).unwrap(),
            fs::read(&theirs).unwrap_or_else(|e| panic!("{}: {e}", theirs.display())),
            "{} ({size} bytes) restored differently",
            rel.display()
        );
    }
}

/// The file nodes of a snapshot's tree `src`, as a reader sees them, after a snapshot
/// taken through the library into `repo`.
fn snapshot_nodes(
    repo: &Repo,
    keys: &WriterKeys,
    identity: &age::x25519::Identity,
    src: &Path,
) -> Vec<Node> {
    let cache_dir = tempfile::tempdir().unwrap();
    let mut cache = Cache::open(cache_dir.path(), &repo.config.store_id).unwrap();
    let recipients = repo.recipients().unwrap();
    let opts = vault::backup::SnapshotOptions {
        paths: vec![src.to_path_buf()],
        tags: Vec::new(),
        hostname: "platform-1".into(),
        excludes: Vec::new(),
        threads: 2,
        lock_wait: std::time::Duration::ZERO,
    };
    let result = vault::backup::run(repo, keys, &recipients, &mut cache, &opts).unwrap();
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    let reader = BlobReader::new(repo.clone(), keys.clone(), identity.clone());
    db_folder(src, &result.snapshot.tree, |id| {
        reader.tree(&cache, id).unwrap()
    })
    .nodes
}

/// The tree of the folder `db` below `src` in the snapshot whose root tree is `root`:
/// down from the root along the source path, each tree read with `read`.
fn db_folder(src: &Path, root: &Id, read: impl Fn(&Id) -> Tree) -> Tree {
    let mut tree = read(root);
    let mut path: Vec<&[u8]> = src
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes())
        .collect();
    path.push(b"db");
    for name in path {
        let node = tree
            .find(name)
            .unwrap_or_else(|| panic!("{:?} in tree", String::from_utf8_lossy(name)));
        tree = read(&node.subtree.unwrap());
    }
    tree
}

#[test]
fn a_format_3_store_keeps_long_files_in_chunk_lists_and_a_format_2_store_inline() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fill(&src);
    for signed_only in [false, true] {
        let created = vault::repo::create(
            Arc::new(MemoryBackend::new("lists")),
            vault::repo::ChunkerParams::default(),
            vault::repo::DEFAULT_COMPRESSION_LEVEL,
            &[],
            None,
            None,
        )
        .unwrap();
        let mut repo = created.repo;
        let admin = vault::sign::SigningSecret::admin_from_identity(&created.identity);
        if signed_only {
            repo.set_version(&admin, SIGNED_VERSION).unwrap();
        }
        repo.trust.admin_signer = Some(Arc::new(admin));
        let keys = WriterKeys::from_id_key(created.id_key);
        let nodes = snapshot_nodes(&repo, &keys, &created.identity, &src);
        let segment = nodes.iter().find(|n| n.name == b"segment").unwrap();
        let sparse = nodes.iter().find(|n| n.name == b"sparse").unwrap();
        for node in [segment, sparse] {
            // The reader gives back the whole content either way.
            assert!(node.chunks().count() > INLINE_CHUNKS);
            assert_eq!(
                node.size,
                fs::metadata(
                    src.join("db")
                        .join(std::str::from_utf8(&node.name).unwrap())
                )
                .unwrap()
                .len()
            );
            assert_eq!(
                node.lists.is_empty(),
                signed_only,
                "format {}: chunk lists for {}",
                repo.config.version,
                String::from_utf8_lossy(&node.name)
            );
        }
        assert_eq!(segment.data_len(), 12 << 20);
        assert_eq!(sparse.data_len(), 6 << 20);
        assert_eq!(sparse.extents.len(), 2, "the hole stays a hole");
        assert_eq!(sparse.extents[1].offset, 40 << 20);
    }
}

/// The list blob of an unchanged long file is shared by two snapshots; forgetting the
/// first and repacking every pack with anything unused must keep it for the second.
#[test]
fn prune_keeps_the_chunk_lists_of_kept_snapshots() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src);
    v.snapshot(&[&src]);
    let first = v.snapshot_ids()[0].clone();
    fs::write(src.join("small0"), b"changed").unwrap();
    v.snapshot(&[&src]);
    v.drop_snapshot(&first);
    v.ok(["prune", "--repack-threshold", "0"]);
    v.ok(["check", "--read-data"]);
    let out = v.path("out");
    v.restore("latest", &out, &[]).restore_ok();
    same_tree(&src, &restored(&out, &src));
}

/// A copy of a format-2 store does not receive a format-3 store's trees until the admin
/// upgrades it; after `vault upgrade` the copy goes through and restores.
#[test]
fn copy_into_an_older_format_copy_waits_for_its_upgrade() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src);
    v.snapshot(&[&src]);
    let dst = v.dir.join("offsite");
    let copy = |v: &Vault| {
        v.run([
            "copy",
            "--from",
            v.store.to_str().unwrap(),
            "--to",
            dst.to_str().unwrap(),
        ])
    };
    copy(&v).ok();
    // The offsite copy as an earlier vault left it: format 2, signed by the admin.
    let mut offsite = Vault::new();
    offsite.store = dst.clone();
    offsite.edit_config(|c| c.version = SIGNED_VERSION);
    fs::write(src.join("small1"), b"changed").unwrap();
    v.snapshot(&[&src]);

    let refused = copy(&v).failed();
    assert!(
        refused.stderr.contains("vault upgrade") && refused.stderr.contains("format 2"),
        "{}",
        refused.describe()
    );
    let upgraded = offsite.ok(["upgrade"]);
    assert!(upgraded.contains("from format 2 to 3"), "{upgraded}");
    copy(&v).ok();
    offsite.ok(["check", "--read-data"]);
    let out = v.path("out");
    offsite.restore("latest", &out, &[]).restore_ok();
    same_tree(&src, &restored(&out, &src));
}

/// Where the chunk list of `src/db/segment` lies in the CLI's store: (pack file, offset of
/// the sealed blob in it).
fn segment_list_location(v: &Vault, src: &Path) -> (std::path::PathBuf, u64) {
    let backend = vault::backend::open(v.store.to_str().unwrap()).unwrap();
    let repo = Repo::open(backend).unwrap();
    let identity = vault::keys::unlock_reader_object(
        repo.backend.as_ref(),
        &secrecy::SecretString::from(v.passphrase.clone()),
    )
    .unwrap();
    let keys = WriterKeys::from_id_key(
        vault::keys::unlock_idkey_object(repo.backend.as_ref(), &identity).unwrap(),
    );
    let cache_dir = tempfile::tempdir().unwrap();
    let mut cache = Cache::open(cache_dir.path(), &repo.config.store_id).unwrap();
    cache.sync_index(&repo, &keys).unwrap();
    let snapshot = repo.snapshots(&keys).unwrap().pop().unwrap().1;
    let reader = BlobReader::new(repo, keys, identity);
    let tree = db_folder(src, &snapshot.tree, |id| {
        reader.tree_shallow(&cache, id).unwrap()
    });
    let segment = tree.find(b"segment").unwrap();
    assert_eq!(segment.lists.len(), 1);
    let loc = cache.locate(&segment.lists[0]).unwrap().unwrap();
    let hex = loc.pack.to_hex();
    (
        v.store.join("packs").join(&hex[..2]).join(&hex),
        loc.entry.offset as u64,
    )
}

/// A damaged chunk list costs its file only: `check` names that file (not the other files
/// of its folder or snapshot), and `repair snapshots` writes a snapshot that keeps the
/// rest of the folder, restored byte for byte.
#[test]
fn a_damaged_chunk_list_loses_only_its_file() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    fill(&src);
    v.snapshot(&[&src]);
    let (pack, offset) = segment_list_location(&v, &src);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset as usize + 8] ^= 0x40;
    fs::write(&pack, bytes).unwrap();

    let check = v.run(["check"]).failed();
    assert!(
        check.stdout.contains("db/segment") && check.stdout.contains("chunk list"),
        "check names the file and its list:\n{}",
        check.describe()
    );
    assert!(
        !check.stdout.contains("small0") && !check.stdout.contains("db/sparse"),
        "the other files are whole:\n{}",
        check.describe()
    );

    let original = v.snapshot_ids();
    v.ok(["repair", "snapshots"]);
    let repaired: Vec<String> = v
        .snapshot_ids()
        .into_iter()
        .filter(|id| !original.contains(id))
        .collect();
    assert_eq!(repaired.len(), 1, "one repaired snapshot");
    let out = v.path("out");
    let restore = v.restore(&repaired[0], &out, &[]).restore_ok();
    let restored = restored(&out, &src);
    assert!(restore.stdout.contains("6 files"), "{}", restore.describe());
    assert!(
        !restored.join("db/segment").exists(),
        "the lost file is left out"
    );
    for name in ["db/sparse", "small0", "small4"] {
        assert_eq!(
            fs::read(src.join(name)).unwrap(),
            fs::read(restored.join(name)).unwrap(),
            "{name} restored"
        );
    }
}

/// `diff` between a snapshot taken before `vault upgrade` (long files' lists inline) and
/// one after (in chunk lists) sees an unchanged long file as unchanged and a rewritten
/// one as changed in content; two snapshots with lists compare by the lists they name.
#[test]
fn diff_across_an_upgrade_compares_content_not_its_encoding() {
    let v = Vault::new();
    v.init();
    v.edit_config(|c| c.version = SIGNED_VERSION);
    let src = v.path("src");
    fill(&src);
    v.snapshot(&[&src]);
    let upgraded = v.ok(["upgrade"]);
    assert!(upgraded.contains("from format 2 to 3"), "{upgraded}");
    fs::write(src.join("db/segment"), random_bytes(99, 12 << 20)).unwrap();
    v.snapshot(&[&src]);
    fs::write(src.join("small2"), b"changed").unwrap();
    v.snapshot(&[&src]);
    let ids = v.snapshot_ids();
    let changed = |a: &str, b: &str| -> Vec<(String, Vec<String>)> {
        let out = v.ok(["diff", a, b, "--json"]);
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == "file")
            .map(|c| {
                let path = c["path"].as_str().unwrap();
                let name = path.rsplit('/').next().unwrap().to_string();
                let what = c["what"].as_array().map_or(Vec::new(), |w| {
                    w.iter().map(|x| x.as_str().unwrap().to_string()).collect()
                });
                (name, what)
            })
            .collect()
    };
    let across = changed(&ids[0], &ids[1]);
    assert_eq!(
        across.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["segment"],
        "only the rewritten file differs across the upgrade: {across:?}"
    );
    assert!(across[0].1.contains(&"content".to_string()), "{across:?}");
    let after = changed(&ids[1], &ids[2]);
    assert_eq!(
        after.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["small2"],
        "{after:?}"
    );
}
