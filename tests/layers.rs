//! The library's layers have no cycles: a module uses only modules of the layers below it
//! (or earlier in its own layer). The order is the one written in the crate docs
//! (`src/lib.rs`); this test reads every `crate::...` path in the code of `src/` (not in
//! comments or unit tests) and fails, naming the file, where a module reaches up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest first. Keep in step with the map in `src/lib.rs`.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["id", "error", "host", "parallel", "passphrase", "progress"],
    ),
    ("storage", &["backend"]),
    (
        "format",
        &[
            "crypto", "sign", "tree", "fsmeta", "acl", "pack", "hosts", "keys", "repo", "chunker",
            "cache", "lock",
        ],
    ),
    ("reading", &["reader", "walk", "select"]),
    (
        "operations",
        &[
            "retention",
            "forget",
            "prune",
            "object_lock",
            "check",
            "repair",
            "copy",
            "backup",
            "postgres",
            "hooks",
            "restore",
            "diff",
            "find",
            "mount",
            "import_tar",
            "dump",
            "stats",
            "secrets",
            "drill",
            "upgrade",
        ],
    ),
    ("session", &["session"]),
    ("configuration", &["config"]),
];

fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .flat_map(|(_, mods)| mods.iter())
        .position(|m| *m == module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named by `crate::NAME` and `crate::{NAME, ...}` paths.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group ends at its matching brace.
            let mut depth = 0;
            let mut end = group.len();
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = j;
                        break;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // Top-level items of the group: split on commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            let inner = &group[..end];
            for (j, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(inner[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(inner[start..].trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    // Items re-exported at the crate root belong to these modules.
    out.retain(|m| !m.is_empty());
    out.into_iter()
        .map(|m| match m.as_str() {
            "Error" | "Result" => "error".to_string(),
            "Id" => "id".to_string(),
            _ => m,
        })
        .filter(|m| m.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .collect()
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = first.trim_end_matches(".rs");
        if matches!(module, "cli" | "main" | "lib") {
            continue; // The CLI is the top layer; lib.rs only declares modules.
        }
        seen_modules.insert(module.to_string());
        let Some(own) = rank(module) else {
            problems.push(format!(
                "{}: module `{module}` has no place in the layer order (add it to LAYERS here and to the map in src/lib.rs)",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&code(&text)) {
            if used == module {
                continue;
            }
            match rank(&used) {
                Some(r) if r < own => {}
                Some(_) => problems.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which is not below it",
                    rel.display()
                )),
                None => problems.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which has no place in the layer order",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        problems.join("\n")
    );
    // The order names no module that is gone.
    for (_, mods) in LAYERS {
        for m in *mods {
            assert!(
                seen_modules.contains(*m),
                "LAYERS names `{m}`, which src/ lacks"
            );
        }
    }
}

#[test]
fn the_check_sees_grouped_and_plain_paths() {
    let found = used_modules(&code(
        "use crate::{backend::{Kind, Backend}, id::Id, Error};\n// crate::restore in a comment\nlet x = crate::pack::MAGIC;\n",
    ));
    let expected: BTreeSet<String> = ["backend", "id", "error", "pack"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}

/// The crate docs carry the same order.
#[test]
fn the_crate_docs_list_the_layers() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for (layer, mods) in LAYERS {
        assert!(
            lib.contains(layer),
            "src/lib.rs does not name the layer {layer}"
        );
        for m in *mods {
            assert!(
                lib.contains(&format!("[`{m}`]")),
                "src/lib.rs does not list `{m}`"
            );
        }
    }
}
