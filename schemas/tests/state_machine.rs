//! The Aurora task state machine: the table, `transition`, the bounded
//! history and the apiserver's status-write check.

use chrono::{TimeZone, Utc};
use meseta_schemas::state_machine::{
    can_transition, next_states, transition, validate_status_update, TransitionError, MAX_TASK_EVENTS, TASK_EVENTS_TAIL,
};
use meseta_schemas::{FieldErrorKind, TaskEvent, TaskState, TaskState::*, TaskStatus, Time};
use proptest::prelude::*;

fn at(secs: i64) -> Time {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn status(state: TaskState) -> TaskStatus {
    TaskStatus { state, ..Default::default() }
}

/// Every legal change, written out independently of the module's table.
const LEGAL: &[(TaskState, &[TaskState])] = &[
    (Pending, &[Assigned, Throttled, Killing]),
    (Throttled, &[Pending, Killing]),
    (
        Assigned,
        &[Starting, Running, Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned],
    ),
    (Starting, &[Running, Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned]),
    (Running, &[Finished, Failed, Killing, Killed, Lost, Preempting, Restarting, Draining, Partitioned]),
    (Killing, &[Finished, Failed, Killed, Lost, Partitioned]),
    (Preempting, &[Finished, Failed, Killing, Killed, Lost, Partitioned]),
    (Restarting, &[Finished, Failed, Killing, Killed, Lost, Partitioned]),
    (Draining, &[Finished, Failed, Killing, Killed, Lost, Partitioned]),
    (Partitioned, &[Assigned, Starting, Running, Finished, Failed, Killing, Lost, Preempting, Restarting, Draining]),
    (Finished, &[]),
    (Failed, &[]),
    (Killed, &[]),
    (Lost, &[]),
];

#[test]
fn table_matches_every_pair() {
    assert_eq!(LEGAL.len(), TaskState::ALL.len());
    for (from, tos) in LEGAL {
        for to in TaskState::ALL {
            let want = tos.contains(&to) || (to == *from && !from.is_terminal());
            assert_eq!(can_transition(*from, to), want, "{from} -> {to}");
        }
        let mut listed = next_states(*from).to_vec();
        listed.sort();
        let mut expected = tos.to_vec();
        expected.sort();
        assert_eq!(listed, expected, "next_states({from})");
    }
}

#[test]
fn sample_of_illegal_pairs() {
    for (from, to) in [
        (Pending, Running),
        (Pending, Finished),
        (Pending, Lost),
        (Throttled, Assigned),
        (Running, Pending),
        (Running, Starting),
        (Running, Assigned),
        (Killing, Running),
        (Killing, Preempting),
        (Finished, Running),
        (Failed, Pending),
        (Killed, Killing),
        (Lost, Partitioned),
        (Partitioned, Pending),
        (Partitioned, Killed),
    ] {
        assert!(!can_transition(from, to), "{from} -> {to} must be illegal");
        assert!(transition(&status(from), to, "x", at(0)).is_err(), "{from} -> {to}");
    }
}

#[test]
fn terminal_states_go_nowhere_not_even_to_themselves() {
    for from in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
        assert!(next_states(from).is_empty());
        for to in TaskState::ALL {
            assert!(!can_transition(from, to), "{from} -> {to}");
            assert_eq!(transition(&status(from), to, "", at(0)), Err(TransitionError::Terminal { from, to }));
        }
    }
}

#[test]
fn transition_sets_state_and_message_and_appends_one_event() {
    let s0 = TaskStatus { agent: Some("agent-1".into()), failure_count: 2, ..status(Pending) };
    let s1 = transition(&s0, Assigned, "bound to agent-1", at(5)).unwrap();
    assert_eq!(s1.state, Assigned);
    assert_eq!(s1.message, "bound to agent-1");
    assert_eq!(
        s1.task_events,
        vec![TaskEvent { timestamp: at(5), state: Assigned, message: "bound to agent-1".into() }]
    );
    assert_eq!(s1.agent.as_deref(), Some("agent-1"), "other fields are kept");
    assert_eq!(s1.failure_count, 2);
    let s2 = transition(&s1, Running, "", at(9)).unwrap();
    assert_eq!(s2.task_events.len(), 2);
    assert_eq!(s2.task_events[1].state, Running);
    assert_eq!(s2.message, "");
    assert_eq!(s0.state, Pending, "the input is not modified");
}

#[test]
fn same_state_is_a_no_op_for_live_states() {
    let s = transition(&status(Pending), Assigned, "a", at(1)).unwrap();
    let same = transition(&s, Assigned, "again", at(2)).unwrap();
    assert_eq!(same, s, "no event, no message change");
}

#[test]
fn error_messages_say_what_is_allowed() {
    let e = transition(&status(Finished), Running, "", at(0)).unwrap_err();
    assert_eq!(e.to_string(), "cannot go from FINISHED to RUNNING: FINISHED is terminal");
    let e = transition(&status(Pending), Running, "", at(0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot go from PENDING to RUNNING: from PENDING a task may go to ASSIGNED, THROTTLED, KILLING"
    );
}

#[test]
fn history_keeps_the_first_event_and_the_last_ones() {
    let mut s = transition(&status(Pending), Assigned, "first", at(0)).unwrap();
    s = transition(&s, Running, "", at(1)).unwrap();
    for i in 0..200 {
        let to = if s.state == Running { Partitioned } else { Running };
        s = transition(&s, to, &format!("flap {i}"), at(2 + i)).unwrap();
        assert!(s.task_events.len() <= MAX_TASK_EVENTS);
    }
    assert_eq!(s.task_events.len(), MAX_TASK_EVENTS);
    assert_eq!(s.task_events[0].message, "first");
    assert_eq!(s.task_events.last().unwrap().message, "flap 199");
    let tail: Vec<i64> = s.task_events[1..].iter().map(|e| e.timestamp.timestamp() - 1_700_000_000).collect();
    let want: Vec<i64> = (202 - TASK_EVENTS_TAIL as i64..202).collect();
    assert_eq!(tail, want, "the most recent events, oldest first");
}

#[test]
fn status_update_refuses_leaving_a_terminal_state() {
    let old = status(Finished);
    let errs = validate_status_update(Some(&old), &status(Running));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "status.state");
    assert_eq!(errs[0].kind, FieldErrorKind::Invalid);
    assert_eq!(errs[0].detail, "cannot go from FINISHED to RUNNING: FINISHED is terminal");
    assert!(errs[0].to_string().starts_with("status.state: Invalid value: RUNNING: cannot go from FINISHED"));
}

