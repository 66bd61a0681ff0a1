//! A real PostgreSQL 15 cluster for tests: created with Debian's binaries
//! (`/usr/lib/postgresql/15/bin`) in a folder of the test, run as `nobody` on a Unix
//! socket in that folder (`listen_addresses = ''`: no TCP), stopped and removed with it.
//!
//! The folder given to [`Cluster::init`] must be reachable by `nobody`; [`open_up`] makes a
//! test's temporary folder so.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
/// uid and gid the server runs as.
pub const OWNER: (u32, u32) = (65534, 65534);
/// The superuser initdb creates.
pub const SUPERUSER: &str = "postgres";

pub fn bin(name: &str) -> PathBuf {
    Path::new(BIN).join(name)
}

/// Panics with what to install when PostgreSQL 15 is missing.
pub fn require() {
    for b in [
        "initdb",
        "pg_ctl",
        "postgres",
        "psql",
        "pgbench",
        "pg_amcheck",
    ] {
        assert!(
            bin(b).exists(),
            "{} is missing: install Debian's postgresql-15 and postgresql-contrib (`bash .ci/test` does)",
            bin(b).display()
        );
    }
}

/// Lets `nobody` pass through `dir` and every folder above it.
pub fn open_up(dir: &Path) {
    let mut p = Some(dir);
    while let Some(d) = p {
        if d == Path::new("/") {
            break;
        }
        let mode = fs::metadata(d).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o011)).unwrap();
        }
        p = d.parent();
    }
}

fn as_owner(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", OWNER.0))
        .arg(format!("--regid={}", OWNER.1))
        .arg("--clear-groups")
        .arg(program);
    c
}

fn run(mut c: Command) -> (bool, String) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .expect("run a PostgreSQL tool");
    (
        out.status.success(),
        format!(
            "{:?}: {}\n{}{}",
            c,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub struct Cluster {
    pub data: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    running: bool,
}

impl Cluster {
    /// initdb into `parent/NAME/data`; `conf` lines go to postgresql.conf.
    pub fn init(parent: &Path, name: &str, conf: &[&str]) -> Cluster {
        require();
        let base = parent.join(name);
        fs::create_dir_all(&base).unwrap();
        std::os::unix::fs::chown(&base, Some(OWNER.0), Some(OWNER.1)).unwrap();
        let c = Cluster::at(&base.join("data"), &base, 5432);
        let mut cmd = as_owner(&bin("initdb"));
        cmd.arg("-D")
            .arg(&c.data)
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .env("LC_ALL", "C");
        let (ok, out) = run(cmd);
        assert!(ok, "initdb failed\n{out}");
        let mut text = fs::read_to_string(c.data.join("postgresql.conf")).unwrap();
        text.push_str("\nlisten_addresses = ''\nfsync = off\n");
        for l in conf {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(c.data.join("postgresql.conf"), text).unwrap();
        c
    }

    /// A cluster whose data directory already exists (a restored copy); its socket goes
    /// to `base/sock`.
    pub fn at(data: &Path, base: &Path, port: u16) -> Cluster {
        let sock = base.join("sock");
        fs::create_dir_all(&sock).unwrap();
        std::os::unix::fs::chown(&sock, Some(OWNER.0), Some(OWNER.1)).unwrap();
        Cluster {
            data: data.to_path_buf(),
            sock,
            port,
            log: base.join("server.log"),
            running: false,
        }
    }

    /// Starts the server and waits until it accepts connections (recovery done).
    pub fn start(&mut self) -> Result<(), String> {
        let _ = fs::remove_file(&self.log);
        let mut cmd = as_owner(&bin("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(format!(
                "-c listen_addresses='' -k {} -p {}",
                self.sock.display(),
                self.port
            ))
            .args(["-w", "-t", "300", "start"]);
        // The log file's folder belongs to root: let the server write it.
        if let Some(dir) = self.log.parent() {
            open_up(dir);
            let _ = fs::write(&self.log, "");
            std::os::unix::fs::chown(&self.log, Some(OWNER.0), Some(OWNER.1)).unwrap();
        }
        let (ok, out) = run(cmd);
        self.running = true;
        if ok {
            Ok(())
        } else {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            Err(format!("{out}\n--- server log ---\n{log}"))
        }
    }

    pub fn stop(&mut self) {
        if self.running {
            let mut cmd = as_owner(&bin("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]);
            let (ok, _) = run(cmd);
            if !ok {
                let mut cmd = as_owner(&bin("pg_ctl"));
                cmd.arg("-D")
                    .arg(&self.data)
                    .args(["-m", "immediate", "stop"]);
                let _ = run(cmd);
            }
            self.running = false;
        }
    }

    /// psql's connection options for this server.
    pub fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.sock.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "-d".into(),
            "postgres".into(),
        ]
    }

    /// The `psql` argv for `[[postgres]]`.
    pub fn psql_argv(&self) -> Vec<String> {
        let mut v = vec![bin("psql").display().to_string()];
        v.extend(self.conn_args());
        v
    }

    /// Runs SQL and returns the unaligned, tuples-only output; panics on failure.
    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let mut c = Command::new(bin("psql"));
        c.args(self.conn_args())
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = c.stdin(Stdio::null()).output().expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `pgbench -i -s SCALE`.
    pub fn pgbench_init(&self, scale: u32) {
        let mut c = Command::new(bin("pgbench"));
        c.args(self.conn_args())
            .args(["-i", "-q", "-s", &scale.to_string()]);
        let (ok, out) = run(c);
        assert!(ok, "pgbench -i failed\n{out}");
    }

    /// pgbench with `clients` clients for `secs` seconds, in the background.
    pub fn pgbench_load(&self, clients: u32, secs: u32) -> Child {
        Command::new(bin("pgbench"))
            .args(self.conn_args())
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &secs.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbench")
    }

    /// The four pgbench sums: accounts, branches, tellers, history.
    pub fn pgbench_sums(&self) -> [i64; 4] {
        let out = self.sql(
            "select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), \
             (select sum(tbalance) from pgbench_tellers), (select coalesce(sum(delta), 0) from pgbench_history)",
        );
        let v: Vec<i64> = out.split('|').map(|x| x.trim().parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    }

    /// `pg_amcheck --heapallindexed` over every database; Err with its report.
    pub fn amcheck(&self) -> Result<(), String> {
        let mut c = Command::new(bin("pg_amcheck"));
        c.args([
            "-h",
            &self.sock.display().to_string(),
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
            "--all",
            "--install-missing",
            "--heapallindexed",
        ]);
        let (ok, out) = run(c);
        if ok {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// Waits until `sql` returns `want`.
    pub fn wait_for(&self, sql: &str, want: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.try_sql(sql).as_deref() == Ok(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `CHECKPOINT` on the server every `every` until the returned guard is dropped.
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(c: &Cluster, every: Duration) -> Checkpointer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let args = c.conn_args();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new(bin("psql"))
                    .args(&args)
                    .args(["-X", "-q", "-c", "checkpoint"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(every);
            }
        });
        Checkpointer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
