//! Consistent online capture of a running PostgreSQL cluster, as an online base backup
//! taken through one `psql` session (the way `pg_basebackup -X fetch` takes one, but
//! into the snapshot).
//!
//! When a snapshot reaches a configured data directory, [`PgCapture`] (a
//! [`crate::backup::Capture`]) opens `psql` with the configured argv plus
//! `-X -A -t -q -v ON_ERROR_STOP=1` and keeps it open on stdin/stdout:
//!
//! 1. checks the server: version 9.6 or later, not a standby, the same cluster as the data
//!    directory (system identifier in `global/pg_control`), no tablespaces outside the data
//!    directory (refused: they would not be in the snapshot);
//! 2. creates a temporary physical replication slot with `immediately_reserve` (10+): the
//!    server then keeps every WAL segment from the backup's start until vault dropped the
//!    slot, however many checkpoints run meanwhile;
//! 3. `pg_backup_start(label, true)` (15+) or `pg_start_backup(label, true, false)`
//!    (9.6-14): a non-exclusive backup tied to this session;
//! 4. the walk saves the folder, leaving out what `pg_basebackup` leaves out;
//! 5. `pg_backup_stop(false)` / `pg_stop_backup(false, false)`; every WAL segment from the
//!    one named in the returned backup label to the one holding the stop location is
//!    added under `pg_wal/` (a segment that is gone is an error, never a gap), and the
//!    returned `backup_label` (and `tablespace_map`) is written into the saved folder;
//! 6. the slot is dropped and the session closed.
//!
//! Invariant: once step 3 has begun, the backup is stopped and the slot dropped on every
//! path ([`crate::backup::Capture::abort`]); should even that fail, closing the session
//! ends the server's backend, which aborts a non-exclusive backup and drops a temporary
//! slot by itself. Restored, the folder holds a `backup_label`, so the server replays the
//! WAL from the backup's start to its stop location before it accepts connections, and the
//! cluster is consistent.
//!
//! On 9.6 there are no temporary slots: the capture runs without one, and a recycled
//! segment fails the snapshot. Servers older than 9.6 are refused (no non-exclusive
//! backups): stop the database with hooks instead.

use crate::backup::{Capture, CaptureEnd, CaptureRules, ExtraFile, ExtraSource};
use crate::error::{Error, Result};
use crate::repo::DatabaseCapture;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `[[postgres]]` in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The cluster's data directory as this host sees it.
    pub data_dir: PathBuf,
    /// How to run `psql` as a superuser (or a role with replication and backup rights)
    /// against that cluster; vault adds its own options.
    pub psql: Vec<String>,
}

/// Options vault adds to the configured `psql` argv.
pub const PSQL_OPTIONS: [&str; 7] = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-w"];

/// Names `pg_basebackup` leaves out directly in the data directory.
const SKIP_TOP: [&str; 8] = [
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "standby.signal",
];

/// Folders whose contents `pg_basebackup` leaves out (the WAL folder is added per version).
const EMPTY_TOP: [&str; 7] = [
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
];

/// Left out at any depth: temporary files and the relation cache (rebuilt at start).
const SKIP_PREFIXES: [&str; 2] = ["pgsql_tmp", "pg_internal.init"];

/// One `psql` process, spoken to line by line.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    shown: String,
    n: u64,
}

