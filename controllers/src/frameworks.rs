//! Framework liveness: whether a framework is connected (offered resources),
//! disconnected but within its failover timeout (offered nothing, tasks
//! kept), or gone (tasks killed), read from its heartbeat `Lease`
//! `<role>/framework-<name>`. Also the decline-filter upkeep of its status.
//!
//! Owns the pure decisions; the allocator controller applies them. It must
//! not do I/O.
//!
//! # Rules
//!
//! - Lease fresh (`renewTime + leaseDurationSeconds > now`): [`Liveness::Connected`].
//! - Lease lapsed less than `spec.failoverTimeoutSeconds` ago:
//!   [`Liveness::Disconnected`] — no offers, outstanding offers rescinded,
//!   tasks keep running (Mesos' failover window).
//! - Lapsed longer: [`Liveness::Gone`] — tasks get `spec.killRequested`,
//!   `status.registered=false`.
//! - No lease at all: the framework counts as connected while it was created
//!   less than its failover timeout ago (a grace period to start heart-
//!   beating), then as gone. A framework that never heartbeats therefore
//!   needs a failover timeout to keep its tasks.
//! - The built-in framework `meseta` is always connected (the jobs
//!   controller renews its lease).

use meseta_schemas::allocation::BUILTIN_FRAMEWORK;
use meseta_schemas::kinds::{Framework, FrameworkStatus, Lease};
use meseta_schemas::Time;

/// Lease duration assumed when a framework lease names none.
pub const DEFAULT_LEASE_SECONDS: u32 = 15;

/// Where a framework stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeating: offered resources.
    Connected,
    /// Lease lapsed, within the failover timeout: no offers, tasks kept.
    Disconnected,
    /// Past the failover timeout: its tasks are killed.
    Gone,
}

/// The name of a framework's heartbeat lease (in the framework's namespace).
pub fn lease_name(framework: &str) -> String {
    format!("framework-{framework}")
}

fn seconds(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s.clamp(0.0, 1e10) * 1000.0) as i64)
}

/// The liveness of `fw` at `now` given its lease (if any).
pub fn liveness(fw: &Framework, lease: Option<&Lease>, now: Time) -> Liveness {
    if fw.metadata.name == BUILTIN_FRAMEWORK {
        return Liveness::Connected;
    }
    let failover = seconds(fw.spec.failover_timeout_seconds);
    let lapsed_at = match lease {
        Some(l) => {
            let renewed = l.spec.renew_time.or(l.spec.acquire_time).or(l.metadata.creation_timestamp);
            let duration = l.spec.lease_duration_seconds.unwrap_or(DEFAULT_LEASE_SECONDS);
            match renewed {
                Some(at) => at + chrono::Duration::seconds(i64::from(duration)),
                None => return Liveness::Disconnected,
            }
        }
        None => {
            let created = fw.metadata.creation_timestamp.unwrap_or(now);
            return if now < created + failover { Liveness::Connected } else { Liveness::Gone };
        }
    };
    if now < lapsed_at {
        Liveness::Connected
    } else if now < lapsed_at + failover {
        Liveness::Disconnected
    } else {
        Liveness::Gone
    }
}

/// The filters part of the status the framework should have at `now`:
/// expired filters pruned; all cleared when `spec.reviveGeneration` moved
/// (recorded in `observedReviveGeneration`).
pub fn upkeep_filters(fw: &Framework, now: Time) -> FrameworkStatus {
    let mut status = fw.status.clone().unwrap_or_default();
    if status.observed_revive_generation != fw.spec.revive_generation {
        status.filters.clear();
        status.observed_revive_generation = fw.spec.revive_generation;
    }
    status.filters.retain(|f| f.until > now);
    status
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::{FrameworkSpec, LeaseSpec, OfferFilter};

    use super::*;

    fn at(s: i64) -> Time {
        chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn fw(failover: f64) -> Framework {
        let mut f = Framework::new("f", FrameworkSpec { failover_timeout_seconds: failover, ..Default::default() });
        f.metadata.creation_timestamp = Some(at(0));
        f
    }

    fn lease(renewed: i64) -> Lease {
        Lease::new(
            "framework-f",
            LeaseSpec { renew_time: Some(at(renewed)), lease_duration_seconds: Some(10), ..Default::default() },
        )
    }

    #[test]
    fn lease_fresh_then_failover_window_then_gone() {
        let l = lease(100);
        assert_eq!(liveness(&fw(60.0), Some(&l), at(105)), Liveness::Connected);
        assert_eq!(liveness(&fw(60.0), Some(&l), at(130)), Liveness::Disconnected);
        assert_eq!(liveness(&fw(60.0), Some(&l), at(171)), Liveness::Gone);
        assert_eq!(liveness(&fw(0.0), Some(&l), at(111)), Liveness::Gone);
    }

    #[test]
    fn no_lease_is_connected_only_within_the_failover_timeout_of_creation() {
        assert_eq!(liveness(&fw(60.0), None, at(30)), Liveness::Connected);
        assert_eq!(liveness(&fw(60.0), None, at(61)), Liveness::Gone);
        let mut builtin = fw(0.0);
        builtin.metadata.name = BUILTIN_FRAMEWORK.into();
        assert_eq!(liveness(&builtin, None, at(1000)), Liveness::Connected);
    }

    #[test]
    fn revive_clears_filters_and_expired_ones_are_pruned() {
        let mut f = fw(0.0);
        f.status = Some(FrameworkStatus {
            filters: vec![
                OfferFilter { agent: "a".into(), until: at(50) },
                OfferFilter { agent: "b".into(), until: at(150) },
            ],
            ..Default::default()
        });
        assert_eq!(upkeep_filters(&f, at(100)).filters.len(), 1);
        f.spec.revive_generation = 3;
        let s = upkeep_filters(&f, at(100));
        assert!(s.filters.is_empty());
        assert_eq!(s.observed_revive_generation, 3);
    }
}
