//! `SimCluster`: a real apiserver, the controllers under test and simulated
//! agents (the real agent loop on a fake container runtime), in one process.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use meseta_agentd::runtime::fake::{FakeBehavior, FakeRuntime};
use meseta_agentd::runtime::ContainerRuntime;
use meseta_agentd::{Agent, AgentConfig};
use meseta_apiserver::testing::TestServer;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Task, TaskSpec};
use meseta_schemas::Resources;
use tokio_util::sync::CancellationToken;

/// One simulated agent.
pub struct SimAgent {
    pub config: AgentConfig,
    pub runtime: Arc<FakeRuntime>,
    cancel: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// The cluster.
pub struct SimCluster {
    pub server: TestServer,
    pub client: Client,
    pub cancel: CancellationToken,
    pub agents: HashMap<String, SimAgent>,
}

impl SimCluster {
    pub async fn start() -> SimCluster {
        let server = TestServer::start().await;
        let client = Client::new(server.url()).expect("client");
        SimCluster { server, client, cancel: CancellationToken::new(), agents: HashMap::new() }
    }

    /// Runs a controller future until the cluster is dropped.
    pub fn spawn<F>(&self, name: &'static str, fut: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                panic!("controller {name} failed: {e:#}");
            }
        });
    }

    /// Starts an agent `name` with `resources`, `attributes` and containers behaving as `behavior`.
    pub async fn add_agent(
        &mut self,
        name: &str,
        resources: Resources,
        attributes: &[(&str, &str)],
        behavior: FakeBehavior,
    ) {
        let mut config = AgentConfig::new(name, resources);
        config.attributes = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        config.lease_duration = Duration::from_secs(2);
        config.poll_interval = Duration::from_millis(20);
        let runtime = Arc::new(FakeRuntime::new(behavior));
        let mut agent = SimAgent { config, runtime, cancel: CancellationToken::new(), handle: None };
        self.start_agent_loop(&mut agent);
        self.agents.insert(name.to_string(), agent);
    }

    fn start_agent_loop(&self, agent: &mut SimAgent) {
        let cancel = self.cancel.child_token();
        agent.cancel = cancel.clone();
        let runtime: Arc<dyn ContainerRuntime> = agent.runtime.clone();
        let a = Agent::new(self.client.clone(), agent.config.clone(), runtime).expect("agent");
        agent.handle = Some(tokio::spawn(async move {
            a.run(cancel).await.expect("agent run");
        }));
    }

    /// Stops an agent's loop (its containers keep running, like a partitioned node).
    pub async fn stop_agent(&mut self, name: &str) {
        let agent = self.agents.get_mut(name).expect("known agent");
        agent.cancel.cancel();
        if let Some(h) = agent.handle.take() {
            let _ = h.await;
        }
    }

    /// Starts a stopped agent again on the same runtime (its containers are still there).
    pub fn restart_agent(&mut self, name: &str) {
        let mut agent = self.agents.remove(name).expect("known agent");
        self.start_agent_loop(&mut agent);
        self.agents.insert(name.to_string(), agent);
    }

    /// Ids of the containers running on agent `name`.
    pub async fn containers(&self, name: &str) -> Vec<String> {
        let rt = &self.agents[name].runtime;
        let mut out = Vec::new();
        for id in rt.list().await.expect("list") {
            if matches!(rt.state(&id).await, Ok(meseta_agentd::runtime::ContainerState::Running { .. })) {
                out.push(id.as_str().to_string());
            }
        }
        out
    }

    pub fn tasks(&self, ns: &str) -> Api<Task> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Every task of `ns`.
    pub async fn list_tasks(&self, ns: &str) -> Vec<Task> {
        self.tasks(ns).list(&Default::default()).await.expect("list tasks").items
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A small task spec.
pub fn small_task(cpus: f64, mem: f64) -> TaskSpec {
    TaskSpec {
        command: Some("sleep 1000".into()),
        resources: Resources::scalars(cpus, mem, 0.0, 0.0),
        ..Default::default()
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing loudly after `secs`
/// seconds with `what` and the last thing seen.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() >= deadline => panic!("{what}: not reached; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
