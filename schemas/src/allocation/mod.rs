//! Two-level scheduling, level one: which framework is offered which agent's
//! resources. Weighted Dominant Resource Fairness with quota, after Mesos'
//! `HierarchicalDRF` allocator.
//!
//! Owns the pure decision: [`allocate`] reads an [`AllocationInput`] snapshot
//! and returns an [`AllocationPlan`]. It must not do I/O, read the clock or
//! keep state between cycles: the allocator controller builds the snapshot
//! (from its reflector caches, e.g. with [`AllocationInput::from_objects`]),
//! passes `now` and a seed, and turns the plan into `Offer` objects.
//!
//! # Expected flow
//!
//! 1. Free resources are computed per agent and per bucket: reserved for each
//!    role (static `spec.reservations` plus Ready dynamic `Reservation`s),
//!    unreserved, and revocable (the agent's published slack). Tasks that
//!    hold resources and outstanding offers both count as used (Mesos
//!    semantics: an offer is allocated until it is accepted, declined or
//!    rescinded).
//! 2. Schedulable agents are shuffled with the seed.
//! 3. Stage 1, quota guarantees: roles below their guarantee, ordered by
//!    dominant share, are offered on each agent their reserved resources
//!    plus unreserved resources up to what their guarantee still lacks (kinds
//!    the guarantee names), plus kinds it does not name out of the headroom
//!    surplus.
//! 4. Stage 2, everyone: roles ordered by weighted dominant share (share /
//!    weight; ties go to the role offered least this cycle, then by name),
//!    frameworks within a role by their own dominant share. On each agent the
//!    first eligible framework gets everything it may get there as one offer:
//!    its role's reservation, the unreserved resources and, when it accepts
//!    them, the revocable ones. Unreserved resources that other roles' unmet
//!    guarantees need (headroom) are held back. Shares are recomputed after
//!    each agent, before the next pick (DRF progressive filling, one agent at
//!    a time).
//!
//! # Guarantees
//!
//! - No bucket of an agent is over-committed: used plus offered never exceeds
//!   the bucket, per scalar, and offered ports are free and disjoint.
//! - Reserved resources are offered only to frameworks of their role (in
//!   [`PlannedOffer::reserved`]); revocable ones only to frameworks that
//!   accept them (in [`PlannedOffer::revocable`]).
//! - A role never goes past its quota limit: its allocation plus what it is
//!   offered (unreserved and reserved) stays within the limit.
//! - Suppressed frameworks, `(framework, agent)` pairs under an active
//!   decline filter (`until > now`) and unschedulable agents get nothing;
//!   agents with GPUs are offered only to frameworks with the `Gpu`
//!   capability (Mesos `GPU_RESOURCES`).
//! - At most one offer per `(framework, agent)`, and every offer holds at
//!   least one of the `min_allocatable` bundles. Offers appear in the order
//!   they were made.
//! - Whenever the free unreserved resources can cover every unmet guarantee,
//!   roles with active frameworks reach their guarantee in stage 1.
//! - The same input, `now` and seed give the same plan.
//!
//! # Caveats
//!
//! - Shares and quota count non-revocable resources only; revocable
//!   resources go, per agent, to the first revocable-capable framework in
//!   the stage-2 order.
//! - A limit is literal per scalar: a kind the limit leaves at 0 is not
//!   offered to the role (the same reading as Quota validation, which wants
//!   the guarantee to fit the limit). Ports are never limited.
//! - Ports are not a quota kind: an agent's free unreserved ports go to the
//!   first framework offered unreserved scalars there.
//! - A role with an unmet guarantee but no active framework still holds back
//!   headroom, as in Mesos.
//! - The snapshot does not say which task used reserved resources;
//!   [`AllocationInput::from_objects`] charges a task to its role's
//!   reservation on the agent first, then to unreserved resources.

mod drf;
mod engine;
mod filters;
mod input;
mod quota;
mod scalars;
mod state;

use std::collections::BTreeMap;

use crate::kinds::OfferSpec;
use crate::meta::Time;
use crate::resources::Resources;

pub use engine::allocate;
pub use input::ClusterObjects;

/// The built-in framework of every role (the jobs controller): tasks
/// without `spec.framework` belong to it.
pub const BUILTIN_FRAMEWORK: &str = "meseta";

/// Everything one allocation cycle reads. Plain owned data, so a controller
/// can keep one up to date from its caches or rebuild it each cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationInput {
    /// Every known agent, schedulable or not (all count in the cluster total).
    pub agents: Vec<AgentInput>,
    /// Roles by name. Roles named elsewhere (by a framework, a reservation)
    /// but missing here get [`RoleInput::default`].
    pub roles: BTreeMap<String, RoleInput>,
    /// Frameworks that may be offered resources.
    pub frameworks: Vec<FrameworkInput>,
    /// An offer must hold at least one of these bundles (every scalar of
    /// it); empty means any non-empty offer. Mesos'
    /// `--min_allocatable_resources`, default `cpus:0.01|mem:32`.
    pub min_allocatable: Vec<Resources>,
}

