//! Figures of the schedule bench read from the tasks' own history
//! (`status.taskEvents`): time to assign and to run per task, and when the
//! last task reached RUNNING.
//!
//! Pure: it reads tasks handed to it and must not talk to the apiserver.

use meseta_controllers::tasks::metrics::pending_since;
use meseta_schemas::{Task, TaskState, Time};

/// Per-task latencies and the moment the last task ran.
#[derive(Debug, Default)]
pub struct Timings {
    /// PENDING (creation) → ASSIGNED, seconds, sorted.
    pub assign_s: Vec<f64>,
    /// PENDING (creation) → RUNNING, seconds, sorted.
    pub run_s: Vec<f64>,
    /// Tasks whose current state is RUNNING.
    pub running: usize,
    /// Tasks seen.
    pub tasks: usize,
    /// The latest RUNNING timestamp over all tasks.
    pub last_running: Option<Time>,
    /// The earliest PENDING timestamp over all tasks.
    pub first_pending: Option<Time>,
    /// When each task was created, was first ASSIGNED, first RUNNING.
    pub moments: [Vec<Time>; 3],
    /// Tasks per current state, with the message of the last one seen
    /// there (why tasks ended, when any did).
    pub by_state: std::collections::BTreeMap<TaskState, (usize, String)>,
}

/// The phases of [`Timings::moments`], in order.
pub const PHASES: [&str; 3] = ["created", "assigned", "running"];

impl Timings {
    /// Adds one task's history.
    pub fn add(&mut self, task: &Task) {
        self.tasks += 1;
        if task.state() == TaskState::Running {
            self.running += 1;
        }
        let entry = self.by_state.entry(task.state()).or_default();
        entry.0 += 1;
        if let Some(s) = &task.status {
            entry.1.clone_from(&s.message);
        }
        let Some(status) = &task.status else { return };
        let first = |s: TaskState| status.task_events.iter().find(|e| e.state == s).map(|e| e.timestamp);
        // The same moment the controllers' MTTA / MTTR start from.
        let Some(created) = pending_since(task) else { return };
        self.first_pending = Some(self.first_pending.map_or(created, |f| f.min(created)));
        self.moments[0].push(created);
        if let Some(assigned) = first(TaskState::Assigned) {
            self.assign_s.push(seconds(created, assigned));
            self.moments[1].push(assigned);
        }
        if let Some(running) = first(TaskState::Running) {
            self.run_s.push(seconds(created, running));
            self.moments[2].push(running);
            self.last_running = Some(self.last_running.map_or(running, |l| l.max(running)));
        }
    }

    /// Sorts the latencies; call once after the last [`Timings::add`].
    pub fn finish(&mut self) {
        self.assign_s.sort_by(f64::total_cmp);
        self.run_s.sort_by(f64::total_cmp);
        self.moments.iter_mut().for_each(|m| m.sort());
    }

    /// Seconds after `start` at which each task reached phase `phase` (an
    /// index of [`PHASES`]), sorted.
    pub fn since(&self, start: Time, phase: usize) -> Vec<f64> {
        self.moments[phase].iter().map(|t| seconds(start, *t)).collect()
    }

    /// Per phase: seconds after `start` at which the first task, the median
    /// task and the last task got there (the run's timeline).
    pub fn timeline(&self, start: Time) -> [[f64; 3]; 3] {
        self.moments.each_ref().map(|m| {
            let at: Vec<f64> = m.iter().map(|t| seconds(start, *t)).collect();
            [quantile(&at, 0.0), quantile(&at, 0.5), quantile(&at, 1.0)]
        })
    }
}

/// `b - a` in seconds.
fn seconds(a: Time, b: Time) -> f64 {
    (b - a).num_microseconds().map_or(f64::NAN, |us| us as f64 / 1e6)
}

/// The `q` quantile (0..=1, nearest rank) of sorted `values`; NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use meseta_schemas::{TaskEvent, TaskSpec, TaskStatus};

    fn at(ms: i64) -> Time {
        chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("a valid time")
    }

    #[test]
    fn the_timeline_gives_first_median_and_last_of_each_phase() {
        let mut t = Timings::default();
        t.add(&task(&[(TaskState::Pending, 0), (TaskState::Assigned, 400), (TaskState::Running, 900)]));
        t.add(&task(&[(TaskState::Pending, 100), (TaskState::Assigned, 200)]));
        t.add(&task(&[(TaskState::Pending, 300)]));
        t.finish();
        let [created, assigned, running] = t.timeline(at(0));
        assert_eq!(created, [0.0, 0.1, 0.3]);
        assert_eq!(assigned, [0.2, 0.2, 0.4]);
        assert_eq!(running, [0.9, 0.9, 0.9]);
        assert_eq!(t.since(at(100), 1), vec![0.1, 0.3]);
    }

    fn task(events: &[(TaskState, i64)]) -> Task {
        let mut t = Task::new("t", TaskSpec::default());
        let task_events =
            events.iter().map(|&(state, ms)| TaskEvent { timestamp: at(ms), state, message: String::new() }).collect();
        let state = events.last().map_or(TaskState::Pending, |e| e.0);
        t.status = Some(TaskStatus { state, task_events, ..Default::default() });
        t
    }

    #[test]
    fn latencies_run_from_pending_to_the_first_assigned_and_running() {
        let mut t = Timings::default();
        t.add(&task(&[(TaskState::Pending, 0), (TaskState::Assigned, 250), (TaskState::Running, 900)]));
        t.add(&task(&[(TaskState::Pending, 100), (TaskState::Assigned, 200)]));
        t.finish();
        assert_eq!(t.assign_s, vec![0.1, 0.25]);
        assert_eq!(t.run_s, vec![0.9]);
        assert_eq!((t.tasks, t.running), (2, 1));
        assert_eq!(t.first_pending, Some(at(0)));
        assert_eq!(t.last_running, Some(at(900)));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
