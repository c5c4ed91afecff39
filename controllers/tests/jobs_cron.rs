//! Cron jobs fire on schedule, read from an injectable clock.

mod common;

use std::time::Duration;

use common::{eventually, job, SimCluster, Stack};
use meseta_agentd::runtime::fake::FakeBehavior;
use meseta_client::Api;
use meseta_controllers::clock::Clock;
use meseta_schemas::kinds::{CollisionPolicy, CronSpec, Job, JobType};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_fires_when_the_clock_reaches_the_schedule() {
    let mut c = SimCluster::start().await;
    c.add_agents(1, 4.0, 4096.0, &["a"], FakeBehavior::default()).await;
    let start: meseta_schemas::Time = chrono::Utc::now();
    let clock = Clock::manual(start);
    let mut stack = Stack::default();
    stack.jobs.clock = clock.clone();
    // The agents write task events on the real clock, hours behind this one: keep the history.
    stack.jobs.plan.retention = Duration::from_secs(7 * 86400);
    c.start_control_plane(stack);
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut j = job("tick", JobType::Cron, 1);
    j.spec.cron = Some(CronSpec { schedule: "0 * * * *".into(), collision_policy: CollisionPolicy::KillExisting });
    jobs.create(&j).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(c.list_tasks("r").await.is_empty(), "nothing before the schedule");

    clock.advance(Duration::from_secs(3600));
    eventually("first run", 20, || async {
        let names: Vec<_> = c.list_tasks("r").await.iter().map(|t| t.metadata.name.clone()).collect();
        (names == ["tick-0-0"]).then_some(()).ok_or(format!("{names:?}"))
    })
    .await;
    // The next firing kills the still-running run and starts a new one.
    clock.advance(Duration::from_secs(3600));
    eventually("second run replaced the first", 20, || async {
        let tasks = c.list_tasks("r").await;
        let states: Vec<_> = tasks.iter().map(|t| (t.metadata.name.clone(), t.state().to_string())).collect();
        let ok =
            states.iter().any(|(n, s)| n == "tick-0-0" && s == "KILLED") && states.iter().any(|(n, _)| n == "tick-0-1");
        ok.then_some(()).ok_or(format!("{states:?}"))
    })
    .await;
    let status = jobs.get("tick").await.unwrap().status.unwrap_or_default();
    assert!(status.last_schedule_time.is_some());
}
