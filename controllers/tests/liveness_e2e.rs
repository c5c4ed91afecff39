//! The liveness controller with a simulated agent: lease expiry makes the
//! agent Unreachable and its task LOST (marked for kill); when the agent
//! returns it is Ready again and the errant container is killed.

mod common;

use std::time::Duration;

use common::{eventually, small_task, SimCluster};
use meseta_agentd::runtime::fake::FakeBehavior;
use meseta_client::Api;
use meseta_controllers::liveness::{self, LivenessConfig};
use meseta_controllers::tasks::transition_task;
use meseta_schemas::kinds::{Agent, Task, TaskState};
use meseta_schemas::Resources;
use serde_json::json;

fn ready(a: &Agent) -> (String, String) {
    a.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_agent_loses_its_tasks_and_its_return_kills_the_errant_copy() {
    let mut c = SimCluster::start().await;
    let cfg = LivenessConfig { resync: Duration::from_millis(100), ..Default::default() };
    c.spawn("liveness", liveness::run(c.client.clone(), cfg, c.cancel.clone()));
    c.add_agent("a1", Resources::scalars(4.0, 4096.0, 0.0, 0.0), &[], FakeBehavior::default()).await;
    let agents: Api<Agent> = Api::all(c.client.clone());
    eventually("agent joined", 20, || async {
        let a = agents.get("a1").await.map_err(|e| e.to_string())?;
        (ready(&a).0 == "True").then_some(()).ok_or(format!("{:?}", ready(&a)))
    })
    .await;

    // Bind a task to a1 by hand (no allocator here) and let the agent run it.
    let api = c.tasks("r");
    api.create(&Task::new("t", small_task(0.5, 64.0)).in_namespace("r")).await.unwrap();
    let bound = api.patch_merge("t", &json!({"spec": {"agent": "a1"}})).await.unwrap();
    transition_task(&api, &bound, &[TaskState::Assigned], "placed on a1", chrono::Utc::now(), |_| true)
        .await
        .unwrap()
        .expect("assigned");
    eventually("task running", 20, || async {
        let t = api.get("t").await.map_err(|e| e.to_string())?;
        (t.state() == TaskState::Running).then_some(()).ok_or(format!("{}", t.state()))
    })
    .await;

    // The agent goes away; its container keeps running.
    c.stop_agent("a1").await;
    eventually("agent unreachable", 20, || async {
        let a = agents.get("a1").await.map_err(|e| e.to_string())?;
        (ready(&a) == ("False".to_string(), "Unreachable".to_string())).then_some(()).ok_or(format!("{:?}", ready(&a)))
    })
    .await;
    let lost = eventually("task LOST", 20, || async {
        let t = api.get("t").await.map_err(|e| e.to_string())?;
        (t.state() == TaskState::Lost).then_some(t.clone()).ok_or(format!("{}", t.state()))
    })
    .await;
    assert!(lost.spec.kill_requested, "a LOST task is marked for kill");
    assert_eq!(c.containers("a1").await.len(), 1, "the partitioned container still runs");

    // The agent returns: Ready again, and the errant container is killed.
    c.restart_agent("a1");
    eventually("agent ready again", 20, || async {
        let a = agents.get("a1").await.map_err(|e| e.to_string())?;
        (ready(&a).0 == "True").then_some(()).ok_or(format!("{:?}", ready(&a)))
    })
    .await;
    eventually("errant container killed", 20, || async {
        let running = c.containers("a1").await;
        running.is_empty().then_some(()).ok_or(format!("{running:?}"))
    })
    .await;
    assert_eq!(api.get("t").await.unwrap().state(), TaskState::Lost, "LOST never changes again");
}
