//! What an operator sees: closed pipes, `--json` results, progress on a terminal and
//! without one, `--quiet`, help, completions, man pages and the metrics textfile.

mod common;

use common::{random_bytes, run_command, Vault};
use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// A small tree with many entries (so a listing is longer than a pipe's buffer), a
/// hardlinked file and some folders.
fn tree(v: &Vault) -> std::path::PathBuf {
    let src = v.path("src");
    for d in 0..20 {
        let dir = src.join(format!("dir-{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..60 {
            fs::write(dir.join(format!("file-{f:03}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    fs::write(src.join("big.bin"), random_bytes(7, 1 << 20)).unwrap();
    fs::hard_link(src.join("big.bin"), src.join("big-link-1.bin")).unwrap();
    fs::hard_link(src.join("big.bin"), src.join("big-link-2.bin")).unwrap();
    src
}

/// Bytes of the small files of [`tree`].
fn small_bytes() -> u64 {
    (0..20)
        .flat_map(|d| (0..60).map(move |f| format!("{d} {f}\n").len() as u64))
        .sum()
}

fn json_of(out: &common::Out) -> Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {}", out.describe()))
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Runs vault with its stdout a pipe whose reading end is already closed.
fn into_closed_pipe(v: &Vault, a: &[OsString]) -> common::Out {
    let mut cmd = v.command(a);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    common::Out {
        cmdline: format!("{a:?} | (closed)"),
        code: status.code(),
        stdout_bytes: Vec::new(),
        stdout: String::new(),
        stderr,
    }
}

#[test]
fn listings_into_a_closed_pipe_exit_0_without_a_panic() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    v.snapshot(&[&src]);
    v.snapshot(&[&src]);
    let target = v.dir.join("restore-target");
    for a in [
        args(&["snapshots"]),
        args(&["snapshots", "--json"]),
        args(&["ls", "latest"]),
        args(&["ls", "latest", "--json"]),
        args(&["forget", "--keep-last", "1", "--dry-run"]),
        vec![
            "restore".into(),
            "latest".into(),
            "--to".into(),
            target.clone().into(),
            "--dry-run".into(),
        ],
        args(&["stats"]),
        args(&["completions", "bash"]),
    ] {
        let out = into_closed_pipe(&v, &a);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // The same through a shell pipeline into head and true.
    for reader in ["head -1", "true"] {
        let line = format!(
            "{} snapshots | {reader}; echo \"status=${{PIPESTATUS[0]}}\"",
            shell_words(&v, &[])
        );
        let out = run_command({
            let mut c = Command::new("bash");
            c.arg("-c").arg(&line);
            c.env("VAULT_PASSPHRASE", &v.passphrase);
            c
        });
        assert!(out.stdout.contains("status=0"), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // A command that changes the store goes on to the end when its stdout is closed.
    let out = into_closed_pipe(&v, &args(&["forget", "--keep-last", "1"]));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(v.snapshots_json().len(), 1, "forget did its work");
}

/// Every command that prints, run with its stdout a closed pipe: no panic, and the exit
/// status it has with an open one (a listing stops at once; a command that changes the
/// store does all its work).
#[test]
fn every_printing_command_into_a_closed_pipe_exits_as_it_would() {
    let v = Vault::new();
    let live = v.path("live").join("travis.yml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/travis.yml"),
        &live,
    )
    .unwrap();
    fs::write(
        &v.config,
        format!(
            "[secrets]\ntravis_yml = [{:?}]\n",
            live.display().to_string()
        ),
    )
    .unwrap();
    let closed = |a: Vec<OsString>| {
        let out = into_closed_pipe(&v, &a);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    };
    closed(args(&["init"]));
    let escrow = v.dir.join("escrow.txt");
    let escrow_public = age_keygen(&escrow);
    closed(args(&["secrets", "recipients", "set", &escrow_public]));
    closed(args(&["secrets", "seal"]));
    let src = tree(&v);
    closed(os(&[&"snapshot", &src, &live.parent().unwrap()]));
    fs::write(src.join("dir-00/new.txt"), "new\n").unwrap();
    closed(os(&[&"snapshot", &src, &live.parent().unwrap()]));
    let ids: Vec<String> = v
        .snapshots_json()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "both snapshots were recorded");
    let tar_dir = v.path("tar-src");
    fs::write(tar_dir.join("a.txt"), "from a tar\n").unwrap();
    let archive = v.dir.join("travis-backup-1700000000.tar");
    assert!(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&tar_dir)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let target = v.dir.join("target");
    let extra = age_keygen(&v.dir.join("extra.txt"));
    for a in [
        os(&[
            &"secrets",
            &"show",
            &"encryption-key",
            &"--escrow-identity",
            &escrow,
        ]),
        os(&[&"secrets", &"paper", &"--escrow-identity", &escrow]),
        args(&["secrets", "list"]),
        args(&["secrets", "recipients"]),
        args(&["secrets", "verify"]),
        args(&["snapshots"]),
        args(&["ls", "-l", "latest"]),
        args(&["find", "*.txt"]),
        args(&["diff", &ids[0], &ids[1]]),
        args(&["dump", "latest"]),
        args(&["stats"]),
        args(&["check", "--read-data"]),
        args(&["key", "list"]),
        args(&["host", "list"]),
        args(&["unlock"]),
        args(&["repair", "index", "--read-all-packs"]),
        args(&["repair", "snapshots", "--dry-run"]),
        args(&["forget", "--keep-last", "1", "--dry-run"]),
        args(&["prune", "--dry-run"]),
        os(&[&"restore", &"latest", &"--to", &target, &"--dry-run"]),
        os(&[
            &"drill",
            &ids[1].as_str(),
            &"--scratch-dir",
            &v.path("scratch"),
        ]),
        os(&[&"manpages", &v.dir.join("man")]),
        args(&["completions", "bash"]),
        args(&["completions", "zsh"]),
        args(&["completions", "fish"]),
        args(&["upgrade"]),
        os(&[
            &"key",
            &"export-identity",
            &"--out",
            &v.dir.join("identity.txt"),
        ]),
        args(&["key", "add-recipient", &extra]),
        args(&["key", "remove-recipient", &extra]),
        os(&[
            &"host",
            &"add",
            &"other-host",
            &"--out",
            &v.dir.join("other.json"),
        ]),
        args(&["host", "revoke", "other-host"]),
        os(&[&"import-tar", &archive]),
    ] {
        closed(a);
    }
    // The same through a shell pipeline into `head -c1`.
    for what in ["show encryption-key", "paper"] {
        let line = format!(
            "{} secrets {what} --escrow-identity '{}' | head -c1 >/dev/null; echo \"status=${{PIPESTATUS[0]}}\"",
            shell_words(&v, &[]),
            escrow.display()
        );
        let out = run_command({
            let mut c = Command::new("bash");
            c.arg("-c").arg(&line);
            c.env("VAULT_PASSPHRASE", &v.passphrase);
            c
        });
        assert!(out.stdout.contains("status=0"), "{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
    // The commands that change the store did their work.
    assert!(v.dir.join("identity.txt").exists());
    assert!(v.dir.join("other.json").exists());
    assert_eq!(v.snapshots_json().len(), 3, "import-tar added its snapshot");
    let out = into_closed_pipe(&v, &os(&[&"restore", &"latest", &"--to", &target]));
    // As a non-root user the owners of the parent folders cannot be set: exit 3.
    assert!(
        out.code == Some(0) || (!common::is_root() && out.code == Some(3)),
        "{}",
        out.describe()
    );
    assert!(target
        .join(src.strip_prefix("/").unwrap())
        .join("big.bin")
        .exists());
    // The two snapshots of the tree form one group (the imported one another).
    closed(args(&["forget", "--keep-last", "1", "--prune"]));
    assert_eq!(v.snapshots_json().len(), 2, "forget did its work");
    closed(args(&["prune"]));
    closed(os(&[
        &"copy",
        &"--from",
        &v.store,
        &"--to",
        &v.dir.join("offsite"),
    ]));
    assert!(v.dir.join("offsite/config").exists());
    v.run(["check"]).ok();
}

fn shell_words(v: &Vault, extra: &[&str]) -> String {
    let mut words: Vec<String> = vec![v.bin.display().to_string()];
    words.extend(
        v.global_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    words.extend(extra.iter().map(|s| s.to_string()));
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn snapshot_summary_counts_hardlinks_once_and_new_data_never_exceeds_what_was_read() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    let out = v.run([
        OsString::from("snapshot"),
        OsString::from("--json"),
        src.clone().into(),
    ]);
    let j = json_of(&out.ok());
    let expected_bytes = (1u64 << 20) + small_bytes();
    assert_eq!(
        j["bytes"], expected_bytes,
        "hardlinked data counted once: {j}"
    );
    assert_eq!(j["bytes_read"], expected_bytes, "{j}");
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        new <= j["bytes_read"].as_u64().unwrap(),
        "more new data than was read: {j}"
    );
    assert!(j["bytes_new_metadata"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["files"], 20 * 60 + 3, "{j}");
    // The human summary says the same.
    let out = v.run([OsString::from("snapshot"), src.into()]).ok();
    assert!(out.stdout.contains("0 B new data"), "{}", out.describe());
}

/// The shape of a command's `--json` output (see doc/json.md).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// One result object on stdout.
    Object,
    /// An array on stdout (a listing); each element holds the fields.
    Array,
    /// The result object as the last line of stderr (stdout carries the data).
    Stderr,
    /// The command prints its data itself and no JSON.
    Printed,
}

/// Runs commands with `--json` and checks each against doc/json.md; remembers which
/// commands were covered.
struct JsonCheck<'a> {
    v: &'a Vault,
    doc: String,
    covered: std::collections::BTreeSet<String>,
}

impl JsonCheck<'_> {
    /// The part of doc/json.md that describes `name` (from its `**`name`**` on).
    fn doc_of(&self, name: &str) -> &str {
        let marker = format!("**`{name}`**");
        let at = self
            .doc
            .find(&marker)
            .unwrap_or_else(|| panic!("doc/json.md does not describe `{name}`"));
        let rest = &self.doc[at + marker.len()..];
        let end = rest.find("\n\n").unwrap_or(rest.len());
        &rest[..end]
    }

    /// `vault ARGS --json` as the command `name` (`key list`); checks the output has the
    /// common fields (objects) and `fields`, and that doc/json.md names each field.
    #[track_caller]
    fn run(
        &mut self,
        name: &str,
        a: &[OsString],
        shape: Shape,
        fields: &[&str],
    ) -> (Value, common::Out) {
        let mut full = a.to_vec();
        full.push("--json".into());
        let out = self.v.run(&full);
        self.check(name, out, shape, fields)
    }

    #[track_caller]
    fn check(
        &mut self,
        name: &str,
        out: common::Out,
        shape: Shape,
        fields: &[&str],
    ) -> (Value, common::Out) {
        self.covered
            .insert(format!("vault-{}", name.replace(' ', "-")));
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
        let doc = self.doc_of(name).to_string();
        for f in fields {
            assert!(
                doc.contains(&format!("`{f}`")),
                "doc/json.md does not name the field `{f}` of `{name}`: {doc}"
            );
        }
        let value = match shape {
            Shape::Printed => {
                assert_eq!(out.code, Some(0), "{}", out.describe());
                assert!(!out.stdout.is_empty(), "{}", out.describe());
                assert!(
                    serde_json::from_str::<Value>(out.stdout.trim()).is_err(),
                    "{name} prints its data, not JSON: {}",
                    out.describe()
                );
                return (Value::Null, out);
            }
            Shape::Object | Shape::Array => serde_json::from_str::<Value>(out.stdout.trim())
                .unwrap_or_else(|e| {
                    panic!("stdout is not one JSON value ({e}): {}", out.describe())
                }),
            Shape::Stderr => {
                let last = out.stderr.lines().last().unwrap_or_default();
                serde_json::from_str::<Value>(last).unwrap_or_else(|e| {
                    panic!(
                        "the last line of stderr is no JSON object ({e}): {}",
                        out.describe()
                    )
                })
            }
        };
        if shape == Shape::Array && out.code == Some(0) {
            let list = value
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no array: {value}"));
            assert!(!list.is_empty(), "{name}: an empty listing checks nothing");
            for e in list {
                for f in fields {
                    assert!(
                        e.get(f).is_some(),
                        "{name} --json: an element lacks {f}: {e}"
                    );
                }
            }
            return (value, out);
        }
        let top = name.split(' ').next().unwrap();
        assert_eq!(value["command"], top, "{name}: {value}");
        assert_eq!(
            value["exit_status"].as_i64(),
            out.code.map(i64::from),
            "{name}: {value}"
        );
        assert!(value["duration_ms"].is_u64(), "{name}: {value}");
        if out.code == Some(0) {
            assert!(value["error"].is_null(), "{name}: {value}");
        } else {
            assert!(
                value["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{name}: a failure names its error: {value}"
            );
            return (value, out);
        }
        for f in fields {
            assert!(value.get(f).is_some(), "{name} --json lacks {f}: {value}");
        }
        (value, out)
    }
}

/// `age-keygen -o PATH`: the identity file and its public key.
fn age_keygen(path: &Path) -> String {
    let out = run_command({
        let mut c = Command::new("age-keygen");
        c.arg("-o").arg(path);
        c
    });
    assert!(
        out.success(),
        "age-keygen (Debian package age): {}",
        out.describe()
    );
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string()
}

fn os(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Every command's `--json` is what doc/json.md says, with the fields it names; a command
/// without an entry here (as `vault manpages` lists them) fails the test.
#[test]
fn every_command_prints_its_documented_json() {
    let v = Vault::new();
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/json.md")).unwrap();
    let mut c = JsonCheck {
        v: &v,
        doc,
        covered: Default::default(),
    };
    use Shape::*;
    let live = v.path("live").join("travis.yml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/travis.yml"),
        &live,
    )
    .unwrap();
    fs::write(
        &v.config,
        format!(
            "[secrets]\ntravis_yml = [{:?}]\n",
            live.display().to_string()
        ),
    )
    .unwrap();
    let (init, _) = c.run(
        "init",
        &args(&["init"]),
        Object,
        &[
            "store_id",
            "store",
            "writer_key",
            "passphrase",
            "identity_file",
            "escrow",
        ],
    );
    assert_eq!(init["passphrase"], true, "{init}");
    let identity = v.dir.join("identity.txt");
    let (key, _) = c.run(
        "key export-identity",
        &os(&[&"key", &"export-identity", &"--out", &identity]),
        Object,
        &["identity_file"],
    );
    assert_eq!(key["identity_file"], identity.display().to_string());
    let escrow = v.dir.join("escrow.txt");
    let escrow_public = age_keygen(&escrow);
    c.run(
        "secrets recipients set",
        &args(&["secrets", "recipients", "set", &escrow_public]),
        Object,
        &[],
    );
    c.run(
        "secrets recipients",
        &args(&["secrets", "recipients"]),
        Object,
        &[],
    );
    c.run(
        "secrets seal",
        &args(&["secrets", "seal"]),
        Object,
        &["secrets"],
    );
    c.run(
        "secrets verify",
        &args(&["secrets", "verify"]),
        Object,
        &["secrets"],
    );
    c.run(
        "secrets list",
        &args(&["secrets", "list"]),
        Array,
        &[
            "name",
            "number",
            "sealed_at",
            "host",
            "fingerprint",
            "recipients",
            "damaged",
        ],
    );
    c.run(
        "secrets show",
        &os(&[
            &"secrets",
            &"show",
            &"encryption-key",
            &"--escrow-identity",
            &escrow,
        ]),
        Printed,
        &[],
    );
    c.run(
        "secrets paper",
        &os(&[&"secrets", &"paper", &"--escrow-identity", &escrow]),
        Printed,
        &[],
    );

    let src = tree(&v);
    let (snap, _) = c.run(
        "snapshot",
        &os(&[&"snapshot", &src, &live.parent().unwrap()]),
        Object,
        &[
            "id",
            "short_id",
            "time",
            "hostname",
            "paths",
            "tags",
            "files",
            "dirs",
            "others",
            "bytes",
            "bytes_read",
            "bytes_new",
            "bytes_new_metadata",
            "bytes_stored",
            "packs",
            "problems",
        ],
    );
    assert_eq!(
        snap["files"],
        20 * 60 + 3 + 1,
        "{snap}: the tree and travis.yml"
    );
    fs::write(src.join("dir-00/new.txt"), "new\n").unwrap();
    let (snap2, _) = c.run(
        "snapshot",
        &os(&[&"snapshot", &src, &live.parent().unwrap()]),
        Object,
        &["id"],
    );
    let (list, _) = c.run(
        "snapshots",
        &args(&["snapshots"]),
        Array,
        &[
            "id", "short_id", "time", "hostname", "username", "paths", "tags", "tree", "program",
            "summary",
        ],
    );
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], snap["id"]);
    let (ls, _) = c.run(
        "ls",
        &args(&["ls", "latest"]),
        Array,
        &[
            "path",
            "type",
            "mode",
            "uid",
            "gid",
            "user",
            "group",
            "size",
            "mtime",
            "permissions",
        ],
    );
    assert!(ls.as_array().unwrap().len() > 1200);
    let (found, _) = c.run(
        "find",
        &args(&["find", "new.txt"]),
        Array,
        &["snapshot", "short_id", "host", "time", "tags", "matches"],
    );
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "only the second snapshot has it: {found}"
    );
    let (diff, _) = c.run(
        "diff",
        &args(&[
            "diff",
            snap["id"].as_str().unwrap(),
            snap2["id"].as_str().unwrap(),
        ]),
        Object,
        &["a", "b", "changes", "summary"],
    );
    assert_eq!(diff["summary"]["added"], 1, "{diff}");
    let (_, dump) = c.run(
        "dump",
        &args(&["dump", "latest"]),
        Stderr,
        &["snapshot", "short_id", "entries", "bytes", "skipped"],
    );
    // The tar on stdout is whole: tar lists it.
    let tar_file = v.dir.join("dump.tar");
    fs::write(&tar_file, &dump.stdout_bytes).unwrap();
    let listed = run_command({
        let mut t = Command::new("tar");
        t.arg("-tf").arg(&tar_file);
        t
    });
    assert!(
        listed.success() && listed.stdout.contains("new.txt"),
        "{}",
        listed.describe()
    );

    let target = v.dir.join("target");
    let (dry, _) = c.run(
        "restore",
        &os(&[&"restore", &"latest", &"--to", &target, &"--dry-run"]),
        Object,
        &["snapshot", "short_id", "target", "dry_run", "plan"],
    );
    assert!(dry["plan"].as_array().unwrap().len() > 1200);
    let mut restore_args = os(&[&"restore", &"latest", &"--to", &target]);
    restore_args.push("--json".into());
    let out = v.run(&restore_args).restore_ok();
    let (restored, _) = c.check(
        "restore",
        common::Out {
            code: Some(0),
            ..out
        },
        Object,
        &[
            "files",
            "dirs",
            "others",
            "bytes",
            "verified_files",
            "owner_not_set",
            "warnings",
            "problems",
        ],
    );
    assert_eq!(restored["files"], 20 * 60 + 4 + 1);

    let (stats, _) = c.run(
        "stats",
        &args(&["stats"]),
        Object,
        &[
            "store",
            "store_bytes",
            "objects",
            "snapshots",
            "logical_bytes",
            "dedup_bytes",
            "stored_blob_bytes",
            "blobs",
            "packs",
            "pack_bytes",
            "pack_used_bytes",
            "per_snapshot",
        ],
    );
    assert!(stats["logical_bytes"].as_u64() > stats["dedup_bytes"].as_u64());
    c.run(
        "check",
        &args(&["check"]),
        Object,
        &[
            "snapshots",
            "packs",
            "index_files",
            "packs_verified",
            "packs_read",
            "blobs_read",
            "unindexed_packs",
            "problems",
            "leftovers",
        ],
    );
    c.run(
        "key list",
        &args(&["key", "list"]),
        Object,
        &[
            "store_id",
            "store",
            "format",
            "signed",
            "admin_key",
            "config_verified",
            "recipients",
        ],
    );
    let extra = age_keygen(&v.dir.join("extra.txt"));
    let (added, _) = c.run(
        "key add-recipient",
        &args(&["key", "add-recipient", &extra]),
        Object,
        &["recipient", "added", "store"],
    );
    assert_eq!(added["added"], true);
    c.run(
        "key remove-recipient",
        &args(&["key", "remove-recipient", &extra]),
        Object,
        &["recipient", "removed", "store"],
    );
    c.run(
        "key set-passphrase",
        &args(&["key", "set-passphrase"]),
        Object,
        &["store"],
    );
    let host_key = v.dir.join("other-host.json");
    c.run(
        "host add",
        &os(&[&"host", &"add", &"other-host", &"--out", &host_key]),
        Object,
        &["host", "key", "writer_key_file", "store_id"],
    );
    let (hosts, _) = c.run(
        "host list",
        &args(&["host", "list"]),
        Array,
        &["host", "key", "added", "revoked"],
    );
    assert!(
        hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["host"] == "other-host"),
        "{hosts}"
    );
    let (revoked, _) = c.run(
        "host revoke",
        &args(&["host", "revoke", "other-host"]),
        Object,
        &["host", "keys_revoked"],
    );
    assert_eq!(revoked["keys_revoked"], 1);
    let (up, _) = c.run(
        "upgrade",
        &args(&["upgrade"]),
        Object,
        &[
            "store",
            "upgraded",
            "format",
            "snapshots_rebound",
            "index_files_rebound",
            "kept_locked",
            "host_authorised",
        ],
    );
    assert_eq!(up["upgraded"], false, "a new store is signed already: {up}");
    c.run("unlock", &args(&["unlock"]), Object, &["removed", "live"]);
    c.run(
        "repair index",
        &args(&["repair", "index"]),
        Object,
        &[
            "nothing_to_do",
            "packs",
            "packs_read",
            "index_files_written",
            "index_files_removed",
            "missing_packs",
            "damaged_index_files",
            "unreadable_packs",
            "kept_locked",
        ],
    );
    c.run(
        "repair snapshots",
        &args(&["repair", "snapshots", "--dry-run"]),
        Object,
        &["dry_run", "snapshots", "damaged"],
    );
    // A local store has no object lock: the failure is an object too.
    c.run(
        "lock extend",
        &args(&["lock", "extend", "--keep-last", "1"]),
        Object,
        &["dry_run", "mode", "until", "objects", "blobs_missing"],
    );

    let tar_dir = v.path("tar-src");
    fs::write(tar_dir.join("a.txt"), "from a tar\n").unwrap();
    let archive = v.dir.join("travis-backup-1700000000.tar");
    let made = run_command({
        let mut t = Command::new("tar");
        t.arg("-cf").arg(&archive).arg("-C").arg(&tar_dir).arg(".");
        t
    });
    assert!(made.success(), "{}", made.describe());
    let (imported, _) = c.run(
        "import-tar",
        &os(&[&"import-tar", &archive]),
        Object,
        &["imported", "failed"],
    );
    assert_eq!(imported["imported"][0]["time_source"], "name", "{imported}");
    assert_eq!(imported["imported"][0]["files"], 1, "{imported}");

    let (drill, _) = c.run(
        "drill",
        &os(&[
            &"drill",
            &snap2["id"].as_str().unwrap(),
            &"--scratch-dir",
            &v.path("scratch"),
        ]),
        Object,
        &[
            "snapshot",
            "snapshot_time",
            "hostname",
            "started",
            "passed",
            "checks",
        ],
    );
    assert_eq!(drill["passed"], true, "{drill}");

    let (forget, _) = c.run(
        "forget",
        &args(&["forget", "--keep-last", "1", "--dry-run"]),
        Object,
        &[
            "policy",
            "dry_run",
            "total",
            "to_remove",
            "removed",
            "kept_locked",
            "snapshots",
        ],
    );
    assert_eq!(forget["to_remove"], 1, "{forget}");
    let (forget, _) = c.run(
        "forget",
        &args(&["forget", "--keep-last", "1", "--prune"]),
        Object,
        &["removed", "prune"],
    );
    assert_eq!(forget["removed"], 1, "{forget}");
    assert!(
        forget["prune"]["packs_total"].as_u64().is_some(),
        "{forget}"
    );
    c.run(
        "prune",
        &args(&["prune"]),
        Object,
        &[
            "dry_run",
            "snapshots",
            "packs_total",
            "packs_deleted",
            "packs_repacked",
            "packs_written",
            "bytes_before",
            "bytes_freed",
            "kept_locked",
        ],
    );
    let offsite = v.dir.join("offsite");
    let (copy, _) = c.run(
        "copy",
        &os(&[&"copy", &"--from", &v.store, &"--to", &offsite]),
        Object,
        &[
            "from",
            "to",
            "created",
            "copied",
            "present",
            "bytes_stored",
            "kinds",
            "copied_snapshots",
            "notes",
            "problems",
        ],
    );
    assert_eq!(copy["created"], true, "{copy}");
    assert!(copy["copied"]["objects"].as_u64().unwrap() > 0, "{copy}");

    // mount serves until unmounted; its result comes then. Where FUSE is refused, the
    // failure is a JSON object too.
    let mountpoint = v.path("mnt");
    let mut child = v
        .command(os(&[&"mount", &"latest", &mountpoint, &"--json"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut mounted = false;
    while std::time::Instant::now() < deadline {
        if fs::read_dir(&mountpoint)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
        {
            mounted = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if mounted {
        let un = run_command({
            let mut u = Command::new("fusermount3");
            u.arg("-u").arg(&mountpoint);
            u
        });
        assert!(un.success(), "{}", un.describe());
    } else {
        eprintln!("SKIP: FUSE mounts are refused here; checking only that the failure is JSON");
    }
    let done = child.wait_with_output().unwrap();
    let out = common::Out {
        cmdline: "mount latest --json".into(),
        code: done.status.code(),
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stdout_bytes: done.stdout,
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    };
    let (m, out) = c.check(
        "mount",
        out,
        Object,
        &["mountpoint", "snapshot", "snapshots"],
    );
    if mounted {
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert_eq!(m["snapshots"], 1, "{m}");
    }

    let man = v.dir.join("man");
    let (pages, _) = c.run("manpages", &os(&[&"manpages", &man]), Object, &["pages"]);
    assert!(pages["pages"].as_array().unwrap().len() > 30, "{pages}");
    c.run("completions", &args(&["completions", "bash"]), Printed, &[]);

    // Every command vault has (a man page each; groups such as `key` have pages for
    // their subcommands) was run above.
    let names: Vec<String> = fs::read_dir(&man)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".1")
                .to_string()
        })
        .filter(|n| n != "vault")
        .collect();
    let leaves: Vec<&String> = names
        .iter()
        .filter(|n| !names.iter().any(|m| m.starts_with(&format!("{n}-"))))
        .collect();
    assert!(leaves.len() > 30, "{leaves:?}");
    let missing: Vec<&&String> = leaves
        .iter()
        .filter(|n| !c.covered.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "commands whose --json no test checks: {missing:?}"
    );
}

#[test]
fn quiet_prints_nothing_on_success() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    for a in [
        vec![
            OsString::from("snapshot"),
            "--quiet".into(),
            src.clone().into(),
        ],
        vec![
            OsString::from("restore"),
            "latest".into(),
            "--to".into(),
            v.dir.join("t").into(),
            "-q".into(),
        ],
        args(&["forget", "--keep-last", "1", "--quiet"]),
        args(&["prune", "--quiet"]),
        args(&["check", "--quiet"]),
    ] {
        let out = v.run(&a).ok();
        assert_eq!(out.stdout, "", "{}", out.describe());
        assert_eq!(out.stderr, "", "{}", out.describe());
    }
}

/// A file big enough that snapshot and restore take a moment.
fn big_tree(v: &Vault) -> std::path::PathBuf {
    let src = v.path("big");
    fs::write(src.join("data.bin"), random_bytes(11, 96 << 20)).unwrap();
    src
}

#[test]
fn progress_shows_on_a_terminal_and_as_periodic_lines_without_one() {
    let v = Vault::new();
    v.init();
    let src = big_tree(&v);
    // Under a pseudo-terminal (script): the bar, with the step and bytes.
    let line = shell_words(&v, &["snapshot", &src.display().to_string()]);
    let out = run_command({
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"]);
        c.env("VAULT_PASSPHRASE", &v.passphrase);
        c
    });
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("snapshot: ") && out.stdout.contains("MiB"),
        "no progress bar on the terminal: {}",
        out.describe()
    );
    // Without a terminal: plain status lines on stderr at the interval.
    let target = v.dir.join("target");
    let out = v.run([
        OsString::from("restore"),
        "latest".into(),
        "--to".into(),
        target.into(),
        "--progress-interval".into(),
        "100ms".into(),
        "--verify".into(),
    ]);
    assert!(matches!(out.code, Some(0) | Some(3)), "{}", out.describe());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("vault: restore: "))
        .collect();
    assert!(!lines.is_empty(), "no status lines: {}", out.describe());
    assert!(
        lines[0].contains(" of 1, ") || lines[0].contains("files of 1"),
        "{}",
        lines[0]
    );
    // With --json: JSON lines on stderr, one object on stdout.
    let out = v
        .run([
            "check",
            "--read-data",
            "--json",
            "--progress-interval",
            "50ms",
        ])
        .ok();
    json_of(&out);
    let progress: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        progress
            .iter()
            .any(|p| p["progress"] == "check --read-data"),
        "no JSON progress lines: {}",
        out.describe()
    );
}

#[test]
fn verbose_names_each_file_read() {
    let v = Vault::new();
    v.init();
    let src = v.path("few");
    fs::write(src.join("a.txt"), "a").unwrap();
    fs::write(src.join("b.txt"), "b").unwrap();
    // Files changed in the last 2 s are never trusted from the files cache (their stamp
    // could still change unseen); let a.txt age past that.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = v
        .run([
            OsString::from("snapshot"),
            "--verbose".into(),
            src.clone().into(),
        ])
        .ok();
    assert!(
        out.stdout
            .contains(&format!("changed   {}", src.join("a.txt").display())),
        "{}",
        out.describe()
    );
    fs::write(src.join("b.txt"), "bb").unwrap();
    let out = v
        .run([OsString::from("snapshot"), "-v".into(), src.clone().into()])
        .ok();
    assert!(out.stdout.contains("b.txt"), "{}", out.describe());
    assert!(
        !out.stdout.contains("a.txt"),
        "unchanged files are not named: {}",
        out.describe()
    );
}

#[test]
fn help_shows_global_options_apart_and_exit_statuses() {
    let v = Vault::new();
    let out = v.run(["--help"]).ok();
    assert!(out.stdout.contains("Global options:"), "{}", out.stdout);
    assert!(out.stdout.contains("Exit status:"), "{}", out.stdout);
    for code in ["  0 ", "  1 ", "  2 ", "  3 ", "130"] {
        assert!(out.stdout.contains(code), "exit status {code} undocumented");
    }
    assert!(out.stdout.contains("[env: VAULT_THREADS=]"));
    assert!(out.stdout.contains("number of cores + 1"));
    let out = v.run(["snapshot", "--help"]).ok();
    assert!(out.stdout.contains("Global options:"));
    let out = v.run(["--version"]).ok();
    assert!(out.stdout.starts_with("vault "));
    let out = v.run(["snapshots", "--no-such-flag"]);
    assert_eq!(out.code, Some(2), "{}", out.describe());
}

#[test]
fn completions_and_man_pages_generate() {
    let v = Vault::new();
    for (shell, marker) in [
        ("bash", "_vault()"),
        ("zsh", "#compdef vault"),
        ("fish", "complete -c vault"),
    ] {
        let out = v.run(["completions", shell]).ok();
        assert!(out.stdout.contains(marker), "{shell}: {}", out.describe());
        assert!(out.stdout.contains("snapshot"), "{shell}");
    }
    let dir = v.dir.join("man");
    v.run([OsString::from("manpages"), dir.clone().into()]).ok();
    for page in [
        "vault.1",
        "vault-snapshot.1",
        "vault-restore.1",
        "vault-key-export-identity.1",
        "vault-secrets-list.1",
        "vault-completions.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is no man page");
    }
    // man itself renders them.
    if Path::new("/usr/bin/man").exists() {
        let out = run_command({
            let mut c = Command::new("man");
            c.arg("-l").arg(dir.join("vault-snapshot.1"));
            c.env("MANPAGER", "cat").env("PAGER", "cat");
            c
        });
        assert!(out.success(), "{}", out.describe());
        assert!(out.stdout.contains("--tag"), "{}", out.describe());
    }
}

