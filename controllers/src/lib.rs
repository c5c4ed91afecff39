//! Meseta's reconcilers, each its own module with a pure planner and a thin
//! async loop `run(client, config, cancel)`.
//!
//! # Layout
//! - [`clock`]: the injectable wall clock the task-facing controllers read.
//! - [`tasks`]: kills, transient-state timeouts, garbage collection, MTTA / MTTR.
//! - [`liveness`]: agent leases → Unreachable, LOST tasks, rescinded offers.
//! - [`jobs`]: the built-in framework `meseta` (service / adhoc / cron jobs).
//! - [`allocator`]: weighted-DRF offers, rescinds, Framework / Role / Quota status.
//! - [`frameworks`]: framework liveness from leases, failover, decline filters.
//! - [`manager`]: runs every loop under leader election; `/metrics`.
//! - [`reservations`]: admission of dynamic Reservations.
//! - [`watches`]: the Task watch the loops of one process share.

pub mod allocator;
pub mod clock;
pub mod frameworks;
pub mod jobs;
pub mod liveness;
pub mod manager;
pub mod reservations;
pub mod tasks;
pub mod watches;
