//! moto's S3 server for tests that need S3 Object Lock (Garage has none): one server per
//! [`Moto::start`], on a free 127.0.0.1 port, killed when the [`Moto`] is dropped (and when
//! the test process dies: the server gets SIGKILL with its parent thread).
//!
//! Include it with `#[path = "moto/mod.rs"] mod moto;`. moto and boto3 come from the
//! virtualenv `.ci/moto.sh` installs (`$VAULT_MOTO_VENV`, else
//! `${XDG_CACHE_HOME:-~/.cache}/vault-moto/venv`); when it is missing, the harness runs
//! that script itself (once, under a file lock).
//!
//! moto enforces Object Lock as S3 does: a version under retention cannot be deleted
//! (`AccessDenied`), a delete without a version id only lays a delete marker, and a PUT
//! to an existing key adds a version. It does not check signatures, and it has no
//! GetObjectRetention (HEAD carries the object-lock headers instead). The helpers here
//! talk to it through boto3, independently of vault's own S3 client, so a test can check
//! what vault wrote with a second opinion, and set retention dates vault would never set
//! (shorter ones, with the governance bypass).
#![allow(dead_code)]

#[path = "../support/host.rs"]
mod host;
pub use host::unique;
use host::{free_port, home};

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use vault::backend::s3::S3Config;

pub const REGION: &str = "us-east-1";
pub const KEY_ID: &str = "testing";
pub const SECRET: &str = "testing";

pub struct Moto {
    pub python: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

/// The virtualenv `.ci/moto.sh` installs into.
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("VAULT_MOTO_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"));
    cache.join("vault-moto/venv")
}

