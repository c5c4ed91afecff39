//! `Role` (cluster-scoped): a Mesos role's weight. Namespace = role.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// Desired state of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// Weight in weighted DRF; a role's share is divided by it. Default 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

impl Default for RoleSpec {
    fn default() -> Self {
        RoleSpec { weight: 1.0 }
    }
}

/// Observed allocation of a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Resources allocated to the role's frameworks (offered or in use).
    #[serde(default)]
    pub allocated: Resources,
    /// Dominant share of the role (before weighting).
    #[serde(default)]
    pub dominant_share: f64,
}

crate::object_kind!(
    /// A role and its fair-share weight.
    Role, spec: RoleSpec, status: RoleStatus,
    plural: "roles", singular: "role", short: [], namespaced: false
);
