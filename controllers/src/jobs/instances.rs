//! The job planner: from a Job and its tasks to the tasks to create, kill
//! and release, and the Job's status. Pure; `now` is passed in.
//!
//! Owns the per-type rules. It must not place tasks (see `plan`) nor write.
//!
//! # Rules
//! - Tasks are `<job>-<instance>-<n>`; the newest (highest `n`) of an
//!   instance is its current task. A replacement gets `n + 1`.
//! - **service**: an instance whose current task ended (any terminal state)
//!   is replaced. When it ran for less than `stable_after` (or never ran)
//!   and FAILED, FINISHED or was KILLED unasked, the replacement is
//!   THROTTLED for `backoff_initial × backoff_factor^(k-1)` (k: rapid
//!   failures in a row, capped at `backoff_max`) — Marathon's launch
//!   backoff (1 s × 1.15 up to 300 s by default); a stable run resets k.
//! - **adhoc**: FINISHED instances are done. A FAILED one counts a failure;
//!   with `maxTaskFailures` failures (−1: never) the Job is Failed and
//!   nothing more starts, else it is retried (throttled as above). LOST and
//!   preempted (KILLED unasked) instances are replaced without a failure;
//!   instances killed on request are not replaced.
//! - **cron**: each firing starts one task per instance; a firing while the
//!   previous run is still active follows `collisionPolicy`. Runs are not
//!   retried; the next firing starts fresh.
//! - Instances at or above `instances` are killed (highest first, all at
//!   once); their finished tasks are collected with the history rule.
//! - Older tasks of an instance are killed once its current task is ready
//!   (rolling update surge, or an errant duplicate).
//! - History: terminal tasks that are not an instance's current task are
//!   deleted after `retention`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meseta_schemas::kinds::{CollisionPolicy, Job, JobStatus, JobType, Task, TaskState};
use meseta_schemas::Time;

use super::update::{next_batch, InstanceView};
use crate::tasks::plan::entered_state_at;

/// Label naming a task's job.
pub const JOB_LABEL: &str = "meseta.io/job";
/// Label naming a task's instance index.
pub const INSTANCE_LABEL: &str = "meseta.io/instance";
/// Annotation with the hash of the template a task was made from.
pub const HASH_ANNOTATION: &str = "meseta.io/template-hash";
/// Annotation with the end of a THROTTLED task's penalty (RFC 3339).
pub const THROTTLE_ANNOTATION: &str = "meseta.io/throttled-until";
/// Annotation counting rapid failures in a row (service backoff).
pub const RAPID_ANNOTATION: &str = "meseta.io/rapid-failures";

/// Tuning of the job planner.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// First restart penalty. Default 1 s.
    pub backoff_initial: Duration,
    /// Growth of the penalty per rapid failure. Default 1.15.
    pub backoff_factor: f64,
    /// Largest penalty. Default 300 s.
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff. Default 60 s.
    pub stable_after: Duration,
    /// How long superseded finished tasks are kept. Default 1 h.
    pub retention: Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            backoff_initial: Duration::from_secs(1),
            backoff_factor: 1.15,
            backoff_max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
            retention: Duration::from_secs(3600),
        }
    }
}

/// A task to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Instance index.
    pub instance: u32,
    /// Replacement counter.
    pub n: u32,
    /// Failures of the instance so far (`status.failureCount`).
    pub failure_count: u32,
    /// Rapid failures in a row (service backoff).
    pub rapid: u32,
    /// Start THROTTLED until then.
    pub throttled_until: Option<Time>,
}

/// What to do for one Job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPlan {
    /// Tasks to create.
    pub create: Vec<NewTask>,
    /// Tasks to kill (set `spec.killRequested`).
    pub kill: Vec<String>,
    /// THROTTLED tasks whose penalty is over: back to PENDING.
    pub release: Vec<String>,
    /// Old finished tasks to delete.
    pub delete: Vec<String>,
    /// The Job's status to write (when it differs).
    pub status: JobStatus,
    /// A cron firing to record (written before the tasks are created).
    pub fired_at: Option<Time>,
}

