//! The built-in framework end to end: real apiserver, allocator, tasks,
//! liveness and jobs controllers, simulated agents.

mod common;

use std::time::Duration;

use common::{eventually, job, summary, SimCluster, Stack};
use meseta_agentd::runtime::fake::FakeBehavior;
use meseta_client::Api;
use meseta_schemas::kinds::{Job, JobType, Task, TaskState};

async fn running(c: &SimCluster, n: usize) -> Vec<Task> {
    eventually(&format!("{n} tasks RUNNING"), 30, || async {
        let all = c.list_tasks("r").await;
        let run: Vec<Task> = all.iter().filter(|t| t.state() == TaskState::Running).cloned().collect();
        if run.len() == n {
            return Ok(run);
        }
        let offers =
            Api::<meseta_schemas::kinds::Offer>::namespaced(c.client.clone(), "r").list(&Default::default()).await;
        let offers: Vec<_> = offers
            .map(|l| l.items.iter().map(|o| format!("{}:{}cpu", o.spec.agent, o.spec.resources.cpus)).collect())
            .unwrap_or_default();
        let fw = Api::<meseta_schemas::kinds::Framework>::namespaced(c.client.clone(), "r")
            .get("meseta")
            .await
            .ok()
            .and_then(|f| f.status);
        Err(format!("{} offers {offers:?} fw {fw:?}", summary(&all)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_instances_that_fail_fast_are_replaced_after_a_throttle() {
    let mut c = SimCluster::start().await;
    let crash = FakeBehavior { run_for: Some(Duration::from_millis(100)), exit_code: 3, ..Default::default() };
    c.add_agents(2, 4.0, 4096.0, &["a"], crash).await;
    c.start_control_plane(Stack::default());
    Api::<Job>::namespaced(c.client.clone(), "r").create(&job("crashy", JobType::Service, 1)).await.unwrap();
    // The replacement is created, then its failure count is written: two
    // writes, so wait for the second.
    let replaced = eventually("third run of instance 0, carrying the failures", 30, || async {
        let all = c.list_tasks("r").await;
        all.iter()
            .find(|t| t.metadata.name == "crashy-0-2")
            .filter(|t| t.status.as_ref().is_some_and(|s| s.failure_count >= 2))
            .cloned()
            .ok_or_else(|| summary(&all))
    })
    .await;
    let second = c.tasks("r").get("crashy-0-1").await.unwrap();
    let states: Vec<_> = second.status.as_ref().unwrap().task_events.iter().map(|e| e.state).collect();
    assert!(states.contains(&TaskState::Throttled), "the replacement waited out a penalty: {states:?}");
    assert_eq!(second.state(), TaskState::Failed);
    assert_eq!(replaced.metadata.labels.get("meseta.io/instance").map(String::as_str), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adhoc_retries_failures_then_the_job_fails() {
    let mut c = SimCluster::start().await;
    let fail = FakeBehavior { run_for: Some(Duration::from_millis(50)), exit_code: 1, ..Default::default() };
    c.add_agents(1, 4.0, 4096.0, &["a"], fail).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut j = job("batch", JobType::Adhoc, 1);
    j.spec.max_task_failures = 2;
    jobs.create(&j).await.unwrap();
    eventually("job Failed", 30, || async {
        let j = jobs.get("batch").await.map_err(|e| e.to_string())?;
        let s = j.status.clone().unwrap_or_default();
        s.conditions.iter().any(|c| c.type_ == "Failed" && c.status == "True").then_some(()).ok_or(format!("{s:?}"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<_> = c.list_tasks("r").await.iter().map(|t| (t.metadata.name.clone(), t.state())).collect();
    assert_eq!(names, vec![("batch-0-0".into(), TaskState::Failed), ("batch-0-1".into(), TaskState::Failed)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adhoc_and_direct_tasks_run_to_completion() {
    let mut c = SimCluster::start().await;
    let quick = FakeBehavior { run_for: Some(Duration::from_millis(50)), exit_code: 0, ..Default::default() };
    c.add_agents(1, 4.0, 4096.0, &["a"], quick).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    jobs.create(&job("once", JobType::Adhoc, 2)).await.unwrap();
    c.tasks("r").create(&Task::new("direct", common::small_task(0.5, 64.0)).in_namespace("r")).await.unwrap();
    eventually("everything FINISHED", 30, || async {
        let all = c.list_tasks("r").await;
        (all.len() == 3 && all.iter().all(|t| t.state() == TaskState::Finished))
            .then_some(())
            .ok_or_else(|| summary(&all))
    })
    .await;
    eventually("job Complete", 20, || async {
        let s = jobs.get("once").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        s.conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True").then_some(()).ok_or(format!("{s:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_bigger_than_one_pass_is_created_over_several_and_runs_whole() {
    let mut c = SimCluster::start().await;
    c.add_agents(2, 8.0, 8192.0, &["a"], FakeBehavior::default()).await;
    let mut stack = Stack::default();
    stack.jobs.max_creates_per_pass = 3;
    c.start_control_plane(stack);
    Api::<Job>::namespaced(c.client.clone(), "r").create(&job("big", JobType::Service, 10)).await.unwrap();
    let run = running(&c, 10).await;
    let mut names: Vec<_> = run.iter().map(|t| t.metadata.name.clone()).collect();
    names.sort();
    let mut want: Vec<_> = (0..10).map(|i| format!("big-{i}-0")).collect();
    want.sort();
    assert_eq!(names, want, "each instance once, none created twice");
    assert_eq!(c.list_tasks("r").await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_replaces_every_instance_and_keeps_capacity() {
    let mut c = SimCluster::start().await;
    c.add_agents(2, 8.0, 8192.0, &["a"], FakeBehavior::default()).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    jobs.create(&job("roll", JobType::Service, 3)).await.unwrap();
    running(&c, 3).await;
    jobs.patch_merge("roll", &serde_json::json!({"spec": {"template": {"command": "sleep 2000"}}})).await.unwrap();
    let min_running = std::sync::atomic::AtomicUsize::new(usize::MAX);
    eventually("every instance on the new template", 40, || async {
        let all = c.list_tasks("r").await;
        let run: Vec<_> = all.iter().filter(|t| t.state() == TaskState::Running).collect();
        min_running.fetch_min(run.len(), std::sync::atomic::Ordering::Relaxed);
        let new = run.iter().filter(|t| t.spec.command.as_deref() == Some("sleep 2000")).count();
        (new == 3 && run.len() == 3).then_some(()).ok_or_else(|| summary(&all))
    })
    .await;
    let min_running = min_running.into_inner();
    assert!(min_running >= 3, "capacity dipped to {min_running} during the update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn production_job_preempts_a_lower_priority_task() {
    let mut c = SimCluster::start().await;
    c.add_agents(1, 2.0, 2048.0, &["a"], FakeBehavior::default()).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut low = job("low", JobType::Service, 1);
    low.spec.template.resources.cpus = 2.0;
    jobs.create(&low).await.unwrap();
    running(&c, 1).await;
    let mut prod = job("prod", JobType::Service, 1);
    prod.spec.production = true;
    prod.spec.template.resources.cpus = 1.5;
    jobs.create(&prod).await.unwrap();
    eventually("prod running", 30, || async {
        let t = c.tasks("r").get("prod-0-0").await.map_err(|e| e.to_string())?;
        (t.state() == TaskState::Running).then_some(()).ok_or(format!("{}", t.state()))
    })
    .await;
    let victim = c.tasks("r").get("low-0-0").await.unwrap();
    let states: Vec<_> = victim.status.unwrap().task_events.iter().map(|e| e.state).collect();
    assert!(states.ends_with(&[TaskState::Preempting, TaskState::Killed]), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_agent_tasks_are_replaced_elsewhere_and_the_duplicate_dies_on_return() {
    let mut c = SimCluster::start().await;
    c.add_agents(2, 4.0, 4096.0, &["a"], FakeBehavior::default()).await;
    c.start_control_plane(Stack::default());
    Api::<Job>::namespaced(c.client.clone(), "r").create(&job("svc", JobType::Service, 1)).await.unwrap();
    let first = running(&c, 1).await.remove(0);
    let home = first.spec.agent.clone().unwrap();
    let other = if home == "a0" { "a1" } else { "a0" };
    c.stop_agent(&home).await;
    let replacement = eventually("replacement running elsewhere", 30, || async {
        let t = c.tasks("r").get("svc-0-1").await.map_err(|e| e.to_string())?;
        (t.state() == TaskState::Running).then_some(t.clone()).ok_or(format!("{}", t.state()))
    })
    .await;
    assert_eq!(replacement.spec.agent.as_deref(), Some(other));
    assert_eq!(c.tasks("r").get("svc-0-0").await.unwrap().state(), TaskState::Lost);
    assert_eq!(c.containers(&home).await.len(), 1, "the partitioned copy still runs");
    c.restart_agent(&home);
    eventually("errant duplicate killed", 30, || async {
        let left = c.containers(&home).await;
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    })
    .await;
    assert_eq!(c.in_state("r", TaskState::Running).await.len(), 1);
}

/// Declines leave filters; a job that arrives while they stand revives the
/// offers instead of waiting them out (here they would stand for an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_work_revives_offers_the_framework_declined() {
    let mut c = SimCluster::start().await;
    c.add_agents(2, 4.0, 4096.0, &["a"], Default::default()).await;
    let mut stack = Stack::default();
    stack.jobs.decline_refuse_seconds = 3600.0;
    stack.jobs.idle_suppress_after = Duration::from_secs(3600);
    c.start_control_plane(stack);
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    jobs.create(&job("first", JobType::Service, 1)).await.unwrap();
    running(&c, 1).await;
    let fws = Api::<meseta_schemas::kinds::Framework>::namespaced(c.client.clone(), "r");
    // The accept left a short filter; wait for both agents to carry the
    // hour-long filters of declines.
    let generation = eventually("both agents filtered by declines", 30, || async {
        let fw = fws.get("meseta").await.map_err(|e| e.to_string())?;
        let s = fw.status.clone().unwrap_or_default();
        let long = chrono::Utc::now() + chrono::Duration::minutes(30);
        let declined = s.filters.iter().filter(|f| f.until > long).count();
        (declined == 2).then_some(fw.spec.revive_generation).ok_or(format!("{s:?}"))
    })
    .await;
    jobs.create(&job("second", JobType::Service, 2)).await.unwrap();
    let run = running(&c, 3).await;
    assert_eq!(run.iter().filter(|t| t.metadata.name.starts_with("second-")).count(), 2);
    let fw = fws.get("meseta").await.unwrap();
    assert!(fw.spec.revive_generation > generation, "placed through a revive, not by the filters lapsing");
}

/// A role with nothing to place suppresses its offers instead of declining
/// every agent every few seconds, and new work lifts the suppression.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_role_suppresses_offers_until_work_arrives() {
    let mut c = SimCluster::start().await;
    c.add_agents(2, 4.0, 4096.0, &["a"], Default::default()).await;
    let mut stack = Stack::default();
    stack.jobs.idle_suppress_after = Duration::from_millis(500);
    c.start_control_plane(stack);
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    jobs.create(&job("first", JobType::Service, 1)).await.unwrap();
    running(&c, 1).await;
    let fws = Api::<meseta_schemas::kinds::Framework>::namespaced(c.client.clone(), "r");
    let offers = Api::<meseta_schemas::kinds::Offer>::namespaced(c.client.clone(), "r");
    eventually("suppressed, with no offer outstanding", 30, || async {
        let fw = fws.get("meseta").await.map_err(|e| e.to_string())?;
        let outstanding = offers.list(&Default::default()).await.map_err(|e| e.to_string())?.items.len();
        (fw.spec.suppressed && outstanding == 0).then_some(()).ok_or(format!("{:?}; {outstanding} offers", fw.spec))
    })
    .await;
    jobs.create(&job("second", JobType::Service, 2)).await.unwrap();
    running(&c, 3).await;
    assert!(!fws.get("meseta").await.unwrap().spec.suppressed, "work lifted the suppression");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_instances_launch_straight_from_offers_at_hand_and_wait_pending_without_one() {
    use futures::StreamExt;
    use meseta_client::{WatchEvent, WatchParams};
    use std::collections::BTreeMap;

    let mut c = SimCluster::start().await;
    c.add_agents(2, 16.0, 16384.0, &["a"], FakeBehavior::default()).await;
    // A few creates per pass: the first pass finds no offer (the framework
    // registers in it), later ones find the offers made meanwhile.
    let mut stack = Stack::default();
    stack.jobs.max_creates_per_pass = 4;
    c.start_control_plane(stack);
    let mut watch = c.tasks("r").watch(&WatchParams::default(), "0").await.unwrap();
    Api::<Job>::namespaced(c.client.clone(), "r").create(&job("many", JobType::Service, 40)).await.unwrap();
    // The first stored version of each task: ASSIGNED when an accept
    // created it, PENDING when it was created to wait for an offer.
    let mut first: BTreeMap<String, TaskState> = BTreeMap::new();
    while first.len() < 40 {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .unwrap_or_else(|_| panic!("40 tasks added; saw {first:?}"))
            .expect("the watch goes on")
            .unwrap();
        if let WatchEvent::Added(t) = event {
            first.insert(t.metadata.name.clone(), t.state());
        }
    }
    let assigned = first.values().filter(|s| **s == TaskState::Assigned).count();
    let pending = first.values().filter(|s| **s == TaskState::Pending).count();
    assert!(pending >= 4, "the first pass had no offer: {first:?}");
    assert!(assigned >= 1, "no task was launched straight from an offer: {first:?}");
    assert_eq!(assigned + pending, 40, "{first:?}");

    // Every task went PENDING → ASSIGNED, in one write or in two.
    let run = running(&c, 40).await;
    for t in &run {
        let states: Vec<_> = t.status.as_ref().unwrap().task_events.iter().map(|e| e.state).collect();
        assert_eq!(states[..2], [TaskState::Pending, TaskState::Assigned], "{}: {states:?}", t.metadata.name);
    }
    assert_eq!(c.list_tasks("r").await.len(), 40, "no task created twice");
}
