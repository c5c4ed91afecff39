//! The tasks controller against a real apiserver: kills, the transient
//! timeout, garbage collection, MTTA metrics, and the apiserver's refusal of
//! illegal status writes.

mod common;

use std::time::Duration;

use common::{eventually, small_task, SimCluster};
use meseta_controllers::tasks::{self, transition_task, TasksConfig};
use meseta_schemas::kinds::{Task, TaskState};
use serde_json::json;

fn config(registry: Option<prometheus::Registry>) -> TasksConfig {
    TasksConfig {
        transient_timeout: Duration::from_secs(1),
        retention: Duration::from_millis(500),
        resync: Duration::from_millis(100),
        registry,
        ..Default::default()
    }
}

async fn state_of(c: &SimCluster, name: &str) -> Result<Task, String> {
    c.tasks("r").get(name).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_times_out_collects_and_measures() {
    let c = SimCluster::start().await;
    let registry = prometheus::Registry::new();
    c.spawn("tasks", tasks::run(c.client.clone(), config(Some(registry.clone())), c.cancel.clone()));
    let api = c.tasks("r");

    // A kill of a PENDING task ends it at once, through KILLING.
    let mut t = Task::new("pending-kill", small_task(0.1, 16.0)).in_namespace("r");
    t.spec.kill_requested = true;
    api.create(&t).await.unwrap();
    let killed = eventually("pending task killed", 20, || async {
        let t = state_of(&c, "pending-kill").await?;
        (t.state() == TaskState::Killed).then_some(t.clone()).ok_or(format!("{}", t.state()))
    })
    .await;
    let states: Vec<_> = killed.status.unwrap().task_events.iter().map(|e| e.state).collect();
    assert_eq!(states, vec![TaskState::Pending, TaskState::Killing, TaskState::Killed], "created PENDING");

    // A task bound to an agent that never starts it goes LOST after the timeout.
    let created = api.create(&Task::new("stuck", small_task(0.1, 16.0)).in_namespace("r")).await.unwrap();
    let bound = api.patch_merge("stuck", &json!({"spec": {"agent": "ghost"}})).await.unwrap();
    assert_eq!(bound.metadata.uid, created.metadata.uid);
    transition_task(&api, &bound, &[TaskState::Assigned], "placed", chrono::Utc::now(), |_| true)
        .await
        .unwrap()
        .expect("assigned");
    eventually("stuck task LOST", 20, || async {
        let t = state_of(&c, "stuck").await?;
        (t.state() == TaskState::Lost).then_some(()).ok_or(format!("{}", t.state()))
    })
    .await;
    let mtta = registry.gather().into_iter().find(|m| m.name() == "meseta_task_mtta_seconds").expect("mtta metric");
    assert_eq!(mtta.get_metric()[0].get_histogram().get_sample_count(), 1);

    // The LOST task (not owned by a Job) is collected after the retention.
    eventually("LOST task collected", 20, || async {
        match api.get_opt("stuck").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The apiserver refuses an illegal change on the status subresource.
    let t = api.create(&Task::new("illegal", small_task(0.1, 16.0)).in_namespace("r")).await.unwrap();
    let mut bad = t.clone();
    bad.status = Some(meseta_schemas::kinds::TaskStatus { state: TaskState::Running, ..Default::default() });
    let err = api.replace_status(&bad).await.unwrap_err();
    assert!(err.to_string().contains("status.state"), "{err}");
}
