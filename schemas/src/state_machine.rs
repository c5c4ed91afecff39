//! The Aurora task state machine as pure functions: which [`TaskState`]
//! changes are legal, and how a [`TaskStatus`] records one.
//!
//! Owns the transition table, the bounded `taskEvents` history and the
//! check the apiserver runs on status writes. It must not decide *when* a
//! task changes state (timeouts, kills, agent reports): the tasks controller
//! and agentd do that and call [`transition`].
//!
//! # The table
//!
//! | from | to |
//! |---|---|
//! | PENDING | ASSIGNED, THROTTLED, KILLING |
//! | THROTTLED | PENDING, KILLING |
//! | ASSIGNED | STARTING, RUNNING, FINISHED, FAILED, KILLING, KILLED, LOST, PREEMPTING, RESTARTING, DRAINING, PARTITIONED |
//! | STARTING | RUNNING, FINISHED, FAILED, KILLING, KILLED, LOST, PREEMPTING, RESTARTING, DRAINING, PARTITIONED |
//! | RUNNING | FINISHED, FAILED, KILLING, KILLED, LOST, PREEMPTING, RESTARTING, DRAINING, PARTITIONED |
//! | KILLING | FINISHED, FAILED, KILLED, LOST, PARTITIONED |
//! | PREEMPTING, RESTARTING, DRAINING | FINISHED, FAILED, KILLING, KILLED, LOST, PARTITIONED |
//! | PARTITIONED | ASSIGNED, STARTING, RUNNING, FINISHED, FAILED, KILLING, LOST, PREEMPTING, RESTARTING, DRAINING |
//! | FINISHED, FAILED, KILLED, LOST | nothing (terminal) |
//!
//! A "transition" to the current state is a no-op, accepted only while the
//! state is not terminal.
//!
//! # Differences from Aurora's `TaskStateMachine`
//!
//! - Aurora has an `INIT` state before PENDING / THROTTLED and a `DELETED`
//!   state after the terminal ones. Meseta has neither: a task is created
//!   PENDING (the apiserver writes that status and its first event; no
//!   status also reads as PENDING) and deleting it deletes the object.
//!   Because there is no INIT, PENDING → THROTTLED is legal here (Aurora
//!   throttles on INIT → THROTTLED).
//! - ASSIGNED → PARTITIONED is legal here: a task bound to an agent that
//!   becomes unreachable before it reports STARTING is partitioned like a
//!   started one. Aurora only partitions tasks from STARTING on.
//! - Aurora applies a same-state update to any state as a no-op; here it is
//!   refused for terminal states, so nothing can touch a finished task's
//!   history through [`transition`].
//! - Aurora's transition side effects (reschedule, kill, increment failures)
//!   are not here: controllers derive them from the new state.
//!
//! # History
//!
//! Every accepted change appends `{timestamp, state, message}` to
//! `status.taskEvents`. The history is bounded: it keeps the first event
//! (when the task entered its first state, which MTTA / MTTR need) and the
//! last [`TASK_EVENTS_TAIL`] events, so a task flapping between RUNNING and
//! PARTITIONED for months cannot grow without bound. The events dropped are
//! the oldest after the first.

use thiserror::Error;

use crate::kinds::{TaskEvent, TaskState, TaskStatus};
use crate::meta::Time;
use crate::validation::FieldError;

/// How many of the most recent events `taskEvents` keeps besides the first.
pub const TASK_EVENTS_TAIL: usize = 50;

/// The most events `taskEvents` holds: the first plus [`TASK_EVENTS_TAIL`].
pub const MAX_TASK_EVENTS: usize = TASK_EVENTS_TAIL + 1;

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransitionError {
    /// The task already ended; it never changes state again.
    #[error("cannot go from {from} to {to}: {from} is terminal")]
    Terminal {
        /// The current (terminal) state.
        from: TaskState,
        /// The state asked for.
        to: TaskState,
    },
    /// The table has no edge from `from` to `to`.
    #[error("cannot go from {from} to {to}: from {from} a task may go to {}", list(next_states(*from)))]
    Illegal {
        /// The current state.
        from: TaskState,
        /// The state asked for.
        to: TaskState,
    },
}

