//! `Framework` (namespaced by role): a scheduler that receives offers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resources::Resources;

/// A capability a framework opts into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FrameworkCapability {
    /// Accepts revocable (oversubscribed) resources.
    Revocable,
    /// Its tasks go PARTITIONED, not LOST, when their agent is unreachable.
    PartitionAware,
    /// May be offered agents with GPUs.
    Gpu,
}

/// Desired state of a framework.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkSpec {
    /// Capabilities the framework opts into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<FrameworkCapability>,
    /// Seconds after its lease lapses before its tasks are killed. Default 0 (immediately).
    #[serde(default)]
    pub failover_timeout_seconds: f64,
    /// Mesos SUPPRESS: no offers while true.
    #[serde(default)]
    pub suppressed: bool,
    /// Default `refuseSeconds` for declines that name none. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_refuse_seconds: Option<f64>,
    /// Mesos REVIVE: any change of this value clears every decline filter.
    #[serde(default)]
    pub revive_generation: u64,
}

/// An active decline filter: no offers for `agent` until `until`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferFilter {
    /// The filtered agent.
    pub agent: String,
    /// When the filter lapses.
    pub until: Time,
}

/// Observed state of a framework.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkStatus {
    /// Whether the framework is registered and active.
    #[serde(default)]
    pub registered: bool,
    /// Resources offered to or used by the framework.
    #[serde(default)]
    pub allocated: Resources,
    /// Dominant share within the cluster.
    #[serde(default)]
    pub dominant_share: f64,
    /// Active decline filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<OfferFilter>,
    /// The `spec.reviveGeneration` the filters were last cleared for.
    #[serde(default)]
    pub observed_revive_generation: u64,
}

crate::object_kind!(
    /// A framework (scheduler) of a role.
    Framework, spec: FrameworkSpec, status: FrameworkStatus,
    plural: "frameworks", singular: "framework", short: ["fw"], namespaced: true
);
