//! The controller runtime against a real apiserver: every object reconciled,
//! bursts coalesced, failures retried, secondary watches, and recovery after
//! an apiserver restart.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use meseta_client::controller::{Config, Controller};
use meseta_client::{Action, ObjectRef, WatchParams};
use meseta_schemas::{Lease, LeaseSpec, Task};
use serde_json::json;
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("not yet")]
struct NotYet;

/// What the reconciler saw: per object, the label `v` of each reconcile.
#[derive(Default)]
struct Seen {
    calls: Mutex<BTreeMap<String, Vec<String>>>,
    fail_first: HashMap<String, usize>,
    /// How long reconciling the object named `hot` takes.
    hot_work: Duration,
}

impl Seen {
    fn count(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).map_or(0, Vec::len)
    }

    fn last(&self, name: &str) -> Option<String> {
        self.calls.lock().unwrap().get(name).and_then(|v| v.last().cloned())
    }
}

async fn reconcile(task: Arc<Task>, seen: Arc<Seen>) -> Result<Action, NotYet> {
    let name = task.metadata.name.clone();
    let attempt = {
        let mut calls = seen.calls.lock().unwrap();
        let v = task.metadata.labels.get("v").cloned().unwrap_or_default();
        let entry = calls.entry(name.clone()).or_default();
        entry.push(v);
        entry.len()
    };
    if name == "hot" {
        tokio::time::sleep(seen.hot_work).await;
    }
    if seen.fail_first.get(&name).is_some_and(|n| attempt <= *n) {
        return Err(NotYet);
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Task>, _: &NotYet, _: Arc<Seen>) -> Action {
    Action::requeue(Duration::ZERO)
}

/// Runs a controller over tasks in `web` until the returned sender fires.
fn spawn(client: &Client, seen: &Arc<Seen>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<usize>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let api: Api<Task> = Api::namespaced(client.clone(), "web");
    let params = WatchParams::default().timeout(Some(Duration::from_secs(2)));
    let controller =
        Controller::new(api, params).with_config(Config::default().concurrency(4)).graceful_shutdown_on(async move {
            let _ = stopped.await;
        });
    let run = controller.run(reconcile, error_policy, seen.clone());
    (stop, tokio::spawn(run.count()))
}

#[tokio::test]
async fn every_object_is_reconciled_and_a_burst_is_coalesced() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    for i in 0..10 {
        tasks.create(&task("web", &format!("pre{i}"))).await.unwrap();
    }
    let seen = Arc::new(Seen { hot_work: Duration::from_millis(500), ..Default::default() });
    let (stop, run) = spawn(&client, &seen);

    eventually(LIMIT, "every existing task reconciled", || {
        let done = (0..10).all(|i| seen.count(&format!("pre{i}")) >= 1);
        async move { done.then_some(()) }
    })
    .await;
    tasks.create(&task("web", "hot")).await.unwrap();
    for v in 1..=50 {
        tasks.patch_merge("hot", &json!({"metadata": {"labels": {"v": v.to_string()}}})).await.unwrap();
    }
    eventually(LIMIT, "the last update reconciled", || {
        let last = seen.last("hot");
        async move { (last.as_deref() == Some("50")).then_some(()) }
    })
    .await;
    // 51 writes; those arriving while a reconcile runs coalesce into one more.
    let hot = seen.count("hot");
    assert!(hot <= 25, "51 writes gave {hot} reconciles");
    for i in 0..10 {
        assert_eq!(seen.count(&format!("pre{i}")), 1, "pre{i} was reconciled more than once without a change");
    }
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, run).await.expect("graceful shutdown").unwrap();
}

#[tokio::test]
async fn failures_are_retried_until_they_succeed() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    let seen = Arc::new(Seen { fail_first: HashMap::from([("flaky".to_string(), 4)]), ..Default::default() });
    let (stop, run) = spawn(&client, &seen);
    tasks.create(&task("web", "flaky")).await.unwrap();
    tasks.create(&task("web", "fine")).await.unwrap();

    eventually(LIMIT, "the flaky task to succeed", || {
        let n = seen.count("flaky");
        async move { (n >= 5).then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    let reported = tokio::time::timeout(LIMIT, run).await.expect("graceful shutdown").unwrap();
    // Four failures then one success; nothing afterwards without a change.
    assert_eq!(seen.count("flaky"), 5);
    assert_eq!(seen.count("fine"), 1);
    assert!(reported >= 6, "the run stream reported {reported} outcomes");
}

#[tokio::test]
async fn secondary_watches_trigger_the_mapped_objects() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "web");
    tasks.create(&task("web", "owner")).await.unwrap();
    let seen = Arc::new(Seen::default());
    let controller = Controller::new(tasks.clone(), WatchParams::default()).watches(
        leases.clone(),
        WatchParams::default(),
        |lease: &Lease| lease.spec.holder_identity.iter().map(|h| ObjectRef::new(h.clone()).within("web")).collect(),
    );
    let run = tokio::spawn(controller.run(reconcile, error_policy, seen.clone()).for_each(|_| async {}));

    eventually(LIMIT, "the owner reconciled", || {
        let n = seen.count("owner");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let before = seen.count("owner");
    let spec = LeaseSpec { holder_identity: Some("owner".into()), ..Default::default() };
    leases.create(&Lease::new("l1", spec)).await.unwrap();
    eventually(LIMIT, "the lease to trigger its owner", || {
        let n = seen.count("owner");
        async move { (n > before).then_some(()) }
    })
    .await;
    run.abort();
}

#[tokio::test]
async fn the_controller_resumes_after_an_apiserver_restart() {
    let (mut server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    let seen = Arc::new(Seen::default());
    let (stop, run) = spawn(&client, &seen);
    tasks.create(&task("web", "before")).await.unwrap();
    eventually(LIMIT, "the first task reconciled", || {
        let n = seen.count("before");
        async move { (n >= 1).then_some(()) }
    })
    .await;

    server.restart().await;
    for i in 0..5 {
        tasks.create(&task("web", &format!("after{i}"))).await.unwrap();
    }
    eventually(LIMIT, "tasks created after the restart reconciled", || {
        let done = (0..5).all(|i| seen.count(&format!("after{i}")) >= 1);
        async move { done.then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(LIMIT, run).await.expect("graceful shutdown").unwrap();
}
