//! A real S3 server for tests: one single-node Garage per test binary, on 127.0.0.1 only.
//!
//! Include it from a test with `#[path = "garage/mod.rs"] mod garage;` and call
//! [`shared()`]; every test then takes its own bucket or prefix ([`Garage::bucket`],
//! [`unique`]). The server listens on free 127.0.0.1 ports, keeps its data in a temporary
//! folder, and is killed (and the folder removed) when the test process exits, also when it
//! is killed (the server gets SIGKILL when its parent dies).
//!
//! The `garage` binary is taken from `$GARAGE_BIN`, `$PATH` or `~/.cargo/bin`; when absent
//! it is built with `cargo install garage --locked` (slow: run `.ci/garage.sh` before the
//! tests so they do not pay for it).
#![allow(dead_code)]

pub mod proxy;

#[path = "../support/host.rs"]
mod host;
pub use host::unique;
use host::{free_port, home};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use vault::backend::s3::S3Config;

/// The Garage version `.ci/garage.sh` and [`find_or_install`] install when none is found.
pub const GARAGE_VERSION: &str = "2.5.0";
pub const REGION: &str = "garage";
const KEY_NAME: &str = "vault-tests";

pub struct Garage {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// `http://127.0.0.1:PORT` of the S3 API.
    pub endpoint: String,
    pub s3_addr: std::net::SocketAddr,
    pub key_id: String,
    pub secret: String,
    child: Mutex<Option<Child>>,
    buckets: Mutex<Vec<String>>,
}

static SHARED: OnceLock<Garage> = OnceLock::new();
/// Pid and folder of the shared server, for the exit handler.
static CLEANUP: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

