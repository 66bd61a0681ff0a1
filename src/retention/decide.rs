//! Applying a policy: the snapshots as candidates, grouped, ordered newest first, and one
//! decision per snapshot with every rule that keeps it. Pure: no store, clock or
//! environment is read.

use super::{GroupBy, KeepWithin, Policy, RetentionError};
use crate::id::Id;
use crate::repo::Snapshot;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeZone, Timelike};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One snapshot as the policy sees it.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub id: Id,
    pub time: DateTime<FixedOffset>,
    pub host: &'a str,
    /// The source paths as raw bytes (grouping compares them exactly, not as displayed).
    pub paths: Vec<Vec<u8>>,
    pub tags: &'a [String],
}

impl<'a> Candidate<'a> {
    /// Reads a stored snapshot record; its time must be RFC 3339.
    pub fn from_snapshot(id: Id, snapshot: &'a Snapshot) -> Result<Candidate<'a>, RetentionError> {
        let time = DateTime::parse_from_rfc3339(&snapshot.time).map_err(|e| {
            RetentionError::BadSnapshotTime {
                snapshot: id.short(),
                time: snapshot.time.clone(),
                problem: e.to_string(),
            }
        })?;
        Ok(Candidate {
            id,
            time,
            host: &snapshot.hostname,
            paths: snapshot.paths.iter().map(|p| p.to_vec()).collect(),
            tags: &snapshot.tags,
        })
    }
}

/// [`Candidate::from_snapshot`] for a whole list, as [`crate::repo::Repo::snapshots`]
/// returns it. The first unreadable time is an error naming its snapshot.
pub fn candidates(snapshots: &[(Id, Snapshot)]) -> Result<Vec<Candidate<'_>>, RetentionError> {
    snapshots
        .iter()
        .map(|(id, s)| Candidate::from_snapshot(*id, s))
        .collect()
}

/// A rule that keeps a snapshot. For the counted rules the number is the position of the
/// period (or snapshot, for `Last`) counted from the newest, starting at 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Last(u32),
    Hourly(u32),
    Daily(u32),
    Weekly(u32),
    Monthly(u32),
    Yearly(u32),
    Within(KeepWithin),
    Tag(String),
}

impl fmt::Display for Reason {
    /// `last 2`, `hourly 1`, `daily 3`, `weekly 1`, `monthly 12`, `yearly 1`,
    /// `within 30d`, `tag pre-upgrade`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(k) => write!(f, "last {k}"),
            Reason::Hourly(k) => write!(f, "hourly {k}"),
            Reason::Daily(k) => write!(f, "daily {k}"),
            Reason::Weekly(k) => write!(f, "weekly {k}"),
            Reason::Monthly(k) => write!(f, "monthly {k}"),
            Reason::Yearly(k) => write!(f, "yearly {k}"),
            Reason::Within(w) => write!(f, "within {w}"),
            Reason::Tag(t) => write!(f, "tag {t}"),
        }
    }
}

