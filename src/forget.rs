//! `forget`: a retention [`Policy`] in, a [`ForgetPlan`] out, then [`execute`].
//!
//! [`plan`] reads nothing but the snapshot list it is given: it applies the policy
//! ([`crate::retention::apply`]) and then the *guard*, and returns one
//! [`PlannedSnapshot`] per snapshot with keep or remove and the [`Rule`] that decided.
//! [`execute`] deletes exactly the snapshot records the plan removes.
//!
//! Invariants:
//! - **The guard.** A rule relative to now (`keep_within`) or to tags can leave a group
//!   with nothing, for example a host that stopped snapshotting a while ago. Losing a
//!   host's last backup to a retention rule is never what an operator meant: when the
//!   policy keeps none of a group's selected snapshots, the group's newest stays
//!   ([`Rule::NewestOfGroup`]).
//! - **One plan for every caller.** `forget` removes what the plan removes, and
//!   `lock extend` extends everything the plan keeps (and only skips what it removes),
//!   so the two never disagree about a snapshot.
//! - Snapshots the host filter leaves out are kept ([`Rule::NotSelected`]).
//! - A snapshot record still under object lock is not an error: [`execute`] leaves it and
//!   names it in [`ForgetReport::locked`]; a later forget removes it once the lock passed.

use crate::backend::Kind;
use crate::error::Result;
use crate::id::Id;
use crate::repo::{Repo, Snapshot};
use crate::retention::{self, Policy, Reason, RetentionError};
use chrono::{DateTime, FixedOffset, TimeZone};
use std::collections::{BTreeSet, HashMap};

/// Why a snapshot is kept or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The host filter left it out, so the policy did not judge it: kept.
    NotSelected,
    /// Kept by these rules of the policy (in the order of the retention table).
    Policy(Vec<Reason>),
    /// The policy keeps nothing of its group; kept as the group's newest (the guard).
    NewestOfGroup,
    /// No rule keeps it: removed.
    NoRule,
}

impl Rule {
    /// The deciding rule in words: `daily 1, weekly 1`, `newest of its group (...)`;
    /// empty for a removal.
    pub fn describe(&self) -> String {
        match self {
            Rule::NotSelected => "not selected by the host filter".into(),
            Rule::Policy(reasons) => reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Rule::NewestOfGroup => "newest of its group (the policy would keep none)".into(),
            Rule::NoRule => String::new(),
        }
    }
}

/// The plan's verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedSnapshot {
    pub id: Id,
    pub time: DateTime<FixedOffset>,
    /// The group it was judged in, e.g. `host platform-1, paths [/etc/travis]`.
    pub group: String,
    pub tags: Vec<String>,
    pub keep: bool,
    pub rule: Rule,
}

/// What `forget` would do: one entry per snapshot, the groups in a fixed order, each
/// newest first, then the snapshots the host filter left out.
#[derive(Clone, Debug)]
pub struct ForgetPlan {
    pub policy: Policy,
    pub snapshots: Vec<PlannedSnapshot>,
}

impl ForgetPlan {
    /// The snapshots the plan removes.
    pub fn removals(&self) -> impl Iterator<Item = &PlannedSnapshot> {
        self.snapshots.iter().filter(|s| !s.keep)
    }

    /// Ids of the snapshots the plan removes.
    pub fn removed_ids(&self) -> std::collections::HashSet<Id> {
        self.removals().map(|s| s.id).collect()
    }
}

/// Applies `policy` and the guard to `snapshots` (as [`Repo::snapshots`] lists them).
/// Calendar periods are counted in the time zone of `now`.
pub fn plan<Tz: TimeZone>(
    policy: &Policy,
    snapshots: &[(Id, Snapshot)],
    now: &DateTime<Tz>,
) -> std::result::Result<ForgetPlan, RetentionError> {
    let candidates = retention::candidates(snapshots)?;
    let decisions = retention::apply(policy, &candidates, now)?;
    let tags: HashMap<Id, &Vec<String>> = snapshots.iter().map(|(id, s)| (*id, &s.tags)).collect();
    let mut planned: Vec<PlannedSnapshot> = decisions
        .into_iter()
        .map(|d| {
            let rule = match (d.selected, d.keep) {
                (false, _) => Rule::NotSelected,
                (true, true) => Rule::Policy(d.reasons),
                (true, false) => Rule::NoRule,
            };
            PlannedSnapshot {
                id: d.id,
                time: d.time,
                group: d.group,
                tags: tags.get(&d.id).map(|t| t.to_vec()).unwrap_or_default(),
                keep: rule != Rule::NoRule,
                rule,
            }
        })
        .collect();
    let groups: BTreeSet<String> = planned.iter().map(|p| p.group.clone()).collect();
    for g in groups {
        let members: Vec<usize> = (0..planned.len())
            .filter(|&i| planned[i].group == g && planned[i].rule != Rule::NotSelected)
            .collect();
        if !members.is_empty() && members.iter().all(|&i| !planned[i].keep) {
            let newest = *members
                .iter()
                .max_by_key(|&&i| (planned[i].time, planned[i].id))
                .expect("members is not empty");
            planned[newest].keep = true;
            planned[newest].rule = Rule::NewestOfGroup;
        }
    }
    Ok(ForgetPlan {
        policy: policy.clone(),
        snapshots: planned,
    })
}

/// What [`execute`] did.
#[derive(Clone, Debug, Default)]
pub struct ForgetReport {
    /// Snapshot records deleted.
    pub removed: usize,
    /// Snapshot records the plan removes that are still under object lock (kept for now).
    pub locked: Vec<Id>,
}

/// Deletes the snapshot records `plan` removes. Data is left to prune.
pub fn execute(repo: &Repo, plan: &ForgetPlan) -> Result<ForgetReport> {
    let mut report = ForgetReport::default();
    for s in plan.removals() {
        match repo.backend.delete(Kind::Snapshots, &s.id.to_hex()) {
            Ok(()) => report.removed += 1,
            Err(e) if e.is_retention_locked() => report.locked.push(s.id),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Summary;

    fn snap(host: &str, time: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            time: time.into(),
            hostname: host.into(),
            username: "root".into(),
            paths: vec![serde_bytes::ByteBuf::from(b"/etc/travis".to_vec())],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: Id([0; 32]),
            summary: Summary::default(),
            program: "test".into(),
            databases: Vec::new(),
        }
    }

    #[test]
    fn the_guard_keeps_a_groups_newest_and_says_so() {
        let snaps = vec![
            (Id([1; 32]), snap("a", "2026-01-01T00:00:00Z", &["keep"])),
            (Id([2; 32]), snap("b", "2026-01-01T00:00:00Z", &[])),
            (Id([3; 32]), snap("b", "2026-01-02T00:00:00Z", &[])),
        ];
        let policy = Policy {
            tags: vec!["keep".into()],
            ..Default::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z").unwrap();
        let p = plan(&policy, &snaps, &now).unwrap();
        let by_id = |id: u8| p.snapshots.iter().find(|s| s.id == Id([id; 32])).unwrap();
        assert_eq!(
            by_id(1).rule,
            Rule::Policy(vec![Reason::Tag("keep".into())])
        );
        assert!(by_id(1).keep);
        assert_eq!(by_id(3).rule, Rule::NewestOfGroup);
        assert!(by_id(3).keep);
        assert_eq!(by_id(2).rule, Rule::NoRule);
        assert!(!by_id(2).keep);
        assert_eq!(p.removed_ids(), [Id([2; 32])].into_iter().collect());
    }
}