#[test]
fn metrics_textfile_is_written_after_each_command() {
    let v = Vault::new();
    v.init();
    let src = tree(&v);
    let prom = v.dir.join("vault.prom");
    v.run([
        OsString::from("snapshot"),
        "--metrics-file".into(),
        prom.clone().into(),
        src.into(),
    ])
    .ok();
    fs::write(
        &v.config,
        format!("[metrics]\ntextfile = {:?}\n", prom.display().to_string()),
    )
    .unwrap();
    let out = v.run(["snapshots", "--store", "/nonexistent/store"]);
    assert_eq!(out.code, Some(1));
    let text = fs::read_to_string(&prom).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("vault_bytes_read{command=\"snapshot\"")
        .ends_with(&format!(" {}", (1 << 20) + small_bytes())));
    assert!(line("vault_exit_status{command=\"snapshot\"").ends_with(" 0"));
    assert!(line("vault_exit_status{command=\"snapshots\"").ends_with(" 1"));
    line("vault_last_success_timestamp_seconds{command=\"snapshot\"");
    assert!(!text.contains("vault_last_success_timestamp_seconds{command=\"snapshots\""));
    assert!(text.contains("# TYPE vault_duration_seconds gauge"));
    // Nothing left behind but the file itself.
    let leftovers: Vec<_> = fs::read_dir(&v.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn sigterm_stops_a_snapshot_cleanly_and_releases_its_lease() {
    let v = Vault::new();
    v.init();
    let src = v.path("many");
    for i in 0..400 {
        fs::write(src.join(format!("f{i}")), random_bytes(i, 256 << 10)).unwrap();
    }
    let mut child = v
        .command([
            OsString::from("snapshot"),
            "--progress-interval".into(),
            "50ms".into(),
            src.clone().into(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for proof that it is mid-work: a status line with some files done, not all.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    let done_of = |line: &str| -> Option<u64> {
        line.strip_prefix("vault: snapshot: ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    };
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        if lines.read_line(&mut line).unwrap() == 0 {
            panic!("the snapshot ended before it reported progress: {stderr}");
        }
        stderr.push_str(&line);
        if done_of(&line).is_some_and(|n| n > 0 && n < 300) {
            break;
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the snapshot ended before the signal: {stderr}"
    );
    let pid = child.id() as i32;
    // SAFETY: kill with a pid of our own child, which has not been waited for yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    use std::io::Read;
    lines.read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    // Stopped mid-work by the signal: 128 + 15, whatever the timing.
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("vault: snapshot stopped on request: no snapshot was recorded"),
        "{stderr}"
    );
    assert!(v.snapshots_json().is_empty());
    let locks: Vec<_> = fs::read_dir(v.store.join("locks"))
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(locks.is_empty(), "lease left behind: {locks:?}");
    // The store is healthy and the next snapshot completes.
    v.run(["check"]).ok();
    v.snapshot(&[&src]);
}
