//! Choosing snapshots: filters by host, tag and path, and the snapshot specs every
//! command accepts.
//!
//! A spec is `latest`, `latest:HOST`, a full snapshot id or a unique prefix of one.
//!
//! Invariants:
//! - `latest` never means "the newest snapshot of any host". Unless the filters name
//!   hosts, it is the newest snapshot of *this* host (its name as `vault snapshot` records
//!   it: the configured `hostname`, else the system's), and, when the configuration lists
//!   `paths`, of exactly those paths. `latest:HOST` picks `HOST`'s newest instead.
//! - When nothing matches, resolution fails with [`Error::NoMatchingSnapshot`], which
//!   lists every host in the store with its newest snapshot, so the operator can choose
//!   rather than get another host's files.
//! - An id or prefix names one snapshot; if filters are given, that snapshot must match
//!   them, else it is an error (a filter is never silently ignored).
//!
//! Matching: a snapshot matches when its host is one of `hosts` (any, if empty), it
//! carries every tag of `tags`, and every path of `paths` is one of its source paths
//! (compared lexically after removing `.`, `..` and repeated slashes).

use crate::crypto::WriterKeys;
use crate::error::{Error, Remedy, Result};
use crate::id::Id;
use crate::repo::{Repo, Snapshot, Verification};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Which snapshots a command considers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Snapshots of any of these hosts (empty: every host).
    pub hosts: Vec<String>,
    /// Snapshots carrying all of these tags.
    pub tags: Vec<String>,
    /// Snapshots whose source paths include all of these.
    pub paths: Vec<PathBuf>,
}

/// What `latest` means when the filters leave it open.
#[derive(Clone, Debug)]
pub struct LatestDefaults {
    /// This host's name, as snapshots record it.
    pub host: String,
    /// The configured source paths, if the configuration lists them.
    pub paths: Option<Vec<PathBuf>>,
}

/// The name `vault snapshot` records for this host: the configured one, else the
/// system's node name.
pub fn this_host(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .unwrap_or_else(crate::host::hostname)
}

/// `/a/./b//c/../d` as raw bytes `/a/b/d`, the form snapshot paths are stored in.
fn clean(p: &Path) -> Vec<u8> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.as_os_str().as_bytes().to_vec()
}

impl SnapshotFilter {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let tags_ok = self.tags.iter().all(|t| s.tags.contains(t));
        let paths_ok = self.paths.iter().all(|p| {
            let want = clean(p);
            s.paths
                .iter()
                .any(|have| clean(Path::new(std::ffi::OsStr::from_bytes(have))) == want)
        });
        host_ok && tags_ok && paths_ok
    }

    /// Keeps the matching snapshots, in their order.
    pub fn apply(&self, list: Vec<(Id, Snapshot)>) -> Vec<(Id, Snapshot)> {
        list.into_iter().filter(|(_, s)| self.matches(s)).collect()
    }

    /// `host platform-1, tag pre-upgrade, path /etc/travis`: for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", self.hosts.join(" or ")));
        }
        for t in &self.tags {
            parts.push(format!("tag {t}"));
        }
        if !self.paths.is_empty() {
            let p: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
            parts.push(format!(
                "path{} {}",
                if p.len() == 1 { "" } else { "s" },
                p.join(" ")
            ));
        }
        if parts.is_empty() {
            "any snapshot".into()
        } else {
            parts.join(", ")
        }
    }

    /// The filter `latest` (or `latest:HOST`) applies: this one, with this host and the
    /// configured paths filled in where it names no host.
    pub fn for_latest(&self, host: Option<&str>, defaults: &LatestDefaults) -> Result<Self> {
        let mut f = self.clone();
        match host {
            Some(h) => {
                if h.is_empty() {
                    return Err(Error::Usage(
                        "`latest:` needs a host name after the colon, e.g. latest:platform-1"
                            .into(),
                    ));
                }
                if !f.hosts.is_empty() && !f.hosts.iter().any(|x| x == h) {
                    return Err(Error::Usage(format!(
                        "latest:{h} contradicts the host filter {}",
                        f.hosts.join(", ")
                    ))
                    .with_remedy(Remedy::OneHostChoice));
                }
                f.hosts = vec![h.to_string()];
            }
            None if f.hosts.is_empty() => {
                f.hosts = vec![defaults.host.clone()];
                if f.paths.is_empty() {
                    if let Some(paths) = &defaults.paths {
                        f.paths = paths.clone();
                    }
                }
            }
            None => {}
        }
        Ok(f)
    }
}

