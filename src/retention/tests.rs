//! Unit tests of the retention policy, with time zones that have real daylight-saving
//! rules.

use super::*;
use crate::id::Id;
use crate::repo::{Snapshot, Summary};
use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset,
    TimeDelta, TimeZone, Utc, Weekday,
};
use std::fmt;

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
    let bad: RetentionConfig = toml::from_str("keep_last = 1\ngroup_by = \"host,path\"").unwrap();
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
