//! When the built-in framework revives its offers (Mesos `REVIVE`).
//!
//! Declining an offer nothing fits leaves a decline filter on that agent for
//! `refuseSeconds`; without a revive, work that arrives later would wait the
//! filters out although the filtered agents may have room for it. The rule,
//! like a Mesos framework that revives when it gets new launch requests: a
//! role revives when some task waits for an offer that was not waiting when
//! the role last declined. Declining again with the same work waiting does
//! not revive, so a full cluster does not turn into a revive/decline loop.
//!
//! Pure bookkeeping; the jobs controller's `apply` writes the revive. It must
//! not do I/O.

use std::collections::{HashMap, HashSet};

/// Per role: the tasks that were waiting when the role last declined.
#[derive(Debug, Default)]
pub struct Revival {
    declined_with: HashMap<String, HashSet<String>>,
}

impl Revival {
    /// Records that `role` declined offers while `waiting` waited.
    pub fn declined<'a>(&mut self, role: &str, waiting: impl IntoIterator<Item = &'a str>) {
        self.declined_with.insert(role.to_string(), waiting.into_iter().map(str::to_string).collect());
    }

    /// Whether `role` should revive now that `waiting` wait: something waits
    /// that did not when it last declined. When so, the record is dropped
    /// (the revive clears every filter the declines left).
    pub fn take_due<'a>(&mut self, role: &str, waiting: impl IntoIterator<Item = &'a str>) -> bool {
        let Some(seen) = self.declined_with.get(role) else { return false };
        let due = waiting.into_iter().any(|t| !seen.contains(t));
        if due {
            self.declined_with.remove(role);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn no_decline_no_revive() {
        let mut r = Revival::default();
        assert!(!r.take_due("web", ["t1"]));
    }

    #[test]
    fn new_work_after_a_decline_revives_once() {
        let mut r = Revival::default();
        r.declined("web", []);
        assert!(!r.take_due("web", []), "nothing waits: nothing to revive for");
        assert!(!r.take_due("batch", ["t1"]), "another role never declined");
        assert!(r.take_due("web", ["t1", "t2"]));
        assert!(!r.take_due("web", ["t1", "t2", "t3"]), "the revive already cleared the filters");
    }

    #[test]
    fn the_same_work_declined_again_does_not_revive() {
        let mut r = Revival::default();
        r.declined("web", ["t1", "t2"]);
        assert!(!r.take_due("web", ["t2"]));
        assert!(!r.take_due("web", ["t1", "t2"]));
        assert!(r.take_due("web", ["t1", "t9"]));
    }

    proptest! {
        /// Revives happen exactly when some waiting task is new since the
        /// last decline, and never twice without a decline between.
        #[test]
        fn revives_only_for_new_work(
            steps in proptest::collection::vec((any::<bool>(), proptest::collection::btree_set(0u8..6, 0..4)), 1..30)
        ) {
            let mut r = Revival::default();
            let mut last: Option<std::collections::BTreeSet<u8>> = None;
            for (decline, waiting) in steps {
                let names: Vec<String> = waiting.iter().map(|t| format!("t{t}")).collect();
                let due = r.take_due("role", names.iter().map(String::as_str));
                let expected = last.as_ref().is_some_and(|seen| waiting.iter().any(|t| !seen.contains(t)));
                prop_assert_eq!(due, expected);
                if due {
                    last = None;
                }
                if decline {
                    r.declined("role", names.iter().map(String::as_str));
                    last = Some(waiting.clone());
                }
            }
        }
    }
}
