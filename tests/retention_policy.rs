//! The retention policy through `chrono::Local`, the zone production uses, with the
//! process's TZ set to Berlin's rules. One test only: TZ is process-wide.

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, TimeZone};
use vault::repo::{Snapshot, Summary};
use vault::retention::{apply, candidates, Policy};
use vault::Id;

fn snap(time: &str) -> Snapshot {
    Snapshot {
        time: time.to_string(),
        hostname: "platform".into(),
        username: "root".into(),
        paths: vec![serde_bytes::ByteBuf::from(b"/etc/travis".to_vec())],
        tags: Vec::new(),
        tree: Id([0; 32]),
        summary: Summary::default(),
        program: "vault test".into(),
        databases: Vec::new(),
    }
}

fn history(times: &[&str]) -> Vec<(Id, Snapshot)> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut id = [0u8; 32];
            id[0] = i as u8 + 1;
            (Id(id), snap(t))
        })
        .collect()
}

fn local(s: &str) -> DateTime<Local> {
    DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&Local)
}

/// (time as written, reasons) of the kept snapshots, newest first.
fn kept(policy: &Policy, snaps: &[(Id, Snapshot)], now: &str) -> Vec<(String, String)> {
    let cands = candidates(snaps).unwrap();
    let decisions = apply(policy, &cands, &local(now)).unwrap();
    assert_eq!(decisions.len(), snaps.len());
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| {
            let s = &snaps.iter().find(|(i, _)| *i == d.id).unwrap().1;
            (s.time.clone(), d.reason_text())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn local_zone_with_berlin_rules() {
    // A POSIX rule rather than a zoneinfo name, so no tz database is needed: central
    // European time, summer time from the last Sunday of March 02:00 to the last Sunday
    // of October 03:00. Set before the first use of Local in this process.
    std::env::set_var("TZ", "CET-1CEST,M3.5.0,M10.5.0/3");
    assert_eq!(
        local("2024-01-15T12:00:00Z").to_rfc3339(),
        "2024-01-15T13:00:00+01:00"
    );
    assert_eq!(
        local("2024-07-15T12:00:00Z").to_rfc3339(),
        "2024-07-15T14:00:00+02:00"
    );
    let wall = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    assert!(matches!(
        Local.from_local_datetime(&wall("2024-03-31 02:30")),
        LocalResult::None
    ));
    assert!(matches!(
        Local.from_local_datetime(&wall("2024-10-27 02:30")),
        LocalResult::Ambiguous(..)
    ));

    // Fall back: the repeated 02:00 hour is one hourly period; the 25-hour Sunday one day.
    let fall = history(&[
        "2024-10-26T23:30:00+02:00",
        "2024-10-27T00:30:00+02:00",
        "2024-10-27T02:15:00+02:00",
        "2024-10-27T02:45:00+02:00",
        "2024-10-27T02:15:00+01:00",
        "2024-10-27T02:45:00+01:00",
        "2024-10-27T23:30:00Z", // 00:30 on Monday in Berlin
    ]);
    let hourly = Policy {
        hourly: 4,
        ..Policy::default()
    };
    assert_eq!(
        kept(&hourly, &fall, "2024-10-28T12:00:00Z"),
        pairs(&[
            ("2024-10-27T23:30:00Z", "hourly 1"),
            ("2024-10-27T02:45:00+01:00", "hourly 2"),
            ("2024-10-27T00:30:00+02:00", "hourly 3"),
            ("2024-10-26T23:30:00+02:00", "hourly 4"),
        ])
    );
    let daily = Policy {
        daily: 7,
        ..Policy::default()
    };
    assert_eq!(
        kept(&daily, &fall, "2024-10-28T12:00:00Z"),
        pairs(&[
            ("2024-10-27T23:30:00Z", "daily 1"),
            ("2024-10-27T02:45:00+01:00", "daily 2"),
            ("2024-10-26T23:30:00+02:00", "daily 3"),
        ])
    );

    // Spring forward: the 23-hour Sunday is one day; "1d" before noon is noon Saturday.
    let spring = history(&[
        "2024-03-30T11:30:00+01:00",
        "2024-03-30T12:00:00+01:00",
        "2024-03-31T00:30:00+01:00",
        "2024-03-31T23:45:00+02:00",
    ]);
    let within = Policy {
        within: Some("1d".parse().unwrap()),
        daily: 1,
        ..Policy::default()
    };
    assert_eq!(
        kept(&within, &spring, "2024-03-31T12:00:00+02:00"),
        pairs(&[
            ("2024-03-31T23:45:00+02:00", "daily 1, within 1d"),
            ("2024-03-31T00:30:00+01:00", "within 1d"),
            ("2024-03-30T12:00:00+01:00", "within 1d"),
        ])
    );

    // New year in Berlin is 23:00 UTC; ISO week 53 of 2020 runs into 2021.
    let year_end = history(&[
        "2020-12-27T12:00:00+01:00",
        "2020-12-31T22:59:00Z",
        "2020-12-31T23:00:00Z",
        "2021-01-03T12:00:00+01:00",
        "2021-01-04T12:00:00+01:00",
    ]);
    let policy = Policy {
        weekly: 3,
        yearly: 3,
        ..Policy::default()
    };
    assert_eq!(
        kept(&policy, &year_end, "2021-01-05T00:00:00Z"),
        pairs(&[
            ("2021-01-04T12:00:00+01:00", "weekly 1, yearly 1"),
            ("2021-01-03T12:00:00+01:00", "weekly 2"),
            ("2020-12-31T22:59:00Z", "yearly 2"),
            ("2020-12-27T12:00:00+01:00", "weekly 3"),
        ])
    );
}