/// `n` of a task named `<job>-<instance>-<n>`.
pub fn run_number(task: &Task) -> u32 {
    task.metadata.name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// How many times the task's instance had failed before it, as its status
/// carries it over.
fn failure_count(task: &Task) -> u32 {
    task.status.as_ref().map_or(0, |s| s.failure_count)
}

/// The instance index of a task.
pub fn instance_of(task: &Task) -> Option<u32> {
    task.metadata.labels.get(INSTANCE_LABEL)?.parse().ok()
}

fn annotation<'a>(task: &'a Task, key: &str) -> Option<&'a str> {
    task.metadata.annotations.get(key).map(String::as_str)
}

/// Whether the task is RUNNING and not known unhealthy (healthy when a check is set).
pub fn is_ready(task: &Task) -> bool {
    task.state() == TaskState::Running
        && match task.spec.health_check {
            Some(_) => task.status.as_ref().and_then(|s| s.healthy) == Some(true),
            None => true,
        }
}

fn ran_for(task: &Task) -> Option<Duration> {
    let events = &task.status.as_ref()?.task_events;
    let start = events.iter().find(|e| e.state == TaskState::Running)?.timestamp;
    let end = events.last()?.timestamp;
    (end - start).to_std().ok()
}

fn penalty(cfg: &PlanConfig, rapid: u32) -> Duration {
    let secs = cfg.backoff_initial.as_secs_f64() * cfg.backoff_factor.powi(rapid.saturating_sub(1).min(200) as i32);
    Duration::from_secs_f64(secs.min(cfg.backoff_max.as_secs_f64()))
}

