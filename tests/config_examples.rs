//! The shipped example configurations load, as they are and with every commented-out
//! setting switched on, so they never drift from what the loader reads.

use std::path::PathBuf;

fn example(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// Switches on every commented-out setting: `# key = value` lines, `# [table]` headers
/// and the lines of a commented-out array that spans several lines.
fn uncomment(text: &str) -> String {
    let mut out = String::new();
    let mut in_array = false;
    for line in text.lines() {
        let body = line.strip_prefix("# ").or_else(|| line.strip_prefix("#"));
        let setting = body.filter(|b| {
            let b = b.trim_start();
            b.starts_with('[')
                || b.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        });
        match (in_array, setting, body) {
            (true, _, Some(b)) => {
                out.push_str(b);
                if b.trim_start().starts_with(']') {
                    in_array = false;
                }
            }
            (false, Some(b), _) => {
                out.push_str(b);
                if b.trim_end().ends_with('[') {
                    in_array = true;
                }
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Tables that other parts of the program read once they are built in: while the loader
/// does not know one yet, it is left out of the "everything switched on" check (any key
/// the loader does know must still be right).
const TABLES_ADDED_LATER: [&str; 0] = [];

fn without_table(text: &str, table: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']');
            skipping = name == table || name.starts_with(&format!("{table}."));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn parse_all_switched_on(name: &str) {
    let (path, text) = example(name);
    let mut text = uncomment(&text);
    loop {
        match vault::config::Config::parse(&text) {
            Ok(_) => return,
            Err(e) => {
                let later = TABLES_ADDED_LATER
                    .iter()
                    .find(|t| e.contains(&format!("unknown field `{t}`")));
                match later {
                    Some(t) => text = without_table(&text, t),
                    None => panic!(
                        "{} with every setting switched on does not load: {e}\n{text}",
                        path.display()
                    ),
                }
            }
        }
    }
}

#[test]
fn platform_example_loads() {
    let (path, text) = example("vault.toml");
    let c =
        vault::config::Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(c.store.as_deref(), Some("/var/backups/vault"));
    assert_eq!(c.retention.keep_daily, 7);
}

#[test]
fn worker_example_loads() {
    let (path, text) = example("vault-worker.toml");
    let c =
        vault::config::Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!c.secrets.default_sources);
}

#[test]
fn platform_example_with_every_setting_switched_on_loads() {
    parse_all_switched_on("vault.toml");
}

#[test]
fn worker_example_with_every_setting_switched_on_loads() {
    parse_all_switched_on("vault-worker.toml");
}

#[test]
fn switched_on_example_names_every_table_the_loader_reads() {
    let (_, text) = example("vault.toml");
    let text = uncomment(&text);
    for table in [
        "[chunker]",
        "[retention]",
        "[s3]",
        "[secrets]",
        "[secrets.sources.",
        "[hooks]",
        "[hooks.restore]",
        "[[postgres]]",
        "[drill]",
        "[metrics]",
        "[progress]",
    ] {
        assert!(text.contains(table), "config/vault.toml lacks {table}");
    }
    let c = vault::config::Config::parse(&without_table(
        &without_table(&without_table(&text, "hooks"), "postgres"),
        "drill",
    ))
    .unwrap();
    assert!(c.metrics.textfile.is_some());
    assert_eq!(c.progress.interval.as_deref(), Some("60s"));
    assert!(c.s3.endpoint.is_some() && c.s3.max_retry_secs.is_some());
    assert!(c.chunker.max_size.is_some() && c.threads.is_some());
}

#[test]
fn the_loader_rejects_unknown_keys() {
    for text in [
        "stor = \"/x\"",
        "[retention]\nkeep_dayly = 3",
        "[metrics]\ntextfle = \"/x\"",
    ] {
        assert!(
            vault::config::Config::parse(text).is_err(),
            "accepted {text:?}"
        );
    }
}
