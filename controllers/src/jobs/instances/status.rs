//! The Job's status as the planner computes it: counts per state, MTTA /
//! MTTR and the conditions. Pure; the planner hands it the job's tasks by
//! instance and `now`. It must not decide what to create or kill.

use std::collections::BTreeMap;
use std::sync::Arc;

use meseta_schemas::kinds::{Condition, Job, JobStatus, JobType, Task, TaskState};
use meseta_schemas::Time;

use crate::jobs::update::InstanceView;
use crate::tasks::metrics::seconds_to;

/// Fills the per-state counts of `s` from the job's tasks by instance (each
/// list oldest first, so its last task is the instance's current one).
///
/// Instances below `instances` count once, by their current task:
/// PENDING, THROTTLED, ASSIGNED / STARTING (`starting`), RUNNING, FINISHED,
/// LOST / PARTITIONED (`lost`). `killing` counts every task of the job
/// being stopped (KILLING, PREEMPTING, RESTARTING, DRAINING), current or
/// not: a rolling update's old task and a scaled-away instance are still
/// on an agent until the kill ends.
pub(super) fn count_states(s: &mut JobStatus, by_instance: &BTreeMap<u32, Vec<&Arc<Task>>>, instances: u32) {
    use TaskState::*;
    for (i, list) in by_instance {
        s.killing +=
            list.iter().filter(|t| matches!(t.state(), Killing | Preempting | Restarting | Draining)).count() as u32;
        let Some(cur) = list.last() else { continue };
        if *i >= instances {
            continue;
        }
        match cur.state() {
            Pending => s.pending += 1,
            Throttled => s.throttled += 1,
            Assigned | Starting => s.starting += 1,
            Running => s.running += 1,
            Finished => s.finished += 1,
            Lost | Partitioned => s.lost += 1,
            Failed | Killed | Killing | Preempting | Restarting | Draining => {}
        }
    }
}

/// The Job's status: counts per state, MTTA / MTTR over every task of the
/// job, and the Available / Progressing / Failed / Complete conditions.
pub(super) fn job_status(
    job: &Job,
    by_instance: &BTreeMap<u32, Vec<&Arc<Task>>>,
    views: &[InstanceView],
    failures: u32,
    failed: bool,
    now: Time,
    old: &JobStatus,
) -> JobStatus {
    let spec = &job.spec;
    let generation = job.metadata.generation.unwrap_or(0);
    let mut s = JobStatus {
        observed_generation: generation,
        failures,
        last_schedule_time: old.last_schedule_time,
        ..Default::default()
    };
    count_states(&mut s, by_instance, spec.instances);
    let (mut mtta, mut mttr) = (Vec::new(), Vec::new());
    for t in by_instance.values().flatten() {
        mtta.extend(seconds_to(t, TaskState::Assigned));
        mttr.extend(seconds_to(t, TaskState::Running));
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    s.mtta_seconds = mean(&mtta);
    s.mttr_seconds = mean(&mttr);
    let ready = views.iter().filter(|v| v.ready).count() as u32;
    let outdated = views.iter().filter(|v| v.outdated).count();
    let c = &old.conditions;
    let available = match spec.type_ {
        JobType::Service => ready >= spec.instances,
        _ => !failed,
    };
    s.conditions.push(condition(
        "Available",
        available,
        if available { "InstancesReady" } else { "InstancesNotReady" },
        format!("{ready} of {} instances running", spec.instances),
        generation,
        c,
        now,
    ));
    let complete = spec.type_ == JobType::Adhoc && s.finished >= spec.instances;
    let progressing = !failed && !complete && (outdated > 0 || s.pending + s.throttled + s.starting > 0);
    s.conditions.push(condition(
        "Progressing",
        progressing,
        if outdated > 0 {
            "RollingUpdate"
        } else if progressing {
            "Placing"
        } else {
            "Stable"
        },
        format!(
            "{outdated} instances on an old template, {} pending, {} throttled, {} starting",
            s.pending, s.throttled, s.starting
        ),
        generation,
        c,
        now,
    ));
    s.conditions.push(condition(
        "Failed",
        failed,
        if failed { "MaxTaskFailures" } else { "NoFailure" },
        format!("{failures} task failures (maxTaskFailures {})", spec.max_task_failures),
        generation,
        c,
        now,
    ));
    if spec.type_ == JobType::Adhoc {
        s.conditions.push(condition(
            "Complete",
            complete,
            if complete { "AllFinished" } else { "Running" },
            format!("{} of {} instances finished", s.finished, spec.instances),
            generation,
            c,
            now,
        ));
    }
    s
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: i64,
    old: &[Condition],
    now: Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last =
        old.iter().find(|c| c.type_ == type_ && c.status == status).and_then(|c| c.last_transition_time).unwrap_or(now);
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: Some(last),
        observed_generation: Some(generation),
    }
}