/// What the policy decided for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: Id,
    pub time: DateTime<FixedOffset>,
    /// The group it was judged in, e.g. `host platform-1, paths [/etc/travis, /var/travis]`.
    pub group: String,
    /// False if the host filter left it out: then it is kept and `reasons` is empty.
    pub selected: bool,
    pub keep: bool,
    /// Every rule that keeps it (empty when it is removed).
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// The reasons joined for a table cell: `daily 1, weekly 1`.
    pub fn reason_text(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    host: Option<String>,
    paths: Option<Vec<Vec<u8>>>,
    tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(by: &GroupBy, c: &Candidate<'_>) -> GroupKey {
        GroupKey {
            host: by.host.then(|| c.host.to_string()),
            paths: by.paths.then(|| {
                let mut p = c.paths.clone();
                p.sort();
                p.dedup();
                p
            }),
            tags: by.tags.then(|| {
                let mut t = c.tags.to_vec();
                t.sort();
                t.dedup();
                t
            }),
        }
    }

    fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            let shown: Vec<String> = p.iter().map(|p| crate::tree::display_name(p)).collect();
            parts.push(format!("paths [{}]", shown.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            "all snapshots".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A counted calendar rule: how many periods, which period, the reason it gives.
type CalendarRule = (u32, Period, fn(u32) -> Reason);

#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// The calendar period a wall-clock time falls in.
fn period_of(wall: &NaiveDateTime, period: Period) -> (i32, u32, u32) {
    match period {
        Period::Hour => (wall.year(), wall.ordinal(), wall.hour()),
        Period::Day => (wall.year(), wall.ordinal(), 0),
        Period::Week => {
            let w = wall.iso_week();
            (w.year(), w.week(), 0)
        }
        Period::Month => (wall.year(), wall.month(), 0),
        Period::Year => (wall.year(), 0, 0),
    }
}

/// Decides, for every snapshot, keep or remove and why. Periods are counted in the time
/// zone of `now` (pass `chrono::Local::now()` in production); `keep_within` counts back
/// from `now`. Returns one decision per candidate: the groups in a fixed order (by host,
/// then paths, then tags), each newest first, then the snapshots the host filter left out.
pub fn apply<Tz: TimeZone>(
    policy: &Policy,
    snapshots: &[Candidate<'_>],
    now: &DateTime<Tz>,
) -> Result<Vec<Decision>, RetentionError> {
    policy.validate()?;
    let tz = now.timezone();
    let newest_first = |a: &usize, b: &usize| {
        let (a, b) = (&snapshots[*a], &snapshots[*b]);
        b.time.cmp(&a.time).then(b.id.cmp(&a.id))
    };
    let (groups, mut left_out) = group(policy, snapshots);
    let rules = Rules::new(policy, now);

    let mut out = Vec::with_capacity(snapshots.len());
    for (key, mut members) in groups {
        members.sort_by(newest_first);
        let label = key.label();
        let walls: Vec<NaiveDateTime> = members
            .iter()
            .map(|&i| snapshots[i].time.with_timezone(&tz).naive_local())
            .collect();
        let reasons = rules.reasons(snapshots, &members, &walls);
        for (&i, reasons) in members.iter().zip(reasons) {
            out.push(Decision {
                id: snapshots[i].id,
                time: snapshots[i].time,
                group: label.clone(),
                selected: true,
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }

    left_out.sort_by(newest_first);
    for i in left_out {
        let c = &snapshots[i];
        out.push(Decision {
            id: c.id,
            time: c.time,
            group: GroupKey::of(&policy.group_by, c).label(),
            selected: false,
            keep: true,
            reasons: Vec::new(),
        });
    }
    Ok(out)
}

/// The candidates the host filter selects, by group (each in input order), and the
/// indexes of those it leaves out.
fn group(
    policy: &Policy,
    snapshots: &[Candidate<'_>],
) -> (BTreeMap<GroupKey, Vec<usize>>, Vec<usize>) {
    let mut groups: BTreeMap<GroupKey, Vec<usize>> = BTreeMap::new();
    let mut left_out = Vec::new();
    for (i, c) in snapshots.iter().enumerate() {
        if policy.hosts.is_empty() || policy.hosts.iter().any(|h| h == c.host) {
            groups
                .entry(GroupKey::of(&policy.group_by, c))
                .or_default()
                .push(i);
        } else {
            left_out.push(i);
        }
    }
    (groups, left_out)
}

/// A policy's keep rules, made ready once for every group.
struct Rules<'p, Tz: TimeZone> {
    last: u32,
    calendar: [CalendarRule; 5],
    /// The duration and its cutoff (`None`: before any representable time).
    within: Option<(KeepWithin, Option<DateTime<Tz>>)>,
    /// The keep tags without repeats, in the policy's order.
    tags: Vec<&'p String>,
}

impl<'p, Tz: TimeZone> Rules<'p, Tz> {
    fn new(policy: &'p Policy, now: &DateTime<Tz>) -> Self {
        let mut tags: Vec<&String> = Vec::new();
        for t in &policy.tags {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Rules {
            last: policy.last,
            calendar: [
                (policy.hourly, Period::Hour, Reason::Hourly),
                (policy.daily, Period::Day, Reason::Daily),
                (policy.weekly, Period::Week, Reason::Weekly),
                (policy.monthly, Period::Month, Reason::Monthly),
                (policy.yearly, Period::Year, Reason::Yearly),
            ],
            within: policy.within.map(|w| (w, w.cutoff(now))),
            tags,
        }
    }

    /// Every rule that keeps each member of one group, in the order of the rule table.
    /// `members` are newest first; `walls` are their wall-clock times in the zone of now.
    fn reasons(
        &self,
        snapshots: &[Candidate<'_>],
        members: &[usize],
        walls: &[NaiveDateTime],
    ) -> Vec<Vec<Reason>> {
        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); members.len()];
        for (k, r) in reasons.iter_mut().take(self.last as usize).enumerate() {
            r.push(Reason::Last(k as u32 + 1));
        }
        for (count, period, reason) in self.calendar {
            if count == 0 {
                continue;
            }
            let mut seen = HashSet::new();
            for (pos, wall) in walls.iter().enumerate() {
                if seen.insert(period_of(wall, period)) {
                    reasons[pos].push(reason(seen.len() as u32));
                    if seen.len() as u32 == count {
                        break;
                    }
                }
            }
        }
        if let Some((within, cutoff)) = &self.within {
            for (pos, &i) in members.iter().enumerate() {
                let inside = match cutoff {
                    Some(c) => snapshots[i].time >= *c,
                    None => true,
                };
                if inside {
                    reasons[pos].push(Reason::Within(*within));
                }
            }
        }
        for (pos, &i) in members.iter().enumerate() {
            for tag in &self.tags {
                if snapshots[i].tags.contains(tag) {
                    reasons[pos].push(Reason::Tag((*tag).clone()));
                }
            }
        }
        reasons
    }
}
