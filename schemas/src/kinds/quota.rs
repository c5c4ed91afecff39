//! `Quota` (namespaced by role): guarantee and limit of a role.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// Guarantee and limit of a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// Resources the role is guaranteed to be offered.
    #[serde(default)]
    pub guarantee: Resources,
    /// Resources the role may never exceed; absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Resources>,
}

/// Observed use of a quota.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// Resources the role holds (offered or in use).
    #[serde(default)]
    pub used: Resources,
    /// What the role may still get before hitting its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<Resources>,
}

crate::object_kind!(
    /// Quota of a role.
    Quota, spec: QuotaSpec, status: QuotaStatus,
    plural: "quotas", singular: "quota", short: ["qt"], namespaced: true
);
