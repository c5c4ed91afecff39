//! `Agent` (cluster-scoped): a node that runs tasks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;
use crate::meta::Time;
use crate::resources::Resources;

/// Desired / declared state of an agent (written by agentd and operators).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// Address of the agent's own HTTP endpoint (logs, metrics), `host:port`.
    #[serde(default)]
    pub address: String,
    /// Hostname, used by `hostname` constraints.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Free-form attributes, e.g. `rack: a`, used by constraints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Total resources the agent offers to tasks.
    #[serde(default)]
    pub resources: Resources,
    /// Static reservations: role name → resources reserved for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reservations: BTreeMap<String, Resources>,
    /// When true, no new offers are made for this agent (drain / cordon).
    #[serde(default)]
    pub unschedulable: bool,
    /// Planned maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceWindow>,
}

/// A planned maintenance window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Start of the window.
    pub start: Time,
    /// Length of the window in seconds.
    pub duration_seconds: u64,
}

/// Observed state of an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// `Ready`, `Unreachable`, `SeccompAvailable`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Resources allocated to tasks on this agent.
    #[serde(default)]
    pub allocated: Resources,
    /// Measured usage summed over the agent's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Resources>,
    /// Allocated-but-unused resources published for oversubscription.
    #[serde(default)]
    pub revocable: Resources,
    /// Version of the agent binary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_version: String,
}

crate::object_kind!(
    /// A node that runs tasks.
    Agent, spec: AgentSpec, status: AgentStatus,
    plural: "agents", singular: "agent", short: ["ag"], namespaced: false
);