/// The test binary's server, started on first use.
pub fn shared() -> &'static Garage {
    SHARED.get_or_init(|| {
        let g = Garage::start();
        *CLEANUP.lock().unwrap() = Some((g.pid(), g.dir.clone()));
        extern "C" fn at_exit() {
            if let Ok(mut guard) = CLEANUP.try_lock() {
                if let Some((pid, dir)) = guard.take() {
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                        libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
                    }
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        unsafe { libc::atexit(at_exit) };
        g
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where `garage` is, if anywhere.
pub fn find_garage() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("garage"))
                .collect()
        })
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"));
    candidates.push(cargo_home.join("bin/garage"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Finds `garage`, or installs it (once, even with several test binaries at the same time).
pub fn find_or_install() -> PathBuf {
    if let Some(p) = find_garage() {
        return p;
    }
    let lock_path = std::env::temp_dir().join("vault-garage-install.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("open the garage install lock");
    use std::os::unix::io::AsRawFd;
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if let Some(p) = find_garage() {
        return p;
    }
    eprintln!("garage not found: building it with `cargo install garage --locked` (several minutes; .ci/garage.sh does this ahead of the tests)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "garage", "--locked", "--version", GARAGE_VERSION])
        .status()
        .expect("run cargo install garage");
    assert!(
        status.success(),
        "cargo install garage failed; run .ci/garage.sh to see why"
    );
    find_garage().expect("garage installed but not found in ~/.cargo/bin")
}

impl Garage {
    /// Starts a fresh single-node server with one access key. Panics with the server's log
    /// if it does not come up.
    pub fn start() -> Garage {
        let bin = find_or_install();
        // The ports were free when chosen; another server may bind one first. Then the
        // server says so in its log, and it starts again on new ports.
        for _ in 0..4 {
            match Garage::try_start(&bin) {
                Ok(garage) => return garage,
                Err(log) => eprintln!("garage: a port was taken, starting again:\n{log}"),
            }
        }
        Garage::try_start(&bin).unwrap_or_else(|log| {
            panic!("garage found no free ports in five starts\n--- server log ---\n{log}")
        })
    }

    /// One start on freshly chosen ports: `Err(log)` when the server could not bind one.
    fn try_start(bin: &Path) -> Result<Garage, String> {
        let bin = bin.to_path_buf();
        let dir = std::env::temp_dir().join(unique("vault-garage"));
        std::fs::create_dir_all(dir.join("meta")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = false
data_fsync = false
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{token}"
"#,
                dir = dir.display(),
                secret = random_hex(32),
                token = random_hex(16),
            ),
        )
        .unwrap();

        let child = spawn_server(&bin, &config, &dir.join("server.log"));
        let s3_addr: std::net::SocketAddr = format!("127.0.0.1:{s3}").parse().unwrap();
        let garage = Garage {
            bin,
            dir,
            config,
            endpoint: format!("http://{s3_addr}"),
            s3_addr,
            key_id: format!("GK{}", random_hex(12)),
            secret: random_hex(32),
            child: Mutex::new(Some(child)),
            buckets: Mutex::default(),
        };
        garage.configure()?;
        Ok(garage)
    }

    fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.id())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs `garage -c CONFIG ARGS`; `Err` holds its output.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.bin.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("garage {}: {}\n{text}", args.join(" "), out.status))
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("{e}\n--- server log ---\n{}", self.log()))
    }

    /// As [`Garage::cli`], repeated a few times if it fails (the cluster may still be
    /// settling); an error containing `ok_if` (when not empty) counts as done.
    pub fn cli_retrying(&self, args: &[&str], ok_if: &str) -> String {
        let mut last = String::new();
        for attempt in 0..6 {
            match self.try_cli(args) {
                Ok(out) => return out,
                Err(e) if !ok_if.is_empty() && attempt > 0 && e.contains(ok_if) => return e,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250 << attempt.min(3)));
        }
        panic!("{last}\n--- server log ---\n{}", self.log())
    }

    /// True when the server's log says one of its ports was taken.
    fn port_taken(&self) -> bool {
        self.log().contains("Address already in use")
    }

    /// Waits for the server, lays out its one node, imports the key and waits for the S3
    /// API. `Err(log)` when a port was taken (the caller starts again); panics on any
    /// other failure.
    fn configure(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        // Up once `garage status` reaches the server over RPC.
        loop {
            if self.port_taken() {
                return Err(self.log());
            }
            match self.try_cli(&["status"]) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "garage did not start: {e}\n--- server log ---\n{}",
                        self.log()
                    )
                }
                Err(_) => {}
            }
            let exited = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                if self.port_taken() {
                    return Err(self.log());
                }
                panic!(
                    "garage server exited ({status})\n--- server log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = self.cli_retrying(&["node", "id", "-q"], "");
        let node = out
            .lines()
            .filter_map(|l| l.trim().split('@').next())
            .find(|s| s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no node id in `garage node id -q`: {out}"))
            .to_string();
        self.cli_retrying(&["layout", "assign", "-z", "dc1", "-c", "1G", &node], "");
        self.cli_retrying(&["layout", "apply", "--version", "1"], "");
        self.cli_retrying(
            &[
                "key",
                "import",
                "--yes",
                "-n",
                KEY_NAME,
                &self.key_id,
                &self.secret,
            ],
            "already exists",
        );
        // Ready once a bucket can be created and listed through the S3 API.
        let probe = self.bucket("probe");
        loop {
            let backend = vault::backend::s3::S3Backend::new(
                &format!("s3://{probe}/ready"),
                &self.s3_config(),
            )
            .expect("S3 backend for the probe bucket");
            match vault::backend::Backend::list(&backend, vault::backend::Kind::Index) {
                Ok(_) => break,
                Err(_) if self.port_taken() => return Err(self.log()),
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "garage S3 API not ready: {e}\n--- server log ---\n{}",
                        self.log()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        Ok(())
    }

    /// Creates a bucket named after `base` (made unique) that the test key owns, and
    /// returns its name.
    pub fn bucket(&self, base: &str) -> String {
        let name = unique(&format!("vt-{base}"))
            .to_ascii_lowercase()
            .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-'), "-");
        let name = name[..name.len().min(63)].trim_end_matches('-').to_string();
        // One bucket at a time: the CLI calls of parallel tests do not race each other.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        self.cli_retrying(&["bucket", "create", &name], "already exists");
        self.cli_retrying(
            &[
                "bucket", "allow", "--read", "--write", "--owner", &name, "--key", KEY_NAME,
            ],
            "",
        );
        buckets.push(name.clone());
        name
    }

    /// Settings that reach this server directly, with short timeouts for tests.
    pub fn s3_config(&self) -> S3Config {
        self.s3_config_at(&self.endpoint)
    }

    /// As [`Garage::s3_config`], at another endpoint (a proxy in front of this server).
    pub fn s3_config_at(&self, endpoint: &str) -> S3Config {
        S3Config {
            endpoint: Some(endpoint.to_string()),
            region: Some(REGION.into()),
            path_style: Some(true),
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
            timeout_secs: Some(20),
            max_attempts: Some(6),
            max_retry_secs: Some(60),
            // Below the default (32 MiB, above a pack), so the backend suite's 18 to 20 MiB
            // objects exercise multipart uploads. The CLI tests run with the defaults.
            multipart_threshold: Some(16 << 20),
            ..S3Config::default()
        }
    }

    /// Sends one raw HTTP request to the S3 port and returns the status line.
    pub fn raw_status(&self, request: &str) -> String {
        let mut s = TcpStream::connect(self.s3_addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `garage server` from a thread that lives as long as the process, so the server
/// can be told to die with its parent (PR_SET_PDEATHSIG follows the spawning thread).
fn spawn_server(bin: &Path, config: &Path, log: &Path) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    let (bin, config, log) = (bin.to_path_buf(), config.to_path_buf(), log.to_path_buf());
    std::thread::Builder::new()
        .name("garage-parent".into())
        .spawn(move || {
            let log = std::fs::File::create(&log).expect("create the garage log");
            let mut cmd = Command::new(&bin);
            cmd.arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "garage=warn,garage_api=warn")
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
            let result = cmd.spawn();
            tx.send(result).unwrap();
            loop {
                std::thread::park();
            }
        })
        .expect("start the garage parent thread");
    rx.recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("start {}: {e}", "garage server"))
}