fn list(states: &[TaskState]) -> String {
    states.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The states reachable from `from` in one step (never `from` itself).
pub fn next_states(from: TaskState) -> &'static [TaskState] {
    use TaskState::*;
    match from {
        Pending => &[Assigned, Throttled, Killing],
        Throttled => &[Pending, Killing],
        Assigned => {
            &[Starting, Running, Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned]
        }
        Starting => &[Running, Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned],
        Running => &[Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned],
        Killing => &[Finished, Failed, Killed, Lost, Partitioned],
        Preempting | Restarting | Draining => &[Finished, Failed, Killing, Killed, Lost, Partitioned],
        Partitioned => {
            &[Assigned, Starting, Running, Finished, Failed, Killing, Lost, Preempting, Restarting, Draining]
        }
        Finished | Failed | Killed | Lost => &[],
    }
}

/// Whether a task in `from` may move to `to`. `from == to` is allowed (as a
/// no-op) only for non-terminal states.
pub fn can_transition(from: TaskState, to: TaskState) -> bool {
    check(from, to).is_ok()
}

fn check(from: TaskState, to: TaskState) -> Result<(), TransitionError> {
    if from.is_terminal() {
        return Err(TransitionError::Terminal { from, to });
    }
    if from == to || next_states(from).contains(&to) {
        Ok(())
    } else {
        Err(TransitionError::Illegal { from, to })
    }
}

/// Moves `status` to `to`: returns the new status with `state` and `message`
/// set and `{now, to, message}` appended to `taskEvents` (bounded, see the
/// module docs). A same-state call on a non-terminal state is a no-op and
/// returns `status` unchanged. Nothing else in the status is touched.
pub fn transition(status: &TaskStatus, to: TaskState, message: &str, now: Time) -> Result<TaskStatus, TransitionError> {
    let from = status.state;
    check(from, to)?;
    let mut next = status.clone();
    if from == to {
        return Ok(next);
    }
    next.state = to;
    next.message = message.to_string();
    next.task_events.push(TaskEvent { timestamp: now, state: to, message: message.to_string() });
    bound_events(&mut next.task_events);
    Ok(next)
}

/// Drops the oldest events after the first until at most
/// [`MAX_TASK_EVENTS`] remain.
pub fn bound_events(events: &mut Vec<TaskEvent>) {
    if events.len() > MAX_TASK_EVENTS {
        let excess = events.len() - MAX_TASK_EVENTS;
        events.drain(1..1 + excess);
    }
}

/// Checks a status write of the apiserver's `status` subresource. `old` is
/// the stored status (`None`: the task has none yet, which reads as
/// PENDING). Writing the same state is not a transition and is always
/// accepted. A change must be legal, either directly or as the chain of
/// events the writer appended after the last event of `old` (so an agent may
/// report ASSIGNED → STARTING → RUNNING in one write).
pub fn validate_status_update(old: Option<&TaskStatus>, new: &TaskStatus) -> Vec<FieldError> {
    let from = old.map(|s| s.state).unwrap_or_default();
    if from == new.state {
        return Vec::new();
    }
    let direct = check(from, new.state);
    if direct.is_ok() || appended_chain_is_legal(old, new) {
        return Vec::new();
    }
    let why = direct.err().map(|e| e.to_string()).unwrap_or_default();
    vec![FieldError::invalid("status.state", new.state, why)]
}

/// Whether the events `new` appended after `old`'s last event walk legally
/// from `old.state` to `new.state`.
fn appended_chain_is_legal(old: Option<&TaskStatus>, new: &TaskStatus) -> bool {
    let appended: &[TaskEvent] = match old.and_then(|o| o.task_events.last()) {
        Some(last) => match new.task_events.iter().rposition(|e| e == last) {
            Some(i) => &new.task_events[i + 1..],
            None => return false,
        },
        None => &new.task_events,
    };
    if appended.len() < 2 || appended.last().map(|e| e.state) != Some(new.state) {
        return false;
    }
    let mut at = old.map(|s| s.state).unwrap_or_default();
    for e in appended {
        if e.state != at && check(at, e.state).is_err() {
            return false;
        }
        at = e.state;
    }
    true
}
