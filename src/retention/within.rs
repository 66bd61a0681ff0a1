//! The `keep_within` duration and the instant it reaches back to from now, counted on the
//! local wall clock (see the module docs of [`crate::retention`]).

use super::RetentionError;
use chrono::{DateTime, Days, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone, Timelike};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

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
