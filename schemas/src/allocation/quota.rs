//! Quota arithmetic: what a role's guarantee still lacks, how much room its
//! limit leaves, and the cluster-wide headroom held back for unmet
//! guarantees. Owns only numbers; it must not pick roles or agents.
//!
//! A role's *consumption* is what it holds plus its unallocated reservations
//! on schedulable agents (reserved resources can only ever be its own, so
//! they count towards its guarantee). *Required headroom* is the sum of
//! what guarantees still lack; *available headroom* is the free unreserved
//! resources of schedulable agents. Stage 2 may hand out unreserved
//! resources only out of the surplus (available − required), except that a
//! role may take what its own guarantee still lacks.

use super::scalars::{self, Milli, UNBOUNDED};

/// Which stage of the cycle is allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Stage 1: roles below their guarantee.
    Guarantee,
    /// Stage 2: every role.
    Fair,
}

/// What `guarantee` still lacks given the role's consumption.
pub(crate) fn unmet(guarantee: &Milli, consumption: &Milli) -> Milli {
    scalars::sub(guarantee, consumption)
}

/// How much more the role may hold before reaching its limit.
pub(crate) fn limit_room(limit: Option<&Milli>, allocated: &Milli) -> Milli {
    match limit {
        Some(l) => scalars::sub(l, allocated),
        None => UNBOUNDED,
    }
}

/// Cluster-wide headroom bookkeeping.
#[derive(Debug, Clone, Default)]
pub(crate) struct Headroom {
    /// Free unreserved resources on schedulable agents.
    pub(crate) available: Milli,
    /// Sum of unmet guarantees.
    pub(crate) required: Milli,
}

impl Headroom {
    /// Unreserved resources nobody's guarantee needs.
    pub(crate) fn surplus(&self) -> Milli {
        scalars::sub(&self.available, &self.required)
    }

    /// The most unreserved resources a role may take in `stage`, before
    /// agent and limit bounds: in stage 1 what its guarantee lacks for the
    /// kinds it names and the surplus for the others; in stage 2 the surplus
    /// plus what its guarantee lacks.
    pub(crate) fn cap(&self, stage: Stage, guarantee: &Milli, unmet: &Milli) -> Milli {
        let surplus = self.surplus();
        [0, 1, 2, 3].map(|i| match stage {
            Stage::Guarantee if guarantee[i] > 0 => unmet[i],
            Stage::Guarantee => surplus[i],
            Stage::Fair => surplus[i].saturating_add(unmet[i]),
        })
    }

    /// Record that a role with `unmet` took `given` unreserved resources.
    pub(crate) fn take(&mut self, given: &Milli, unmet: &mut Milli) {
        let covered = scalars::min(given, unmet);
        self.available = scalars::sub(&self.available, given);
        self.required = scalars::sub(&self.required, &covered);
        *unmet = scalars::sub(unmet, &covered);
    }
}

impl Stage {
    /// Whether revocable resources are handed out in this stage.
    pub(crate) fn offers_revocable(self) -> bool {
        self == Stage::Fair
    }
}

#[cfg(test)]
mod tests {
    use super::super::scalars::ZERO;
    use super::*;

    const NO_GUARANTEE: Milli = ZERO;

    #[test]
    fn surplus_is_held_back_from_other_roles() {
        let mut h = Headroom { available: [10_000, 0, 0, 0], required: [6_000, 0, 0, 0] };
        assert_eq!(h.cap(Stage::Fair, &NO_GUARANTEE, &ZERO)[0], 4_000);
        let mut unmet = [6_000, 0, 0, 0];
        assert_eq!(h.cap(Stage::Fair, &[6_000, 0, 0, 0], &unmet)[0], 10_000);
        assert_eq!(h.cap(Stage::Guarantee, &[6_000, 0, 0, 0], &unmet)[0], 6_000);
        h.take(&[7_000, 0, 0, 0], &mut unmet);
        assert_eq!(unmet, ZERO);
        assert_eq!(h.available[0], 3_000);
        assert_eq!(h.required[0], 0);
        assert_eq!(h.surplus()[0], 3_000);
    }

    #[test]
    fn limit_room_is_unbounded_without_limit() {
        assert_eq!(limit_room(None, &[5, 5, 5, 5]), UNBOUNDED);
        assert_eq!(limit_room(Some(&[4, 9, 0, 0]), &[5, 5, 0, 0]), [0, 4, 0, 0]);
        assert_eq!(unmet(&[4, 9, 0, 0], &[5, 5, 0, 0]), [0, 4, 0, 0]);
    }
}
