//! `vault diff`, `vault find` and `vault ls`: their JSON parses and holds the documented
//! fields, with the right values; the text forms say the same.

mod common;

use common::Vault;
use std::fs;
use std::path::Path;

fn json(out: &common::Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", out.describe()))
}

/// Two snapshots of one folder, with every kind of change between them.
fn two_snapshots(v: &Vault) -> (std::path::PathBuf, String, String) {
    let src = v.path("src");
    fs::write(src.join("same.txt"), b"unchanged").unwrap();
    fs::write(src.join("content.txt"), b"before").unwrap();
    fs::write(src.join("mode.txt"), b"mode").unwrap();
    fs::write(src.join("gone.txt"), b"removed later").unwrap();
    std::os::unix::fs::symlink("same.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/travis.yml"), b"encryption: one\n").unwrap();
    v.init();
    v.snapshot(&[&src]);
    fs::write(src.join("content.txt"), b"after, and longer").unwrap();
    fs::set_permissions(
        src.join("mode.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::remove_file(src.join("gone.txt")).unwrap();
    fs::write(src.join("added.bin"), vec![7u8; 5000]).unwrap();
    fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("content.txt", src.join("link")).unwrap();
    common::sys::set_xattr(&src.join("same.txt"), b"user.note", b"x").unwrap_or(());
    v.snapshot(&[&src]);
    let ids = v.snapshot_ids();
    (src, ids[0].clone(), ids[1].clone())
}

fn change<'a>(changes: &'a [serde_json::Value], path: &Path) -> Option<&'a serde_json::Value> {
    changes.iter().find(|c| c["path"].as_str() == path.to_str())
}

#[test]
fn diff_lists_what_changed_and_how() {
    let v = Vault::new();
    let (src, a, b) = two_snapshots(&v);
    let out = v.run(["diff", &a, &b, "--json"]).ok();
    let d = json(&out);
    let changes = d["changes"].as_array().expect("changes").clone();
    let what = |p: &str| -> Vec<String> {
        change(&changes, &src.join(p)).unwrap_or_else(|| panic!("{p} not listed\n{}", out.stdout))
            ["what"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    assert!(what("content.txt").contains(&"content".to_string()));
    assert!(what("mode.txt").contains(&"mode".to_string()));
    assert!(what("link").contains(&"link target".to_string()));
    if common::sys::xattrs(&src.join("same.txt"))
        .map(|x| !x.is_empty())
        .unwrap_or(false)
    {
        assert!(what("same.txt").contains(&"xattrs".to_string()));
    }
    let added = change(&changes, &src.join("added.bin")).expect("added.bin");
    assert_eq!(added["change"], "added");
    assert_eq!(added["type"], "file");
    assert_eq!(added["new_size"], 5000);
    let gone = change(&changes, &src.join("gone.txt")).expect("gone.txt");
    assert_eq!(gone["change"], "removed");
    assert_eq!(gone["old_size"], 13);
    assert!(change(&changes, &src.join("sub/travis.yml")).is_none());
    let s = &d["summary"];
    assert_eq!(s["added"], 1);
    assert_eq!(s["removed"], 1);
    assert_eq!(s["added_bytes"], 5000);
    assert_eq!(s["removed_bytes"], 13);
    assert!(s["changed"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["changed_bytes"], 17);

    // The text form, and a PATH limit.
    let text = v.run(["diff", &a, &b]).ok().stdout;
    assert!(
        text.contains(&format!("+ {}", src.join("added.bin").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("- {}", src.join("gone.txt").display())),
        "{text}"
    );
    let only = v
        .run([
            "diff".as_ref(),
            a.as_str().as_ref(),
            b.as_str().as_ref(),
            src.join("sub").as_os_str(),
            "--json".as_ref(),
        ])
        .ok();
    assert_eq!(
        json(&only)["changes"].as_array().unwrap().len(),
        0,
        "{}",
        only.stdout
    );
}

#[test]
fn find_names_the_snapshots_holding_a_match() {
    let v = Vault::new();
    let (src, a, b) = two_snapshots(&v);
    let out = v.run(["find", "*.yml", "--json"]).ok();
    let hits = json(&out);
    let hits = hits.as_array().expect("a list");
    assert_eq!(hits.len(), 2, "{}", out.stdout);
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h["snapshot"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()),
        "{ids:?}"
    );
    for h in hits {
        assert!(h["host"].is_string() && h["time"].is_string(), "{h}");
        let m = &h["matches"].as_array().unwrap()[0];
        assert_eq!(m["path"].as_str(), src.join("sub/travis.yml").to_str());
        assert_eq!(m["size"], 16);
        assert_eq!(m["type"], "file");
        assert!(m["mtime"].as_str().unwrap().starts_with("20"), "{m}");
    }
    // Only in the second snapshot.
    let out = v.run(["find", "added.*", "--json"]).ok();
    let hits = json(&out);
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["snapshot"].as_str(), Some(b.as_str()));
    // A path pattern.
    let out = v.run(["find", "src/sub/*", "--json"]).ok();
    assert_eq!(json(&out).as_array().unwrap().len(), 2, "{}", out.stdout);
    // Nothing.
    let out = v.run(["find", "nothing-like-this", "--json"]).ok();
    assert_eq!(json(&out).as_array().unwrap().len(), 0);
    // A bad pattern is a usage error naming it.
    let out = v.run(["find", "a[", "--json"]).failed();
    assert!(out.stderr.contains("a["), "{}", out.describe());
}

#[test]
fn ls_json_and_long() {
    let v = Vault::new();
    let (src, _, b) = two_snapshots(&v);
    let out = v
        .run([
            "ls".as_ref(),
            b.as_str().as_ref(),
            src.as_os_str(),
            "--json".as_ref(),
        ])
        .ok();
    let list = json(&out);
    let list = list.as_array().expect("a list");
    let entry = |p: &str| {
        list.iter()
            .find(|e| e["path"].as_str() == src.join(p).to_str())
            .unwrap_or_else(|| panic!("{p} not listed\n{}", out.stdout))
    };
    let added = entry("added.bin");
    assert_eq!(added["type"], "file");
    assert_eq!(added["size"], 5000);
    assert_eq!(added["mode"], "0644");
    assert_eq!(added["permissions"], "-rw-r--r--");
    assert!(added["uid"].is_u64() && added["gid"].is_u64(), "{added}");
    assert!(added["mtime"].is_string());
    assert_eq!(entry("mode.txt")["mode"], "0600");
    assert_eq!(entry("link")["type"], "symlink");
    assert_eq!(entry("link")["target"], "content.txt");
    assert_eq!(entry("sub")["type"], "dir");

    let long = v
        .run([
            "ls".as_ref(),
            b.as_str().as_ref(),
            src.as_os_str(),
            "-l".as_ref(),
        ])
        .ok()
        .stdout;
    let line = long
        .lines()
        .find(|l| l.ends_with("added.bin"))
        .unwrap_or_else(|| panic!("{long}"));
    assert!(line.starts_with("-rw-r--r-- "), "{line}");
    assert!(line.contains("4.9 KiB"), "human size: {line}");
    let link = long.lines().find(|l| l.contains("/link")).unwrap();
    assert!(
        link.starts_with('l') && link.ends_with("-> content.txt"),
        "{link}"
    );
    let short = v
        .run(["ls".as_ref(), b.as_str().as_ref(), src.as_os_str()])
        .ok()
        .stdout;
    assert!(
        short
            .lines()
            .any(|l| l == src.join("added.bin").to_str().unwrap()),
        "{short}"
    );
}
