//! Sealed platform secrets (placeholder until the module lands).

use serde::Deserialize;

/// The `[secrets]` section of the configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {}
