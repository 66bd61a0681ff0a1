//! `vault mount`: a snapshot (or all of them, by host and time) as a read-only FUSE
//! filesystem whose files read back without restoring. Needs /dev/fuse and the right to
//! mount; where the system refuses, the test says so and skips.

mod common;

use common::Vault;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `vault mount`; unmounted and stopped when dropped.
struct Mounted {
    child: Child,
    at: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.at).status();
        let _ = Command::new("umount")
            .arg(&self.at)
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `vault mount WHAT AT` and waits until `probe` (below AT) appears. `None` (after
/// saying why) when this system cannot mount FUSE.
fn mount(v: &Vault, what: &str, at: &Path, probe: &Path) -> Option<Mounted> {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP: /dev/fuse does not exist here, so FUSE cannot be mounted");
        return None;
    }
    fs::create_dir_all(at).unwrap();
    let mut cmd = v.command(["mount".as_ref(), what.as_ref(), at.as_os_str()]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("start vault mount");
    let mut m = Mounted {
        child,
        at: at.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if probe.exists() {
            return Some(m);
        }
        if let Ok(Some(status)) = m.child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            m.child.stderr.take().unwrap().read_to_string(&mut err).ok();
            let lower = err.to_lowercase();
            if lower.contains("permission")
                || lower.contains("operation not permitted")
                || lower.contains("fusermount")
                || lower.contains("/dev/fuse")
            {
                eprintln!("SKIP: this system refuses FUSE mounts ({status}): {err}");
                return None;
            }
            panic!("vault mount stopped ({status}) before the mount appeared: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the mount at {} did not show {} within 60 s",
        at.display(),
        probe.display()
    );
}

#[test]
fn mounted_snapshots_read_back_without_restoring() {
    let v = Vault::new();
    let src = v.path("src");
    let big = common::random_bytes(9, (3 << 20) + 12345);
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("small.txt"), b"hello through fuse\n").unwrap();
    fs::set_permissions(
        src.join("small.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("small.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/deep.txt"), b"deep").unwrap();
    let has_xattr = common::sys::set_xattr(&src.join("small.txt"), b"user.note", b"kept").is_ok();
    v.init();
    // A snapshot recorded as h1 must be written with h1's own key to verify.
    let status = v
        .command_as_host(
            "h1",
            [
                "snapshot".as_ref(),
                "--host".as_ref(),
                "h1".as_ref(),
                src.as_os_str(),
            ],
        )
        .status()
        .unwrap();
    assert!(status.success(), "snapshot as h1 failed: {status}");

    let mnt = v.dir.join("mnt");
    let rel = src.strip_prefix("/").unwrap();
    let Some(m) = mount(&v, "latest", &mnt, &mnt.join(rel).join("small.txt")) else {
        return;
    };
    let here = mnt.join(rel);
    assert_eq!(fs::read(here.join("big.bin")).unwrap(), big);
    assert_eq!(
        fs::read(here.join("small.txt")).unwrap(),
        b"hello through fuse\n"
    );
    assert_eq!(fs::read(here.join("sub/deep.txt")).unwrap(), b"deep");
    assert_eq!(
        fs::read_link(here.join("link")).unwrap(),
        Path::new("small.txt")
    );
    let a = fs::symlink_metadata(here.join("small.txt")).unwrap();
    let b = fs::symlink_metadata(src.join("small.txt")).unwrap();
    assert_eq!(a.mode() & 0o7777, 0o640);
    assert_eq!((a.uid(), a.gid(), a.size()), (b.uid(), b.gid(), b.size()));
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    if has_xattr {
        assert_eq!(
            common::sys::get_xattr(&here.join("small.txt"), b"user.note").unwrap(),
            b"kept"
        );
    }
    let mut names: Vec<String> = fs::read_dir(&here)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "link", "small.txt", "sub"]);
    // Read-only.
    assert!(fs::write(here.join("new.txt"), b"x").is_err());
    assert!(fs::write(here.join("small.txt"), b"x").is_err());
    drop(m);

    // All snapshots, by host and time.
    fs::write(src.join("small.txt"), b"second version\n").unwrap();
    // A snapshot recorded as h1 must be written with h1's own key to verify.
    let status = v
        .command_as_host(
            "h1",
            [
                "snapshot".as_ref(),
                "--host".as_ref(),
                "h1".as_ref(),
                src.as_os_str(),
            ],
        )
        .status()
        .unwrap();
    assert!(status.success(), "snapshot as h1 failed: {status}");
    let all = v.dir.join("all");
    let latest = all.join("h1/latest").join(rel).join("small.txt");
    let Some(m) = mount(&v, "all", &all, &latest) else {
        return;
    };
    assert_eq!(fs::read(&latest).unwrap(), b"second version\n");
    let times: Vec<PathBuf> = fs::read_dir(all.join("h1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "latest")
        .collect();
    assert_eq!(times.len(), 2, "{times:?}");
    let mut contents: Vec<Vec<u8>> = times
        .iter()
        .map(|t| fs::read(t.join(rel).join("small.txt")).unwrap())
        .collect();
    contents.sort();
    assert_eq!(
        contents,
        [
            b"hello through fuse\n".to_vec(),
            b"second version\n".to_vec()
        ]
    );
    drop(m);
}
