//! Retention policy: which snapshots `vault forget` keeps, and why.
//!
//! This module is pure: it reads no store, no clock and no environment. It takes the
//! snapshots (as [`Candidate`]s), a [`Policy`] and "now" (a [`DateTime`] in the time zone
//! that calendar periods are counted in; in production `chrono::Local::now()`), and
//! returns one [`Decision`] per snapshot: keep or remove, with every rule that kept it.
//!
//! # Rules
//!
//! The rules are those operators know from `restic forget --keep-*` and `borg prune`:
//!
//! | rule | keeps |
//! | --- | --- |
//! | `keep_last N` | the N newest snapshots |
//! | `keep_hourly N` | the newest snapshot of each of the N newest local hours that have one |
//! | `keep_daily N` | the same per local calendar day |
//! | `keep_weekly N` | the same per ISO 8601 week (Monday to Sunday, see year ends below) |
//! | `keep_monthly N` | the same per calendar month |
//! | `keep_yearly N` | the same per calendar year |
//! | `keep_within D` | every snapshot taken at or after `now - D` ([`KeepWithin`]) |
//! | `keep_tags [T...]` | every snapshot carrying at least one of these tags (exact match) |
//!
//! Each rule is applied on its own to the whole group (as restic does, unlike borg, where a
//! later rule skips periods an earlier rule already kept): a snapshot can be kept by
//! several rules, and its decision lists all of them, in the order of the table, e.g.
//! `["last 1", "daily 1", "weekly 1", "tag pre-upgrade"]`. A snapshot no rule keeps is
//! removed. A rule asking for more periods than the history has keeps the newest snapshot
//! of every period there is, and no more (no "keep the oldest as well" fill-up as in borg).
//!
//! Reasons read `RULE K` for the counted rules, where K is the position of the period (or,
//! for `last`, the snapshot) counted from the newest: `"daily 3"` is the newest snapshot of
//! the third newest day that has snapshots. Then `"within 30d"` and `"tag pre-upgrade"`.
//!
//! # Order and ties
//!
//! Snapshots are ordered by their instant (the offset they were written with does not
//! matter: `10:00:00Z` and `12:00:00+02:00` are the same time), newest first. Two
//! snapshots with the same instant are ordered by id: the larger id counts as the newer
//! one, as it does for `latest` ([`crate::repo::Repo::snapshots`] sorts by time, then id).
//! The result therefore does not depend on the order of the input.
//!
//! # Calendar periods in the local time zone
//!
//! A snapshot's period is read off its wall-clock time in the zone of `now`, whatever
//! offset the host that took it wrote into it: a snapshot at `2020-12-31T23:30:00Z` is on
//! 1 January 2021 for a host in Berlin. Hours are `(date, hour)`, days are dates, weeks are
//! `(ISO year, ISO week)`, months `(year, month)`, years the calendar year.
//!
//! **Daylight saving time.** Because periods are wall-clock labels, a day is a calendar day
//! however long it is: the spring-forward day has 23 hours, the fall-back day 25, and each
//! is one `daily` period. When clocks spring forward, the skipped hour (02:00 to 03:00 in
//! Europe) has no snapshots and simply is no period. When clocks fall back, the repeated
//! hour (02:00 to 03:00 once in summer time and once more in winter time) is *one* hourly
//! period, as in restic and borg: `keep_hourly` keeps the newest snapshot of the two real
//! hours, and the other snapshots of that hour count as the same period.
//!
//! **Year ends.** Weekly periods use the ISO week-numbering year, never the calendar year,
//! so a week that straddles new year is one period: 28 December 2020 to 3 January 2021 is
//! 2020-W53, and 30 December 2019 to 5 January 2020 is 2020-W01. Monthly and yearly
//! periods use the calendar year of the local date.
//!
//! # keep_within
//!
//! `keep_within` is counted back from `now` (as borg does; restic counts from the newest
//! snapshot). Years, months, weeks and days are calendar steps on the local wall clock
//! (`1m` before 31 March is the last day of February, `1d` before noon is noon yesterday
//! even across a 23- or 25-hour day); hours are then subtracted as elapsed time. If the
//! wall-clock cutoff falls in the hour skipped by spring-forward, the cutoff is the instant
//! the clocks jumped; if it falls in the repeated fall-back hour, it is the earlier of the
//! two instants. In both cases the cutoff is the first instant at which the local clock
//! reads the cutoff time or later, so the rule never keeps less than the duration says. A
//! snapshot exactly at the cutoff, and any snapshot dated after `now`, is within.
//!
//! # Groups and host filter
//!
//! Snapshots are grouped (by default per host and set of paths, as restic's
//! `--group-by host,paths`; path order does not matter) and the policy is applied to each
//! group on its own: two hosts that snapshot into one store each keep their own N
//! snapshots. [`GroupBy`] can also group by tags, or not at all. If [`Policy::hosts`] is
//! not empty, only snapshots of those hosts are considered; every other snapshot gets a
//! decision with `selected: false` and `keep: true`, so no caller removes it by mistake.
//!
//! # Refusals
//!
//! A policy with no keep rule at all would remove every snapshot; it is refused
//! ([`RetentionError::EmptyPolicy`]) by [`Policy::validate`], [`Policy::from_config`] and
//! [`apply`]. Unreadable durations, group-by lists, empty tags and unparseable snapshot
//! times are clear errors too.

use crate::id::Id;
use crate::repo::Snapshot;
use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone,
    Timelike,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// Why a policy or a snapshot list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "the retention policy has no keep rule, so it would forget every snapshot; refusing. \
         Give at least one of keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, \
         keep-yearly, keep-within or keep-tag"
    )]
    EmptyPolicy,

    #[error(
        "keep-within {text:?}: {problem} (write a duration such as 30d, 2w, 1y6m or 12h; \
         units: y years, m months, w weeks, d days, h hours)"
    )]
    BadDuration { text: String, problem: String },

    #[error("keep-tag: {0}")]
    BadTag(String),

    #[error(
        "group-by {text:?}: {problem} (give a comma-separated list of host, paths and tags, \
         or an empty text for one group of all snapshots)"
    )]
    BadGroupBy { text: String, problem: String },

    #[error("snapshot {snapshot}: its time {time:?} is not an RFC 3339 time ({problem})")]
    BadSnapshotTime {
        snapshot: String,
        time: String,
        problem: String,
    },
}

/// The `[retention]` section of the configuration file. Every field is optional; counts
/// default to 0 (rule off).
///
/// ```toml
/// [retention]
/// keep_daily = 7
/// keep_weekly = 4
/// keep_monthly = 12
/// keep_within = "2d"
/// keep_tags = ["pre-upgrade"]
/// # hosts = ["platform-1"]      # only these hosts' snapshots (default: all)
/// # group_by = "host,paths"     # the default
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// A duration such as `30d`, `2w`, `1y6m` or `12h`, see [`KeepWithin`].
    pub keep_within: Option<String>,
    /// Snapshots carrying any of these tags are always kept.
    pub keep_tags: Vec<String>,
    /// Consider only snapshots of these hosts (empty: all hosts).
    pub hosts: Vec<String>,
    /// `host,paths` (default), any subset of `host`, `paths`, `tags`, or `""` for one group.
    pub group_by: Option<String>,
}

