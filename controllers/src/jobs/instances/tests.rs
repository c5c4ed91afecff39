use meseta_schemas::kinds::{CronSpec, JobSpec, TaskEvent, TaskStatus};

use super::*;

fn at(s: i64) -> Time {
    chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn job(type_: JobType, instances: u32) -> Job {
    let mut j = Job::new("web", JobSpec { type_, instances, ..Default::default() }).in_namespace("r");
    j.metadata.creation_timestamp = Some(at(0));
    j
}

/// A task of instance `i`, run `n`, whose history is `events` (state, second).
fn task(i: u32, n: u32, events: &[(TaskState, i64)], hash: &str) -> Arc<Task> {
    let mut t = Task::default();
    t.metadata.name = format!("web-{i}-{n}");
    t.metadata.namespace = Some("r".into());
    t.metadata.labels.insert(INSTANCE_LABEL.into(), i.to_string());
    t.metadata.annotations.insert(HASH_ANNOTATION.into(), hash.into());
    let task_events =
        events.iter().map(|(s, sec)| TaskEvent { timestamp: at(*sec), state: *s, message: String::new() }).collect();
    t.status =
        Some(TaskStatus { state: events.last().map(|e| e.0).unwrap_or_default(), task_events, ..Default::default() });
    Arc::new(t)
}

use TaskState::*;

#[test]
fn creates_one_task_per_instance() {
    let plan = plan_job(&job(JobType::Service, 3), &[], "h", at(1), &PlanConfig::default());
    let created: Vec<_> = plan.create.iter().map(|c| (c.instance, c.n)).collect();
    assert_eq!(created, vec![(0, 0), (1, 0), (2, 0)]);
    assert_eq!(plan.status.pending, 0);
}

#[test]
fn service_replaces_with_backoff_after_rapid_failure_and_not_after_a_stable_run() {
    let cfg = PlanConfig::default();
    let rapid = task(0, 0, &[(Pending, 0), (Running, 1), (Failed, 2)], "h");
    let plan = plan_job(&job(JobType::Service, 1), &[rapid], "h", at(3), &cfg);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].n, 1);
    assert_eq!(plan.create[0].throttled_until, Some(at(4)));
    assert_eq!(plan.status.failures, 1);

    let stable = task(0, 0, &[(Pending, 0), (Running, 1), (Failed, 500)], "h");
    let plan = plan_job(&job(JobType::Service, 1), &[stable], "h", at(501), &cfg);
    assert_eq!(plan.create[0].throttled_until, None);
}

#[test]
fn throttled_tasks_are_released_when_their_penalty_ends() {
    let mut t = (*task(0, 1, &[(Pending, 0), (Throttled, 0)], "h")).clone();
    t.metadata.annotations.insert(THROTTLE_ANNOTATION.into(), at(10).to_rfc3339());
    let t = Arc::new(t);
    let j = job(JobType::Service, 1);
    assert!(plan_job(&j, std::slice::from_ref(&t), "h", at(9), &PlanConfig::default()).release.is_empty());
    assert_eq!(plan_job(&j, &[t], "h", at(10), &PlanConfig::default()).release, vec!["web-0-1"]);
}

#[test]
fn adhoc_retries_until_max_task_failures_then_fails() {
    let mut j = job(JobType::Adhoc, 1);
    j.spec.max_task_failures = 2;
    let first = task(0, 0, &[(Pending, 0), (Running, 1), (Failed, 2)], "h");
    let plan = plan_job(&j, std::slice::from_ref(&first), "h", at(3), &PlanConfig::default());
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].failure_count, 1);
    let mut second = (*task(0, 1, &[(Pending, 3), (Running, 4), (Failed, 5)], "h")).clone();
    second.status.as_mut().unwrap().failure_count = 1;
    let plan = plan_job(&j, &[first, Arc::new(second)], "h", at(6), &PlanConfig::default());
    assert!(plan.create.is_empty());
    let failed = plan.status.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.status, "True");

    let done = task(0, 0, &[(Pending, 0), (Running, 1), (Finished, 2)], "h");
    let plan = plan_job(&j, &[done], "h", at(3), &PlanConfig::default());
    assert!(plan.create.is_empty());
    assert!(plan.status.conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
}

#[test]
fn lost_instances_are_replaced_and_scale_down_kills_the_highest() {
    let lost = task(0, 0, &[(Pending, 0), (Running, 1), (Lost, 2)], "h");
    let extra = task(1, 0, &[(Pending, 0), (Running, 1)], "h");
    let plan = plan_job(&job(JobType::Service, 1), &[lost, extra], "h", at(3), &PlanConfig::default());
    assert_eq!(
        plan.create.iter().map(|c| (c.instance, c.n, c.throttled_until)).collect::<Vec<_>>(),
        vec![(0, 1, None)]
    );
    assert_eq!(plan.kill, vec!["web-1-0"]);
}

#[test]
fn rolling_update_surges_then_kills_the_old_task_once_the_new_one_runs() {
    let j = job(JobType::Service, 2);
    let old0 = task(0, 0, &[(Pending, 0), (Running, 1)], "old");
    let old1 = task(1, 0, &[(Pending, 0), (Running, 1)], "old");
    let plan = plan_job(&j, &[old0.clone(), old1.clone()], "new", at(2), &PlanConfig::default());
    assert_eq!(plan.create.iter().map(|c| (c.instance, c.n)).collect::<Vec<_>>(), vec![(0, 1)]);
    assert!(plan.kill.is_empty(), "capacity kept at 100%: {:?}", plan.kill);

    let new0 = task(0, 1, &[(Pending, 2), (Running, 3)], "new");
    let plan = plan_job(&j, &[old0, new0, old1], "new", at(4), &PlanConfig::default());
    assert!(plan.kill.contains(&"web-0-0".to_string()));
    assert_eq!(plan.create.iter().map(|c| (c.instance, c.n)).collect::<Vec<_>>(), vec![(1, 1)]);
}