impl Default for AllocationInput {
    fn default() -> Self {
        AllocationInput {
            agents: Vec::new(),
            roles: BTreeMap::new(),
            frameworks: Vec::new(),
            min_allocatable: default_min_allocatable(),
        }
    }
}

/// Mesos' default `min_allocatable_resources`: `cpus:0.01` or `mem:32`.
pub fn default_min_allocatable() -> Vec<Resources> {
    vec![Resources::scalars(0.01, 0.0, 0.0, 0.0), Resources::scalars(0.0, 32.0, 0.0, 0.0)]
}

/// One agent as the allocator sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInput {
    /// Agent object name.
    pub name: String,
    /// Hostname copied into offers.
    pub hostname: String,
    /// Total resources (`spec.resources`), reserved ones included.
    pub total: Resources,
    /// Static reservations (`spec.reservations`): role → resources.
    pub static_reservations: BTreeMap<String, Resources>,
    /// Dynamic reservations (Ready `Reservation`s), summed per role.
    pub dynamic_reservations: BTreeMap<String, Resources>,
    /// Revocable (oversubscribed) resources the agent publishes.
    pub revocable: Resources,
    /// When true the agent is offered to no one.
    pub unschedulable: bool,
    /// What tasks and outstanding offers already hold here.
    pub used: AgentUsage,
}

/// Resources of one agent already held by tasks or outstanding offers, per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentUsage {
    /// Held out of each role's reservation.
    pub reserved: BTreeMap<String, Resources>,
    /// Held out of the unreserved resources.
    pub unreserved: Resources,
    /// Held out of the revocable resources.
    pub revocable: Resources,
}

/// A role: weight, quota and what it holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleInput {
    /// Weighted-DRF weight (> 0); default 1.
    pub weight: f64,
    /// Quota, when one is set.
    pub quota: Option<QuotaInput>,
    /// Non-revocable resources the role holds (tasks and outstanding offers).
    pub allocated: Resources,
}

impl Default for RoleInput {
    fn default() -> Self {
        RoleInput { weight: 1.0, quota: None, allocated: Resources::default() }
    }
}

/// Guarantee and limit of a role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaInput {
    /// Resources the role is guaranteed to be offered.
    pub guarantee: Resources,
    /// Resources the role never exceeds; `None` means no limit.
    pub limit: Option<Resources>,
}

/// A framework that may receive offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameworkInput {
    /// Framework object name (unique within its role).
    pub name: String,
    /// Its role (the Framework's namespace).
    pub role: String,
    /// Mesos SUPPRESS: offered nothing while true.
    pub suppressed: bool,
    /// Has the `Revocable` capability.
    pub revocable: bool,
    /// Has the `Gpu` capability (may be offered agents with GPUs).
    pub gpu: bool,
    /// Decline filters: agent name → until when it gets no offer for it.
    pub filters: BTreeMap<String, Time>,
    /// Non-revocable resources it holds (tasks and outstanding offers).
    pub allocated: Resources,
}

/// One offer to make: resources of one agent for one framework. Names are
/// borrowed from the [`AllocationInput`] the plan was made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlannedOffer<'a> {
    /// Framework name.
    pub framework: &'a str,
    /// Framework role (the Offer's namespace).
    pub role: &'a str,
    /// Agent name.
    pub agent: &'a str,
    /// Agent hostname (the agent name when the input has none).
    pub hostname: &'a str,
    /// Unreserved resources (with the agent's free unreserved ports).
    pub resources: Resources,
    /// Resources reserved for `role`.
    pub reserved: Resources,
    /// Revocable resources.
    pub revocable: Resources,
}

impl PlannedOffer<'_> {
    /// The spec of the `Offer` object to create (in namespace `role`).
    pub fn to_spec(&self, expires_at: Option<Time>) -> OfferSpec {
        OfferSpec {
            framework: self.framework.to_string(),
            agent: self.agent.to_string(),
            hostname: self.hostname.to_string(),
            resources: self.resources.clone(),
            reserved: self.reserved.clone(),
            revocable: self.revocable.clone(),
            expires_at,
        }
    }
}

/// Result of one cycle, borrowing names from its input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationPlan<'a> {
    /// Offers to create, in the order they were made.
    pub offers: Vec<PlannedOffer<'a>>,
    /// Dominant share (before weighting) of every role once the offers are made.
    pub role_shares: BTreeMap<&'a str, f64>,
    /// Dominant share of every framework, keyed by `(role, framework name)`,
    /// once the offers are made.
    pub framework_shares: BTreeMap<(&'a str, &'a str), f64>,
}
