//! The agent library with the fake runtime against a real apiserver: no
//! root needed, many agents in one process.

use std::sync::Arc;
use std::time::Duration;

use meseta_agentd::runtime::fake::{FakeBehavior, FakeRuntime};
use meseta_agentd::runtime::ContainerId;
use meseta_agentd::{Agent, AgentConfig};
use meseta_apiserver::testing::TestServer;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Agent as AgentObj, Lease, Task, TaskSpec, TaskState, TaskStatus};
use meseta_schemas::resources::Resources;
use tokio_util::sync::CancellationToken;

async fn bind(client: &Client, ns: &str, name: &str, agent: &str, spec: TaskSpec) -> Task {
    let api: Api<Task> = Api::namespaced(client.clone(), ns);
    let spec = TaskSpec { agent: Some(agent.to_string()), ..spec };
    let mut task = api.create(&Task::new(name, spec).in_namespace(ns)).await.unwrap();
    let now = chrono::Utc::now();
    let status = meseta_schemas::state_machine::transition(
        &task.status.clone().unwrap_or_default(),
        TaskState::Assigned,
        "",
        now,
    )
    .unwrap();
    task.status = Some(TaskStatus { agent: Some(agent.to_string()), ..status });
    api.replace_status(&task).await.unwrap()
}