impl Session {
    /// Starts `argv` + [`PSQL_OPTIONS`] in its own process group (a Ctrl-C at the
    /// terminal must not kill it before vault has ended the backup).
    pub fn open(argv: &[String]) -> Result<Session> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::Usage(
                "[[postgres]] psql is empty: give the command that runs psql against the cluster"
                    .into(),
            ));
        };
        let shown = argv.join(" ");
        let mut child = Command::new(prog)
            .args(args)
            .args(PSQL_OPTIONS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Database(format!("cannot start psql (`{shown}`): {e}")))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the end: that is where the error is.
                if s.len() > 16384 {
                    let cut = s.len() - 8192;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
            }
        });
        Ok(Session {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("piped")),
            child,
            stderr,
            shown,
            n: 0,
        })
    }

    fn stderr_text(&self) -> String {
        // Give the reader thread a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(100));
        let s = self.stderr.lock().unwrap();
        let t = s.trim();
        if t.is_empty() {
            "(psql printed nothing)".into()
        } else {
            t.to_string()
        }
    }

    /// Runs one statement and returns its result rows (fields split at `|`).
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<String>>> {
        self.n += 1;
        let marker = format!("vault-end-{}-{}", std::process::id(), self.n);
        let text = format!("{sql};\n\\echo {marker}\n");
        let sent = match self.stdin.as_mut() {
            Some(w) => w.write_all(text.as_bytes()).and_then(|()| w.flush()),
            None => Err(std::io::Error::other("session closed")),
        };
        if let Err(e) = sent {
            return Err(Error::Database(format!(
                "psql (`{}`) stopped ({e}): {}",
                self.shown,
                self.stderr_text()
            )));
        }
        let mut rows = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).map_err(|e| {
                Error::Database(format!("reading from psql (`{}`): {e}", self.shown))
            })?;
            if n == 0 {
                return Err(Error::Database(format!(
                    "psql (`{}`) failed on `{}`: {}",
                    self.shown,
                    first_line(sql),
                    self.stderr_text()
                )));
            }
            let line = line.trim_end_matches('\n');
            if line == marker {
                return Ok(rows);
            }
            if !line.is_empty() {
                rows.push(line.split('|').map(str::to_string).collect());
            }
        }
    }

    /// One value: the first field of the only row.
    pub fn value(&mut self, sql: &str) -> Result<String> {
        let rows = self.query(sql)?;
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .ok_or_else(|| Error::Database(format!("`{}` returned no row", first_line(sql))))
    }

    /// Ends the session: closes psql's input and waits a little, then kills it.
    pub fn close(mut self) -> Result<()> {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(Error::Database(format!(
                        "psql (`{}`) did not end after its input was closed; killed it",
                        self.shown
                    )));
                }
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(200));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql).trim()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    hex::decode(s.trim()).map_err(|e| Error::Database(format!("psql returned bad hex: {e}")))
}

/// The system identifier in `DATA_DIR/global/pg_control` (its first 8 bytes, host order).
pub fn system_identifier(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join("global/pg_control");
    let mut b = [0u8; 8];
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(u64::from_ne_bytes(b))
}

/// A WAL segment file name: timeline, then the segment number split by segments per 4 GiB.
fn segment_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per = 0x1_0000_0000u64 / seg_size;
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

fn parse_segment(name: &str, seg_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some((tli, log * (0x1_0000_0000u64 / seg_size) + seg))
}

/// The segment files from `first` to `last` inclusive (same timeline).
pub fn segment_range(first: &str, last: &str, seg_size: u64) -> Result<Vec<String>> {
    let bad = |n: &str| Error::Database(format!("not a WAL segment name: {n:?}"));
    let (t1, s1) = parse_segment(first, seg_size).ok_or_else(|| bad(first))?;
    let (t2, s2) = parse_segment(last, seg_size).ok_or_else(|| bad(last))?;
    if t1 != t2 || s2 < s1 {
        return Err(Error::Database(format!(
            "the backup started in WAL segment {first} and stopped in {last}: not one timeline"
        )));
    }
    Ok((s1..=s2).map(|s| segment_name(t1, s, seg_size)).collect())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Idle,
    /// The slot exists (if any); the backup has not started.
    Slot,
    Started,
    Stopped,
    Done,
}

/// The capture of one cluster during one snapshot.
pub struct PgCapture {
    config: PostgresConfig,
    label: String,
    session: Option<Session>,
    stage: Stage,
    version_num: u32,
    version: String,
    slot: Option<String>,
    start_lsn: String,
    wal_dir: &'static str,
}

