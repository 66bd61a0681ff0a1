//! Files that change while a snapshot reads them are caught: a file truncated under the
//! reader is never restored padded with zeros, and a file rewritten in place is never
//! stored silently as a mix of two versions.
//!
//! The changes are timed by inotify on the file itself: the test waits for vault's first
//! read of it (IN_ACCESS) and changes it then, so the change lands inside the read every
//! time, with no FUSE and no sleeps.

mod common;

use common::{random_bytes, restored, Vault};
use rustix::fs::inotify;
use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MIB: usize = 1 << 20;

/// Watches `path` for reads and closes.
fn watch(path: &Path) -> rustix::fd::OwnedFd {
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).expect("inotify");
    inotify::add_watch(
        &fd,
        path,
        inotify::WatchFlags::ACCESS | inotify::WatchFlags::CLOSE_NOWRITE,
    )
    .expect("watch the file");
    fd
}

/// Blocks until an event in `want` arrives.
fn wait<Fd: rustix::fd::AsFd>(reader: &mut inotify::Reader<'_, Fd>, want: inotify::ReadFlags) {
    loop {
        let ev = reader.next().expect("read inotify events");
        if ev.events().intersects(want) {
            return;
        }
    }
}

/// Cuts the file to `len` bytes (opened for writing: the watch sees no read or close
/// without write).
fn truncate(path: &Path, len: usize) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len as u64).unwrap();
}

/// Runs `vault snapshot src` while `during` runs on another thread.
fn snapshot_while(v: &Vault, src: &Path, during: impl FnOnce() + Send + 'static) -> common::Out {
    // Detached: if vault never reads the file a second time, the watcher just waits.
    std::thread::spawn(during);
    v.run(["snapshot".as_ref(), src.as_os_str()])
}

fn restore_file(v: &Vault, file: &Path) -> Vec<u8> {
    let out = v.path("out");
    v.restore("latest", &out, &[]).ok();
    fs::read(restored(&out, file)).expect("read the restored file")
}

/// "saved as read: N bytes" from the report.
fn saved_len(stderr: &str) -> usize {
    let at = stderr
        .find("saved as read: ")
        .unwrap_or_else(|| panic!("no saved length in:\n{stderr}"));
    stderr[at + "saved as read: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn file_truncated_while_read_is_reported_and_not_padded() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    let file: PathBuf = src.join("big.bin");
    let original = random_bytes(150, 150 * MIB);
    fs::write(&file, &original).unwrap();
    let fd = watch(&file);
    let target = file.clone();
    let out = snapshot_while(&v, &src, move || {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&fd, &mut buf);
        // First read: the file shrinks a little under it.
        wait(&mut events, inotify::ReadFlags::ACCESS);
        truncate(&target, 149 * MIB);
        wait(&mut events, inotify::ReadFlags::CLOSE_NOWRITE);
        // The read once more: the file shrinks to 10 MiB under that one too.
        wait(&mut events, inotify::ReadFlags::ACCESS);
        truncate(&target, 10 * MIB);
    });
    assert_eq!(out.code, Some(3), "a partial snapshot\n{}", out.describe());
    assert!(
        out.stderr.contains(&file.display().to_string()) && out.stderr.contains("changed"),
        "the report names the changed file\n{}",
        out.describe()
    );
    let saved = saved_len(&out.stderr);
    assert!(saved < 150 * MIB, "{saved} bytes saved");
    let back = restore_file(&v, &file);
    assert_eq!(back.len(), saved, "restored with the length that was read");
    assert!(
        back == original[..saved],
        "the restored file is what was read, not padded with zeros"
    );
}

#[test]
fn file_rewritten_in_place_is_reread_or_reported() {
    let v = Vault::new();
    v.init();
    let src = v.path("src");
    let file = src.join("db.bin");
    let old = random_bytes(1, 60 * MIB);
    let new = random_bytes(2, 60 * MIB);
    fs::write(&file, &old).unwrap();
    // Let the mtime of the rewrite differ from the first one at any timestamp granularity.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let fd = watch(&file);
    let target = file.clone();
    let replacement = new.clone();
    let out = snapshot_while(&v, &src, move || {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&fd, &mut buf);
        wait(&mut events, inotify::ReadFlags::ACCESS);
        let f = fs::OpenOptions::new().write(true).open(&target).unwrap();
        for (i, block) in replacement.chunks(MIB).enumerate() {
            f.write_all_at(block, (i * MIB) as u64).unwrap();
        }
    });
    match out.code {
        Some(0) => {
            let back = restore_file(&v, &file);
            assert!(
                back == new || back == old,
                "a snapshot that reports nothing holds one version of the file, not a mix"
            );
        }
        Some(3) => assert!(
            out.stderr.contains(&file.display().to_string()) && out.stderr.contains("changed"),
            "the report names the changed file\n{}",
            out.describe()
        ),
        _ => panic!("snapshot failed\n{}", out.describe()),
    }
}
