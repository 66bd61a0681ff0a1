//! Thin wrappers over the system calls the fixture and the comparison need (extended
//! attributes, timestamps on symlinks, device nodes, hole detection), using `libc`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn cname(n: &[u8]) -> CString {
    CString::new(n).expect("xattr name without NUL")
}

fn ctx(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

fn check(ret: libc::c_int, what: &str, p: &Path) -> io::Result<()> {
    if ret < 0 {
        Err(ctx(io::Error::last_os_error(), what, p))
    } else {
        Ok(())
    }
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Names of all extended attributes of `p` (not following symlinks), all namespaces.
pub fn list_xattrs(p: &Path) -> io::Result<Vec<Vec<u8>>> {
    let c = cpath(p);
    loop {
        let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(ctx(io::Error::last_os_error(), "llistxattr", p));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n as usize];
        let m = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if m < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(ctx(e, "llistxattr", p));
        }
        buf.truncate(m as usize);
        return Ok(buf
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_vec())
            .collect());
    }
}

/// Value of extended attribute `name` of `p` (not following symlinks).
pub fn get_xattr(p: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cpath(p);
    let n = cname(name);
    loop {
        let len = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(ctx(io::Error::last_os_error(), "lgetxattr", p));
        }
        let mut buf = vec![0u8; len as usize];
        if len == 0 {
            return Ok(buf);
        }
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if m < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(ctx(e, "lgetxattr", p));
        }
        buf.truncate(m as usize);
        return Ok(buf);
    }
}

/// All extended attributes of `p`, name -> value.
pub fn xattrs(p: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut m = BTreeMap::new();
    for name in list_xattrs(p)? {
        let v = get_xattr(p, &name)?;
        m.insert(name, v);
    }
    Ok(m)
}

pub fn set_xattr(p: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = cpath(p);
    let n = cname(name);
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r, "lsetxattr", p)
}

pub fn remove_xattr(p: &Path, name: &[u8]) -> io::Result<()> {
    let c = cpath(p);
    let n = cname(name);
    let r = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    check(r, "lremovexattr", p)
}

/// Sets atime and mtime of `p` without following a symlink.
pub fn set_mtime(p: &Path, sec: i64, nsec: i64) -> io::Result<()> {
    let c = cpath(p);
    let ts = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let times = [ts, ts];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r, "utimensat", p)
}

pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    let r = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    check(r, "mkfifo", p)
}

/// Creates a character (`block == false`) or block device node.
pub fn mknod(p: &Path, block: bool, major: u32, minor: u32, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
    let dev = libc::makedev(major, minor);
    let r = unsafe { libc::mknod(c.as_ptr(), kind | mode as libc::mode_t, dev) };
    check(r, "mknod", p)
}

pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cpath(p);
    let r = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    check(r, "lchown", p)
}

pub fn major(dev: u64) -> u32 {
    libc::major(dev as libc::dev_t)
}

pub fn minor(dev: u64) -> u32 {
    libc::minor(dev as libc::dev_t)
}

/// uid and primary gid of the user called `name`, if there is one.
pub fn user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).unwrap();
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        None
    } else {
        unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
    }
}

/// The data extents `[start, end)` of an open regular file of length `size`, as the
/// filesystem reports them with `SEEK_DATA`/`SEEK_HOLE`; everything else is a hole.
pub fn data_extents(f: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = f.as_raw_fd();
    let mut v = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        let d = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if d < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(e);
        }
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        if h < 0 {
            return Err(io::Error::last_os_error());
        }
        let (d, h) = (d as u64, (h as u64).min(size));
        if h <= d {
            break;
        }
        match v.last_mut() {
            Some((_, end)) if *end == d => *end = h,
            _ => v.push((d, h)),
        }
        pos = h;
    }
    Ok(v)
}
