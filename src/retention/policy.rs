//! The policy: which keep rules are on, which hosts' snapshots it considers and how
//! snapshots are grouped. A policy without any keep rule is refused.

use super::{KeepWithin, RetentionConfig, RetentionError};
use std::fmt;
use std::str::FromStr;

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