impl PgCapture {
    /// `label` names the backup in the server's log and in `backup_label`.
    pub fn new(config: PostgresConfig, label: &str) -> PgCapture {
        PgCapture {
            config,
            label: label.to_string(),
            session: None,
            stage: Stage::Idle,
            version_num: 0,
            version: String::new(),
            slot: None,
            start_lsn: String::new(),
            wal_dir: "pg_wal",
        }
    }

    /// True once the walk reached the data directory and the backup began.
    pub fn began(&self) -> bool {
        self.stage != Stage::Idle
    }

    fn session(&mut self) -> Result<&mut Session> {
        self.session
            .as_mut()
            .ok_or_else(|| Error::Database("no psql session".into()))
    }

    fn dir_shown(&self) -> String {
        self.config.data_dir.display().to_string()
    }

    fn begin_inner(&mut self) -> Result<CaptureRules> {
        let dir = self.dir_shown();
        let mut s = Session::open(&self.config.psql)?;
        let row = s.query(
            "select current_setting('server_version_num'), current_setting('server_version'), pg_is_in_recovery()",
        )?;
        let row = row.into_iter().next().unwrap_or_default();
        let (num, version, recovery) = match row.as_slice() {
            [a, b, c] => (a.parse::<u32>().unwrap_or(0), b.clone(), c == "t"),
            _ => {
                return Err(Error::Database(format!(
                    "psql for {dir} did not answer the version query as expected: {row:?}"
                )))
            }
        };
        self.version_num = num;
        self.version = version.clone();
        self.session = Some(s);
        if num < 90600 {
            return Err(Error::Database(format!(
                "the PostgreSQL server of {dir} is version {version}: online capture needs 9.6 or later \
                 (non-exclusive base backups); stop the database around the snapshot with [hooks] instead"
            )));
        }
        if recovery {
            return Err(Error::Database(format!(
                "the PostgreSQL server of {dir} is a standby (in recovery): capture its primary, \
                 or stop it around the snapshot with [hooks]"
            )));
        }
        if num < 100000 {
            self.wal_dir = "pg_xlog";
        }
        // The session must reach the cluster whose files the snapshot reads.
        let on_disk = system_identifier(&self.config.data_dir)?;
        let sysid = self
            .session()?
            .value("select system_identifier from pg_control_system()")?;
        if sysid.parse::<u64>().ok() != Some(on_disk) {
            return Err(Error::Database(format!(
                "psql connects to the cluster with system identifier {sysid}, but {dir} holds cluster {on_disk}: \
                 point [[postgres]] psql at the server that runs from {dir}"
            )));
        }
        let spaces = self.session()?.query(
            "select spcname, pg_tablespace_location(oid) from pg_tablespace where spcname not in ('pg_default', 'pg_global')",
        )?;
        if !spaces.is_empty() {
            let list: Vec<String> = spaces.iter().map(|r| r.join(" at ")).collect();
            return Err(Error::Database(format!(
                "the cluster in {dir} has tablespaces outside its data directory ({}); online capture saves \
                 only the data directory: move them into the default tablespace, or stop the database with [hooks] \
                 and add their folders to the snapshot's paths",
                list.join(", ")
            )));
        }
        if num >= 100000 {
            let slot = format!(
                "vault_{}_{}",
                std::process::id(),
                hex::encode(rand::random::<[u8; 4]>())
            );
            self.session()?
                .query(&format!(
                    "select pg_create_physical_replication_slot({}, true, true)",
                    quote(&slot)
                ))
                .map_err(|e| {
                    Error::Database(format!(
                        "cannot create a temporary replication slot to hold the WAL of {dir}: {e}\n\
                         online capture needs wal_level = replica (or logical) and a free slot \
                         (max_replication_slots >= 1) on the server"
                    ))
                })?;
            self.slot = Some(slot);
        }
        self.stage = Stage::Slot;
        let label = quote(&self.label);
        let start = if num >= 150000 {
            format!("select pg_backup_start({label}, true)")
        } else {
            format!("select pg_start_backup({label}, true, false)")
        };
        // From here on the backup may be running: abort must stop it.
        self.stage = Stage::Started;
        self.start_lsn = self.session()?.value(&start)?;
        let mut empty_top: Vec<Vec<u8>> = EMPTY_TOP.iter().map(|s| s.as_bytes().to_vec()).collect();
        empty_top.push(self.wal_dir.as_bytes().to_vec());
        Ok(CaptureRules {
            skip_top: SKIP_TOP.iter().map(|s| s.as_bytes().to_vec()).collect(),
            empty_top,
            skip_prefixes: SKIP_PREFIXES
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            tolerate_vanished: true,
        })
    }

