//! Task metrics: MTTA (PENDING→ASSIGNED) and MTTR (PENDING→RUNNING)
//! histograms, and task counts by state.
//!
//! Both count from the task's creation. A task the jobs controller launches
//! straight from an offer at hand is created ASSIGNED by the accept (its
//! history holds PENDING and ASSIGNED at one instant), so its MTTA is zero:
//! the time its instance waited for that offer before is not a task's.
//!
//! Owns reading the durations off `taskEvents` (each task is observed once
//! per phase) and the per-state counts, kept from single changes between
//! full passes. It must not write anything to the API.

use std::collections::HashMap;

use meseta_schemas::kinds::{Task, TaskState};
use meseta_schemas::Time;
use prometheus::{HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};

/// When `task` started waiting: the PENDING event its history starts with
/// (the apiserver stamps one at create, finer than the second; the history
/// always keeps its first event), else its whole-second
/// `creationTimestamp` (tasks created before that event existed), else its
/// first event.
pub fn pending_since(task: &Task) -> Option<Time> {
    let first = task.status.as_ref().and_then(|s| s.task_events.first());
    first
        .filter(|e| e.state == TaskState::Pending)
        .map(|e| e.timestamp)
        .or(task.metadata.creation_timestamp)
        .or(first.map(|e| e.timestamp))
}

/// Seconds from [`pending_since`] to the first entry of `state` in the
/// history, if it has one (never negative).
pub fn seconds_to(task: &Task, state: TaskState) -> Option<f64> {
    let reached = task.status.as_ref()?.task_events.iter().find(|e| e.state == state)?;
    let start = pending_since(task)?;
    let micros = (reached.timestamp - start).num_microseconds()?;
    Some(micros.max(0) as f64 / 1e6)
}

/// The tasks controller's metrics.
#[derive(Clone)]
pub struct TaskMetrics {
    mtta: HistogramVec,
    mttr: HistogramVec,
    by_state: IntGaugeVec,
}

const BUCKETS: [f64; 14] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

impl TaskMetrics {
    /// Creates the metrics and registers them in `registry` (when given).
    pub fn new(registry: Option<&Registry>) -> Self {
        let mtta = HistogramVec::new(
            HistogramOpts::new("meseta_task_mtta_seconds", "Time from PENDING to ASSIGNED.").buckets(BUCKETS.to_vec()),
            &["namespace"],
        )
        .expect("valid metric");
        let mttr = HistogramVec::new(
            HistogramOpts::new("meseta_task_mttr_seconds", "Time from PENDING to RUNNING.").buckets(BUCKETS.to_vec()),
            &["namespace"],
        )
        .expect("valid metric");
        let by_state =
            IntGaugeVec::new(Opts::new("meseta_tasks", "Tasks by state."), &["state"]).expect("valid metric");
        if let Some(r) = registry {
            for c in [Box::new(mtta.clone()) as Box<dyn prometheus::core::Collector>, Box::new(mttr.clone())] {
                let _ = r.register(c);
            }
            let _ = r.register(Box::new(by_state.clone()));
        }
        TaskMetrics { mtta, mttr, by_state }
    }

    /// The MTTA histogram.
    pub fn mtta(&self) -> &HistogramVec {
        &self.mtta
    }

    /// The MTTR histogram.
    pub fn mttr(&self) -> &HistogramVec {
        &self.mttr
    }
}

/// Which tasks (by uid) have been observed for MTTA and MTTR, and how many
/// tasks are in each state.
///
/// Kept current two ways: [`Observed::update`] looks at every task (a full
/// pass: counts recomputed, tasks gone forgotten), [`Observed::observe`] and
/// [`Observed::forget`] at one task each (from the events seen between full
/// passes). Both keep the counts equal to the tasks tracked.
#[derive(Default)]
pub(crate) struct Observed {
    /// Per task uid: whether its MTTA / MTTR were observed, its state, and
    /// the full pass that last saw it.
    seen: HashMap<String, Seen>,
    /// Tasks per state, indexed like [`TaskState::ALL`].
    counts: [i64; TaskState::ALL.len()],
    pass: u64,
}

#[derive(Default)]
struct Seen {
    assigned: bool,
    running: bool,
    state: usize,
    pass: u64,
}

