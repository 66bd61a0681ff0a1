//! A printable sheet for a secret, and reading a typed-in sheet back.
//!
//! # The sheet
//!
//! ```text
//! encoding:     text
//! length:       64
//! check:        7GQ2-MX4N
//!
//! 01: a8f3 9c1d 77e0 b2a4 1f6d  K7QD
//! 02: ...
//! ```
//!
//! The secret is written as its own characters when they are all printable ASCII without
//! spaces (`encoding: text`, so it can be typed straight into the platform's settings),
//! otherwise as the lowercase hex of its UTF-8 bytes (`encoding: hex`). Rows hold
//! [`ROW_CHARS`] characters in groups of [`GROUP_CHARS`]; the last row may be shorter.
//!
//! Each row ends with a 4-character row check in Crockford base32 (digits and capital
//! letters without I, L, O, U; reading accepts lowercase and O/I/L for 0/1/1). It encodes
//! the 20-bit number `((s1 * 97 + s2) << 6) | h` where, for the row's characters
//! `c_1..c_n` with values `v_j = byte(c_j) - 0x21` (0..93):
//!
//! - `s1 = Σ v_j mod 97` and `s2 = Σ j·v_j mod 97`. One wrong character at position `i`
//!   changes `s1` by `d ≠ 0` and `s2` by `i·d`, so `i = Δs2 / Δs1 (mod 97)` names the
//!   character, hence the group; two neighbours swapped leave `s1` alone and are found by
//!   trying each swap.
//! - `h` is the top 6 bits of the first byte of BLAKE3(`"vault paper row"` ‖ row number as
//!   u32 little-endian ‖ the row's characters); it confirms a proposed location (so a
//!   mistyped row check is not blamed on a character) and catches rows typed in the wrong
//!   order.
//!
//! `check:` is the first 40 bits of BLAKE3(`"vault paper secret"` ‖ the secret), as 8
//! Crockford characters; `length:` counts the encoded characters. Both catch a missing or
//! extra row. The sheet holds the secret itself, so these plain hashes reveal nothing more.
//!
//! Reading back ignores every line other than `encoding:`, `length:`, `check:` and the
//! numbered rows (`NN:` then the groups then the row check, separated by spaces), reports
//! every problem with its row, group and character position, and never repeats what was
//! typed.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use zeroize::Zeroizing;

pub const GROUP_CHARS: usize = 4;
pub const GROUPS_PER_ROW: usize = 5;
pub const ROW_CHARS: usize = GROUP_CHARS * GROUPS_PER_ROW;
/// Longest encoded secret a sheet may announce (`length:`), far above any key or
/// password, so a mistyped or hostile length cannot size an allocation or a loop.
pub const MAX_SHEET_LENGTH: usize = 1 << 16;

const P: u32 = 97;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ROW_CHECK_LIMIT: u32 = P * P * 64;

/// What the sheet says about where the secret came from; printed, never read back.
#[derive(Clone, Debug, Default)]
pub struct SheetInfo {
    pub name: String,
    pub store: String,
    pub sealed: String,
    pub version: String,
    pub source: String,
    pub fingerprint: String,
    pub printed: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Hex,
}

impl Encoding {
    fn label(self) -> &'static str {
        match self {
            Encoding::Text => "text",
            Encoding::Hex => "hex",
        }
    }
}

