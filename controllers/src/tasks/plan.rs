//! The tasks controller's decisions as a pure function of the tasks and now.
//!
//! Owns the rules (see [`plan`]). It must not write anything.

use std::time::Duration;

use meseta_schemas::kinds::{Task, TaskState};
use meseta_schemas::Time;

/// One thing to do to one task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    /// A kill of a task on no agent: straight to KILLED (through KILLING).
    KillUnbound,
    /// A kill of a bound task: KILLING; the agent finishes it.
    Killing,
    /// Stuck in ASSIGNED / STARTING past the timeout: LOST.
    Lost(String),
    /// A terminal task past its retention: delete it.
    Delete,
}

/// When `task` entered its current state: its last event, else its creation.
pub fn entered_state_at(task: &Task) -> Option<Time> {
    task.status
        .as_ref()
        .and_then(|s| s.task_events.last())
        .filter(|e| e.state == task.state())
        .map(|e| e.timestamp)
        .or(task.metadata.creation_timestamp)
}

/// Whether a Job owns `task` (its history is the jobs controller's to collect).
pub fn owned_by_job(task: &Task) -> bool {
    task.metadata.owner_references.iter().any(|o| o.kind == "Job")
}

/// What the tasks controller does to `task` at `now`:
///
/// - `spec.killRequested` on PENDING / THROTTLED → KILLED (via KILLING);
///   on ASSIGNED / STARTING / RUNNING / PARTITIONED → KILLING (the agent
///   reports KILLED); already being killed (KILLING, PREEMPTING, ...) or
///   terminal → nothing.
/// - ASSIGNED or STARTING for longer than `transient_timeout` → LOST.
/// - terminal for longer than `retention`, not owned by a Job → delete.
pub fn plan(task: &Task, now: Time, transient_timeout: Duration, retention: Duration) -> Option<TaskAction> {
    let state = task.state();
    let age = entered_state_at(task).map(|t| (now - t).to_std().unwrap_or_default()).unwrap_or_default();
    if state.is_terminal() {
        return (age >= retention && !owned_by_job(task)).then_some(TaskAction::Delete);
    }
    if task.spec.kill_requested {
        return match state {
            TaskState::Pending | TaskState::Throttled => Some(TaskAction::KillUnbound),
            TaskState::Assigned | TaskState::Starting | TaskState::Running | TaskState::Partitioned => {
                Some(TaskAction::Killing)
            }
            _ => None,
        };
    }
    if matches!(state, TaskState::Assigned | TaskState::Starting) && age >= transient_timeout {
        return Some(TaskAction::Lost(format!("stuck in {state} for more than {}s", transient_timeout.as_secs())));
    }
    None
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::{TaskEvent, TaskStatus};
    use meseta_schemas::OwnerReference;

    use super::*;

    fn at(secs: i64) -> Time {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn task(state: TaskState, since: i64, kill: bool) -> Task {
        let mut t = Task::default();
        t.spec.kill_requested = kill;
        t.status = Some(TaskStatus {
            state,
            task_events: vec![TaskEvent { timestamp: at(since), state, message: String::new() }],
            ..Default::default()
        });
        t
    }

    #[test]
    fn table() {
        let five_min = Duration::from_secs(300);
        let hour = Duration::from_secs(3600);
        use TaskAction::{Delete, KillUnbound};
        use TaskState::*;
        let cases: Vec<(Task, i64, Option<TaskAction>)> = vec![
            (task(Pending, 0, true), 1, Some(KillUnbound)),
            (task(Throttled, 0, true), 1, Some(KillUnbound)),
            (task(Running, 0, true), 1, Some(TaskAction::Killing)),
            (task(Assigned, 0, true), 1, Some(TaskAction::Killing)),
            (task(Killing, 0, true), 1, None),
            (task(Preempting, 0, true), 1, None),
            (task(Killed, 0, true), 1, None),
            (task(Assigned, 0, false), 299, None),
            (task(Starting, 0, false), 300, Some(TaskAction::Lost("stuck in STARTING for more than 300s".into()))),
            (task(Running, 0, false), 10_000, None),
            (task(Pending, 0, false), 10_000, None),
            (task(Finished, 0, false), 3599, None),
            (task(Failed, 0, false), 3600, Some(Delete)),
        ];
        for (t, now, want) in cases {
            assert_eq!(plan(&t, at(now), five_min, hour), want, "{} at {now}", t.state());
        }
        let mut owned = task(Finished, 0, false);
        owned.metadata.owner_references.push(OwnerReference { kind: "Job".into(), ..Default::default() });
        assert_eq!(plan(&owned, at(100_000), five_min, hour), None);
    }
}
