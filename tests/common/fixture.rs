//! The fixture tree: every kind of file and metadata a restore must reproduce exactly.
//!
//! `build(root)` is deterministic: two builds compare equal (contents come from a seeded
//! generator, every mtime is set explicitly). As a non-root user the parts only root can
//! make (device nodes, other owners, trusted.* xattrs, capabilities, files root alone can
//! read) are left out and listed in `Fixture::skipped`, which `build` also prints.

use super::{random_bytes, sys, tool};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const MIB: u64 = 1 << 20;

/// A few paths tests refer to.
pub const SMALL: &str = "files/small.txt";
pub const BIG: &str = "files/big.bin";
pub const DUP1: &str = "files/dup1.bin";
pub const DUP2: &str = "files/copy/dup2.bin";
pub const USER_XATTRS: &str = "xattrs/user.txt";
pub const SPARSE_MIDDLE: &str = "sparse/hole_middle";
pub const HARD_TWO_A: &str = "hard/two_a";
pub const HARD_TWO_B: &str = "hard/two_b";
pub const NESTED: &str = "nested";
pub const READONLY: &str = "modes/readonly";
pub const WITH_SPACE: &str = "names/with space.txt";
/// The non-UTF-8 file name (`caf` + Latin-1 `é` + `.txt`), below `names/`.
pub const NON_UTF8_NAME: &[u8] = b"caf\xe9.txt";
/// The non-UTF-8 directory name, below `names/`.
pub const NON_UTF8_DIR: &[u8] = b"dir-\xff\xfe";

pub struct Fixture {
    pub root: PathBuf,
    /// Parts left out because they need root, in words.
    pub skipped: Vec<String>,
}