/// Splits `latest` / `latest:HOST`; `None` for anything else.
pub fn parse_latest(spec: &str) -> Option<Option<&str>> {
    if spec == "latest" {
        Some(None)
    } else {
        spec.strip_prefix("latest:").map(Some)
    }
}

/// Every host in `list` with its newest snapshot, for "which one did you mean" messages
/// ([`Remedy::ChooseSnapshot`] says how to choose).
pub fn hosts_overview(list: &[(Id, Snapshot)]) -> String {
    let mut newest: BTreeMap<&str, (&Id, &Snapshot)> = BTreeMap::new();
    // `list` is oldest first, so the last one seen per host is its newest.
    for (id, s) in list {
        newest.insert(&s.hostname, (id, s));
    }
    if newest.is_empty() {
        return "the store has no snapshots yet".into();
    }
    let lines: Vec<String> = newest
        .iter()
        .map(|(host, (id, s))| {
            format!(
                "  {host}: latest {} at {} ({})",
                id.short(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                s.paths_display().join(" ")
            )
        })
        .collect();
    format!(
        "the store holds snapshots of these hosts:\n{}",
        lines.join("\n")
    )
}

/// Resolves `spec` under `filter`. `list` must be every snapshot of the store, oldest
/// first (as [`Repo::snapshots`] returns them).
pub fn resolve_in(
    list: &[(Id, Snapshot)],
    spec: &str,
    filter: &SnapshotFilter,
    defaults: &LatestDefaults,
) -> Result<(Id, Snapshot)> {
    if let Some(host) = parse_latest(spec) {
        let f = filter.for_latest(host, defaults)?;
        return list
            .iter()
            .rev()
            .find(|(_, s)| f.matches(s))
            .cloned()
            .ok_or_else(|| Error::NoMatchingSnapshot {
                wanted: format!("latest ({})", f.describe()),
                present: hosts_overview(list),
                choices: !list.is_empty(),
            });
    }
    let spec_l = spec.to_ascii_lowercase();
    let matches: Vec<&(Id, Snapshot)> = list
        .iter()
        .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
        .collect();
    let found = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(Error::SnapshotNotFound(spec.to_string())),
        _ => {
            return Err(Error::Usage(format!(
                "snapshot prefix {spec:?} matches {} snapshots; give more digits",
                matches.len()
            )))
        }
    };
    if !filter.matches(&found.1) {
        return Err(Error::Usage(format!(
            "snapshot {} (host {}, paths {}) does not match the filters ({}); drop them or pick another snapshot",
            found.0.short(),
            found.1.hostname,
            found.1.paths_display().join(" "),
            filter.describe()
        )));
    }
    Ok(found)
}

