//! Task metrics: MTTA (PENDING→ASSIGNED) and MTTR (PENDING→RUNNING)
//! histograms, and task counts by state.
//!
//! Owns reading the durations off `taskEvents`; each task is observed once
//! per phase. It must not write anything to the API.

use std::collections::HashSet;

use meseta_schemas::kinds::{Task, TaskState};
use prometheus::{HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};

/// Seconds from the first event (creation as PENDING) to the first entry of
/// `state`, if the history has both.
pub fn seconds_to(task: &Task, state: TaskState) -> Option<f64> {
    let events = &task.status.as_ref()?.task_events;
    let first = events.first()?;
    let reached = events.iter().find(|e| e.state == state)?;
    let start = task.metadata.creation_timestamp.map(|c| c.min(first.timestamp)).unwrap_or(first.timestamp);
    Some((reached.timestamp - start).num_milliseconds().max(0) as f64 / 1000.0)
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

/// Which tasks (by uid) have been observed for MTTA and MTTR.
#[derive(Default)]
pub(crate) struct Observed {
    assigned: HashSet<String>,
    running: HashSet<String>,
}

impl Observed {
    /// Observes every task not yet observed and sets the per-state counts;
    /// forgets tasks no longer present.
    pub(crate) fn update(&mut self, metrics: &TaskMetrics, tasks: &[std::sync::Arc<Task>]) {
        let mut counts = [0i64; TaskState::ALL.len()];
        let mut present = HashSet::with_capacity(tasks.len());
        for t in tasks {
            counts[TaskState::ALL.iter().position(|s| *s == t.state()).unwrap_or(0)] += 1;
            let Some(uid) = t.metadata.uid.clone() else { continue };
            let ns = t.metadata.namespace.as_deref().unwrap_or_default();
            if !self.assigned.contains(&uid) {
                if let Some(s) = seconds_to(t, TaskState::Assigned) {
                    metrics.mtta.with_label_values(&[ns]).observe(s);
                    self.assigned.insert(uid.clone());
                }
            }
            if !self.running.contains(&uid) {
                if let Some(s) = seconds_to(t, TaskState::Running) {
                    metrics.mttr.with_label_values(&[ns]).observe(s);
                    self.running.insert(uid.clone());
                }
            }
            present.insert(uid);
        }
        self.assigned.retain(|u| present.contains(u));
        self.running.retain(|u| present.contains(u));
        for (state, n) in TaskState::ALL.iter().zip(counts) {
            metrics.by_state.with_label_values(&[state.as_str()]).set(n);
        }
    }
}
