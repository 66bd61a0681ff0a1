//! `vault drill` against a store holding a real PostgreSQL 15 cluster (run as `nobody` on
//! a Unix socket in the test's folder): it passes on a good snapshot, and fails naming the
//! check on a damaged pack, a cluster that cannot start, and a travis.yml whose encryption
//! key is no longer the sealed one. The scratch folder is gone afterwards either way.

mod common;
#[path = "support/postgres.rs"]
mod postgres;

use common::Vault;
use postgres::Cluster;
use std::fs;
use std::path::{Path, PathBuf};

const KEY: &str = "0f3a9d2c7b1e4f5a8c6d2e9b3a7f1c4d5e6b8a9c0d1e2f3a4b5c6d7e8f9a0b1c";
const OTHER_KEY: &str = "aaaa9d2c7b1e4f5a8c6d2e9b3a7f1c4d5e6b8a9c0d1e2f3a4b5c6d7e8f9a0b1c";

struct World {
    v: Vault,
    etc: PathBuf,
    scratch: PathBuf,
    metrics: PathBuf,
}

/// A store whose escrow is a passphrase (so secrets are sealed at each snapshot), a
/// travis.yml in `etc/`, and a config naming `extra` besides.
fn world(extra: &str) -> World {
    let v = Vault::new();
    let escrow_pass = v.dir.join("escrow-pass");
    fs::write(&escrow_pass, "escrow passphrase for the test\n").unwrap();
    v.run([
        std::ffi::OsStr::new("init"),
        "--escrow-passphrase".as_ref(),
        "--escrow-passphrase-file".as_ref(),
        escrow_pass.as_os_str(),
    ])
    .ok();
    postgres::open_up(&v.dir);
    let etc = v.path("etc");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/travis.yml"),
        etc.join("travis.yml"),
    )
    .unwrap();
    let scratch = v.path("scratch");
    let metrics = v.dir.join("drill.prom");
    let w = World {
        etc,
        scratch,
        metrics,
        v,
    };
    w.config(extra);
    w
}

impl World {
    fn config(&self, extra: &str) {
        fs::write(
            &self.v.config,
            format!(
                "[secrets]\ntravis_yml = [{:?}]\n[drill]\nsql = [\"select count(*) from pgbench_branches\"]\n{extra}",
                self.etc.join("travis.yml").display().to_string()
            ),
        )
        .unwrap();
    }

    fn snapshot(&self, paths: &[&Path]) -> String {
        let mut args: Vec<std::ffi::OsString> =
            vec!["snapshot".into(), "--host".into(), "drilled".into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        let out = self.v.run(args).ok();
        assert!(
            out.stderr.contains("sealed"),
            "the snapshot sealed the secrets\n{}",
            out.describe()
        );
        self.v.snapshot_ids().pop().unwrap()
    }

    fn drill(&self, snapshot: &str) -> (common::Out, serde_json::Value) {
        let out = self.v.run([
            std::ffi::OsStr::new("drill"),
            snapshot.as_ref(),
            "--host".as_ref(),
            "drilled".as_ref(),
            "--json".as_ref(),
            "--scratch-dir".as_ref(),
            self.scratch.as_os_str(),
            "--metrics-file".as_ref(),
            self.metrics.as_os_str(),
        ]);
        let report = serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null);
        assert_eq!(
            fs::read_dir(&self.scratch).unwrap().count(),
            0,
            "the scratch folder (and the drill's cache) is removed\n{}",
            out.describe()
        );
        (out, report)
    }

    fn metrics_passed(&self) -> String {
        let text = fs::read_to_string(&self.metrics).unwrap();
        assert!(
            text.contains("vault_drill_last_run_timestamp_seconds "),
            "{text}"
        );
        assert!(text.contains("vault_drill_duration_seconds "), "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("vault_drill_passed "))
            .unwrap()
            .to_string()
    }
}

fn check<'a>(report: &'a serde_json::Value, name_part: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().contains(name_part))
        .unwrap_or_else(|| panic!("no check named like {name_part:?} in {report:#}"))
}

