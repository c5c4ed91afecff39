//! The built-in framework's demand for offers, per role: when it suppresses
//! them (Mesos `SUPPRESS`) and when it revives them (`REVIVE`).
//!
//! Declining an offer nothing fits leaves a decline filter on that agent for
//! `refuseSeconds`; without a revive, work that arrives later would wait the
//! filters out although the filtered agents may have room for it. And a role
//! with nothing to place would get every agent offered and declined again
//! every few seconds. The rules, like a Mesos framework's:
//!
//! - A role with no task waiting for an offer for `idle_after` suppresses
//!   its offers (once).
//! - A role revives (clearing its filters and any suppression) when a task
//!   waits and the role is, or may be, suppressed, or when a task waits that
//!   was not waiting when the role last declined. Declining again for the
//!   same waiting tasks does not revive, so a full cluster does not turn into
//!   a revive/decline loop.
//!
//! Pure bookkeeping; the jobs controller's `apply` writes the changes. It
//! must not do I/O.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// What a role's framework should do about its offers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Stop receiving offers: nothing waits.
    Suppress,
    /// Clear the decline filters and any suppression: new work waits.
    Revive,
}

#[derive(Debug, Default)]
struct Role {
    /// The tasks that waited when the role last declined.
    declined_with: Option<HashSet<String>>,
    /// What this controller last asked for (`None`: unknown, e.g. after a restart).
    suppressed: Option<bool>,
    /// Since when nothing has waited.
    idle_since: Option<Instant>,
}

/// Per-role demand bookkeeping; see the module docs.
#[derive(Debug, Default)]
pub struct Demand {
    roles: HashMap<String, Role>,
}

impl Demand {
    /// Records that `role` declined offers while `waiting` waited.
    pub fn declined<'a>(&mut self, role: &str, waiting: impl IntoIterator<Item = &'a str>) {
        self.role(role).declined_with = Some(waiting.into_iter().map(str::to_string).collect());
    }

    /// The change `role` needs now that `waiting` wait, if any; the caller
    /// makes it. Idle roles suppress once they were idle for `idle_after`.
    pub fn step<'a>(
        &mut self,
        role: &str,
        waiting: impl IntoIterator<Item = &'a str>,
        now: Instant,
        idle_after: Duration,
    ) -> Option<Change> {
        let r = self.role(role);
        let mut waiting = waiting.into_iter().peekable();
        if waiting.peek().is_none() {
            let since = *r.idle_since.get_or_insert(now);
            if r.suppressed != Some(true) && now.duration_since(since) >= idle_after {
                r.suppressed = Some(true);
                r.declined_with = None;
                return Some(Change::Suppress);
            }
            return None;
        }
        r.idle_since = None;
        let new_work = match &r.declined_with {
            Some(seen) => waiting.any(|t| !seen.contains(t)),
            None => false,
        };
        if r.suppressed != Some(false) || new_work {
            r.suppressed = Some(false);
            r.declined_with = None;
            return Some(Change::Revive);
        }
        None
    }

    /// Forgets what was asked for `role` (a write failed): the next step
    /// decides again as after a restart.
    pub fn unknown(&mut self, role: &str) {
        self.role(role).suppressed = None;
    }

    fn role(&mut self, role: &str) -> &mut Role {
        self.roles.entry(role.to_string()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn waiting_work_revives_once_when_the_state_is_unknown() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        assert_eq!(d.step("web", ["t1"], t0, IDLE), Some(Change::Revive), "after a restart it may be suppressed");
        assert_eq!(d.step("web", ["t1", "t2"], t0, IDLE), None);
    }

    #[test]
    fn new_work_after_a_decline_revives_once() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        d.step("web", ["t0"], t0, IDLE);
        d.declined("web", ["t0"]);
        assert_eq!(d.step("web", ["t0"], t0, IDLE), None, "the same work declined again");
        assert_eq!(d.step("batch", ["b1"], t0, IDLE), Some(Change::Revive), "roles are separate");
        assert_eq!(d.step("web", ["t0", "t1"], t0, IDLE), Some(Change::Revive));
        assert_eq!(d.step("web", ["t0", "t1", "t2"], t0, IDLE), None, "the revive already cleared the filters");
    }

    #[test]
    fn an_idle_role_suppresses_after_the_delay_and_revives_for_work() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        d.step("web", ["t1"], t0, IDLE);
        assert_eq!(d.step("web", [], at(t0, 1), IDLE), None);
        assert_eq!(d.step("web", [], at(t0, 5), IDLE), None, "idle for 4 s only");
        assert_eq!(d.step("web", [], at(t0, 6), IDLE), Some(Change::Suppress));
        assert_eq!(d.step("web", [], at(t0, 60), IDLE), None, "suppressed once");
        assert_eq!(d.step("web", ["t2"], at(t0, 61), IDLE), Some(Change::Revive));
        assert_eq!(d.step("web", [], at(t0, 62), IDLE), None, "idleness starts again");
    }

    #[test]
    fn a_failed_write_is_decided_again() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        assert_eq!(d.step("web", ["t1"], t0, IDLE), Some(Change::Revive));
        d.unknown("web");
        assert_eq!(d.step("web", ["t1"], t0, IDLE), Some(Change::Revive));
    }

    proptest! {
        /// Never two suppressions or two revives in a row without a reason
        /// between: a revive needs the role to be possibly suppressed or new
        /// work since a decline; a suppression needs a revive (or nothing)
        /// before it.
        #[test]
        fn changes_alternate_or_have_a_reason(
            steps in proptest::collection::vec(
                (0u64..4, any::<bool>(), proptest::collection::btree_set(0u8..5, 0..3)), 1..40)
        ) {
            let t0 = Instant::now();
            let mut d = Demand::default();
            let mut clock = 0;
            let mut last: Option<Change> = None;
            let mut declined: Option<std::collections::BTreeSet<u8>> = None;
            for (advance, decline, waiting) in steps {
                clock += advance;
                let names: Vec<String> = waiting.iter().map(|t| format!("t{t}")).collect();
                let change = d.step("r", names.iter().map(String::as_str), at(t0, clock), Duration::from_secs(3));
                if let Some(c) = change {
                    if last == Some(c) && c == Change::Revive {
                        let new_work = declined.as_ref().is_some_and(|seen| waiting.iter().any(|t| !seen.contains(t)));
                        prop_assert!(new_work, "a second revive without new work since a decline");
                    }
                    prop_assert!(!(last == Some(Change::Suppress) && c == Change::Suppress));
                    prop_assert_eq!(c == Change::Suppress, waiting.is_empty());
                    last = Some(c);
                    declined = None;
                }
                if decline && !waiting.is_empty() {
                    d.declined("r", names.iter().map(String::as_str));
                    declined = Some(waiting.clone());
                }
            }
        }
    }
}