/// One problem found on a typed-in sheet. Rows, groups and characters count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A header line (`encoding`, `length`, `check`) is missing or unreadable.
    Header(String),
    /// A row is missing, repeated, or not numbered as expected.
    Row { row: usize, detail: String },
    /// One character is wrong: the row check locates it.
    Typo {
        row: usize,
        group: usize,
        char: usize,
    },
    /// Two neighbouring characters are swapped.
    Swapped {
        row: usize,
        group: usize,
        char: usize,
    },
    /// A character that cannot be on the sheet (space, non-ASCII, non-hex in hex).
    BadChar {
        row: usize,
        group: usize,
        char: usize,
    },
    /// A group has the wrong number of characters.
    GroupLength {
        row: usize,
        group: usize,
        found: usize,
        expected: usize,
    },
    /// The row does not match its check and the mismatch cannot be located.
    Unlocated { row: usize },
    /// The row check itself is mistyped; the row's characters are right.
    RowCheckTypo { row: usize },
    /// Every row matches its check but the whole secret does not match `check:`.
    SecretCheck,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Header(d) => write!(f, "{d}"),
            Problem::Row { row, detail } => write!(f, "row {row:02}: {detail}"),
            Problem::Typo { row, group, char } => write!(
                f,
                "row {row:02}, group {group}, character {char}: wrong character (the row check locates it here)"
            ),
            Problem::Swapped { row, group, char } => write!(
                f,
                "row {row:02}, group {group}, characters {char} and {}: swapped",
                char + 1
            ),
            Problem::BadChar { row, group, char } => write!(
                f,
                "row {row:02}, group {group}, character {char}: not a character this sheet can hold"
            ),
            Problem::GroupLength {
                row,
                group,
                found,
                expected,
            } => write!(
                f,
                "row {row:02}, group {group}: {found} characters, expected {expected} (one left out or typed twice?)"
            ),
            Problem::Unlocated { row } => write!(
                f,
                "row {row:02}: does not match its row check (more than one character is wrong, or the row check is mistyped)"
            ),
            Problem::RowCheckTypo { row } => write!(
                f,
                "row {row:02}: the row check at the end of the row is mistyped (the characters are right)"
            ),
            Problem::SecretCheck => write!(
                f,
                "every row matches its row check, but the secret does not match the `check:` line (is `check:` mistyped, or a row left out?)"
            ),
        }
    }
}

/// Everything wrong with a typed-in sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaperError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for PaperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} problem{} on the typed-in sheet:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PaperError {}

fn crockford(mut value: u64, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out).expect("ascii")
}

fn decrockford(s: &str) -> Option<u64> {
    let mut value: u64 = 0;
    for c in s.bytes() {
        let c = match c.to_ascii_uppercase() {
            b'O' => b'0',
            b'I' | b'L' => b'1',
            other => other,
        };
        let digit = CROCKFORD.iter().position(|&d| d == c)?;
        value = value.checked_mul(32)?.checked_add(digit as u64)?;
    }
    Some(value)
}

fn char_value(c: u8) -> Option<u32> {
    (0x21..=0x7e).contains(&c).then(|| (c - 0x21) as u32)
}

fn row_hash(row: usize, data: &[u8]) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(b"vault paper row");
    h.update(&(row as u32).to_le_bytes());
    h.update(data);
    (h.finalize().as_bytes()[0] >> 2) as u32
}

fn sums(data: &[u8]) -> (u32, u32) {
    let mut s1 = 0;
    let mut s2 = 0;
    for (j, &c) in data.iter().enumerate() {
        let v = char_value(c).expect("checked");
        s1 = (s1 + v) % P;
        s2 = (s2 + (j as u32 + 1) * v) % P;
    }
    (s1, s2)
}

fn row_check(row: usize, data: &[u8]) -> String {
    let (s1, s2) = sums(data);
    let value = ((s1 * P + s2) << 6) | row_hash(row, data);
    crockford(value as u64, 4)
}

fn secret_check(encoded: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"vault paper secret");
    h.update(encoded);
    let b = h.finalize();
    let mut v = 0u64;
    for &x in &b.as_bytes()[..5] {
        v = (v << 8) | x as u64;
    }
    let s = crockford(v, 8);
    format!("{}-{}", &s[..4], &s[4..])
}

fn inverse(a: u32) -> u32 {
    // P is prime: a^(P-2) mod P.
    let mut result = 1u32;
    let mut base = a % P;
    let mut exp = P - 2;
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * base % P;
        }
        base = base * base % P;
        exp >>= 1;
    }
    result
}

/// The characters the sheet shows for `secret`, and how they encode it.
fn encode(secret: &str) -> (Zeroizing<Vec<u8>>, Encoding) {
    let bytes = secret.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|&b| char_value(b).is_some()) {
        (Zeroizing::new(bytes.to_vec()), Encoding::Text)
    } else {
        let mut hex = Zeroizing::new(vec![0u8; bytes.len() * 2]);
        hex::encode_to_slice(bytes, &mut hex[..]).expect("sized");
        (hex, Encoding::Hex)
    }
}