/// [`resolve_in`] over the store's snapshots. An id or prefix that names no readable
/// record is looked up by name first, so one damaged record elsewhere does not stop it.
pub fn resolve(
    repo: &Repo,
    keys: &WriterKeys,
    spec: &str,
    filter: &SnapshotFilter,
    defaults: &LatestDefaults,
) -> Result<(Id, Snapshot, Verification)> {
    let latest = parse_latest(spec).is_some();
    if !latest {
        let names = repo.snapshot_ids_starting(spec)?;
        if let [id] = names.as_slice() {
            let (snap, verdict) = repo.load_snapshot_checked(keys, id)?;
            let (id, snap) = resolve_in(&[(*id, snap)], spec, filter, defaults)?;
            return Ok((id, snap, verdict));
        }
    }
    // `latest` only ever picks a record that verifies as written by an authorised host of
    // its name at a time not in the future; flagged records are listed by `snapshots`.
    let mut verdicts = Vec::new();
    let mut list = Vec::new();
    let mut damaged = Vec::new();
    for l in repo.list_snapshots(keys)? {
        match l.record {
            Ok((s, v)) if !latest || v.fit_for_latest() => {
                list.push((l.id, s));
                verdicts.push(v);
            }
            Ok((_, v)) => damaged.push(format!(
                "{} (flagged: {})",
                l.id.short(),
                v.problems().join("; ")
            )),
            Err(e) => damaged.push(format!("{}: {e}", l.id.short())),
        }
    }
    let (id, snap) = match resolve_in(&list, spec, filter, defaults) {
        Ok(found) => found,
        // A record that cannot be opened might have been the one wanted: say so rather
        // than only that nothing matched.
        Err(Error::NoMatchingSnapshot {
            wanted,
            present,
            choices,
        }) if !damaged.is_empty() => {
            return Err(Error::NoMatchingSnapshot {
                wanted,
                choices,
                present: format!(
                    "{present}; {} snapshot record(s) could not be read or do not verify and \
                     were not considered (run `vault check`): {}",
                    damaged.len(),
                    damaged.join("; ")
                ),
            })
        }
        Err(e) => return Err(e),
    };
    let verdict = list
        .iter()
        .position(|(i, _)| *i == id)
        .map(|at| verdicts.swap_remove(at))
        .expect("resolve_in returns an entry of the list it was given");
    Ok((id, snap, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, paths: &[&str], tags: &[&str], time: &str) -> Snapshot {
        Snapshot {
            time: time.into(),
            hostname: host.into(),
            username: "root".into(),
            paths: paths
                .iter()
                .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: Id::random(),
            summary: Default::default(),
            program: "vault".into(),
            databases: Vec::new(),
        }
    }

    fn store() -> Vec<(Id, Snapshot)> {
        vec![
            (
                Id::random(),
                snap(
                    "platform",
                    &["/etc/travis", "/var/travis"],
                    &[],
                    "2026-01-01T00:00:00+00:00",
                ),
            ),
            (
                Id::random(),
                snap("worker", &["/etc/travis"], &[], "2026-01-02T00:00:00+00:00"),
            ),
            (
                Id::random(),
                snap(
                    "platform",
                    &["/etc/travis"],
                    &["pre-upgrade"],
                    "2026-01-03T00:00:00+00:00",
                ),
            ),
            (
                Id::random(),
                snap("worker", &["/etc/travis"], &[], "2026-01-04T00:00:00+00:00"),
            ),
        ]
    }

    fn defaults(host: &str, paths: Option<&[&str]>) -> LatestDefaults {
        LatestDefaults {
            host: host.into(),
            paths: paths.map(|p| p.iter().map(PathBuf::from).collect()),
        }
    }

    #[test]
    fn latest_is_this_hosts_newest_not_the_stores() {
        let list = store();
        let none = SnapshotFilter::default();
        let (id, _) = resolve_in(&list, "latest", &none, &defaults("platform", None)).unwrap();
        assert_eq!(id, list[2].0);
        let (id, _) =
            resolve_in(&list, "latest:worker", &none, &defaults("platform", None)).unwrap();
        assert_eq!(id, list[3].0);
    }

    #[test]
    fn configured_paths_narrow_latest_unless_filters_or_a_host_say_otherwise() {
        let list = store();
        let none = SnapshotFilter::default();
        let d = defaults("platform", Some(&["/var/travis", "/etc//travis/"]));
        assert_eq!(resolve_in(&list, "latest", &none, &d).unwrap().0, list[0].0);
        let tagged = SnapshotFilter {
            tags: vec!["pre-upgrade".into()],
            paths: vec!["/etc/travis".into()],
            ..Default::default()
        };
        assert_eq!(
            resolve_in(&list, "latest", &tagged, &d).unwrap().0,
            list[2].0
        );
        assert_eq!(
            resolve_in(&list, "latest:worker", &none, &d).unwrap().0,
            list[3].0
        );
    }

    #[test]
    fn a_host_without_snapshots_gets_a_list_of_hosts_not_a_guess() {
        let list = store();
        let err = resolve_in(
            &list,
            "latest",
            &SnapshotFilter::default(),
            &defaults("fresh", None),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("host fresh"), "{err}");
        assert!(
            err.contains("platform: latest") && err.contains("worker: latest"),
            "{err}"
        );
        assert!(
            err.contains(&list[2].0.short()) && err.contains(&list[3].0.short()),
            "{err}"
        );
    }

    #[test]
    fn an_id_must_match_the_filters_given() {
        let list = store();
        let prefix = list[1].0.to_hex()[..12].to_string();
        let d = defaults("platform", None);
        assert_eq!(
            resolve_in(&list, &prefix, &SnapshotFilter::default(), &d)
                .unwrap()
                .0,
            list[1].0
        );
        let platform = SnapshotFilter {
            hosts: vec!["platform".into()],
            ..Default::default()
        };
        assert!(resolve_in(&list, &prefix, &platform, &d).is_err());
        assert!(resolve_in(&list, "latest:worker", &platform, &d).is_err());
        assert!(resolve_in(&list, "latest:", &SnapshotFilter::default(), &d).is_err());
    }
}