async fn wait_state(client: &Client, ns: &str, name: &str, want: TaskState) -> Task {
    let api: Api<Task> = Api::namespaced(client.clone(), ns);
    for _ in 0..600 {
        let t = api.get(name).await.unwrap();
        if t.state() == want {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {ns}/{name} never reached {want}: {:?}", api.get(name).await.unwrap().status);
}

fn start_agent(client: &Client, name: &str, rt: Arc<FakeRuntime>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = AgentConfig::new(name, Resources::scalars(4.0, 4096.0, 1000.0, 0.0));
    config.lease_duration = Duration::from_secs(5);
    config.poll_interval = Duration::from_millis(20);
    let agent = Agent::new(client.clone(), config, rt).unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let h = tokio::spawn(async move { agent.run(c).await.unwrap() });
    (cancel, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_simulated_agent_joins_runs_finishes_and_kills_tasks() {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let rt =
        Arc::new(FakeRuntime::new(FakeBehavior { run_for: Some(Duration::from_millis(100)), ..Default::default() }));
    rt.set_behavior(ContainerId::new("web", "forever").unwrap(), FakeBehavior::default());
    rt.set_behavior(
        ContainerId::new("web", "bad").unwrap(),
        FakeBehavior { run_for: Some(Duration::ZERO), exit_code: 3, ..Default::default() },
    );
    let (cancel, handle) = start_agent(&client, "sim-1", rt.clone());

    let spec = TaskSpec { command: Some("true".into()), ..Default::default() };
    bind(&client, "web", "ok", "sim-1", spec.clone()).await;
    bind(&client, "web", "bad", "sim-1", spec.clone()).await;
    bind(&client, "web", "forever", "sim-1", spec.clone()).await;

    let ok = wait_state(&client, "web", "ok", TaskState::Finished).await;
    let states: Vec<_> = ok.status.unwrap().task_events.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [TaskState::Pending, TaskState::Assigned, TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    let bad = wait_state(&client, "web", "bad", TaskState::Failed).await;
    assert_eq!(bad.status.as_ref().unwrap().exit_code, Some(3));
    assert_eq!(bad.status.unwrap().message, "exited with code 3");

    wait_state(&client, "web", "forever", TaskState::Running).await;
    let api: Api<Task> = Api::namespaced(client.clone(), "web");
    api.patch_merge("forever", &serde_json::json!({"spec": {"killRequested": true}})).await.unwrap();
    let killed = wait_state(&client, "web", "forever", TaskState::Killed).await;
    let err = api.get_subresource_text("ok", "log", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(503), "an agent without an address cannot serve logs: {err}");
    assert_eq!(killed.status.unwrap().message, "killed as requested");

    let agent: AgentObj = Api::all(client.clone()).get("sim-1").await.unwrap();
    assert_eq!(agent.spec.resources.cpus, 4.0);
    let ready = agent.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    let lease: Lease = Api::namespaced(client.clone(), "meseta-system").get("agent-sim-1").await.unwrap();
    assert_eq!(lease.spec.holder_identity.as_deref(), Some("sim-1"));

    cancel.cancel();
    handle.await.unwrap();
    let agent: AgentObj = Api::all(client.clone()).get("sim-1").await.unwrap();
    let ready = agent.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AgentStopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_simulated_agents_share_one_process() {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let mut agents = Vec::new();
    for i in 0..50 {
        // Each agent owns its runtime: recovery cleans up whatever its runtime lists that no task explains.
        let rt = FakeRuntime::new(FakeBehavior { run_for: Some(Duration::from_millis(50)), ..Default::default() });
        agents.push(start_agent(&client, &format!("sim-{i}"), Arc::new(rt)));
    }
    let spec = TaskSpec { command: Some("true".into()), ..Default::default() };
    for i in 0..50 {
        bind(&client, "batch", &format!("t{i}"), &format!("sim-{i}"), spec.clone()).await;
    }
    for i in 0..50 {
        wait_state(&client, "batch", &format!("t{i}"), TaskState::Finished).await;
    }
    for (cancel, handle) in agents {
        cancel.cancel();
        handle.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_updates_wait_in_the_queue_while_the_apiserver_is_down() {
    let mut server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let rt = Arc::new(FakeRuntime::new(FakeBehavior { run_for: Some(Duration::from_secs(2)), ..Default::default() }));
    let (cancel, handle) = start_agent(&client, "sim-q", rt);
    let spec = TaskSpec { command: Some("true".into()), ..Default::default() };
    bind(&client, "web", "slow", "sim-q", spec).await;
    wait_state(&client, "web", "slow", TaskState::Running).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().await;
    let t = wait_state(&client, "web", "slow", TaskState::Finished).await;
    assert_eq!(t.status.unwrap().exit_code, Some(0));
    cancel.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_on_one_machine_present_the_hostnames_they_are_given() {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let mut agents = Vec::new();
    for (name, hostname) in [("sim-h1", Some("host-1")), ("sim-h2", Some("host-2.rack-a")), ("sim-h3", None)] {
        let mut config = AgentConfig::new(name, Resources::scalars(1.0, 512.0, 0.0, 0.0));
        config.hostname = hostname.map(str::to_string);
        let agent = Agent::new(client.clone(), config, Arc::new(FakeRuntime::new(FakeBehavior::default()))).unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        agents.push((cancel, tokio::spawn(async move { agent.run(c).await.unwrap() })));
    }
    let api: Api<AgentObj> = Api::all(client.clone());
    let machine = meseta_agentd::agent::join::machine_hostname();
    for (name, want) in [("sim-h1", "host-1"), ("sim-h2", "host-2.rack-a"), ("sim-h3", machine.as_str())] {
        let mut got = None;
        for _ in 0..100 {
            got = api.get_opt(name).await.unwrap().map(|a| a.spec.hostname);
            if got.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(got.as_deref(), Some(want), "{name}");
    }
    for (cancel, handle) in agents {
        cancel.cancel();
        handle.await.unwrap();
    }
}

#[tokio::test]
async fn an_invalid_hostname_is_refused_naming_it() {
    let client = Client::new("http://127.0.0.1:1").unwrap();
    let mut config = AgentConfig::new("sim-bad", Resources::default());
    config.hostname = Some("Not_A_Host".into());
    let err = Agent::new(client, config, Arc::new(FakeRuntime::new(FakeBehavior::default()))).err().unwrap();
    let err = err.to_string();
    assert!(err.contains("hostname \"Not_A_Host\"") && err.contains("lower-case"), "{err}");
}
