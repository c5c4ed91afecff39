//! Which tasks a tasks pass looks at: those whose events came since the last
//! pass, and every task now and then.
//!
//! Owns [`Changes`] (the keys the shared Task watch reported, filled by its
//! observer) and [`Passes`] (the choice between an incremental pass and a
//! full one, and the metrics bookkeeping of each). A change is planned at
//! the pass right after its event; what needs no event (the transient
//! timeout, the retention of finished tasks) is caught by a full pass over
//! every task, at the first pass, after every re-list of the watch, and at
//! least every `full_every`. It must not write anything: the loop applies
//! the actions.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meseta_client::reflector::Store;
use meseta_client::watcher::Event;
use meseta_client::ObjectRef;
use meseta_schemas::kinds::Task;
use meseta_schemas::Time;
use tokio::time::Instant;

use super::metrics::{Observed, TaskMetrics};
use super::plan::{plan, TaskAction};

/// What the watch reported since the last take.
#[derive(Default)]
struct Reported {
    /// Tasks created or changed (or whose last action failed).
    keys: HashSet<ObjectRef>,
    /// Uids of tasks deleted.
    gone: Vec<String>,
    /// The watch re-listed: deletions may have gone unreported.
    restarted: bool,
}

/// The changes the shared Task watch reported, for the next pass.
#[derive(Clone, Default)]
pub(crate) struct Changes {
    reported: Arc<Mutex<Reported>>,
}

impl Changes {
    /// What the shared watch hands each event to (after its store applied it).
    pub(crate) fn observer(&self) -> impl FnMut(&Event<Task>) + Send + 'static {
        let reported = self.reported.clone();
        move |event| {
            let mut r = reported.lock().expect("task changes lock");
            match event {
                Event::Applied(t) => {
                    r.keys.insert(ObjectRef::from_obj(t));
                }
                Event::Deleted(t) => r.gone.extend(t.metadata.uid.clone()),
                Event::Restarted(_) => {
                    *r = Reported { restarted: true, ..Default::default() };
                }
            }
        }
    }

    /// Looks at `task` again at the next pass (its action failed).
    pub(crate) fn retry(&self, task: &Task) {
        self.reported.lock().expect("task changes lock").keys.insert(ObjectRef::from_obj(task));
    }

    fn take(&self) -> Reported {
        std::mem::take(&mut *self.reported.lock().expect("task changes lock"))
    }
}

/// The rules' settings a pass plans with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// ASSIGNED / STARTING longer than this: LOST.
    pub(crate) transient_timeout: Duration,
    /// Finished tasks not owned by a Job are deleted after this.
    pub(crate) retention: Duration,
}

/// One pass's plan.
pub(crate) struct Planned {
    /// Whether the pass looked at every task.
    pub(crate) full: bool,
    /// How many tasks it looked at.
    pub(crate) looked_at: usize,
    /// What to do.
    pub(crate) work: Vec<(Arc<Task>, TaskAction)>,
}

/// The tasks controller's passes: incremental, or full when one is due.
pub(crate) struct Passes {
    changes: Changes,
    observed: Observed,
    full_every: Duration,
    /// When the next full pass is due; `None`: at the next pass.
    next_full: Option<Instant>,
}

impl Passes {
    /// Passes that look at every task at least every `full_every`.
    pub(crate) fn new(full_every: Duration) -> Self {
        Passes { changes: Changes::default(), observed: Observed::default(), full_every, next_full: None }
    }

    /// Where the shared watch reports changes to.
    pub(crate) fn changes(&self) -> &Changes {
        &self.changes
    }

    /// How long after `at` the next full pass is due.
    pub(crate) fn until_full(&self, at: Instant) -> Duration {
        self.next_full.map_or(Duration::ZERO, |due| due.saturating_duration_since(at))
    }

    /// Plans one pass over `store` at `now` (wall clock) / `at` (monotonic),
    /// and brings the metrics up to date.
    pub(crate) fn plan(
        &mut self,
        store: &Store<Task>,
        metrics: &TaskMetrics,
        rules: Rules,
        now: Time,
        at: Instant,
    ) -> Planned {
        let reported = self.changes.take();
        let full = reported.restarted || self.next_full.is_none_or(|due| at >= due);
        let decide = |t: &Task| plan(t, now, rules.transient_timeout, rules.retention);
        if full {
            self.next_full = Some(at + self.full_every);
            let all = store.list();
            self.observed.update(metrics, &all);
            let looked_at = all.len();
            let work = all.into_iter().filter_map(|t| decide(&t).map(|a| (t, a))).collect();
            return Planned { full, looked_at, work };
        }
        for uid in &reported.gone {
            self.observed.forget(uid);
        }
        let mut work = Vec::new();
        let mut looked_at = 0;
        for key in &reported.keys {
            let Some(t) = store.get_ref(key) else { continue };
            looked_at += 1;
            self.observed.observe(metrics, &t);
            if let Some(action) = decide(&t) {
                work.push((t, action));
            }
        }
        self.observed.publish(metrics);
        Planned { full, looked_at, work }
    }
}

#[cfg(test)]
mod tests;