/// Renders the sheet. The returned text holds the secret and is wiped when dropped.
pub fn render(secret: &SecretString, info: &SheetInfo) -> Zeroizing<String> {
    let (encoded, encoding) = encode(secret.expose_secret());
    let mut out = Zeroizing::new(String::with_capacity(2048));
    let push = |out: &mut Zeroizing<String>, s: &str| out.push_str(s);
    push(
        &mut out,
        "VAULT SEALED SECRET - keep this sheet offline and locked away; it IS the secret\n\n",
    );
    let field = |out: &mut Zeroizing<String>, label: &str, value: &str| {
        if !value.is_empty() {
            out.push_str(&format!("{:<14}{value}\n", format!("{label}:")));
        }
    };
    field(&mut out, "secret", &info.name);
    field(&mut out, "store", &info.store);
    field(&mut out, "sealed", &info.sealed);
    field(&mut out, "version", &info.version);
    field(&mut out, "source", &info.source);
    field(&mut out, "fingerprint", &info.fingerprint);
    field(&mut out, "printed", &info.printed);
    push(&mut out, "\n");
    field(&mut out, "encoding", encoding.label());
    field(&mut out, "length", &encoded.len().to_string());
    field(&mut out, "check", &secret_check(&encoded));
    push(&mut out, "\n");
    for (i, row) in encoded.chunks(ROW_CHARS).enumerate() {
        let n = i + 1;
        let mut line = Zeroizing::new(format!("{n:02}:"));
        for group in row.chunks(GROUP_CHARS) {
            line.push(' ');
            line.push_str(std::str::from_utf8(group).expect("ascii"));
        }
        let width = 3 + GROUPS_PER_ROW * (GROUP_CHARS + 1);
        while line.len() < width {
            line.push(' ');
        }
        line.push_str("  ");
        line.push_str(&row_check(n, row));
        line.push('\n');
        out.push_str(&line);
    }
    push(&mut out, "\n");
    match encoding {
        Encoding::Text => push(
            &mut out,
            "The secret is the characters of the numbered rows, left to right, without the\n\
             row numbers, the spaces and the 4-character row check at the end of each row.\n",
        ),
        Encoding::Hex => push(
            &mut out,
            "The secret is not plain printable text: the rows are the hex digits of its\n\
             UTF-8 bytes. Decode them with vault (below) or `xxd -r -p`.\n",
        ),
    }
    push(
        &mut out,
        "To read it back and check every row, type the `encoding`, `length` and `check`\n\
         lines and every numbered row (with its row check) into a file, then run\n\
         \x20   vault secrets show --from-paper FILE\n\
         A mistyped character is reported by row, group and position.\n",
    );
    out
}

struct Header {
    encoding: Option<Encoding>,
    length: Option<usize>,
    check: Option<String>,
}

/// A sheet read back: the secret, and notes about harmless slips (a mistyped row check
/// whose row the whole-secret check proves right). `Debug` redacts the secret.
#[derive(Debug)]
pub struct ReadBack {
    pub secret: SecretString,
    pub notes: Vec<Problem>,
}