/// Plans `job` given all its `tasks`, the current template hash and `now`.
pub fn plan_job(job: &Job, tasks: &[Arc<Task>], hash: &str, now: Time, cfg: &PlanConfig) -> JobPlan {
    let spec = &job.spec;
    let old_status = job.status.clone().unwrap_or_default();
    let mut plan = JobPlan::default();
    let mut by_instance: BTreeMap<u32, Vec<&Arc<Task>>> = BTreeMap::new();
    for t in tasks {
        if let Some(i) = instance_of(t) {
            by_instance.entry(i).or_default().push(t);
        }
    }
    for list in by_instance.values_mut() {
        list.sort_by_key(|t| run_number(t));
    }
    let failed_before = old_status.conditions.iter().any(|c| c.type_ == "Failed" && c.status == "True");
    let mut job_failed = failed_before;
    let mut failures = 0u32;

    // Cron firing.
    let mut cron_fire = false;
    if spec.type_ == JobType::Cron {
        if let Some(cron) = &spec.cron {
            let since = old_status.last_schedule_time.or(job.metadata.creation_timestamp).unwrap_or(now);
            if let Ok(Some(t)) = super::cron::latest_fire(&cron.schedule, since, now) {
                plan.fired_at = Some(t);
                let active = tasks.iter().any(|t| !t.state().is_terminal());
                cron_fire = match (active, cron.collision_policy) {
                    (false, _) | (true, CollisionPolicy::RunOverlap) => true,
                    (true, CollisionPolicy::KillExisting) => {
                        plan.kill.extend(
                            tasks
                                .iter()
                                .filter(|t| !t.state().is_terminal() && !t.spec.kill_requested)
                                .map(|t| t.metadata.name.clone()),
                        );
                        true
                    }
                    (true, CollisionPolicy::CancelNew) => false,
                };
            }
        }
    }

    let mut views = Vec::new();
    let max_index = by_instance.keys().next_back().map(|i| i + 1).unwrap_or(0).max(spec.instances);
    for i in 0..max_index {
        let list = by_instance.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        let current = list.last();
        // History and duplicates.
        for t in list.iter().take(list.len().saturating_sub(1)) {
            if t.state().is_terminal() {
                let age = entered_state_at(t).map(|e| (now - e).to_std().unwrap_or_default()).unwrap_or_default();
                if age >= cfg.retention {
                    plan.delete.push(t.metadata.name.clone());
                }
            } else if !t.spec.kill_requested && current.is_some_and(|c| is_ready(c) || i >= spec.instances) {
                plan.kill.push(t.metadata.name.clone());
            }
        }
        if i >= spec.instances {
            for t in list {
                if !t.state().is_terminal() && !t.spec.kill_requested && !plan.kill.contains(&t.metadata.name) {
                    plan.kill.push(t.metadata.name.clone());
                }
            }
            continue;
        }
        let Some(cur) = current else {
            let wanted = spec.type_ != JobType::Cron || cron_fire;
            if wanted && !(spec.type_ == JobType::Adhoc && job_failed) {
                plan.create.push(NewTask { instance: i, n: 0, failure_count: 0, rapid: 0, throttled_until: None });
            }
            continue;
        };
        let prior_failures = failure_count(cur);
        failures += prior_failures + u32::from(cur.state() == TaskState::Failed);
        let next_n = run_number(cur) + 1;
        if spec.type_ == JobType::Cron {
            if cron_fire {
                plan.create.push(NewTask { instance: i, n: next_n, failure_count: 0, rapid: 0, throttled_until: None });
            }
            continue;
        }
        match cur.state() {
            TaskState::Throttled => {
                let until = annotation(cur, THROTTLE_ANNOTATION).and_then(|u| u.parse::<Time>().ok());
                if until.is_none_or(|u| u <= now) {
                    plan.release.push(cur.metadata.name.clone());
                }
            }
            s if s.is_terminal() => {
                let asked = cur.spec.kill_requested && s == TaskState::Killed;
                let stable = ran_for(cur).is_some_and(|d| d >= cfg.stable_after);
                let prior_rapid: u32 = annotation(cur, RAPID_ANNOTATION).and_then(|r| r.parse().ok()).unwrap_or(0);
                let failed = s == TaskState::Failed;
                let new_failures = prior_failures + u32::from(failed);
                let replace = match spec.type_ {
                    JobType::Service => true,
                    JobType::Adhoc => match s {
                        TaskState::Finished => false,
                        TaskState::Failed => {
                            let limit = spec.max_task_failures;
                            if limit >= 0 && new_failures >= limit as u32 {
                                job_failed = true;
                                false
                            } else {
                                !job_failed
                            }
                        }
                        TaskState::Killed if asked => false,
                        _ => !job_failed,
                    },
                    JobType::Cron => false,
                };
                if replace {
                    let rapid_end =
                        !stable && matches!(s, TaskState::Failed | TaskState::Finished | TaskState::Killed) && !asked;
                    let rapid = if rapid_end { prior_rapid + 1 } else { 0 };
                    let throttled_until =
                        (rapid > 0).then(|| now + chrono::Duration::from_std(penalty(cfg, rapid)).unwrap_or_default());
                    plan.create.push(NewTask {
                        instance: i,
                        n: next_n,
                        failure_count: new_failures,
                        rapid,
                        throttled_until,
                    });
                }
            }
            _ => {}
        }
        let outdated = !cur.state().is_terminal() && annotation(cur, HASH_ANNOTATION) != Some(hash);
        let in_flight = !outdated && !cur.state().is_terminal() && !is_ready(cur);
        views.push(InstanceView { index: i, outdated, in_flight, ready: is_ready(cur) });
    }

    // Rolling update of service jobs.
    if spec.type_ == JobType::Service {
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        for step in next_batch(&views, spec.instances, strategy.batch_size, strategy.minimum_healthy_percent) {
            let list = &by_instance[&step.index];
            let cur = list.last().expect("an outdated instance has a task");
            plan.create.push(NewTask {
                instance: step.index,
                n: run_number(cur) + 1,
                failure_count: failure_count(cur),
                rapid: 0,
                throttled_until: None,
            });
            if step.kill_old_now && !cur.spec.kill_requested {
                plan.kill.push(cur.metadata.name.clone());
            }
        }
    }

    plan.status = status::job_status(job, &by_instance, &views, failures, job_failed, now, &old_status);
    if let Some(t) = plan.fired_at {
        plan.status.last_schedule_time = Some(t);
    }
    plan
}

mod status;
#[cfg(test)]
mod tests;