fn usable(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", "import moto, moto.server, boto3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The virtualenv's python, installing moto first when needed.
pub fn find_or_install() -> PathBuf {
    let python = venv().join("bin/python");
    if usable(&python) {
        return python;
    }
    let lock_path = std::env::temp_dir().join("vault-moto-install.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("open the moto install lock");
    use std::os::unix::io::AsRawFd;
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if usable(&python) {
        return python;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/moto.sh");
    eprintln!(
        "moto not found in {}: running {}",
        venv().display(),
        script.display()
    );
    let status = Command::new("sh")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .expect("run .ci/moto.sh");
    assert!(
        status.success(),
        "{} failed; run it by hand to see why",
        script.display()
    );
    assert!(
        usable(&python),
        "{} ran, but {} cannot import moto and boto3",
        script.display(),
        python.display()
    );
    python
}

/// Starts `python -m moto.server` from a thread that lives as long as the process, so the
/// parent-death signal fires only when the test process goes.
fn spawn_server(python: &Path, port: u16, log: &Path) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    let (python, log) = (python.to_path_buf(), log.to_path_buf());
    std::thread::Builder::new()
        .name("moto-parent".into())
        .spawn(move || {
            let log = std::fs::File::create(&log).expect("create the moto log");
            let mut cmd = Command::new(&python);
            cmd.args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            tx.send(cmd.spawn()).unwrap();
            loop {
                std::thread::park();
            }
        })
        .expect("start the moto parent thread");
    rx.recv().unwrap().expect("start moto's S3 server")
}

impl Moto {
    /// Starts a fresh, empty server and waits until it answers S3 requests.
    pub fn start() -> Moto {
        let python = find_or_install();
        let mut last = String::new();
        // Another process may take the free port before the server binds it: try again.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("vault-moto-")
                .tempdir()
                .unwrap();
            let port = free_port();
            let child = spawn_server(&python, port, &dir.path().join("server.log"));
            let moto = Moto {
                python: python.clone(),
                endpoint: format!("http://127.0.0.1:{port}"),
                dir,
                child: Mutex::new(Some(child)),
            };
            match moto.wait_ready(port) {
                Ok(()) => return moto,
                Err(e) => last = format!("{e}\n--- server log ---\n{}", moto.log()),
            }
        }
        panic!("moto's S3 server did not start: {last}")
    }

    fn wait_ready(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("the server exited ({status})"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && self
                    .try_python("print(len(s3.list_buckets()['Buckets']))", &[])
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no answer within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// S3 settings for vault's client.
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some(REGION.into()),
            path_style: Some(true),
            access_key_id: Some(KEY_ID.into()),
            secret_access_key: Some(SECRET.into()),
            max_attempts: Some(2),
            ..Default::default()
        }
    }

    /// The environment the vault CLI reads its S3 settings from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    /// Runs a python snippet with `s3` (a boto3 client for this server), `sys`, `json` and
    /// `datetime` in scope and `args` in `sys.argv[1:]`; returns its standard output.
    pub fn try_python(&self, script: &str, args: &[&str]) -> Result<String, String> {
        let prelude = format!(
            "import sys, json, datetime, boto3\n\
             from botocore.config import Config\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{KEY_ID}', \
             aws_secret_access_key='{SECRET}', region_name='{REGION}', \
             config=Config(retries={{'max_attempts': 1}}))\n",
            self.endpoint
        );
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.python.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "python: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    #[track_caller]
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        self.try_python(script, args).unwrap_or_else(|e| {
            panic!(
                "{e}\n--- server log (tail) ---\n{}",
                tail(&self.log(), 4000)
            )
        })
    }

    /// Creates a bucket named after `base` (made unique), with Object Lock (and so
    /// versioning) enabled or not, and returns its name.
    pub fn bucket(&self, base: &str, object_lock: bool) -> String {
        let name = unique(base);
        let flag = if object_lock { "1" } else { "" };
        self.python(
            "s3.create_bucket(Bucket=sys.argv[1], ObjectLockEnabledForBucket=bool(sys.argv[2]))",
            &[&name, flag],
        );
        name
    }

    /// Mode and retain-until date of a key's current version, as a HEAD reports them.
    pub fn retention(&self, bucket: &str, key: &str) -> Option<(String, SystemTime)> {
        let out = self.python(
            "h = s3.head_object(Bucket=sys.argv[1], Key=sys.argv[2])\n\
             if 'ObjectLockRetainUntilDate' in h:\n\
             \x20   print(h.get('ObjectLockMode', ''), h['ObjectLockRetainUntilDate'].timestamp())",
            &[bucket, key],
        );
        let mut words = out.split_whitespace();
        let mode = words.next()?.to_string();
        let secs: f64 = words.next()?.parse().ok()?;
        Some((mode, SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)))
    }

    /// Retain-until dates of the current version of every key under `prefix` (keys
    /// without retention are left out).
    pub fn retentions(&self, bucket: &str, prefix: &str) -> Vec<(String, SystemTime)> {
        let out = self.python(
            "p = s3.get_paginator('list_objects_v2')\n\
             for page in p.paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       h = s3.head_object(Bucket=sys.argv[1], Key=o['Key'])\n\
             \x20       if 'ObjectLockRetainUntilDate' in h:\n\
             \x20           print(o['Key'], h['ObjectLockRetainUntilDate'].timestamp())",
            &[bucket, prefix],
        );
        out.lines()
            .filter_map(|l| {
                let (k, t) = l.rsplit_once(' ')?;
                Some((
                    k.to_string(),
                    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t.parse().ok()?),
                ))
            })
            .collect()
    }

    /// Sets the retention of the current version of each key to `until` in governance
    /// mode, bypassing governance (so it may also shorten it), as an admin could.
    pub fn set_retention(&self, bucket: &str, keys: &[String], until: SystemTime) {
        let secs = until
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let mut args = vec![bucket, secs.as_str()];
        args.extend(keys.iter().map(|k| k.as_str()));
        self.python(
            "until = datetime.datetime.fromtimestamp(int(sys.argv[2]), datetime.timezone.utc)\n\
             for k in sys.argv[3:]:\n\
             \x20   s3.put_object_retention(Bucket=sys.argv[1], Key=k, BypassGovernanceRetention=True, \
             Retention={'Mode': 'GOVERNANCE', 'RetainUntilDate': until})",
            &args,
        );
    }

    /// How many versions and delete markers a key has.
    pub fn versions(&self, bucket: &str, key: &str) -> (usize, usize) {
        let out = self.python(
            "r = s3.list_object_versions(Bucket=sys.argv[1], Prefix=sys.argv[2])\n\
             v = [x for x in r.get('Versions', []) if x['Key'] == sys.argv[2]]\n\
             m = [x for x in r.get('DeleteMarkers', []) if x['Key'] == sys.argv[2]]\n\
             print(len(v), len(m))",
            &[bucket, key],
        );
        let mut n = out.split_whitespace().map(|w| w.parse().unwrap());
        (n.next().unwrap(), n.next().unwrap())
    }

    /// Every key under `prefix` (current versions).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.python(
            "p = s3.get_paginator('list_objects_v2')\n\
             for page in p.paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       print(o['Key'])",
            &[bucket, prefix],
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
