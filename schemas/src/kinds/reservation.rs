//! `Reservation` (namespaced by role): a dynamic reservation on one agent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// What to reserve, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationSpec {
    /// The agent.
    pub agent: String,
    /// Resources reserved for the namespace's role.
    #[serde(default)]
    pub resources: Resources,
}

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ReservationState {
    /// Not yet admitted.
    #[default]
    Pending,
    /// Admitted: the resources are held for the role.
    Ready,
    /// Cannot be admitted; see `message`.
    Failed,
}

/// Observed state of a reservation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationStatus {
    /// Where the reservation is in its lifecycle.
    #[serde(default)]
    pub state: ReservationState,
    /// Why, when Failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

crate::object_kind!(
    /// A dynamic reservation of resources on one agent for a role.
    Reservation, spec: ReservationSpec, status: ReservationStatus,
    plural: "reservations", singular: "reservation", short: ["rsv"], namespaced: true
);