fn running_cluster(w: &World) -> Cluster {
    let mut c = Cluster::init(&w.v.dir, "pg", &[]);
    c.start().unwrap();
    c.pgbench_init(1);
    w.config(&format!(
        "[[postgres]]\ndata_dir = {:?}\npsql = [{}]\n",
        c.data.display().to_string(),
        c.psql_argv()
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    c
}

#[test]
fn drill_passes_on_a_store_holding_a_running_cluster() {
    let w = world("");
    let c = running_cluster(&w);
    w.snapshot(&[&w.etc, &c.data]);
    let (out, report) = w.drill("latest");
    let out = out.ok();
    assert_eq!(report["passed"], true, "{}", out.describe());
    for name in [
        "restore",
        "verify",
        ": start",
        "pg_amcheck",
        "sql: select count(*) from pgbench_branches",
        ": stop",
        "secrets",
        "cleanup",
    ] {
        assert_eq!(
            check(&report, name)["outcome"],
            "passed",
            "{name}: {report:#}"
        );
    }
    assert!(
        check(&report, "sql:")["detail"]
            .as_str()
            .unwrap()
            .contains("\"1\""),
        "{report:#}"
    );
    assert_eq!(w.metrics_passed(), "1");
    // The original server is untouched and still serves.
    assert_eq!(c.sql("select count(*) from pgbench_branches"), "1");
}

#[test]
fn drill_names_a_damaged_pack() {
    let w = world("");
    let c = running_cluster(&w);
    w.snapshot(&[&w.etc, &c.data]);
    // Flip bytes in the middle of the largest pack.
    let (pack, len) = common::files_by_size(&w.v.store.join("packs"))
        .into_iter()
        .next()
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    for b in &mut bytes[(len / 2) as usize..(len / 2) as usize + 64] {
        *b ^= 0x5a;
    }
    fs::write(&pack, bytes).unwrap();
    let (out, report) = w.drill("latest");
    let out = out.failed();
    assert_eq!(report["passed"], false, "{}", out.describe());
    assert_eq!(check(&report, "restore")["outcome"], "failed", "{report:#}");
    assert!(
        out.stderr.contains("drill failed: restore"),
        "{}",
        out.describe()
    );
    assert_eq!(w.metrics_passed(), "0");
}

#[test]
fn drill_names_a_cluster_that_cannot_start() {
    let w = world("");
    let mut c = Cluster::init(&w.v.dir, "pg", &[]);
    c.start().unwrap();
    c.pgbench_init(1);
    c.stop();
    // A configuration the server refuses, as a hand-edited file on the platform could be.
    let conf = c.data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text.push_str("\nshared_buffers = 'not a size'\n");
    fs::write(&conf, text).unwrap();
    w.snapshot(&[&w.etc, &c.data]);
    let (out, report) = w.drill("latest");
    let out = out.failed();
    let start = check(&report, ": start");
    assert_eq!(start["outcome"], "failed", "{report:#}");
    assert!(
        start["detail"].as_str().unwrap().contains("shared_buffers"),
        "{report:#}"
    );
    assert_eq!(check(&report, "restore")["outcome"], "passed");
    assert_eq!(check(&report, "secrets")["outcome"], "passed");
    assert!(out.stderr.contains(": start"), "{}", out.describe());
    assert_eq!(w.metrics_passed(), "0");
}

#[test]
fn drill_names_a_changed_encryption_key() {
    let w = world("");
    let first = w.snapshot(&[&w.etc]);
    // The platform's key changes; the next snapshot seals the new one.
    let yml = w.etc.join("travis.yml");
    let text = fs::read_to_string(&yml).unwrap().replace(KEY, OTHER_KEY);
    fs::write(&yml, text).unwrap();
    w.snapshot(&[&w.etc]);
    let (out, report) = w.drill(&first);
    let out = out.failed();
    let secrets = check(&report, "secrets");
    assert_eq!(secrets["outcome"], "failed", "{report:#}");
    assert!(
        secrets["detail"]
            .as_str()
            .unwrap()
            .contains("encryption-key"),
        "{report:#}"
    );
    assert!(
        !out.all().contains(KEY) && !out.all().contains(OTHER_KEY),
        "no secret in the report"
    );
    assert!(
        out.stderr.contains("drill failed: secrets"),
        "{}",
        out.describe()
    );
    // The newest snapshot holds the newest key: its drill passes.
    let (out, report) = w.drill("latest");
    out.ok();
    assert_eq!(check(&report, "secrets")["outcome"], "passed", "{report:#}");
}