/// The sheet's header lines and its numbered rows (row number, then its tokens: groups,
/// then the row check); a header line that cannot be read is a problem.
fn parse_lines<'t>(
    text: &'t str,
    problems: &mut Vec<Problem>,
) -> (Header, Vec<(usize, Vec<&'t str>)>) {
    let mut header = Header {
        encoding: None,
        length: None,
        check: None,
    };
    let mut rows: Vec<(usize, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((label, value)) = line.split_once(':') {
            let value = value.trim();
            let label_t = label.trim();
            if !label_t.is_empty() && label_t.bytes().all(|b| b.is_ascii_digit()) {
                let n: usize = label_t.parse().unwrap_or(0);
                rows.push((n, value.split_whitespace().collect()));
                continue;
            }
            match label_t.to_ascii_lowercase().as_str() {
                "encoding" => match value.to_ascii_lowercase().as_str() {
                    "text" => header.encoding = Some(Encoding::Text),
                    "hex" => header.encoding = Some(Encoding::Hex),
                    _ => problems.push(Problem::Header(
                        "the `encoding:` line must say `text` or `hex`".into(),
                    )),
                },
                "length" => match value.parse() {
                    Ok(n) => header.length = Some(n),
                    Err(_) => problems.push(Problem::Header(
                        "the `length:` line must hold a number".into(),
                    )),
                },
                "check" => header.check = Some(value.to_ascii_uppercase()),
                _ => {}
            }
        }
    }
    (header, rows)
}

/// The encoded secret the rows 1..=N of a `length`-character sheet spell, `?` standing for
/// each character of a missing, repeated or bad row; with the indexes in `problems` of
/// rows whose check alone did not match, and whether a bad row's mistake was located.
fn read_rows(
    rows: &[(usize, Vec<&str>)],
    length: usize,
    encoding: Encoding,
    problems: &mut Vec<Problem>,
) -> (Zeroizing<Vec<u8>>, Vec<usize>, bool) {
    let expected_rows = length.div_ceil(ROW_CHARS);
    let mut encoded = Zeroizing::new(Vec::with_capacity(length));
    let mut row_check_typos = Vec::new();
    let mut located = false;
    for n in 1..=expected_rows {
        let expected_len = if n < expected_rows {
            ROW_CHARS
        } else {
            length - ROW_CHARS * (expected_rows - 1)
        };
        let matching: Vec<&(usize, Vec<&str>)> = rows.iter().filter(|(r, _)| *r == n).collect();
        let tokens = match matching.as_slice() {
            [] => {
                problems.push(Problem::Row {
                    row: n,
                    detail: "missing".into(),
                });
                encoded.extend(std::iter::repeat(b'?').take(expected_len));
                continue;
            }
            [one] => &one.1,
            _ => {
                problems.push(Problem::Row {
                    row: n,
                    detail: "typed more than once".into(),
                });
                encoded.extend(std::iter::repeat(b'?').take(expected_len));
                continue;
            }
        };
        let before = problems.len();
        let row = check_row(n, tokens, expected_len, encoding, problems);
        match row {
            RowResult::Ok(data) => encoded.extend_from_slice(&data),
            RowResult::CheckMismatch(data) => {
                row_check_typos.push(problems.len());
                problems.push(Problem::Unlocated { row: n });
                encoded.extend_from_slice(&data);
            }
            RowResult::Bad => {
                located |= problems.len() > before;
                encoded.extend(std::iter::repeat(b'?').take(expected_len));
            }
        }
    }
    (encoded, row_check_typos, located)
}

/// Reads a typed-in sheet and returns the secret, or every problem found.
pub fn read_back(text: &str) -> Result<ReadBack, PaperError> {
    let mut problems = Vec::new();
    let (header, rows) = parse_lines(text, &mut problems);
    let encoding = header.encoding.unwrap_or_else(|| {
        problems.push(Problem::Header("the `encoding:` line is missing".into()));
        Encoding::Text
    });
    let Some(length) = header.length else {
        problems.push(Problem::Header("the `length:` line is missing".into()));
        return Err(PaperError { problems });
    };
    if length > MAX_SHEET_LENGTH {
        problems.push(Problem::Header(format!(
            "the `length:` line says {length}, more than a sheet holds ({MAX_SHEET_LENGTH}); check it against the printed sheet"
        )));
        return Err(PaperError { problems });
    }
    if header.check.is_none() {
        problems.push(Problem::Header("the `check:` line is missing".into()));
    }
    let expected_rows = length.div_ceil(ROW_CHARS);
    if length == 0 {
        problems.push(Problem::Header("the `length:` line says 0".into()));
    }

    let (encoded, row_check_typos, located) = read_rows(&rows, length, encoding, &mut problems);
    for (n, _) in &rows {
        if *n == 0 || *n > expected_rows {
            problems.push(Problem::Row {
                row: *n,
                detail: format!(
                    "not expected: `length: {length}` makes {expected_rows} row{}",
                    if expected_rows == 1 { "" } else { "s" }
                ),
            });
        }
    }
    // The whole-secret check tells a mistyped row check from a mistyped row.
    let whole_ok = header
        .check
        .as_deref()
        .is_some_and(|c| c == secret_check(&encoded));
    if !row_check_typos.is_empty() && whole_ok && !located {
        for &i in &row_check_typos {
            if let Problem::Unlocated { row } = problems[i] {
                problems[i] = Problem::RowCheckTypo { row };
            }
        }
    }
    // Mistyped row checks alone do not stop a secret the whole check proves right.
    let mut notes = Vec::new();
    if !problems.is_empty()
        && problems
            .iter()
            .all(|p| matches!(p, Problem::RowCheckTypo { .. }))
    {
        notes = std::mem::take(&mut problems);
    }
    if problems.is_empty() && !whole_ok && header.check.is_some() {
        problems.push(Problem::SecretCheck);
    }
    if !problems.is_empty() {
        return Err(PaperError { problems });
    }
    let secret = decode(&encoded, encoding).ok_or_else(|| PaperError {
        problems: vec![Problem::Header(
            "the rows decode to bytes that are not UTF-8 text".into(),
        )],
    })?;
    Ok(ReadBack { secret, notes })
}

fn decode(encoded: &[u8], encoding: Encoding) -> Option<SecretString> {
    match encoding {
        Encoding::Text => {
            let s = std::str::from_utf8(encoded).ok()?;
            Some(SecretString::from(s))
        }
        Encoding::Hex => {
            let mut bytes = Zeroizing::new(vec![0u8; encoded.len() / 2]);
            hex::decode_to_slice(encoded, &mut bytes[..]).ok()?;
            let s = std::str::from_utf8(&bytes).ok()?;
            Some(SecretString::from(s))
        }
    }
}

enum RowResult {
    Ok(Zeroizing<Vec<u8>>),
    /// Characters well-formed but the row check does not match and cannot locate it.
    CheckMismatch(Zeroizing<Vec<u8>>),
    /// Problems were recorded (or the row is unusable).
    Bad,
}

fn check_row(
    n: usize,
    tokens: &[&str],
    expected_len: usize,
    encoding: Encoding,
    problems: &mut Vec<Problem>,
) -> RowResult {
    let expected_groups = expected_len.div_ceil(GROUP_CHARS);
    if tokens.len() != expected_groups + 1 {
        problems.push(Problem::Row {
            row: n,
            detail: format!(
                "expected {expected_groups} group{} and the row check, found {} item{} (a group left out, split or joined?)",
                if expected_groups == 1 { "" } else { "s" },
                tokens.len(),
                if tokens.len() == 1 { "" } else { "s" },
            ),
        });
        return RowResult::Bad;
    }
    let (groups, check) = tokens.split_at(expected_groups);
    let mut bad = false;
    let mut data = Zeroizing::new(Vec::with_capacity(expected_len));
    for (g, group) in groups.iter().enumerate() {
        let want = if g + 1 < expected_groups {
            GROUP_CHARS
        } else {
            expected_len - GROUP_CHARS * (expected_groups - 1)
        };
        let found = group.chars().count();
        if found != want {
            bad = true;
            problems.push(Problem::GroupLength {
                row: n,
                group: g + 1,
                found,
                expected: want,
            });
            continue;
        }
        for (c, ch) in group.chars().enumerate() {
            let b = if ch.is_ascii() { ch as u8 } else { 0 };
            let b = match encoding {
                Encoding::Hex => b.to_ascii_lowercase(),
                Encoding::Text => b,
            };
            let ok = match encoding {
                Encoding::Text => char_value(b).is_some(),
                Encoding::Hex => b.is_ascii_hexdigit(),
            };
            if !ok {
                bad = true;
                problems.push(Problem::BadChar {
                    row: n,
                    group: g + 1,
                    char: c + 1,
                });
            }
            data.push(b);
        }
    }
    if bad {
        return RowResult::Bad;
    }
    let expected = match decrockford(check[0])
        .filter(|v| check[0].len() == 4 && *v < ROW_CHECK_LIMIT as u64)
    {
        Some(v) => v as u32,
        None => return RowResult::CheckMismatch(data),
    };
    let (e1, e2, eh) = ((expected >> 6) / P, (expected >> 6) % P, expected & 63);
    let (s1, s2) = sums(&data);
    if s1 == e1 && s2 == e2 && row_hash(n, &data) == eh {
        return RowResult::Ok(data);
    }
    let d1 = (s1 + P - e1) % P;
    let d2 = (s2 + P - e2) % P;
    let locate = |pos: usize| Problem::Typo {
        row: n,
        group: pos / GROUP_CHARS + 1,
        char: pos % GROUP_CHARS + 1,
    };
    if d1 != 0 {
        let i = (d2 * inverse(d1) % P) as usize;
        if (1..=data.len()).contains(&i) {
            let v = char_value(data[i - 1]).expect("checked");
            let fixed = (v + P - d1) % P;
            if fixed < 94 {
                let mut candidate = Zeroizing::new(data.to_vec());
                candidate[i - 1] = fixed as u8 + 0x21;
                let valid = match encoding {
                    Encoding::Text => true,
                    Encoding::Hex => matches!(candidate[i - 1], b'0'..=b'9' | b'a'..=b'f'),
                };
                if valid && row_hash(n, &candidate) == eh {
                    problems.push(locate(i - 1));
                    return RowResult::Bad;
                }
            }
        }
    } else if d2 != 0 {
        for j in 0..data.len().saturating_sub(1) {
            if data[j] == data[j + 1] {
                continue;
            }
            let mut candidate = Zeroizing::new(data.to_vec());
            candidate.swap(j, j + 1);
            let (c1, c2) = sums(&candidate);
            if c1 == e1 && c2 == e2 && row_hash(n, &candidate) == eh {
                problems.push(Problem::Swapped {
                    row: n,
                    group: j / GROUP_CHARS + 1,
                    char: j % GROUP_CHARS + 1,
                });
                return RowResult::Bad;
            }
        }
    }
    RowResult::CheckMismatch(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(secret: &str) -> String {
        render(&SecretString::from(secret), &SheetInfo::default()).to_string()
    }

    #[test]
    fn hostile_length_line_is_refused_without_allocating() {
        let Err(err) = read_back("encoding: text\nlength: 16000000000\ncheck: ABCD\n1: abcd\n")
        else {
            panic!("a length beyond any sheet was not refused");
        };
        assert!(
            err.problems
                .iter()
                .any(|p| matches!(p, Problem::Header(h) if h.contains("length"))),
            "{err}"
        );
    }

    #[test]
    fn round_trip_text_and_hex() {
        for s in [
            "a",
            "abcd",
            "0123456789abcdef0123",
            "0123456789abcdef01234",
            "pässwörd with space",
        ] {
            let back = read_back(&sheet(s)).unwrap();
            assert_eq!(back.secret.expose_secret(), s);
            assert!(back.notes.is_empty());
        }
        assert!(sheet("with space").contains("encoding:     hex"));
    }

    #[test]
    fn row_check_typo_is_told_apart() {
        let text = sheet("0123456789abcdef0123456789");
        let line = text.lines().find(|l| l.starts_with("01:")).unwrap();
        let check = line.split_whitespace().last().unwrap();
        let other = if check.starts_with('Z') { "Y" } else { "Z" };
        let bad = text.replacen(
            line,
            &line.replace(check, &format!("{other}{}", &check[1..])),
            1,
        );
        // The secret is still accepted because the whole-secret check proves it.
        let back = read_back(&bad).unwrap();
        assert_eq!(back.notes, vec![Problem::RowCheckTypo { row: 1 }]);
    }

    #[test]
    fn swapped_neighbours_are_located() {
        let text = sheet("abcdefghijklmnopqrstuvwxyz");
        let bad = text.replacen("01: abcd efgh", "01: abcd egfh", 1);
        let err = read_back(&bad).unwrap_err();
        assert_eq!(
            err.problems,
            vec![Problem::Swapped {
                row: 1,
                group: 2,
                char: 2
            }]
        );
    }

    #[test]
    fn missing_row_and_header() {
        let text = sheet("abcdefghijklmnopqrstuvwxyz");
        let no_row = text
            .lines()
            .filter(|l| !l.starts_with("02:"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = read_back(&no_row).unwrap_err();
        assert!(err.problems.contains(&Problem::Row {
            row: 2,
            detail: "missing".into()
        }));
        let no_check = text
            .lines()
            .filter(|l| !l.starts_with("check:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(read_back(&no_check)
            .unwrap_err()
            .to_string()
            .contains("check:"));
    }
}
