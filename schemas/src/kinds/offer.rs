//! `Offer` (namespaced by role): resources of one agent offered to one framework.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resources::Resources;

/// What is offered; written by the allocator only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferSpec {
    /// The framework the offer is for.
    pub framework: String,
    /// The agent whose resources are offered.
    pub agent: String,
    /// The agent's hostname.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Unreserved resources.
    #[serde(default)]
    pub resources: Resources,
    /// Resources reserved for this role.
    #[serde(default)]
    pub reserved: Resources,
    /// Revocable (oversubscribed) resources.
    #[serde(default)]
    pub revocable: Resources,
    /// When the offer is rescinded if not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// Lifecycle of an offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OfferState {
    /// Waiting for the framework.
    #[default]
    Outstanding,
    /// Used by an accept.
    Accepted,
    /// Declined by the framework.
    Declined,
    /// Taken back (expired, agent gone, resources taken).
    Rescinded,
}

/// Observed state of an offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferStatus {
    /// Where the offer is in its lifecycle.
    #[serde(default)]
    pub state: OfferState,
    /// Why it left `Outstanding`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

crate::object_kind!(
    /// Resources of one agent offered to one framework.
    Offer, spec: OfferSpec, status: OfferStatus,
    plural: "offers", singular: "offer", short: ["of"], namespaced: true
);
