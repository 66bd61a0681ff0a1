//! POSIX ACLs between the two forms they travel in: the binary `system.posix_acl_access` /
//! `system.posix_acl_default` xattr values a snapshot records, and the text form GNU tar
//! and star keep in `SCHILY.acl.access` / `SCHILY.acl.default` PAX records.
//!
//! Binary form (Linux): a little-endian u32 version 2, then one 8-byte entry per ACL
//! entry: u16 tag, u16 permission bits, u32 id (0xffffffff where the tag has none), sorted
//! by tag, then id. Text form: `tag:qualifier:perms` entries separated by newlines or
//! commas, `#` comments allowed; qualifiers are names or numbers.

use crate::fsmeta::Names;

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;

/// The binary xattr value for an ACL in text form. `None` when the text does not parse,
/// or (for an access ACL) when it holds only the owner, group and other entries, which
/// the mode bits already say.
pub fn from_text(text: &str, names: &mut Names, is_default: bool) -> Option<Vec<u8>> {
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split(['\n', ',']) {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(':');
        let tag = fields.next()?.trim();
        let qual = fields.next()?.trim();
        let perms = fields.next()?.trim();
        let numeric = fields.next().and_then(|f| f.trim().parse::<u32>().ok());
        let (tag, id) = match (tag, qual.is_empty()) {
            ("user" | "u", true) => (USER_OBJ, NO_ID),
            ("user" | "u", false) => (
                USER,
                numeric
                    .or_else(|| qual.parse().ok())
                    .or_else(|| names.uid(qual))?,
            ),
            ("group" | "g", true) => (GROUP_OBJ, NO_ID),
            ("group" | "g", false) => (
                GROUP,
                numeric
                    .or_else(|| qual.parse().ok())
                    .or_else(|| names.gid(qual))?,
            ),
            ("mask" | "m", _) => (MASK, NO_ID),
            ("other" | "o", _) => (OTHER, NO_ID),
            _ => return None,
        };
        let mut bits = 0u16;
        for c in perms.chars() {
            match c {
                'r' => bits |= 4,
                'w' => bits |= 2,
                'x' => bits |= 1,
                '-' => {}
                _ => return None,
            }
        }
        entries.push((tag, bits, id));
    }
    if entries.is_empty() {
        return None;
    }
    if !is_default
        && entries
            .iter()
            .all(|e| matches!(e.0, USER_OBJ | GROUP_OBJ | OTHER))
    {
        return None;
    }
    entries.sort_by_key(|e| (e.0, e.2));
    let mut out = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

/// The text form of a binary ACL xattr value, qualifiers as numbers (exact on any host).
/// `None` when the value is not a well-formed ACL.
pub fn to_text(value: &[u8]) -> Option<String> {
    if value.len() < 4 || (value.len() - 4) % 8 != 0 {
        return None;
    }
    if u32::from_le_bytes(value[..4].try_into().ok()?) != VERSION {
        return None;
    }
    let mut out = String::new();
    for e in value[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let head = match tag {
            USER_OBJ => "user::".to_string(),
            USER => format!("user:{id}:"),
            GROUP_OBJ => "group::".to_string(),
            GROUP => format!("group:{id}:"),
            MASK => "mask::".to_string(),
            OTHER => "other::".to_string(),
            _ => return None,
        };
        out.push_str(&head);
        out.push(if perm & 4 != 0 { 'r' } else { '-' });
        out.push(if perm & 2 != 0 { 'w' } else { '-' });
        out.push(if perm & 1 != 0 { 'x' } else { '-' });
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_text_round_trips() {
        let mut names = Names::default();
        let text =
            "user::rw-\nuser:65534:r--\ngroup::r--\ngroup:65534:rw-\nmask::rw-\nother::r--\n";
        let bin = from_text(text, &mut names, false).unwrap();
        // As setfacl writes it for the same ACL.
        let expected: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff],
            &[2, 0, 4, 0, 0xfe, 0xff, 0, 0],
            &[4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff],
            &[8, 0, 6, 0, 0xfe, 0xff, 0, 0],
            &[0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff],
            &[0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(bin, expected);
        assert_eq!(to_text(&bin).unwrap(), text);
    }

    #[test]
    fn minimal_access_acls_are_the_mode() {
        let mut names = Names::default();
        assert_eq!(
            from_text("user::rwx\ngroup::r-x\nother::r-x\n", &mut names, false),
            None
        );
        assert!(from_text("user::rwx\ngroup::r-x\nother::r-x\n", &mut names, true).is_some());
        assert_eq!(from_text("bogus", &mut names, false), None);
    }
}