impl Fixture {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn b(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn write(p: &Path, data: &[u8]) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    sys::lchown(p, uid, gid).unwrap();
}

fn set_xattr(p: &Path, name: &[u8], value: &[u8]) {
    sys::set_xattr(p, name, value).unwrap();
}

fn ln_s(target: &[u8], p: &Path) {
    symlink(b(target), p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
}

/// Writes `chunks` of (offset, bytes) into a new file of `len` bytes, leaving holes.
fn sparse(p: &Path, len: u64, chunks: &[(u64, Vec<u8>)]) {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .unwrap();
    for (off, data) in chunks {
        f.write_all_at(data, *off).unwrap();
    }
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
}

/// Asserts that no data extent of `p` overlaps one of `holes`: the fixture's holes must be
/// real, else every hole test would pass vacuously.
fn assert_holes(p: &Path, holes: &[(u64, u64)]) {
    let f = File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    let ext = sys::data_extents(&f, len).unwrap();
    for &(hs, he) in holes {
        for &(ds, de) in &ext {
            assert!(
                de <= hs || ds >= he,
                "the filesystem under {} did not keep the hole {hs}..{he} (data {ext:?}); \
                 the tests need one that supports sparse files",
                p.display()
            );
        }
    }
}

/// mtime for a relative path: deterministic, spread over 2017-2020, with nanoseconds.
fn mtime_for(rel: &[u8]) -> (i64, i64) {
    match rel {
        b"files/old.txt" => return (-31_535_993, 123_456_789), // 1969
        b"files/future.txt" => return (4_102_444_801, 999_999_999), // 2100
        b"files/zero_ns.txt" => return (1_600_000_000, 0),
        _ => {}
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in rel {
        h ^= c as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let sec = 1_500_000_000 + (h % 100_000_000) as i64;
    let nsec = 1 + ((h >> 32) % 999_999_998) as i64;
    (sec, nsec)
}

/// Sets every mtime below `root` (and of `root`), contents before their directory.
pub fn set_mtimes(root: &Path) {
    fn rec(root: &Path, rel: &Path) {
        let full = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let m = fs::symlink_metadata(&full).unwrap();
        if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&full)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                rec(root, &rel.join(n));
            }
        }
        let (s, ns) = mtime_for(rel.as_os_str().as_bytes());
        sys::set_mtime(&full, s, ns).unwrap();
    }
    rec(root, Path::new(""));
}

/// Builds the fixture at `root` (created; must not exist or be empty).
pub fn build(root: &Path) -> Fixture {
    let root_user = sys::is_root();
    let mut skipped = Vec::new();
    mkdir(root);
    let p = |rel: &str| root.join(rel);

    // --- regular files -------------------------------------------------------------
    write(&p("files/empty"), b"");
    write(&p(SMALL), b"hello, vault\n");
    // Several chunks of varied content: random (incompressible) and text (compressible).
    let mut big = Vec::with_capacity(5 * MIB as usize);
    for i in 0..80u64 {
        if i % 3 == 0 {
            let line = format!("segment {i}: the quick brown fox jumps over the lazy dog\n");
            while big.len() < ((i + 1) * 64 * 1024) as usize {
                big.extend_from_slice(line.as_bytes());
            }
            big.truncate(((i + 1) * 64 * 1024) as usize);
        } else {
            big.extend_from_slice(&random_bytes(1000 + i, 64 * 1024));
        }
    }
    write(&p(BIG), &big);
    // The same 3 MiB twice (deduplicated in the store).
    let dup = random_bytes(7, 3 * MIB as usize);
    write(&p(DUP1), &dup);
    write(&p(DUP2), &dup);
    let log: String = (0..20000)
        .map(|i| {
            format!(
                "2024-01-01T00:00:{:02} worker-{} job {} passed\n",
                i % 60,
                i % 7,
                i
            )
        })
        .collect();
    write(&p("files/text.log"), log.as_bytes());
    write(&p("files/old.txt"), b"from 1969\n");
    write(&p("files/future.txt"), b"from 2100\n");
    write(&p("files/zero_ns.txt"), b"whole second\n");

    // --- nested directories ----------------------------------------------------------
    write(&p("nested/a/b/c/d/e/deep.txt"), b"deep\n");
    write(&p("nested/a/b/sibling.txt"), b"sibling\n");
    mkdir(&p("nested/a/empty_dir"));
    mkdir(&p("nested/empty"));
    // A directory with many entries.
    for i in 0..300 {
        write(
            &p(&format!("nested/many/f{i:04}")),
            format!("{i}\n").as_bytes(),
        );
    }

    // --- names -----------------------------------------------------------------------
    let names = p("names");
    mkdir(&names);
    write(&names.join(b(NON_UTF8_NAME)), b"latin-1 name\n");
    write(
        &names.join(b(NON_UTF8_DIR)).join("inner.txt"),
        b"inside a non-UTF-8 directory\n",
    );
    write(
        &names.join(b(NON_UTF8_DIR)).join(b(b"\x80\x81\xfe")),
        b"x\n",
    );
    for n in [
        "with space.txt",
        " leading space",
        "trailing space ",
        "line\nbreak",
        "tab\there",
        "-leading-dash",
        "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{2713}.txt",
        "back\\slash",
        "quote\"s'",
        "glob*?[x]",
        "...",
        "carriage\rreturn",
    ] {
        write(&names.join(n), n.as_bytes());
    }
    write(&names.join("n".repeat(255)), b"longest name\n");

    // --- symlinks ----------------------------------------------------------------------
    mkdir(&p("links"));
    ln_s(b"../files/small.txt", &p("links/rel"));
    ln_s(b"/nonexistent/vault-fixture/target", &p("links/abs"));
    ln_s(b"does-not-exist", &p("links/dangling"));
    ln_s(b"../nested/a", &p("links/todir"));
    ln_s(b"../names/caf\xe9.txt", &p("links/nonutf8"));
    ln_s(b"../../../../../../../../../../etc", &p("links/escape"));
    ln_s(b"loop", &p("links/loop"));

    // --- hardlinks ---------------------------------------------------------------------
    write(&p(HARD_TWO_A), b"two links\n");
    fs::hard_link(p(HARD_TWO_A), p(HARD_TWO_B)).unwrap();
    write(&p("hard/three_1"), &random_bytes(33, 100_000));
    fs::hard_link(p("hard/three_1"), p("hard/three_2")).unwrap();
    fs::hard_link(p("hard/three_1"), p("nested/a/b/three_3")).unwrap();

    // --- special files -----------------------------------------------------------------
    mkdir(&p("special"));
    sys::mkfifo(&p("special/fifo"), 0o620).unwrap();
    chmod(&p("special/fifo"), 0o620);
    if root_user {
        sys::mknod(&p("special/char"), false, 1, 3, 0o666).unwrap();
        sys::mknod(&p("special/block"), true, 7, 42, 0o660).unwrap();
        // Numbers that do not fit in 8 bits (major up to 12 bits, minor up to 20 bits).
        sys::mknod(&p("special/block_big"), true, 259, 1_048_575, 0o600).unwrap();
        sys::mknod(&p("special/char_big"), false, 4095, 65_536, 0o640).unwrap();
        // mknod applies the umask.
        chmod(&p("special/char"), 0o666);
        chmod(&p("special/block"), 0o660);
        chmod(&p("special/char_big"), 0o640);
    } else {
        skipped.push("device nodes special/char and special/block (mknod needs root)".into());
    }

    // --- sparse files ------------------------------------------------------------------
    mkdir(&p("sparse"));
    let d = |seed: u64, len: u64| random_bytes(seed, len as usize);
    sparse(
        &p("sparse/hole_start"),
        MIB + 64 * 1024,
        &[(MIB, d(41, 64 * 1024))],
    );
    assert_holes(&p("sparse/hole_start"), &[(0, MIB)]);
    sparse(
        &p(SPARSE_MIDDLE),
        2 * MIB + 128 * 1024,
        &[
            (0, d(42, 64 * 1024)),
            (2 * MIB + 64 * 1024, d(43, 64 * 1024)),
        ],
    );
    assert_holes(&p(SPARSE_MIDDLE), &[(64 * 1024, 2 * MIB + 64 * 1024)]);
    sparse(&p("sparse/hole_end"), 3 * MIB, &[(0, d(44, 64 * 1024))]);
    assert_holes(&p("sparse/hole_end"), &[(64 * 1024, 3 * MIB)]);
    sparse(&p("sparse/all_hole"), 8 * MIB, &[]);
    assert_holes(&p("sparse/all_hole"), &[(0, 8 * MIB)]);
    // Holes between and around chunk-sized data.
    sparse(
        &p("sparse/chunks_and_holes"),
        12 * MIB,
        &[(MIB, d(45, 2 * MIB)), (7 * MIB, d(46, 2 * MIB))],
    );
    assert_holes(
        &p("sparse/chunks_and_holes"),
        &[(0, MIB), (3 * MIB, 7 * MIB), (9 * MIB, 12 * MIB)],
    );
    // 1 GiB apparent size, a few KiB of data.
    sparse(
        &p("sparse/one_gib"),
        1024 * MIB,
        &[(300 * MIB, d(47, 4096)), (700 * MIB + 8192, d(48, 8192))],
    );
    assert_holes(
        &p("sparse/one_gib"),
        &[
            (0, 300 * MIB),
            (300 * MIB + 4096, 700 * MIB),
            (700 * MIB + 16384, 1024 * MIB),
        ],
    );

    // --- modes (contents first: chmod comes later) -------------------------------------
    mkdir(&p("modes"));
    for f in ["setuid", "setgid", "both", "all_bits", "readonly"] {
        write(&p(&format!("modes/{f}")), format!("mode {f}\n").as_bytes());
    }
    mkdir(&p("modes/sticky_dir"));
    write(&p("modes/sticky_dir/f"), b"in a sticky dir\n");
    mkdir(&p("modes/setgid_dir"));
    write(&p("modes/setgid_dir/f"), b"in a setgid dir\n");
    write(&p("modes/private_dir/secret.txt"), b"private\n");
    write(&p("modes/dir_0500/f"), b"in a read-only dir\n");
    if root_user {
        write(&p("modes/zero"), b"mode 0000\n");
        write(&p("modes/exec_only"), b"#!/bin/sh\n");
        write(&p("modes/write_only"), b"mode 0200\n");
        write(
            &p("modes/zero_dir/inside.txt"),
            b"inside a 0000 directory\n",
        );
    } else {
        skipped.push(
            "files and directories only root can read (modes/zero, modes/exec_only, \
             modes/write_only, modes/zero_dir)"
                .into(),
        );
    }

    // --- xattrs (contents) ---------------------------------------------------------------
    write(&p(USER_XATTRS), b"has user xattrs\n");
    mkdir(&p("xattrs/dir"));
    write(&p("xattrs/dir/plain.txt"), b"plain\n");

    // --- ACLs ----------------------------------------------------------------------------
    write(&p("acl/file"), b"has an access ACL\n");
    mkdir(&p("acl/dir"));

    // --- ownership (root only; before modes: chown clears setuid and capabilities) ------
    if root_user {
        let daemon = sys::user("daemon").expect("user daemon");
        let nobody = sys::user("nobody").expect("user nobody");
        mkdir(&p("owners"));
        write(&p("owners/daemon.txt"), b"owned by daemon\n");
        chown(&p("owners/daemon.txt"), daemon.0, daemon.1);
        write(&p("owners/nobody.txt"), b"owned by nobody\n");
        chown(&p("owners/nobody.txt"), nobody.0, nobody.1);
        write(&p("owners/numeric.txt"), b"owned by 4242:4243, no names\n");
        chown(&p("owners/numeric.txt"), 4242, 4243);
        write(&p("owners/mixed.txt"), b"daemon and 4243\n");
        chown(&p("owners/mixed.txt"), daemon.0, 4243);
        ln_s(b"daemon.txt", &p("owners/link"));
        chown(&p("owners/link"), daemon.0, daemon.1);
        write(&p("owners/numeric_dir/f.txt"), b"in a 4242 dir\n");
        chown(&p("owners/numeric_dir/f.txt"), 4242, 4242);
        chown(&p("owners/numeric_dir"), 4242, 4242);
        write(
            &p("owners/setuid_cap"),
            b"#!/bin/sh\n# setuid daemon with a capability\n",
        );
        chown(&p("owners/setuid_cap"), daemon.0, daemon.1);
        fs::hard_link(p("owners/daemon.txt"), p("owners/daemon_link.txt")).unwrap();
    } else {
        skipped
            .push("other owners (daemon, nobody, numeric 4242:4243) and owners/setuid_cap".into());
    }

    // --- ACLs (setfacl) --------------------------------------------------------------------
    let acl = |args: &[&str], path: &Path| {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.push(path.as_os_str());
        tool("setfacl", &a, "acl");
    };
    acl(
        &["-m", "u:daemon:rw-,g:daemon:r--,u:4242:r--"],
        &p("acl/file"),
    );
    acl(&["-m", "u:daemon:rwx,g:4242:r-x"], &p("acl/dir"));
    acl(
        &["-d", "-m", "u::rwx,g::r-x,o::---,u:daemon:r-x"],
        &p("acl/dir"),
    );
    // Created after the default ACL: inherits an access ACL from it.
    write(&p("acl/dir/inherited.txt"), b"inherits the default ACL\n");
    mkdir(&p("acl/dir/subdir"));

    // --- modes -----------------------------------------------------------------------------
    chmod(&p("modes/setuid"), 0o4755);
    chmod(&p("modes/setgid"), 0o2755);
    chmod(&p("modes/both"), 0o6750);
    chmod(&p("modes/all_bits"), 0o7777);
    chmod(&p(READONLY), 0o444);
    chmod(&p("modes/sticky_dir"), 0o1777);
    chmod(&p("modes/setgid_dir"), 0o2775);
    chmod(&p("modes/private_dir"), 0o700);
    chmod(&p("modes/dir_0500"), 0o500);
    chmod(&p("files/big.bin"), 0o640);
    chmod(&p("files/text.log"), 0o600);
    if root_user {
        chmod(&p("modes/zero"), 0o000);
        chmod(&p("modes/exec_only"), 0o111);
        chmod(&p("modes/write_only"), 0o200);
        chmod(&p("modes/zero_dir"), 0o000);
        chmod(&p("owners/numeric_dir"), 0o750);
        chmod(&p("owners/setuid_cap"), 0o6755);
    }

    // --- xattrs -----------------------------------------------------------------------------
    let ux = p(USER_XATTRS);
    set_xattr(&ux, b"user.comment", b"hello");
    set_xattr(&ux, b"user.binary", b"\x00\x01\x02\xff\x00\x80");
    set_xattr(&ux, b"user.empty", b"");
    set_xattr(&ux, b"user.long", &random_bytes(99, 2000));
    set_xattr(&ux, b"user.caf\xe9", b"non-UTF-8 name");
    set_xattr(&p("xattrs/dir"), b"user.dirattr", b"on a directory");
    set_xattr(&p(HARD_TWO_A), b"user.linked", b"on a hardlinked inode");
    set_xattr(&p(BIG), b"user.big", b"on a big file");
    if root_user {
        write(&p("xattrs/trusted.txt"), b"has a trusted xattr\n");
        set_xattr(&p("xattrs/trusted.txt"), b"trusted.vault", b"t\x00rusted");
        ln_s(b"trusted.txt", &p("xattrs/trusted_link"));
        set_xattr(
            &p("xattrs/trusted_link"),
            b"trusted.onlink",
            b"on a symlink",
        );
        write(&p("xattrs/cap"), b"#!/bin/sh\n# has a file capability\n");
        chmod(&p("xattrs/cap"), 0o755);
        let setcap = |caps: &str, path: &Path| {
            tool(
                "setcap",
                &[OsStr::new(caps), path.as_os_str()],
                "libcap2-bin",
            );
            assert!(
                sys::get_xattr(path, b"security.capability").is_ok(),
                "setcap left no security.capability on {}",
                path.display()
            );
        };
        setcap("cap_net_bind_service=+ep", &p("xattrs/cap"));
        setcap(
            "cap_net_bind_service,cap_net_raw=+ep",
            &p("owners/setuid_cap"),
        );
    } else {
        skipped.push(
            "trusted.* xattrs (xattrs/trusted.txt, xattrs/trusted_link) and \
             security.capability (xattrs/cap, owners/setuid_cap)"
                .into(),
        );
    }
    // The ACLs must really be there (as xattrs), else the ACL checks are vacuous.
    for (f, n) in [
        ("acl/file", &b"system.posix_acl_access"[..]),
        ("acl/dir", b"system.posix_acl_access"),
        ("acl/dir", b"system.posix_acl_default"),
        ("acl/dir/inherited.txt", b"system.posix_acl_access"),
        ("acl/dir/subdir", b"system.posix_acl_default"),
    ] {
        assert!(
            sys::get_xattr(&p(f), n).is_ok(),
            "{f} has no {}: does the filesystem support POSIX ACLs?",
            String::from_utf8_lossy(n)
        );
    }

    // --- mtimes, last; contents before their directory -------------------------------------
    set_mtimes(root);

    for s in &skipped {
        eprintln!("fixture: not root, skipped: {s}");
    }
    Fixture {
        root: root.to_path_buf(),
        skipped,
    }
}
