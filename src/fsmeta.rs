//! Reading file metadata the way a snapshot records it: xattrs of every namespace, owner
//! names, and the data/hole layout of sparse files.

use crate::tree::Xattr;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// All extended attributes of `path` itself (not of a symlink's target), sorted by name.
/// POSIX ACLs (`system.posix_acl_*`) and file capabilities (`security.capability`) are
/// xattrs too, so they come along.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr(path, &mut [])?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(e) if e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::OPNOTSUPP => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e.into()),
        }
    };
    let bytes = &names[..len];
    let mut out = Vec::new();
    for name in bytes.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let vlen = loop {
            match rustix::fs::lgetxattr(path, cname, &mut value) {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr(path, cname, &mut [])?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                // Removed between list and get: it is simply not there any more.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(vlen) = vlen {
            value.truncate(vlen);
            out.push(Xattr {
                name: name.to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The data regions of a file as (offset, length); everything else up to `size` is holes.
/// Files whose allocated blocks cover their size are taken as one region without asking
/// the filesystem.
pub fn data_regions(file: &File, size: u64, blocks: u64) -> io::Result<Vec<(u64, u64)>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    if blocks.saturating_mul(512) >= size {
        return Ok(vec![(0, size)]);
    }
    let mut regions = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos as i64)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            // Filesystems without SEEK_DATA: treat the whole file as data.
            Err(rustix::io::Errno::INVAL) if pos == 0 => return Ok(vec![(0, size)]),
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(data as i64)) {
            Ok(h) => h.min(size),
            Err(e) => return Err(e.into()),
        };
        regions.push((data, hole - data));
        pos = hole;
    }
    Ok(regions)
}

/// Caches uid/gid <-> name lookups in both directions.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    uids: HashMap<String, Option<u32>>,
    gids: HashMap<String, Option<u32>>,
}

impl Names {
    pub fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| user_name(uid))
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| group_name(gid))
            .clone()
    }

    pub fn uid(&mut self, name: &str) -> Option<u32> {
        *self
            .uids
            .entry(name.to_string())
            .or_insert_with(|| uid_of(name))
    }

    pub fn gid(&mut self, name: &str) -> Option<u32> {
        *self
            .gids
            .entry(name.to_string())
            .or_insert_with(|| gid_of(name))
    }
}

fn buf_len() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    if n > 0 {
        n as usize
    } else {
        16 * 1024
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; buf_len().max(16 * 1024)];
    // SAFETY: `pwd` is plain data that getpwuid_r fills in; `buf` outlives every pointer
    // it stores into `pwd`, and we copy the name out before `buf` is dropped.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; buf_len().max(64 * 1024)];
    // SAFETY: as in `user_name`, for the group database.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

fn uid_of(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; buf_len().max(16 * 1024)];
    // SAFETY: as in `user_name`; `cname` is a valid NUL-terminated string.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
    }
}

fn gid_of(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; buf_len().max(64 * 1024)];
    // SAFETY: as in `group_name`; `cname` is a valid NUL-terminated string.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn holes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut f = File::create(&path).unwrap();
        f.seek(SeekFrom::Start(4 << 20)).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        f.set_len(16 << 20).unwrap();
        f.sync_all().unwrap();
        let meta = std::os::unix::fs::MetadataExt::blocks(&f.metadata().unwrap());
        let regions = data_regions(&File::open(&path).unwrap(), 16 << 20, meta).unwrap();
        let data: u64 = regions.iter().map(|r| r.1).sum();
        assert!(data < 1 << 20, "{regions:?}");
        assert!(regions
            .iter()
            .any(|&(o, l)| o <= 4 << 20 && o + l >= (4 << 20) + 4096));
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(Names::default().user(0).as_deref(), Some("root"));
        assert_eq!(Names::default().uid("root"), Some(0));
    }
}