    fn stop_query(&self) -> &'static str {
        if self.version_num >= 150000 {
            "select lsn, pg_walfile_name(lsn), encode(convert_to(labelfile, 'UTF8'), 'hex'), \
             encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') from pg_backup_stop(false)"
        } else if self.version_num >= 100000 {
            "select lsn, pg_walfile_name(lsn), encode(convert_to(labelfile, 'UTF8'), 'hex'), \
             encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') from pg_stop_backup(false, false)"
        } else {
            "select lsn, pg_xlogfile_name(lsn), encode(convert_to(labelfile, 'UTF8'), 'hex'), \
             encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') from pg_stop_backup(false)"
        }
    }

    fn end_inner(&mut self) -> Result<CaptureEnd> {
        let dir = self.dir_shown();
        let q = self.stop_query();
        let rows = self.session()?.query(q)?;
        self.stage = Stage::Stopped;
        let row = rows.into_iter().next().unwrap_or_default();
        let [stop_lsn, stop_file, label_hex, map_hex] = row.as_slice() else {
            return Err(Error::Database(format!(
                "ending the backup of {dir} returned {row:?}"
            )));
        };
        let label = unhex(label_hex)?;
        let map = unhex(map_hex)?;
        let label_text = String::from_utf8_lossy(&label).into_owned();
        // START WAL LOCATION: 0/6000028 (file 000000010000000000000006)
        let start_file = label_text
            .lines()
            .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
            .and_then(|l| l.split("(file ").nth(1))
            .map(|l| l.trim_end_matches(')').trim().to_string())
            .ok_or_else(|| {
                Error::Database(format!("the backup label of {dir} names no start segment"))
            })?;
        let seg_size = self.segment_size()?;
        let names = segment_range(&start_file, stop_file, seg_size)?;
        let wal = self.config.data_dir.join(self.wal_dir);
        let owner = std::fs::metadata(&self.config.data_dir)
            .map_err(|e| Error::io(format!("stat {dir}"), e))?;
        let mut extras = Vec::with_capacity(names.len() + 2);
        for n in &names {
            let p = wal.join(n);
            match std::fs::metadata(&p) {
                Ok(m) if m.len() == seg_size => {}
                Ok(m) => {
                    return Err(Error::Database(format!(
                        "WAL segment {} of the backup of {dir} has {} bytes, not {seg_size}",
                        p.display(),
                        m.len()
                    )))
                }
                Err(e) => {
                    return Err(Error::Database(format!(
                        "WAL segment {n} that the backup of {dir} needs (from {} to {stop_lsn}) is gone \
                         from {} ({e}); the cluster cannot be restored from this snapshot, so it was not saved",
                        self.start_lsn,
                        wal.display()
                    )))
                }
            }
            extras.push(ExtraFile {
                path: Path::new(self.wal_dir).join(n),
                source: ExtraSource::File(p),
                mode: 0o600,
                uid: owner.uid(),
                gid: owner.gid(),
            });
        }
        extras.push(ExtraFile {
            path: PathBuf::from("backup_label"),
            source: ExtraSource::Bytes(label),
            mode: 0o600,
            uid: owner.uid(),
            gid: owner.gid(),
        });
        if !map.is_empty() {
            extras.push(ExtraFile {
                path: PathBuf::from("tablespace_map"),
                source: ExtraSource::Bytes(map),
                mode: 0o600,
                uid: owner.uid(),
                gid: owner.gid(),
            });
        }
        Ok(CaptureEnd {
            extras,
            record: DatabaseCapture {
                kind: "postgresql".into(),
                data_dir: dir,
                server_version: self.version.clone(),
                start_lsn: self.start_lsn.clone(),
                stop_lsn: stop_lsn.clone(),
                wal_segments: names.len() as u32,
            },
        })
    }

    fn segment_size(&mut self) -> Result<u64> {
        let rows = self.session()?.query(
            "select setting, coalesce(unit, '') from pg_settings where name = 'wal_segment_size'",
        )?;
        let row = rows.into_iter().next().unwrap_or_default();
        let (v, unit) = match row.as_slice() {
            [v, u] => (v.parse::<u64>().unwrap_or(0), u.as_str()),
            _ => (0, ""),
        };
        let mult = match unit {
            "B" | "" => 1,
            "8kB" => 8192,
            "kB" => 1024,
            "MB" => 1 << 20,
            _ => 0,
        };
        let size = v * mult;
        if size == 0 || !size.is_power_of_two() {
            return Err(Error::Database(format!(
                "cannot read the WAL segment size of the server ({row:?})"
            )));
        }
        Ok(size)
    }

    fn drop_slot_and_close(&mut self) -> Result<()> {
        let mut first_err = None;
        if let Some(slot) = self.slot.take() {
            if let Some(s) = self.session.as_mut() {
                if let Err(e) = s.query(&format!(
                    "select pg_drop_replication_slot({})",
                    quote(&slot)
                )) {
                    first_err = Some(e);
                }
            }
        }
        if let Some(s) = self.session.take() {
            if let Err(e) = s.close() {
                first_err.get_or_insert(e);
            }
        }
        self.stage = Stage::Done;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Capture for PgCapture {
    fn dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn begin(&mut self) -> Result<CaptureRules> {
        match self.begin_inner() {
            Ok(r) => Ok(r),
            Err(e) => {
                // The walk will not call abort for a failed begin: clean up here.
                let _ = self.abort();
                Err(e)
            }
        }
    }

    fn end(&mut self) -> Result<CaptureEnd> {
        self.end_inner()
    }

    fn release(&mut self) -> Result<()> {
        self.drop_slot_and_close()
    }

    fn abort(&mut self) -> Result<()> {
        let mut stop_err = None;
        if self.stage == Stage::Started {
            let q = self.stop_query();
            if let Some(s) = self.session.as_mut() {
                match s.query(q) {
                    Ok(_) => self.stage = Stage::Stopped,
                    Err(e) => stop_err = Some(e),
                }
            }
        }
        let closed = self.drop_slot_and_close();
        match (stop_err, closed) {
            // The session is gone either way, and with it the server's backend: the
            // server aborts a non-exclusive backup and drops a temporary slot then.
            (Some(e), _) => Err(Error::Database(format!(
                "ending the backup failed ({e}); the psql session was closed, which ends it on the server"
            ))),
            (None, r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_count_across_log_boundaries() {
        let size = 16 << 20;
        let r =
            segment_range("0000000100000000000000FE", "000000010000000100000001", size).unwrap();
        assert_eq!(
            r,
            [
                "0000000100000000000000FE",
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert!(
            segment_range("000000010000000000000005", "000000020000000000000006", size).is_err()
        );
        assert!(
            segment_range("000000010000000000000006", "000000010000000000000005", size).is_err()
        );
        assert_eq!(
            segment_range("000000010000000000000005", "000000010000000000000005", size).unwrap(),
            ["000000010000000000000005"]
        );
    }
}
