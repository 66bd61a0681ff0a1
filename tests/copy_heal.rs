//! `vault copy` heals its destination: a pack whose bytes no longer match its name is
//! replaced from the source with `--verify`, and a pack the destination's index names but
//! lacks is copied again; the summary says what was healed.

mod common;

use common::{compare, Vault};
use std::fs;
use std::path::{Path, PathBuf};

fn packs(store: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = common::walk(&store.join("packs"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// The same world, pointed at the store in `store`.
fn at(_v: &Vault, store: &Path) -> Vault {
    let mut w = Vault::new();
    w.store = store.to_path_buf();
    w
}

fn copy(v: &Vault, dst: &Path, extra: &[&str]) -> common::Out {
    let mut args: Vec<std::ffi::OsString> = vec![
        "copy".into(),
        "--from".into(),
        v.store.clone().into(),
        "--to".into(),
        dst.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    v.run(args)
}

#[test]
fn copy_verify_heals_a_flipped_pack_and_copy_heals_a_lost_one() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a.bin"), common::random_bytes(1, 3 << 20)).unwrap();
    fs::write(src.join("b.txt"), b"small").unwrap();
    v.init();
    v.snapshot(&[&src]);
    let dst = v.dir.join("offsite");
    copy(&v, &dst, &[]).ok();

    // Flip one byte of a pack at the destination: same name, same size.
    let victim = packs(&dst)[0].clone();
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&victim, &bytes).unwrap();

    // A plain copy trusts names and sizes...
    let out = copy(&v, &dst, &[]).ok();
    assert!(!out.stdout.contains("healed"), "{}", out.describe());
    // ...`--verify` reads them back and replaces the damaged one.
    let out = copy(&v, &dst, &["--verify"]).ok();
    assert!(
        out.stdout.contains("healed") && out.stdout.contains(&name),
        "the summary does not say pack {name} was healed\n{}",
        out.describe()
    );
    let good = fs::read(v.store.join("packs").join(&name[..2]).join(&name)).unwrap();
    assert_eq!(
        fs::read(&victim).unwrap(),
        good,
        "the pack was not replaced"
    );
    let out = copy(&v, &dst, &["--verify"]).ok();
    assert!(out.stdout.contains("all sound"), "{}", out.describe());

    // A pack lost at the destination (its index still names it) comes back.
    fs::remove_file(&victim).unwrap();
    let out = copy(&v, &dst, &[]).ok();
    assert!(
        out.stdout.contains("healed")
            && out.stdout.contains(&name)
            && out.stdout.contains("missing"),
        "{}",
        out.describe()
    );

    // The healed copy checks and restores.
    let w = at(&v, &dst);
    w.run(["check", "--read-data"]).ok();
    let out_dir = v.dir.join("restored");
    w.restore("latest", &out_dir, &[]).restore_ok();
    compare::assert_same(&src, &common::restored(&out_dir, &src));
}

#[test]
fn copy_verify_heals_a_damaged_pack_and_snapshot_record() {
    let v = Vault::new();
    let src = v.path("src");
    fs::write(src.join("a.bin"), common::random_bytes(2, 1 << 20)).unwrap();
    v.init();
    v.snapshot(&[&src]);
    let dst = v.dir.join("offsite");
    copy(&v, &dst, &["latest"]).ok();
    let victim = packs(&dst)[0].clone();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[100] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    // The damaged record of a whole-store copy.
    let snaps: Vec<PathBuf> = common::walk(&dst.join("snapshots"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let mut rec = fs::read(&snaps[0]).unwrap();
    let last = rec.len() - 1;
    rec[last] ^= 1;
    fs::write(&snaps[0], &rec).unwrap();
    let out = copy(&v, &dst, &["--verify"]).ok();
    assert!(out.stdout.contains("healed"), "{}", out.describe());
    assert!(out.stdout.contains("snapshots/"), "{}", out.describe());
    at(&v, &dst).run(["check", "--read-data"]).ok();
}