fn state_index(state: TaskState) -> usize {
    TaskState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

impl Observed {
    /// Observes every task not yet observed and recomputes the per-state
    /// counts; forgets tasks no longer present. Allocates only for tasks
    /// seen for the first time.
    pub(crate) fn update(&mut self, metrics: &TaskMetrics, tasks: &[std::sync::Arc<Task>]) {
        self.pass += 1;
        let pass = self.pass;
        self.counts = [0; TaskState::ALL.len()];
        let mut present = 0;
        for t in tasks {
            let state = state_index(t.state());
            self.counts[state] += 1;
            let Some(uid) = t.metadata.uid.as_deref() else { continue };
            let seen = match self.seen.get_mut(uid) {
                Some(s) => s,
                None => self.seen.entry(uid.to_string()).or_default(),
            };
            seen.state = state;
            if seen.pass != pass {
                seen.pass = pass;
                present += 1;
            }
            observe_durations(metrics, seen, t);
        }
        if self.seen.len() > present {
            self.seen.retain(|_, s| s.pass == pass);
        }
        self.publish(metrics);
    }

    /// Observes one task that changed or appeared since the last look, and
    /// moves it between the per-state counts. A task without a uid is
    /// counted at the next [`Observed::update`] only.
    pub(crate) fn observe(&mut self, metrics: &TaskMetrics, task: &Task) {
        let Some(uid) = task.metadata.uid.as_deref() else { return };
        let state = state_index(task.state());
        let seen = match self.seen.get_mut(uid) {
            Some(seen) => {
                self.counts[seen.state] -= 1;
                seen
            }
            None => self.seen.entry(uid.to_string()).or_insert(Seen { pass: self.pass, ..Default::default() }),
        };
        seen.state = state;
        self.counts[state] += 1;
        observe_durations(metrics, seen, task);
    }

    /// Forgets the task `uid` (deleted): it leaves the per-state counts.
    pub(crate) fn forget(&mut self, uid: &str) {
        if let Some(seen) = self.seen.remove(uid) {
            self.counts[seen.state] -= 1;
        }
    }

    /// Sets the per-state gauges from the counts.
    pub(crate) fn publish(&self, metrics: &TaskMetrics) {
        for (state, n) in TaskState::ALL.iter().zip(self.counts) {
            metrics.by_state.with_label_values(&[state.as_str()]).set(n);
        }
    }
}

/// Observes `task`'s MTTA and MTTR, each once.
fn observe_durations(metrics: &TaskMetrics, seen: &mut Seen, task: &Task) {
    if seen.assigned && seen.running {
        return;
    }
    let ns = task.metadata.namespace.as_deref().unwrap_or_default();
    if !seen.assigned {
        if let Some(s) = seconds_to(task, TaskState::Assigned) {
            metrics.mtta.with_label_values(&[ns]).observe(s);
            seen.assigned = true;
        }
    }
    if !seen.running {
        if let Some(s) = seconds_to(task, TaskState::Running) {
            metrics.mttr.with_label_values(&[ns]).observe(s);
            seen.running = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meseta_schemas::kinds::{TaskEvent, TaskSpec, TaskStatus};

    fn at(ms: i64) -> Time {
        chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("a valid time")
    }

    fn task(created_ms: i64, events: &[(TaskState, i64)]) -> Task {
        let mut t = Task::new("t", TaskSpec::default());
        t.metadata.creation_timestamp = Some(at(created_ms));
        let task_events =
            events.iter().map(|&(state, ms)| TaskEvent { timestamp: at(ms), state, message: String::new() }).collect();
        let state = events.last().map(|e| e.0).unwrap_or_default();
        t.status = Some(TaskStatus { state, task_events, ..Default::default() });
        t
    }

    /// `t` with uid `uid`, in namespace (role) `r`.
    fn in_role_r(mut t: Task, uid: &str) -> Task {
        t.metadata.uid = Some(uid.into());
        t.metadata.namespace = Some("r".into());
        t
    }

    #[test]
    fn mtta_and_mttr_start_at_the_created_event() {
        // Created at .750 of a second whose creationTimestamp reads .000.
        let t = task(0, &[(TaskState::Pending, 750), (TaskState::Assigned, 1_000), (TaskState::Running, 2_250)]);
        assert_eq!(seconds_to(&t, TaskState::Assigned), Some(0.25));
        assert_eq!(seconds_to(&t, TaskState::Running), Some(1.5));
        assert_eq!(seconds_to(&t, TaskState::Finished), None);
    }

    #[test]
    fn without_a_created_event_creation_is_the_start() {
        let t = task(0, &[(TaskState::Assigned, 1_250), (TaskState::Running, 2_000)]);
        assert_eq!(seconds_to(&t, TaskState::Assigned), Some(1.25));
        // A PENDING entered later (a released penalty) is not the creation.
        let t = task(0, &[(TaskState::Throttled, 500), (TaskState::Pending, 3_000), (TaskState::Assigned, 3_500)]);
        assert_eq!(seconds_to(&t, TaskState::Assigned), Some(3.5));
        let mut t = task(0, &[(TaskState::Assigned, 1_000)]);
        t.metadata.creation_timestamp = None;
        assert_eq!(seconds_to(&t, TaskState::Assigned), Some(0.0));
    }

    #[test]
    fn a_clock_behind_the_apiserver_reads_zero_not_negative() {
        let t = task(0, &[(TaskState::Pending, 900), (TaskState::Assigned, 400)]);
        assert_eq!(seconds_to(&t, TaskState::Assigned), Some(0.0));
    }

    #[test]
    fn each_task_is_observed_once_and_forgotten_when_gone() {
        let metrics = TaskMetrics::new(None);
        let mut observed = Observed::default();
        let with_uid = |t: Task, uid: &str| std::sync::Arc::new(in_role_r(t, uid));
        let assigned = with_uid(task(0, &[(TaskState::Pending, 0), (TaskState::Assigned, 500)]), "u1");
        let count = |h: &HistogramVec| h.with_label_values(&["r"]).get_sample_count();
        observed.update(&metrics, std::slice::from_ref(&assigned));
        observed.update(&metrics, std::slice::from_ref(&assigned));
        assert_eq!((count(&metrics.mtta), count(&metrics.mttr)), (1, 0), "MTTA once, no MTTR yet");
        let running =
            with_uid(task(0, &[(TaskState::Pending, 0), (TaskState::Assigned, 500), (TaskState::Running, 900)]), "u1");
        observed.update(&metrics, std::slice::from_ref(&running));
        assert_eq!((count(&metrics.mtta), count(&metrics.mttr)), (1, 1));
        // Gone, then a task with the same uid again (a re-list): observed anew.
        observed.update(&metrics, &[]);
        assert!(observed.seen.is_empty(), "a deleted task is forgotten");
        observed.update(&metrics, std::slice::from_ref(&running));
        assert_eq!((count(&metrics.mtta), count(&metrics.mttr)), (2, 2));
    }

    #[test]
    fn one_task_at_a_time_keeps_the_counts_and_observes_once() {
        let metrics = TaskMetrics::new(None);
        let mut observed = Observed::default();
        let with_uid = in_role_r;
        let gauge = |s: TaskState| metrics.by_state.with_label_values(&[s.as_str()]).get();
        let count = |h: &HistogramVec| h.with_label_values(&["r"]).get_sample_count();
        let pending = with_uid(task(0, &[(TaskState::Pending, 0)]), "u1");
        let assigned = with_uid(task(0, &[(TaskState::Pending, 0), (TaskState::Assigned, 500)]), "u1");
        let other = with_uid(task(0, &[(TaskState::Pending, 0)]), "u2");
        observed.update(&metrics, &[std::sync::Arc::new(pending.clone())]);
        assert_eq!((gauge(TaskState::Pending), gauge(TaskState::Assigned)), (1, 0));
        observed.observe(&metrics, &assigned);
        observed.observe(&metrics, &assigned);
        observed.observe(&metrics, &other);
        observed.publish(&metrics);
        assert_eq!((gauge(TaskState::Pending), gauge(TaskState::Assigned)), (1, 1), "u1 moved, u2 came");
        assert_eq!(count(&metrics.mtta), 1, "MTTA once");
        observed.forget("u2");
        observed.forget("u2");
        observed.publish(&metrics);
        assert_eq!((gauge(TaskState::Pending), gauge(TaskState::Assigned)), (0, 1), "u2 gone once");
        // A full pass agrees with what the single steps kept.
        observed.update(&metrics, &[std::sync::Arc::new(assigned)]);
        assert_eq!((gauge(TaskState::Pending), gauge(TaskState::Assigned)), (0, 1));
        assert_eq!(count(&metrics.mtta), 1);
    }
}
