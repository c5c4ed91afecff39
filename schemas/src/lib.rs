//! Meseta's API: every kind, resource arithmetic, validation. No I/O.
//!
//! # Layout
//!
//! - [`meta`]: object metadata (`metadata`), list metadata, API group/version.
//! - [`resource`]: the [`Resource`] trait each kind implements.
//! - [`resources`]: [`Resources`] (cpus, mem, disk, gpus, ports) and arithmetic.
//! - [`kinds`]: Role, Agent, Lease, Framework, Offer, Task, Job, Reservation,
//!   Quota, Event.
//! - [`validation`]: [`FieldError`] and the [`Validate`] trait;
//!   `validate_kinds` implements it per kind.
//! - [`state_machine`]: the Aurora task state machine (legal transitions,
//!   bounded `taskEvents`, status-write checks).
//! - [`jsonschema`]: OpenAPI 3.0 schemas of every kind (`schemas/generated/`).
//! - [`registry`]: the table of kinds the apiserver serves, with generic
//!   decoding that reports unknown fields and every violation.

pub mod allocation;
pub mod jsonschema;
pub mod kinds;
pub mod meta;
pub mod registry;
pub mod resource;
pub mod resources;
pub mod state_machine;
mod validate_kinds;
pub mod validation;

pub use kinds::*;
pub use meta::{
    managed_fields_as_text, skipping_managed_fields, ListMeta, ObjectList, ObjectMeta, OwnerReference, Time,
    API_VERSION, GROUP, VERSION,
};
pub use resource::Resource;
pub use resources::{PortRange, Resources};
pub use validation::{FieldError, FieldErrorKind, Validate};