#[test]
fn status_update_accepts_legal_and_unchanged_states() {
    assert!(validate_status_update(None, &status(Pending)).is_empty(), "no status reads as PENDING");
    assert!(validate_status_update(None, &status(Assigned)).is_empty());
    assert!(!validate_status_update(None, &status(Running)).is_empty());
    let done = TaskStatus { exit_code: Some(0), ..status(Finished) };
    let later = TaskStatus { message: "usage recorded".into(), ..done.clone() };
    assert!(validate_status_update(Some(&done), &later).is_empty(), "a terminal task's other fields may change");
    assert!(validate_status_update(Some(&status(Running)), &status(Killing)).is_empty());
}

#[test]
fn status_update_accepts_a_chain_of_transitions_in_one_write() {
    let old = transition(&status(Pending), Assigned, "bound", at(0)).unwrap();
    let mut new = transition(&old, Starting, "", at(1)).unwrap();
    new = transition(&new, Running, "", at(2)).unwrap();
    // ASSIGNED -> RUNNING is legal anyway; PENDING -> RUNNING is not, unless the events say how.
    let pending = status(Pending);
    let mut from_pending = transition(&pending, Assigned, "", at(0)).unwrap();
    from_pending = transition(&from_pending, Starting, "", at(1)).unwrap();
    from_pending = transition(&from_pending, Running, "", at(2)).unwrap();
    assert!(validate_status_update(Some(&pending), &from_pending).is_empty());
    assert!(validate_status_update(Some(&old), &new).is_empty());
    // A claimed chain with an illegal step is refused.
    let mut forged = status(Running);
    forged.task_events = vec![
        TaskEvent { timestamp: at(0), state: Throttled, message: String::new() },
        TaskEvent { timestamp: at(1), state: Running, message: String::new() },
    ];
    let errs = validate_status_update(Some(&pending), &forged);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].detail.contains("cannot go from PENDING to RUNNING"), "{}", errs[0].detail);
}

fn any_state() -> impl Strategy<Value = TaskState> {
    prop::sample::select(TaskState::ALL.to_vec())
}

proptest! {
    #[test]
    fn random_walks_never_leave_a_terminal_state(targets in prop::collection::vec(any_state(), 1..120)) {
        let mut s = status(Pending);
        let mut terminal_seen: Option<TaskState> = None;
        for (i, to) in targets.into_iter().enumerate() {
            let before = s.task_events.len();
            match transition(&s, to, "step", at(i as i64)) {
                Ok(next) => {
                    prop_assert!(terminal_seen.is_none(), "left terminal {:?} for {to}", terminal_seen);
                    prop_assert!(can_transition(s.state, to));
                    if to == s.state {
                        prop_assert_eq!(&next, &s);
                    } else if before < MAX_TASK_EVENTS {
                        prop_assert_eq!(next.task_events.len(), before + 1);
                    } else {
                        prop_assert_eq!(next.task_events.len(), MAX_TASK_EVENTS);
                        prop_assert_eq!(&next.task_events[0], &s.task_events[0]);
                    }
                    prop_assert_eq!(next.task_events.last().map(|e| e.state), if to == s.state { s.task_events.last().map(|e| e.state) } else { Some(to) });
                    prop_assert!(validate_status_update(Some(&s), &next).is_empty());
                    s = next;
                }
                Err(_) => {
                    prop_assert!(!can_transition(s.state, to));
                    let refused = validate_status_update(Some(&s), &TaskStatus { state: to, ..s.clone() });
                    prop_assert!(!refused.is_empty() || to == s.state);
                }
            }
            if s.state.is_terminal() {
                terminal_seen = terminal_seen.or(Some(s.state));
                prop_assert_eq!(Some(s.state), terminal_seen);
            }
        }
    }
}

proptest! {
    /// Long legal walks among live states: the history grows by one per
    /// change until the bound, then stays at the bound keeping the first.
    #[test]
    fn legal_walks_grow_history_by_one_until_the_bound(picks in prop::collection::vec(any::<usize>(), 1..160)) {
        let mut s = transition(&status(Pending), Assigned, "first", at(0)).unwrap();
        for (i, pick) in picks.into_iter().enumerate() {
            let live: Vec<TaskState> = next_states(s.state).iter().copied().filter(|t| !t.is_terminal()).collect();
            let to = live[pick % live.len()];
            let next = transition(&s, to, "", at(1 + i as i64)).unwrap();
            prop_assert_eq!(next.task_events.len(), (s.task_events.len() + 1).min(MAX_TASK_EVENTS));
            prop_assert_eq!(&next.task_events[0].message, "first");
            prop_assert_eq!(next.task_events.last().unwrap().state, to);
            s = next;
        }
    }
}