#[test]
fn cron_fires_on_schedule_and_follows_the_collision_policy() {
    let mut j = job(JobType::Cron, 1);
    j.spec.cron = Some(CronSpec { schedule: "*/5 * * * *".into(), collision_policy: CollisionPolicy::CancelNew });
    j.metadata.creation_timestamp = Some("2024-01-01T00:00:00Z".parse().unwrap());
    let t = |s: &str| s.parse::<Time>().unwrap();
    let plan = plan_job(&j, &[], "h", t("2024-01-01T00:04:00Z"), &PlanConfig::default());
    assert!(plan.create.is_empty() && plan.fired_at.is_none());
    let plan = plan_job(&j, &[], "h", t("2024-01-01T00:05:01Z"), &PlanConfig::default());
    assert_eq!(plan.fired_at, Some(t("2024-01-01T00:05:00Z")));
    assert_eq!(plan.create.len(), 1);

    let running = task(0, 0, &[(Pending, 0), (Running, 1)], "h");
    j.status = Some(JobStatus { last_schedule_time: Some(t("2024-01-01T00:05:00Z")), ..Default::default() });
    let now = t("2024-01-01T00:10:00Z");
    let plan = plan_job(&j, std::slice::from_ref(&running), "h", now, &PlanConfig::default());
    assert!(plan.create.is_empty(), "CANCEL_NEW skips the run");
    assert_eq!(plan.status.last_schedule_time, Some(now));
    j.spec.cron.as_mut().unwrap().collision_policy = CollisionPolicy::KillExisting;
    let plan = plan_job(&j, std::slice::from_ref(&running), "h", now, &PlanConfig::default());
    assert_eq!(plan.kill, vec!["web-0-0"]);
    assert_eq!(plan.create[0].n, 1);
    j.spec.cron.as_mut().unwrap().collision_policy = CollisionPolicy::RunOverlap;
    let plan = plan_job(&j, &[running], "h", now, &PlanConfig::default());
    assert!(plan.kill.is_empty());
    assert_eq!(plan.create.len(), 1);
}

#[test]
fn a_job_with_a_lost_task_reports_it_until_the_replacement_exists() {
    let j = job(JobType::Service, 1);
    let lost = task(0, 0, &[(Pending, 0), (Assigned, 1), (Running, 2), (Lost, 3)], "h");
    let plan = plan_job(&j, std::slice::from_ref(&lost), "h", at(4), &PlanConfig::default());
    assert_eq!(plan.status.lost, 1);
    assert_eq!((plan.status.running, plan.status.pending), (0, 0));

    let replacement = task(0, 1, &[(Pending, 4)], "h");
    let plan = plan_job(&j, &[lost, replacement], "h", at(5), &PlanConfig::default());
    assert_eq!((plan.status.lost, plan.status.pending), (0, 1));
}

#[test]
fn status_counts_instances_per_state_and_every_task_being_stopped() {
    let up = [(Pending, 0), (Assigned, 1), (Running, 2)];
    let then = |s: TaskState| [up[0], up[1], up[2], (s, 3)];
    let tasks = [
        task(0, 0, &[(Pending, 0)], "h"),
        task(1, 0, &[(Pending, 0), (Throttled, 0)], "h"),
        task(2, 0, &up[..2], "h"),
        task(3, 0, &then(Lost), "h"),
        task(4, 0, &then(Partitioned), "h"),
        // A rolling update's old task, still being killed, and its running successor.
        task(5, 0, &then(Killing), "h"),
        task(5, 1, &up, "h"),
        task(6, 0, &then(Preempting), "h"),
        // An instance scaled away, draining off its agent.
        task(7, 0, &then(Draining), "h"),
    ];
    let s = plan_job(&job(JobType::Service, 7), &tasks, "h", at(4), &PlanConfig::default()).status;
    let counts = (s.pending, s.throttled, s.starting, s.running, s.finished, s.lost, s.killing);
    assert_eq!(counts, (1, 1, 1, 1, 0, 2, 3), "{s:?}");
    let progressing = s.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert!(progressing.message.contains("1 throttled"), "{}", progressing.message);
}

#[test]
fn mtta_and_mttr_are_measured_from_the_created_event() {
    let ms = |ms: i64| chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap();
    let mut t = (*task(0, 0, &[], "h")).clone();
    // Created at .600 of a second that creationTimestamp reads as .000.
    t.metadata.creation_timestamp = Some(ms(0));
    let events = [(Pending, 600), (Assigned, 800), (Running, 1_600)];
    t.status.as_mut().unwrap().task_events =
        events.iter().map(|&(state, at)| TaskEvent { timestamp: ms(at), state, message: String::new() }).collect();
    t.status.as_mut().unwrap().state = Running;
    let s = plan_job(&job(JobType::Service, 1), &[Arc::new(t)], "h", at(2), &PlanConfig::default()).status;
    assert_eq!(s.mtta_seconds, Some(0.2));
    assert_eq!(s.mttr_seconds, Some(1.0));
}
