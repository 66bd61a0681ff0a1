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
//!
//! [`DateTime`]: chrono::DateTime

mod config;
mod decide;
mod policy;
#[cfg(test)]
mod tests;
mod within;

pub use config::RetentionConfig;
pub use decide::{apply, candidates, Candidate, Decision, Reason};
pub use policy::{GroupBy, Policy};
pub use within::KeepWithin;

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
