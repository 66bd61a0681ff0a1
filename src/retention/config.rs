//! The `[retention]` section of the configuration file, as written;
//! [`Policy::from_config`](super::Policy::from_config) turns it into a policy.

use serde::Deserialize;

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
    /// A duration such as `30d`, `2w`, `1y6m` or `12h`, see [`KeepWithin`](super::KeepWithin).
    pub keep_within: Option<String>,
    /// Snapshots carrying any of these tags are always kept.
    pub keep_tags: Vec<String>,
    /// Consider only snapshots of these hosts (empty: all hosts).
    pub hosts: Vec<String>,
    /// `host,paths` (default), any subset of `host`, `paths`, `tags`, or `""` for one group.
    pub group_by: Option<String>,
}
