//! The behaviour every backend must show. Each backend's tests call [`run_all`] on a fresh,
//! empty store; a new backend is done when this suite passes against it.

use super::{Backend, Kind};
use crate::error::Error;

/// Runs every check against `backend`, which must point at an empty location.
/// Panics with a message naming the failed expectation.
pub fn run_all(backend: &dyn Backend) {
    create_then_refuse_second_create(backend);
    put_get_roundtrip(backend);
    missing_objects(backend);
    ranges(backend);
    listing(backend);
    overwrite_same_bytes_is_idempotent(backend);
    delete_is_idempotent(backend);
    large_object(backend);
    ranges_into_a_sink(backend);
    handed_over_bytes(backend);
    staged_files(backend);
    rejects_bad_names(backend);
}

fn create_then_refuse_second_create(b: &dyn Backend) {
    b.create().expect("create an empty store");
    b.put(Kind::Config, "config", b"{}").expect("put config");
    assert!(
        matches!(b.create(), Err(Error::StoreExists(_))),
        "create over an existing store must fail"
    );
}

fn put_get_roundtrip(b: &dyn Backend) {
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Config) {
        let name = format!("{:064x}", kind as u8 + 1);
        let data = format!("object of kind {}", kind.label()).into_bytes();
        b.put(kind, &name, &data).expect("put");
        assert_eq!(
            b.get(kind, &name).expect("get"),
            data,
            "{kind:?} round trip"
        );
        assert!(b.exists(kind, &name).unwrap(), "{kind:?} exists after put");
    }
}

fn missing_objects(b: &dyn Backend) {
    let name = "ff".repeat(32);
    assert!(matches!(
        b.get(Kind::Packs, &name),
        Err(Error::Missing { .. })
    ));
    assert!(matches!(
        b.get_range(Kind::Packs, &name, 0, 1),
        Err(Error::Missing { .. })
    ));
    assert!(!b.exists(Kind::Packs, &name).unwrap());
}

fn ranges(b: &dyn Backend) {
    let name = "ab".repeat(32);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    b.put(Kind::Packs, &name, &data).unwrap();
    assert_eq!(b.get_range(Kind::Packs, &name, 0, 10).unwrap(), &data[..10]);
    assert_eq!(
        b.get_range(Kind::Packs, &name, 9_990, 10).unwrap(),
        &data[9_990..]
    );
    assert_eq!(
        b.get_range(Kind::Packs, &name, 1234, 4321).unwrap(),
        &data[1234..1234 + 4321]
    );
    let past_end = b.get_range(Kind::Packs, &name, 9_995, 10);
    assert!(
        matches!(past_end, Err(Error::Corrupt { .. })),
        "a range past the end is reported as corruption, got {past_end:?}"
    );
}

fn listing(b: &dyn Backend) {
    let names: Vec<String> = (0..5).map(|i| format!("{:064x}", 0x1000 + i)).collect();
    for n in &names {
        b.put(Kind::Index, n, n.as_bytes()).unwrap();
    }
    let listed = b.list(Kind::Index).unwrap();
    for n in &names {
        let info = listed.iter().find(|o| &o.name == n).expect("listed");
        assert_eq!(info.size, 64);
    }
    assert!(
        b.list(Kind::Snapshots)
            .unwrap()
            .iter()
            .all(|o| !names.contains(&o.name)),
        "kinds are separate namespaces"
    );
    let packs = b.list(Kind::Packs).unwrap();
    assert!(packs.iter().any(|o| o.name == "ab".repeat(32)));
}

fn overwrite_same_bytes_is_idempotent(b: &dyn Backend) {
    let name = "cd".repeat(32);
    b.put(Kind::Snapshots, &name, b"same").unwrap();
    b.put(Kind::Snapshots, &name, b"same").unwrap();
    assert_eq!(b.get(Kind::Snapshots, &name).unwrap(), b"same");
}

fn delete_is_idempotent(b: &dyn Backend) {
    let name = "de".repeat(32);
    b.put(Kind::Locks, &name, b"lease").unwrap();
    b.delete(Kind::Locks, &name).unwrap();
    assert!(!b.exists(Kind::Locks, &name).unwrap());
    b.delete(Kind::Locks, &name)
        .expect("deleting an absent object is not an error");
    assert!(b.list(Kind::Locks).unwrap().iter().all(|o| o.name != name));
}