/// What to group snapshots by before the policy is applied to each group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    /// Per host and path set, as restic's default.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl FromStr for GroupBy {
    type Err = RetentionError;

    /// Parses `host,paths`, `host`, `paths,tags`, ... (order and spaces do not matter);
    /// an empty text means one group for all snapshots.
    fn from_str(text: &str) -> Result<GroupBy, RetentionError> {
        let mut out = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        if text.trim().is_empty() {
            return Ok(out);
        }
        for part in text.split(',').map(str::trim) {
            match part {
                "host" => out.host = true,
                "paths" => out.paths = true,
                "tags" => out.tags = true,
                "" => {
                    return Err(RetentionError::BadGroupBy {
                        text: text.into(),
                        problem: "an empty item".into(),
                    })
                }
                other => {
                    return Err(RetentionError::BadGroupBy {
                        text: text.into(),
                        problem: format!("unknown item {other:?}"),
                    })
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.host {
            parts.push("host");
        }
        if self.paths {
            parts.push("paths");
        }
        if self.tags {
            parts.push("tags");
        }
        f.write_str(&parts.join(","))
    }
}

/// The `keep_within` duration: `1y6m` is `years: 1, months: 6`. See the module docs for
/// how it is counted back from now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepWithin {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
}

impl KeepWithin {
    /// Parses `30d`, `2w`, `1y6m`, `12h`, `1y2m3w4d5h`: whole numbers each followed by a
    /// unit (`y`, `m` months, `w`, `d`, `h`), each unit at most once, in any order, spaces
    /// allowed between parts. A zero duration is refused (it would keep nothing).
    pub fn parse(text: &str) -> Result<KeepWithin, RetentionError> {
        let bad = |problem: String| RetentionError::BadDuration {
            text: text.to_string(),
            problem,
        };
        if text.trim().is_empty() {
            return Err(bad("the duration is empty".into()));
        }
        let mut out = KeepWithin::default();
        let mut seen = HashSet::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
            let Some(&first) = chars.peek() else { break };
            let mut digits = String::new();
            while let Some(c) = chars.next_if(char::is_ascii_digit) {
                digits.push(c);
            }
            if digits.is_empty() {
                return Err(bad(if first.is_alphabetic() {
                    format!("a number must come before {first:?}")
                } else {
                    format!("unexpected {first:?}: only whole numbers with a unit are allowed")
                }));
            }
            let unit = match chars.next() {
                None => return Err(bad(format!("{digits} has no unit"))),
                Some(c) if c.is_ascii_whitespace() => {
                    return Err(bad(format!("{digits} has no unit")))
                }
                Some(c) => c,
            };
            let n: u32 = digits
                .parse()
                .map_err(|_| bad(format!("{digits} is too large")))?;
            let field = match unit {
                'y' => &mut out.years,
                'm' => &mut out.months,
                'w' => &mut out.weeks,
                'd' => &mut out.days,
                'h' => &mut out.hours,
                other => return Err(bad(format!("unknown unit {other:?}"))),
            };
            if !seen.insert(unit) {
                return Err(bad(format!("the unit {unit:?} is given twice")));
            }
            *field = n;
        }
        if out.is_zero() {
            return Err(bad("a zero duration keeps nothing".into()));
        }
        Ok(out)
    }

    pub fn is_zero(&self) -> bool {
        *self == KeepWithin::default()
    }

    /// The oldest instant that is still within the duration before `now`, or `None` when
    /// that lies before any representable time (then every snapshot is within).
    pub fn cutoff<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let days = u64::from(self.weeks) * 7 + u64::from(self.days);
        let wall = now
            .naive_local()
            .checked_sub_months(Months::new(months))?
            .checked_sub_days(Days::new(days))?;
        let at = first_instant_showing(&now.timezone(), wall)?;
        at.checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl FromStr for KeepWithin {
    type Err = RetentionError;
    fn from_str(text: &str) -> Result<KeepWithin, RetentionError> {
        KeepWithin::parse(text)
    }
}

impl fmt::Display for KeepWithin {
    /// The canonical form: `1y6m`, `30d`, units in the order y m w d h.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        if self.is_zero() {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

/// The first instant at which the clock of `tz` reads `wall` or later: the earlier of two
/// instants in a repeated hour, the moment the clocks jumped if `wall` was skipped.
fn first_instant_showing<Tz: TimeZone>(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(a, b) => Some(if a <= b { a } else { b }),
        LocalResult::None => {
            // In a gap: walk forward minute by minute to the first wall time that exists
            // (transitions fall on whole minutes), at most two days.
            let mut probe = wall.with_second(0)?.with_nanosecond(0)?;
            for _ in 0..2 * 24 * 60 {
                probe = probe.checked_add_signed(TimeDelta::minutes(1))?;
                match tz.from_local_datetime(&probe) {
                    LocalResult::Single(t) => return Some(t),
                    LocalResult::Ambiguous(a, b) => return Some(if a <= b { a } else { b }),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

/// Which snapshots to keep. Build it with [`Policy::from_config`] or directly;
/// [`Policy::validate`] checks one built by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<KeepWithin>,
    /// Snapshots carrying any of these tags are kept.
    pub tags: Vec<String>,
    /// Only snapshots of these hosts are considered (empty: all).
    pub hosts: Vec<String>,
    pub group_by: GroupBy,
}

impl Policy {
    /// True if no rule keeps anything (the host filter and grouping are not rules).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && !matches!(self.within, Some(w) if !w.is_zero())
            && self.tags.is_empty()
    }

    /// Refuses an empty policy, a zero `within` and empty tags.
    pub fn validate(&self) -> Result<(), RetentionError> {
        if let Some(w) = &self.within {
            if w.is_zero() {
                return Err(RetentionError::BadDuration {
                    text: w.to_string(),
                    problem: "a zero duration keeps nothing".into(),
                });
            }
        }
        if self.tags.iter().any(|t| t.is_empty()) {
            return Err(RetentionError::BadTag(
                "an empty tag matches no snapshot; remove it".into(),
            ));
        }
        if self.is_empty() {
            return Err(RetentionError::EmptyPolicy);
        }
        Ok(())
    }

    /// The policy a `[retention]` section describes; refuses bad values and a section
    /// without any keep rule. (Callers that let command-line flags override the file
    /// should overlay them on the [`RetentionConfig`] first.)
    pub fn from_config(config: &RetentionConfig) -> Result<Policy, RetentionError> {
        let policy = Policy {
            last: config.keep_last,
            hourly: config.keep_hourly,
            daily: config.keep_daily,
            weekly: config.keep_weekly,
            monthly: config.keep_monthly,
            yearly: config.keep_yearly,
            within: config
                .keep_within
                .as_deref()
                .map(KeepWithin::parse)
                .transpose()?,
            tags: config.keep_tags.clone(),
            hosts: config.hosts.clone(),
            group_by: match &config.group_by {
                Some(text) => text.parse()?,
                None => GroupBy::default(),
            },
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl fmt::Display for Policy {
    /// `last 2, daily 7, weekly 4, within 30d, tags pre-upgrade`: the rules in effect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (n, name) in [
            (self.last, "last"),
            (self.hourly, "hourly"),
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
            (self.yearly, "yearly"),
        ] {
            if n > 0 {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = &self.within {
            parts.push(format!("within {w}"));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags {}", self.tags.join(" ")));
        }
        if parts.is_empty() {
            parts.push("no rule".into());
        }
        f.write_str(&parts.join(", "))
    }
}

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

    let cutoff = policy.within.map(|w| (w, w.cutoff(now)));
    let mut keep_tags: Vec<&String> = Vec::new();
    for t in &policy.tags {
        if !keep_tags.contains(&t) {
            keep_tags.push(t);
        }
    }
    let calendar: [CalendarRule; 5] = [
        (policy.hourly, Period::Hour, Reason::Hourly),
        (policy.daily, Period::Day, Reason::Daily),
        (policy.weekly, Period::Week, Reason::Weekly),
        (policy.monthly, Period::Month, Reason::Monthly),
        (policy.yearly, Period::Year, Reason::Yearly),
    ];

    let mut out = Vec::with_capacity(snapshots.len());
    for (key, mut members) in groups {
        members.sort_by(newest_first);
        let label = key.label();
        let walls: Vec<NaiveDateTime> = members
            .iter()
            .map(|&i| snapshots[i].time.with_timezone(&tz).naive_local())
            .collect();
        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); members.len()];

        for (k, r) in reasons.iter_mut().take(policy.last as usize).enumerate() {
            r.push(Reason::Last(k as u32 + 1));
        }
        for (count, period, reason) in calendar {
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
        if let Some((within, cutoff)) = &cutoff {
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
            for tag in &keep_tags {
                if snapshots[i].tags.contains(tag) {
                    reasons[pos].push(Reason::Tag((*tag).clone()));
                }
            }
        }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Summary;
    use chrono::{NaiveDate, Offset, Utc, Weekday};

    // ---- a time zone with real daylight-saving rules, for tests ----

    /// Europe/Berlin (EU rules, in force since 1996) and America/New_York (US rules, since
    /// 2007), enough for the years these tests use.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum TestZone {
        Berlin,
        NewYork,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct TestOffset {
        zone: TestZone,
        fix: FixedOffset,
    }

    impl Offset for TestOffset {
        fn fix(&self) -> FixedOffset {
            self.fix
        }
    }

    impl fmt::Display for TestOffset {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.fix)
        }
    }

    fn nth_sunday(year: i32, month: u32, n: u8) -> NaiveDate {
        NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).unwrap()
    }

    impl TestZone {
        /// (standard, summer) offsets in seconds east of UTC.
        fn offsets(self) -> (i32, i32) {
            match self {
                TestZone::Berlin => (3600, 7200),
                TestZone::NewYork => (-5 * 3600, -4 * 3600),
            }
        }

        /// The UTC instants at which summer time starts and ends in `year`.
        fn summer(self, year: i32) -> (NaiveDateTime, NaiveDateTime) {
            match self {
                TestZone::Berlin => (
                    last_sunday_of(year, 3).and_hms_opt(1, 0, 0).unwrap(),
                    last_sunday_of(year, 10).and_hms_opt(1, 0, 0).unwrap(),
                ),
                TestZone::NewYork => (
                    nth_sunday(year, 3, 2).and_hms_opt(7, 0, 0).unwrap(),
                    nth_sunday(year, 11, 1).and_hms_opt(6, 0, 0).unwrap(),
                ),
            }
        }

        fn offset_at(self, utc: &NaiveDateTime) -> TestOffset {
            let (std, dst) = self.offsets();
            let (start, end) = self.summer(utc.year());
            let secs = if *utc >= start && *utc < end {
                dst
            } else {
                std
            };
            TestOffset {
                zone: self,
                fix: FixedOffset::east_opt(secs).unwrap(),
            }
        }
    }

    fn last_sunday_of(year: i32, month: u32) -> NaiveDate {
        let mut d = NaiveDate::from_ymd_opt(year, month + 1, 1)
            .unwrap()
            .pred_opt()
            .unwrap();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        d
    }

    impl TimeZone for TestZone {
        type Offset = TestOffset;

        fn from_offset(offset: &TestOffset) -> TestZone {
            offset.zone
        }

        fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<TestOffset> {
            self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
        }

        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<TestOffset> {
            let (std, dst) = self.offsets();
            // An offset fits if the instant it gives has that offset.
            let fits = |secs: i32| {
                let utc = *local - TimeDelta::seconds(secs.into());
                self.offset_at(&utc).fix.local_minus_utc() == secs
            };
            let mk = |secs: i32| TestOffset {
                zone: *self,
                fix: FixedOffset::east_opt(secs).unwrap(),
            };
            // Summer time first: with the larger offset the instant is the earlier one.
            match (fits(dst), fits(std)) {
                (true, true) => LocalResult::Ambiguous(mk(dst), mk(std)),
                (true, false) => LocalResult::Single(mk(dst)),
                (false, true) => LocalResult::Single(mk(std)),
                (false, false) => LocalResult::None,
            }
        }

        fn offset_from_utc_date(&self, utc: &NaiveDate) -> TestOffset {
            self.offset_at(&utc.and_hms_opt(0, 0, 0).unwrap())
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> TestOffset {
            self.offset_at(utc)
        }
    }

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn test_zones_have_the_real_transitions() {
        let b = TestZone::Berlin;
        assert_eq!(
            b.offset_from_local_datetime(&wall("2024-03-31 02:30")),
            LocalResult::None
        );
        assert!(matches!(
            b.offset_from_local_datetime(&wall("2024-10-27 02:30")),
            LocalResult::Ambiguous(..)
        ));
        let at = |tz: TestZone, s: &str| {
            DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&tz)
                .to_rfc3339()
        };
        assert_eq!(at(b, "2024-03-31T00:59:59Z"), "2024-03-31T01:59:59+01:00");
        assert_eq!(at(b, "2024-03-31T01:00:00Z"), "2024-03-31T03:00:00+02:00");
        assert_eq!(at(b, "2024-10-27T00:59:59Z"), "2024-10-27T02:59:59+02:00");
        assert_eq!(at(b, "2024-10-27T01:00:00Z"), "2024-10-27T02:00:00+01:00");
        assert_eq!(at(b, "2020-12-31T23:30:00Z"), "2021-01-01T00:30:00+01:00");
        let ny = TestZone::NewYork;
        assert_eq!(at(ny, "2024-03-10T06:59:00Z"), "2024-03-10T01:59:00-05:00");
        assert_eq!(at(ny, "2024-03-10T07:00:00Z"), "2024-03-10T03:00:00-04:00");
        assert_eq!(at(ny, "2024-11-03T05:59:00Z"), "2024-11-03T01:59:00-04:00");
        assert_eq!(at(ny, "2024-11-03T06:00:00Z"), "2024-11-03T01:00:00-05:00");
        assert_eq!(
            ny.offset_from_local_datetime(&wall("2024-03-10 02:30")),
            LocalResult::None
        );
    }

    // ---- building histories ----

    fn id(n: u32) -> Id {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        Id(b)
    }

    fn snap(time: &str, host: &str, paths: &[&str], tags: &[&str]) -> Snapshot {
        Snapshot {
            time: time.to_string(),
            hostname: host.to_string(),
            username: "root".into(),
            paths: paths
                .iter()
                .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: Id([0; 32]),
            summary: Summary::default(),
            program: "vault test".into(),
            databases: Vec::new(),
        }
    }

    const TRAVIS: &[&str] = &["/etc/travis", "/var/travis"];

    /// One host, one path set, ids 1, 2, 3, ... in the order given.
    fn history(times: &[&str]) -> Vec<(Id, Snapshot)> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (id(i as u32 + 1), snap(t, "platform", TRAVIS, &[])))
            .collect()
    }

    fn at<Tz: TimeZone>(tz: &Tz, s: &str) -> DateTime<Tz> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(tz)
    }

    fn run<Tz: TimeZone>(
        policy: &Policy,
        snaps: &[(Id, Snapshot)],
        now: &DateTime<Tz>,
    ) -> Vec<Decision> {
        let cands = candidates(snaps).unwrap();
        let out = apply(policy, &cands, now).unwrap();
        // Every snapshot gets exactly one decision.
        let mut ids: Vec<Id> = out.iter().map(|d| d.id).collect();
        let mut want: Vec<Id> = snaps.iter().map(|(i, _)| *i).collect();
        ids.sort();
        want.sort();
        assert_eq!(ids, want, "one decision per snapshot");
        out
    }

    /// The kept snapshots, newest first: (time as written, reasons).
    fn kept(snaps: &[(Id, Snapshot)], decisions: &[Decision]) -> Vec<(String, String)> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| {
                let s = &snaps.iter().find(|(i, _)| *i == d.id).unwrap().1;
                (s.time.clone(), d.reason_text())
            })
            .collect()
    }

    fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The same history with every time rewritten in UTC, as a host with TZ=UTC would have
    /// written it: the decisions must not change (periods come from the zone of `now`).
    fn assert_same_written_in_utc<Tz: TimeZone>(
        policy: &Policy,
        snaps: &[(Id, Snapshot)],
        now: &DateTime<Tz>,
    ) {
        let utc: Vec<(Id, Snapshot)> = snaps
            .iter()
            .map(|(i, s)| {
                let mut s = s.clone();
                s.time = DateTime::parse_from_rfc3339(&s.time)
                    .unwrap()
                    .with_timezone(&Utc)
                    .to_rfc3339();
                (*i, s)
            })
            .collect();
        let a: Vec<(Id, bool, Vec<Reason>)> = run(policy, snaps, now)
            .into_iter()
            .map(|d| (d.id, d.keep, d.reasons))
            .collect();
        let b: Vec<(Id, bool, Vec<Reason>)> = run(policy, &utc, now)
            .into_iter()
            .map(|d| (d.id, d.keep, d.reasons))
            .collect();
        assert_eq!(a, b);
    }

    // ---- the calendar rules ----

    #[test]
    fn hourly_for_three_weeks_keep_daily_7_weekly_4() {
        // Every hour from Wednesday 2024-01-03 10:00 to Wednesday 2024-01-24 09:00, Berlin
        // winter time: 504 snapshots touching ISO weeks 1 to 4.
        let start = TestZone::Berlin
            .from_local_datetime(&wall("2024-01-03 10:00"))
            .unwrap();
        let times: Vec<String> = (0..504)
            .map(|h| (start + TimeDelta::hours(h)).fixed_offset().to_rfc3339())
            .collect();
        let refs: Vec<&str> = times.iter().map(String::as_str).collect();
        let snaps = history(&refs);
        let policy = Policy {
            daily: 7,
            weekly: 4,
            ..Policy::default()
        };
        let now = at(&TestZone::Berlin, "2024-01-24T10:00:00+01:00");
        let out = run(&policy, &snaps, &now);
        assert_eq!(
            kept(&snaps, &out),
            expect(&[
                ("2024-01-24T09:00:00+01:00", "daily 1, weekly 1"),
                ("2024-01-23T23:00:00+01:00", "daily 2"),
                ("2024-01-22T23:00:00+01:00", "daily 3"),
                ("2024-01-21T23:00:00+01:00", "daily 4, weekly 2"),
                ("2024-01-20T23:00:00+01:00", "daily 5"),
                ("2024-01-19T23:00:00+01:00", "daily 6"),
                ("2024-01-18T23:00:00+01:00", "daily 7"),
                ("2024-01-14T23:00:00+01:00", "weekly 3"),
                ("2024-01-07T23:00:00+01:00", "weekly 4"),
            ])
        );
        assert_eq!(out.iter().filter(|d| !d.keep).count(), 495);
        assert!(out.iter().all(|d| d.keep != d.reasons.is_empty()));
        // Decisions come newest first.
        assert!(out.windows(2).all(|w| w[0].time >= w[1].time));
        assert_same_written_in_utc(&policy, &snaps, &now);
    }

    #[test]
    fn periods_are_read_in_the_zone_of_now_not_in_utc() {
        // Berlin: 14:00 on 1 May, then 01:30 and 05:30 on 2 May. New York: 08:00, 19:30 and
        // 23:30, all on 1 May. UTC: two on 1 May, one on 2 May.
        let snaps = history(&[
            "2024-05-01T12:00:00Z",
            "2024-05-01T23:30:00Z",
            "2024-05-02T03:30:00Z",
        ]);
        let policy = Policy {
            daily: 5,
            ..Policy::default()
        };
        let berlin = run(
            &policy,
            &snaps,
            &at(&TestZone::Berlin, "2024-05-03T00:00:00Z"),
        );
        assert_eq!(
            kept(&snaps, &berlin),
            expect(&[
                ("2024-05-02T03:30:00Z", "daily 1"),
                ("2024-05-01T12:00:00Z", "daily 2")
            ])
        );
        let ny = run(
            &policy,
            &snaps,
            &at(&TestZone::NewYork, "2024-05-03T00:00:00Z"),
        );
        assert_eq!(
            kept(&snaps, &ny),
            expect(&[("2024-05-02T03:30:00Z", "daily 1")])
        );
        let utc = run(&policy, &snaps, &at(&Utc, "2024-05-03T00:00:00Z"));
        assert_eq!(
            kept(&snaps, &utc),
            expect(&[
                ("2024-05-02T03:30:00Z", "daily 1"),
                ("2024-05-01T23:30:00Z", "daily 2")
            ])
        );
    }

    // ---- daylight saving time ----

    #[test]
    fn fall_back_the_repeated_hour_is_one_hourly_period() {
        // Berlin, 2024-10-27: at 03:00 summer time the clocks go back to 02:00.
        let snaps = history(&[
            "2024-10-27T00:30:00+02:00",
            "2024-10-27T01:30:00+02:00",
            "2024-10-27T02:15:00+02:00",
            "2024-10-27T02:45:00+02:00",
            "2024-10-27T02:15:00+01:00",
            "2024-10-27T02:45:00+01:00",
            "2024-10-27T03:15:00+01:00",
        ]);
        let policy = Policy {
            hourly: 10,
            ..Policy::default()
        };
        let now = at(&TestZone::Berlin, "2024-10-27T12:00:00+01:00");
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2024-10-27T03:15:00+01:00", "hourly 1"),
                ("2024-10-27T02:45:00+01:00", "hourly 2"),
                ("2024-10-27T01:30:00+02:00", "hourly 3"),
                ("2024-10-27T00:30:00+02:00", "hourly 4"),
            ])
        );
        assert_same_written_in_utc(&policy, &snaps, &now);
    }

    #[test]
    fn fall_back_day_has_25_hours_and_is_one_daily_period() {
        let snaps = history(&[
            "2024-10-26T23:30:00+02:00", // Saturday
            "2024-10-27T00:30:00+02:00", // Sunday, 24 real hours before the next one
            "2024-10-27T23:30:00+01:00", // still Sunday
            "2024-10-28T00:30:00+01:00", // Monday
        ]);
        let policy = Policy {
            daily: 10,
            ..Policy::default()
        };
        let now = at(&TestZone::Berlin, "2024-10-28T12:00:00+01:00");
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2024-10-28T00:30:00+01:00", "daily 1"),
                ("2024-10-27T23:30:00+01:00", "daily 2"),
                ("2024-10-26T23:30:00+02:00", "daily 3"),
            ])
        );
        assert_same_written_in_utc(&policy, &snaps, &now);
    }

    #[test]
    fn fall_back_day_hour_by_hour() {
        // One snapshot every real hour of the 25-hour Sunday, 00:00 to 23:00 local.
        let start = DateTime::parse_from_rfc3339("2024-10-26T22:00:00Z").unwrap();
        let times: Vec<String> = (0..25)
            .map(|h| (start + TimeDelta::hours(h)).to_rfc3339())
            .collect();
        let refs: Vec<&str> = times.iter().map(String::as_str).collect();
        let snaps = history(&refs);
        let now = at(&TestZone::Berlin, "2024-10-28T00:00:00Z");
        let daily = Policy {
            daily: 2,
            ..Policy::default()
        };
        // All 25 are one day; the day before has none.
        assert_eq!(
            kept(&snaps, &run(&daily, &snaps, &now)),
            expect(&[("2024-10-27T22:00:00+00:00", "daily 1")])
        );
        // 24 hour labels: only 02:00 summer time (00:00 UTC) loses to 02:00 winter time.
        let hourly = Policy {
            hourly: 24,
            ..Policy::default()
        };
        let out = run(&hourly, &snaps, &now);
        let removed: Vec<&str> = out
            .iter()
            .filter(|d| !d.keep)
            .map(|d| {
                snaps
                    .iter()
                    .find(|(i, _)| *i == d.id)
                    .unwrap()
                    .1
                    .time
                    .as_str()
            })
            .collect();
        assert_eq!(removed, ["2024-10-27T00:00:00+00:00"]);
        let k = kept(&snaps, &out);
        assert_eq!(k.len(), 24);
        assert_eq!(
            k[21],
            ("2024-10-27T01:00:00+00:00".into(), "hourly 22".into())
        );
        assert_eq!(
            k[22],
            ("2024-10-26T23:00:00+00:00".into(), "hourly 23".into())
        );
    }

    #[test]
    fn spring_forward_day_has_23_hours_and_is_one_daily_period() {
        // Berlin, 2024-03-31: at 02:00 winter time the clocks jump to 03:00.
        let snaps = history(&[
            "2024-03-30T23:30:00+01:00", // Saturday
            "2024-03-31T00:30:00+01:00", // Sunday
            "2024-03-31T01:59:00+01:00",
            "2024-03-31T03:00:00+02:00", // one real minute later
            "2024-03-31T23:45:00+02:00", // still Sunday, 22 h 15 min after 00:30
            "2024-04-01T00:15:00+02:00", // Monday
        ]);
        let now = at(&TestZone::Berlin, "2024-04-01T12:00:00+02:00");
        let daily = Policy {
            daily: 10,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&daily, &snaps, &now)),
            expect(&[
                ("2024-04-01T00:15:00+02:00", "daily 1"),
                ("2024-03-31T23:45:00+02:00", "daily 2"),
                ("2024-03-30T23:30:00+01:00", "daily 3"),
            ])
        );
        assert_same_written_in_utc(&daily, &snaps, &now);
        // Every snapshot is in an hour of its own (there is no 02:00 hour that day).
        let hourly = Policy {
            hourly: 10,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&hourly, &snaps, &now)),
            expect(&[
                ("2024-04-01T00:15:00+02:00", "hourly 1"),
                ("2024-03-31T23:45:00+02:00", "hourly 2"),
                ("2024-03-31T03:00:00+02:00", "hourly 3"),
                ("2024-03-31T01:59:00+01:00", "hourly 4"),
                ("2024-03-31T00:30:00+01:00", "hourly 5"),
                ("2024-03-30T23:30:00+01:00", "hourly 6"),
            ])
        );
    }

    #[test]
    fn new_york_transitions() {
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 2024-11-03: 02:00 EDT back to 01:00 EST.
        let spring = history(&[
            "2024-03-09T23:30:00-05:00",
            "2024-03-10T00:30:00-05:00",
            "2024-03-10T01:30:00-05:00",
            "2024-03-10T03:30:00-04:00",
            "2024-03-10T23:30:00-04:00",
            "2024-03-11T00:30:00-04:00",
        ]);
        let now = at(&TestZone::NewYork, "2024-03-11T12:00:00-04:00");
        let daily = Policy {
            daily: 10,
            ..Policy::default()
        };
        assert_eq!(
            kept(&spring, &run(&daily, &spring, &now)),
            expect(&[
                ("2024-03-11T00:30:00-04:00", "daily 1"),
                ("2024-03-10T23:30:00-04:00", "daily 2"),
                ("2024-03-09T23:30:00-05:00", "daily 3"),
            ])
        );
        assert_same_written_in_utc(&daily, &spring, &now);

        let fall = history(&[
            "2024-11-03T00:30:00-04:00",
            "2024-11-03T01:15:00-04:00",
            "2024-11-03T01:45:00-04:00",
            "2024-11-03T01:15:00-05:00",
            "2024-11-03T01:45:00-05:00",
            "2024-11-03T02:15:00-05:00",
        ]);
        let now = at(&TestZone::NewYork, "2024-11-03T12:00:00-05:00");
        let hourly = Policy {
            hourly: 10,
            ..Policy::default()
        };
        assert_eq!(
            kept(&fall, &run(&hourly, &fall, &now)),
            expect(&[
                ("2024-11-03T02:15:00-05:00", "hourly 1"),
                ("2024-11-03T01:45:00-05:00", "hourly 2"),
                ("2024-11-03T00:30:00-04:00", "hourly 3"),
            ])
        );
        assert_same_written_in_utc(&hourly, &fall, &now);
    }

    // ---- year ends ----

    #[test]
    fn iso_week_53_straddles_new_year() {
        // Noon every day from Thursday 2020-12-24 to Wednesday 2021-01-06. ISO weeks:
        // 2020-W52 = Dec 21-27, 2020-W53 = Dec 28 - Jan 3, 2021-W01 = Jan 4-10.
        let day0 = NaiveDate::from_ymd_opt(2020, 12, 24).unwrap();
        let times: Vec<String> = (0..14)
            .map(|d| format!("{}T12:00:00+01:00", day0 + Days::new(d)))
            .collect();
        let refs: Vec<&str> = times.iter().map(String::as_str).collect();
        let snaps = history(&refs);
        let policy = Policy {
            weekly: 3,
            ..Policy::default()
        };
        let now = at(&TestZone::Berlin, "2021-01-07T00:00:00+01:00");
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2021-01-06T12:00:00+01:00", "weekly 1"),
                ("2021-01-03T12:00:00+01:00", "weekly 2"),
                ("2020-12-27T12:00:00+01:00", "weekly 3"),
            ])
        );
    }

    #[test]
    fn iso_week_1_starts_in_the_old_year() {
        // 2020-W01 runs from Monday 2019-12-30; Friday 2019-12-27 is in 2019-W52.
        let snaps = history(&[
            "2019-12-27T12:00:00+01:00",
            "2019-12-30T12:00:00+01:00",
            "2019-12-31T12:00:00+01:00",
            "2020-01-02T12:00:00+01:00",
        ]);
        let policy = Policy {
            weekly: 10,
            ..Policy::default()
        };
        let now = at(&TestZone::Berlin, "2020-01-03T00:00:00+01:00");
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2020-01-02T12:00:00+01:00", "weekly 1"),
                ("2019-12-27T12:00:00+01:00", "weekly 2"),
            ])
        );
    }

    #[test]
    fn new_year_in_local_time_for_daily_monthly_yearly() {
        let snaps = history(&[
            "2020-06-01T12:00:00+02:00",
            "2020-12-31T23:30:00+01:00", // the last half hour of 2020 in Berlin
            "2020-12-31T23:30:00Z",      // 00:30 on 1 January 2021 in Berlin
            "2021-03-01T12:00:00+01:00",
        ]);
        let now = at(&TestZone::Berlin, "2021-03-02T00:00:00+01:00");
        let policy = Policy {
            monthly: 3,
            yearly: 5,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2021-03-01T12:00:00+01:00", "monthly 1, yearly 1"),
                ("2020-12-31T23:30:00Z", "monthly 2"),
                ("2020-12-31T23:30:00+01:00", "monthly 3, yearly 2"),
            ])
        );
        let daily = Policy {
            daily: 3,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&daily, &snaps, &now)),
            expect(&[
                ("2021-03-01T12:00:00+01:00", "daily 1"),
                ("2020-12-31T23:30:00Z", "daily 2"),
                ("2020-12-31T23:30:00+01:00", "daily 3"),
            ])
        );
    }

    // ---- ties, last, more than exists ----

    #[test]
    fn ties_are_broken_by_id_whatever_the_input_order() {
        // Ids 5 and 9 are the same instant written with different offsets.
        let a = (id(5), snap("2024-05-01T12:00:00+02:00", "h", TRAVIS, &[]));
        let b = (id(9), snap("2024-05-01T10:00:00Z", "h", TRAVIS, &[]));
        let c = (id(1), snap("2024-05-01T09:00:00Z", "h", TRAVIS, &[]));
        let now = at(&Utc, "2024-05-02T00:00:00Z");
        let orders = [
            [&a, &b, &c],
            [&a, &c, &b],
            [&b, &a, &c],
            [&b, &c, &a],
            [&c, &a, &b],
            [&c, &b, &a],
        ];
        for order in orders {
            let snaps: Vec<(Id, Snapshot)> = order.iter().map(|s| (*s).clone()).collect();
            let last = Policy {
                last: 2,
                ..Policy::default()
            };
            let keep: Vec<(Id, String)> = run(&last, &snaps, &now)
                .iter()
                .filter(|d| d.keep)
                .map(|d| (d.id, d.reason_text()))
                .collect();
            assert_eq!(keep, [(id(9), "last 1".into()), (id(5), "last 2".into())]);
            let daily = Policy {
                daily: 1,
                hourly: 5,
                ..Policy::default()
            };
            let keep: Vec<(Id, String)> = run(&daily, &snaps, &now)
                .iter()
                .filter(|d| d.keep)
                .map(|d| (d.id, d.reason_text()))
                .collect();
            assert_eq!(
                keep,
                [
                    (id(9), "hourly 1, daily 1".into()),
                    (id(1), "hourly 2".into())
                ]
            );
        }
    }

    #[test]
    fn keep_last_and_more_than_exists() {
        let snaps = history(&[
            "2024-05-01T00:00:00Z",
            "2024-05-01T06:00:00Z",
            "2024-05-01T12:00:00Z",
            "2024-05-02T00:00:00Z",
            "2024-05-02T12:00:00Z",
        ]);
        let now = at(&Utc, "2024-06-01T00:00:00Z");
        let last3 = Policy {
            last: 3,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&last3, &snaps, &now)),
            expect(&[
                ("2024-05-02T12:00:00Z", "last 1"),
                ("2024-05-02T00:00:00Z", "last 2"),
                ("2024-05-01T12:00:00Z", "last 3"),
            ])
        );
        let last10 = Policy {
            last: 10,
            ..Policy::default()
        };
        assert_eq!(kept(&snaps, &run(&last10, &snaps, &now)).len(), 5);
        // Thirty days asked, two days exist: the newest of each of the two.
        let daily30 = Policy {
            daily: 30,
            yearly: 100,
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&daily30, &snaps, &now)),
            expect(&[
                ("2024-05-02T12:00:00Z", "daily 1, yearly 1"),
                ("2024-05-01T12:00:00Z", "daily 2"),
            ])
        );
        // No snapshots: nothing to decide, no error.
        assert!(apply(&last3, &[], &now).unwrap().is_empty());
    }

    // ---- tags and keep-within ----

    #[test]
    fn tagged_snapshots_are_kept_regardless() {
        let snaps = vec![
            (
                id(1),
                snap("2024-01-01T00:00:00Z", "h", TRAVIS, &["pre-upgrade"]),
            ),
            (id(2), snap("2024-02-01T00:00:00Z", "h", TRAVIS, &[])),
            (
                id(3),
                snap(
                    "2024-03-01T00:00:00Z",
                    "h",
                    TRAVIS,
                    &["pre-upgrade", "manual"],
                ),
            ),
            (
                id(4),
                snap(
                    "2024-04-01T00:00:00Z",
                    "h",
                    TRAVIS,
                    &["Pre-Upgrade", "nightly"],
                ),
            ),
            (id(5), snap("2024-05-01T00:00:00Z", "h", TRAVIS, &[])),
        ];
        let now = at(&Utc, "2024-06-01T00:00:00Z");
        let policy = Policy {
            last: 1,
            tags: vec!["manual".into(), "pre-upgrade".into(), "manual".into()],
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                ("2024-05-01T00:00:00Z", "last 1"),
                ("2024-03-01T00:00:00Z", "tag manual, tag pre-upgrade"),
                ("2024-01-01T00:00:00Z", "tag pre-upgrade"),
            ])
        );
        // Tags alone are a policy: everything untagged goes.
        let only_tags = Policy {
            tags: vec!["pre-upgrade".into()],
            ..Policy::default()
        };
        assert_eq!(
            kept(&snaps, &run(&only_tags, &snaps, &now)),
            expect(&[
                ("2024-03-01T00:00:00Z", "tag pre-upgrade"),
                ("2024-01-01T00:00:00Z", "tag pre-upgrade"),
            ])
        );
    }

    #[test]
    fn keep_within_counts_back_from_now() {
        let snaps = history(&[
            "2022-12-30T11:59:00Z",
            "2022-12-30T12:00:00Z",
            "2024-05-31T11:00:00Z",
            "2024-05-31T12:00:00Z",
            "2024-06-16T12:00:00Z",
            "2024-06-30T00:00:00Z",
            "2024-06-30T13:00:00Z", // after now (clock skew): within
        ]);
        let now = at(&Utc, "2024-06-30T12:00:00Z");
        let within = |text: &str| Policy {
            within: Some(KeepWithin::parse(text).unwrap()),
            ..Policy::default()
        };
        let times = |p: &Policy| -> Vec<String> {
            kept(&snaps, &run(p, &snaps, &now))
                .into_iter()
                .map(|k| k.0)
                .collect()
        };
        assert_eq!(
            times(&within("30d")),
            [
                "2024-06-30T13:00:00Z",
                "2024-06-30T00:00:00Z",
                "2024-06-16T12:00:00Z",
                "2024-05-31T12:00:00Z"
            ]
        );
        assert_eq!(
            times(&within("2w")),
            [
                "2024-06-30T13:00:00Z",
                "2024-06-30T00:00:00Z",
                "2024-06-16T12:00:00Z"
            ]
        );
        assert_eq!(
            times(&within("12h")),
            ["2024-06-30T13:00:00Z", "2024-06-30T00:00:00Z"]
        );
        // A month before 30 June is 30 May: one more than 30 days.
        assert_eq!(
            times(&within("1m")),
            [
                "2024-06-30T13:00:00Z",
                "2024-06-30T00:00:00Z",
                "2024-06-16T12:00:00Z",
                "2024-05-31T12:00:00Z",
                "2024-05-31T11:00:00Z"
            ]
        );
        assert_eq!(times(&within("1y6m")).len(), 6); // back to 2022-12-30T12:00
        assert_eq!(
            kept(&snaps, &run(&within("30d"), &snaps, &now))[3].1,
            "within 30d"
        );
        // A duration past the start of time keeps everything.
        assert_eq!(times(&within("4000000000y")).len(), 7);
    }

    #[test]
    fn keep_within_across_dst_uses_calendar_days() {
        let b = TestZone::Berlin;
        let within = |text: &str| Policy {
            within: Some(KeepWithin::parse(text).unwrap()),
            ..Policy::default()
        };
        let keeps = |p: &Policy, snaps: &[(Id, Snapshot)], now: &str| -> Vec<bool> {
            let out = run(p, snaps, &at(&b, now));
            snaps
                .iter()
                .map(|(i, _)| out.iter().find(|d| d.id == *i).unwrap().keep)
                .collect()
        };
        // "1d" before noon on the 23-hour day is noon the day before: 23 real hours.
        let snaps = history(&["2024-03-30T11:30:00+01:00", "2024-03-30T12:00:00+01:00"]);
        assert_eq!(
            keeps(&within("1d"), &snaps, "2024-03-31T12:00:00+02:00"),
            [false, true]
        );
        assert_eq!(
            keeps(&within("24h"), &snaps, "2024-03-31T12:00:00+02:00"),
            [true, true]
        );
        // The wall-clock cutoff 2024-03-31 02:30 does not exist: the jump at 03:00 is it.
        let snaps = history(&["2024-03-31T01:59:00+01:00", "2024-03-31T03:00:00+02:00"]);
        assert_eq!(
            keeps(&within("1d"), &snaps, "2024-04-01T02:30:00+02:00"),
            [false, true]
        );
        // 2024-10-27 02:30 happens twice: the earlier one is the cutoff.
        let snaps = history(&[
            "2024-10-27T02:29:00+02:00",
            "2024-10-27T02:30:00+02:00",
            "2024-10-27T02:10:00+01:00",
        ]);
        assert_eq!(
            keeps(&within("1d"), &snaps, "2024-10-28T02:30:00+01:00"),
            [false, true, true]
        );
        // "1m" from 31 March is 29 February (2024 is a leap year).
        let snaps = history(&["2024-02-29T11:59:00+01:00", "2024-02-29T12:00:00+01:00"]);
        assert_eq!(
            keeps(&within("1m"), &snaps, "2024-03-31T12:00:00+02:00"),
            [false, true]
        );
    }

    #[test]
    fn one_snapshot_kept_by_several_rules_lists_them_all() {
        let snaps = vec![
            (id(1), snap("2024-06-28T12:00:00Z", "h", TRAVIS, &[])),
            (id(2), snap("2024-06-29T12:00:00Z", "h", TRAVIS, &["x"])),
            (id(3), snap("2024-06-30T08:00:00Z", "h", TRAVIS, &[])),
            (id(4), snap("2024-06-30T11:00:00Z", "h", TRAVIS, &["x"])),
        ];
        let policy = Policy {
            last: 1,
            daily: 2,
            monthly: 1,
            within: Some(KeepWithin::parse("1d").unwrap()),
            tags: vec!["x".into()],
            ..Policy::default()
        };
        let now = at(&Utc, "2024-06-30T12:00:00Z");
        assert_eq!(
            kept(&snaps, &run(&policy, &snaps, &now)),
            expect(&[
                (
                    "2024-06-30T11:00:00Z",
                    "last 1, daily 1, monthly 1, within 1d, tag x"
                ),
                ("2024-06-30T08:00:00Z", "within 1d"),
                ("2024-06-29T12:00:00Z", "daily 2, within 1d, tag x"),
            ])
        );
    }

    // ---- groups and the host filter ----

    #[test]
    fn each_host_and_path_set_keeps_its_own() {
        let mut snaps = Vec::new();
        for h in 0..6u32 {
            let time = format!("2024-05-01T{:02}:00:00Z", h);
            snaps.push((id(10 + h), snap(&time, "platform", TRAVIS, &[])));
            snaps.push((id(20 + h), snap(&time, "worker", TRAVIS, &[])));
        }
        // The same two paths in the other order: the same group as the platform's above.
        snaps.push((
            id(30),
            snap(
                "2024-05-01T06:30:00Z",
                "platform",
                &["/var/travis", "/etc/travis"],
                &[],
            ),
        ));
        snaps.push((
            id(31),
            snap("2024-04-01T00:00:00Z", "platform", &["/etc/travis"], &[]),
        ));
        let now = at(&Utc, "2024-05-02T00:00:00Z");
        let policy = Policy {
            last: 2,
            ..Policy::default()
        };
        let out = run(&policy, &snaps, &now);
        let keep: Vec<(String, Id, String)> = out
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.group.clone(), d.id, d.reason_text()))
            .collect();
        let pt = "host platform, paths [/etc/travis, /var/travis]".to_string();
        let wt = "host worker, paths [/etc/travis, /var/travis]".to_string();
        let pe = "host platform, paths [/etc/travis]".to_string();
        assert_eq!(
            keep,
            [
                (pe.clone(), id(31), "last 1".into()),
                (pt.clone(), id(30), "last 1".into()),
                (pt.clone(), id(15), "last 2".into()),
                (wt.clone(), id(25), "last 1".into()),
                (wt.clone(), id(24), "last 2".into()),
            ]
        );

        // Grouped by host only, the platform's two path sets are one group.
        let by_host = Policy {
            last: 2,
            group_by: "host".parse().unwrap(),
            ..Policy::default()
        };
        let keep: Vec<Id> = run(&by_host, &snaps, &now)
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect();
        assert_eq!(keep, [id(30), id(15), id(25), id(24)]);

        // One group for all.
        let all = Policy {
            last: 2,
            group_by: "".parse().unwrap(),
            ..Policy::default()
        };
        let out = run(&all, &snaps, &now);
        assert!(out.iter().all(|d| d.group == "all snapshots"));
        let keep: Vec<Id> = out.iter().filter(|d| d.keep).map(|d| d.id).collect();
        assert_eq!(keep, [id(30), id(25)]);

        // Only the worker's snapshots are considered; the platform's are left alone.
        let worker = Policy {
            last: 2,
            hosts: vec!["worker".into()],
            ..Policy::default()
        };
        let out = run(&worker, &snaps, &now);
        for d in &out {
            let host = &snaps.iter().find(|(i, _)| *i == d.id).unwrap().1.hostname;
            assert_eq!(d.selected, host == "worker", "{d:?}");
            if !d.selected {
                assert!(d.keep && d.reasons.is_empty());
            }
        }
        let removed = out.iter().filter(|d| !d.keep).count();
        assert_eq!(removed, 4);
    }

    #[test]
    fn grouping_by_tags() {
        let snaps = vec![
            (
                id(1),
                snap("2024-05-01T01:00:00Z", "h", TRAVIS, &["a", "b"]),
            ),
            (
                id(2),
                snap("2024-05-01T02:00:00Z", "h", TRAVIS, &["b", "a", "a"]),
            ),
            (id(3), snap("2024-05-01T03:00:00Z", "h", TRAVIS, &[])),
        ];
        let policy = Policy {
            last: 1,
            group_by: "host, paths, tags".parse().unwrap(),
            ..Policy::default()
        };
        let out = run(&policy, &snaps, &at(&Utc, "2024-05-02T00:00:00Z"));
        let keep: Vec<Id> = out.iter().filter(|d| d.keep).map(|d| d.id).collect();
        assert_eq!(keep, [id(3), id(2)]);
        assert_eq!(
            out[1].group,
            "host h, paths [/etc/travis, /var/travis], tags [a, b]"
        );
    }

    // ---- refusals and parsing ----

    #[test]
    fn an_empty_policy_is_refused() {
        let snaps = history(&["2024-05-01T00:00:00Z"]);
        let cands = candidates(&snaps).unwrap();
        let now = at(&Utc, "2024-05-02T00:00:00Z");
        let empty = Policy {
            hosts: vec!["platform".into()],
            group_by: "host".parse().unwrap(),
            ..Policy::default()
        };
        assert!(empty.is_empty());
        assert_eq!(
            apply(&empty, &cands, &now),
            Err(RetentionError::EmptyPolicy)
        );
        assert_eq!(
            apply(&Policy::default(), &[], &now),
            Err(RetentionError::EmptyPolicy)
        );
        let err = Policy::from_config(&RetentionConfig::default()).unwrap_err();
        assert_eq!(err, RetentionError::EmptyPolicy);
        assert!(err.to_string().contains("forget every snapshot"), "{err}");
        // A zero within, written into the struct by hand, is no rule either.
        let zero = Policy {
            within: Some(KeepWithin::default()),
            ..Policy::default()
        };
        assert!(zero.is_empty());
        assert!(matches!(
            apply(&zero, &cands, &now),
            Err(RetentionError::BadDuration { .. })
        ));
        let empty_tag = Policy {
            last: 1,
            tags: vec!["".into()],
            ..Policy::default()
        };
        assert!(matches!(
            apply(&empty_tag, &cands, &now),
            Err(RetentionError::BadTag(_))
        ));
    }

    #[test]
    fn durations_parse() {
        let w = |y, m, wk, d, h| KeepWithin {
            years: y,
            months: m,
            weeks: wk,
            days: d,
            hours: h,
        };
        assert_eq!(KeepWithin::parse("30d").unwrap(), w(0, 0, 0, 30, 0));
        assert_eq!(KeepWithin::parse("2w").unwrap(), w(0, 0, 2, 0, 0));
        assert_eq!(KeepWithin::parse("1y6m").unwrap(), w(1, 6, 0, 0, 0));
        assert_eq!(KeepWithin::parse("12h").unwrap(), w(0, 0, 0, 0, 12));
        assert_eq!(
            KeepWithin::parse(" 1y 2m3w 4d5h ").unwrap(),
            w(1, 2, 3, 4, 5)
        );
        assert_eq!(KeepWithin::parse("5h1y").unwrap(), w(1, 0, 0, 0, 5));
        assert_eq!(KeepWithin::parse("0y7d").unwrap(), w(0, 0, 0, 7, 0));
        for text in ["30d", "2w", "1y6m", "12h", "1y2m3w4d5h"] {
            assert_eq!(KeepWithin::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(KeepWithin::parse("5h1y").unwrap().to_string(), "1y5h");
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("30", "30 has no unit"),
            ("30 d", "30 has no unit"),
            ("d", "a number must come before 'd'"),
            ("30x", "unknown unit 'x'"),
            ("30D", "unknown unit 'D'"),
            ("3.5d", "unknown unit '.'"),
            ("-1d", "unexpected '-'"),
            ("1d2d", "the unit 'd' is given twice"),
            ("0d", "a zero duration keeps nothing"),
            ("0y0h", "a zero duration keeps nothing"),
            ("99999999999d", "99999999999 is too large"),
        ] {
            let err = KeepWithin::parse(text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(says), "{text:?}: {msg}");
            assert!(msg.contains(&format!("keep-within {text:?}")), "{msg}");
            assert!(msg.contains("30d, 2w, 1y6m or 12h"), "{msg}");
        }
    }

    #[test]
    fn config_section() {
        let cfg: RetentionConfig = toml::from_str(
            r#"
            keep_last = 2
            keep_daily = 7
            keep_weekly = 4
            keep_within = "1y6m"
            keep_tags = ["pre-upgrade"]
            hosts = ["platform"]
            group_by = "host"
            "#,
        )
        .unwrap();
        let policy = Policy::from_config(&cfg).unwrap();
        assert_eq!(
            policy,
            Policy {
                last: 2,
                daily: 7,
                weekly: 4,
                within: Some(KeepWithin {
                    years: 1,
                    months: 6,
                    ..KeepWithin::default()
                }),
                tags: vec!["pre-upgrade".into()],
                hosts: vec!["platform".into()],
                group_by: GroupBy {
                    host: true,
                    paths: false,
                    tags: false
                },
                ..Policy::default()
            }
        );
        assert_eq!(
            policy.to_string(),
            "last 2, daily 7, weekly 4, within 1y6m, tags pre-upgrade"
        );
        let only_daily: RetentionConfig = toml::from_str("keep_daily = 7").unwrap();
        assert_eq!(
            Policy::from_config(&only_daily).unwrap().group_by,
            GroupBy::default()
        );

        let typo = toml::from_str::<RetentionConfig>("keep_dayly = 7").unwrap_err();
        assert!(typo.to_string().contains("keep_dayly"), "{typo}");
        let bad: RetentionConfig = toml::from_str("keep_within = \"30days\"").unwrap();
        assert!(matches!(
            Policy::from_config(&bad),
            Err(RetentionError::BadDuration { .. })
        ));
        let bad: RetentionConfig =
            toml::from_str("keep_last = 1\ngroup_by = \"host,path\"").unwrap();
        let err = Policy::from_config(&bad).unwrap_err();
        assert!(err.to_string().contains("unknown item \"path\""), "{err}");
    }

    #[test]
    fn unreadable_snapshot_time_names_the_snapshot() {
        let snaps = vec![
            (id(1), snap("2024-05-01T00:00:00Z", "h", TRAVIS, &[])),
            (id(0xabcdef01), snap("yesterday", "h", TRAVIS, &[])),
        ];
        let err = candidates(&snaps).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("snapshot abcdef01: its time \"yesterday\""),
            "{msg}"
        );
    }
}
