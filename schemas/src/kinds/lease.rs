//! `Lease` (namespaced): heartbeats of agents and frameworks, leader election.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::NoStatus;
use crate::meta::Time;

/// A lease held by one identity, renewed before it expires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// Who holds the lease now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long the lease is valid after `renewTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<u32>,
    /// When the current holder acquired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<Time>,
    /// When the holder last renewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<Time>,
    /// How many times the holder changed.
    #[serde(default)]
    pub lease_transitions: u32,
}

crate::object_kind!(
    /// A renewable lease.
    Lease, spec: LeaseSpec, status: NoStatus,
    plural: "leases", singular: "lease", short: [], namespaced: true
);