fn large_object(b: &dyn Backend) {
    let name = "ef".repeat(32);
    let data: Vec<u8> = (0..(20u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    b.put(Kind::Packs, &name, &data).unwrap();
    let back = b.get(Kind::Packs, &name).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "20 MiB object round trip");
    assert_eq!(
        b.get_range(Kind::Packs, &name, 15 << 20, 1 << 20).unwrap(),
        &data[15 << 20..16 << 20]
    );
}

/// Reads `offset+len` of `name` with `get_range_into`, placing each piece at its position.
fn range_through_sink(
    b: &dyn Backend,
    name: &str,
    offset: u64,
    len: u64,
) -> crate::error::Result<Vec<u8>> {
    let mut out = vec![0u8; len as usize];
    b.get_range_into(Kind::Packs, name, offset, len, &mut |at, piece| {
        out[at as usize..at as usize + piece.len()].copy_from_slice(piece);
        Ok(())
    })?;
    Ok(out)
}

/// `get_range_into` gives exactly what `get_range` gives, and the same errors.
fn ranges_into_a_sink(b: &dyn Backend) {
    let name = "ef".repeat(32);
    let whole = b.get(Kind::Packs, &name).unwrap();
    for (offset, len) in [
        (0, 10),
        (15 << 20, 4 << 20),
        ((20 << 20) - 10, 10),
        (12345, 1),
    ] {
        let got = range_through_sink(b, &name, offset, len).unwrap();
        assert!(
            got == whole[offset as usize..(offset + len) as usize],
            "get_range_into {offset}+{len}"
        );
    }
    let past_end = range_through_sink(b, &name, (20 << 20) - 5, 10);
    assert!(
        matches!(past_end, Err(Error::Corrupt { .. })),
        "a range past the end is reported as corruption, got {past_end:?}"
    );
    assert!(matches!(
        range_through_sink(b, &"fe".repeat(32), 0, 1),
        Err(Error::Missing { .. })
    ));
    let refused = b.get_range_into(Kind::Packs, &name, 0, 10, &mut |_, _| {
        Err(Error::Backend("the sink refuses".into()))
    });
    assert!(
        matches!(&refused, Err(Error::Backend(m)) if m == "the sink refuses"),
        "the sink's error is returned as it is, got {refused:?}"
    );
}

/// `put_bytes` stores exactly what `put` would, for a pack-sized object and a small one,
/// and a repeat of the same bytes is idempotent.
fn handed_over_bytes(b: &dyn Backend) {
    let name = "fa".repeat(32);
    let data: Vec<u8> = (0..(17u32 << 20))
        .map(|i| (i.wrapping_mul(40503) >> 9) as u8)
        .collect();
    b.put_bytes(Kind::Packs, &name, data.clone().into())
        .expect("put_bytes of a pack");
    let back = b.get(Kind::Packs, &name).unwrap();
    assert!(back == data, "17 MiB put_bytes round trip");
    assert_eq!(
        b.get_range(Kind::Packs, &name, 3 << 20, 100).unwrap(),
        &data[3 << 20..(3 << 20) + 100]
    );
    b.put_bytes(Kind::Packs, &name, data.into())
        .expect("the same bytes again");
    let small = "fb".repeat(32);
    b.put_bytes(Kind::Index, &small, bytes::Bytes::from_static(b"index"))
        .unwrap();
    assert_eq!(b.get(Kind::Index, &small).unwrap(), b"index");
    assert!(
        b.put_bytes(Kind::Packs, "../escape", bytes::Bytes::from_static(b"x"))
            .is_err(),
        "put_bytes must refuse a bad name as put does"
    );
}

/// Objects built in a staged file (in the backend's staging folder if it has one, else in
/// a folder of the suite's): stored byte for byte, twice harmlessly, and the staged file
/// gone once dropped.
fn staged_files(b: &dyn Backend) {
    let scratch = std::env::temp_dir().join(format!(
        "vault-suite-staging-{}",
        crate::id::Id::random().short()
    ));
    let dir = b.staging_dir().unwrap_or_else(|| scratch.clone());
    let data: Vec<u8> = (0..(17u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (name, bytes) in [
        ("fc".repeat(32), &data[..]),
        ("fd".repeat(32), &data[..1000]),
    ] {
        let mut staged = super::staged::StagedFile::create(&dir, "pack").expect("stage a file");
        for piece in bytes.chunks(1 << 20) {
            staged.append(piece).expect("append to a staged file");
        }
        b.put_staged(Kind::Packs, &name, &mut staged)
            .expect("put_staged of a pack");
        b.put_staged(Kind::Packs, &name, &mut staged)
            .expect("the same staged file again");
        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(
            !path.exists(),
            "a stored staged file is gone from its folder"
        );
        let back = b.get(Kind::Packs, &name).unwrap();
        assert!(back == bytes, "{} byte put_staged round trip", bytes.len());
        assert_eq!(
            b.get_range(Kind::Packs, &name, 500, 100).unwrap(),
            &bytes[500..600]
        );
    }
    let mut staged = super::staged::StagedFile::create(&dir, "pack").unwrap();
    staged.append(b"x").unwrap();
    assert!(
        b.put_staged(Kind::Packs, "../escape", &mut staged).is_err(),
        "put_staged must refuse a bad name as put does"
    );
    drop(staged);
    let _ = std::fs::remove_dir_all(&scratch);
}

fn rejects_bad_names(b: &dyn Backend) {
    for bad in ["../escape", "a/b", "", "UPPER"] {
        assert!(
            b.put(Kind::Index, bad, b"x").is_err(),
            "name {bad:?} must be refused"
        );
    }
}
