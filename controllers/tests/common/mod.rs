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
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
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
        // Each simulated agent stands for its own host.
        config.hostname = Some(format!("host-{name}"));
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

/// Settings of the whole control plane in tests: fast loops, short delays.
pub struct Stack {
    pub jobs: meseta_controllers::jobs::JobsConfig,
}

impl Default for Stack {
    fn default() -> Self {
        let mut jobs = meseta_controllers::jobs::JobsConfig {
            preemption_delay: Duration::from_secs(1),
            decline_refuse_seconds: 0.5,
            resync: Duration::from_millis(100),
            ..Default::default()
        };
        jobs.plan.backoff_initial = Duration::from_millis(200);
        jobs.plan.stable_after = Duration::from_secs(5);
        Stack { jobs }
    }
}

impl SimCluster {
    /// Starts the allocator, tasks, liveness and jobs controllers the way
    /// `meseta-controllers` runs them: one manager, one shared Task watch.
    pub fn start_control_plane(&self, stack: Stack) {
        use meseta_controllers::{allocator, liveness, manager, tasks};
        let config = manager::ManagerConfig {
            allocator: allocator::AllocatorConfig {
                interval: Duration::from_millis(200),
                min_interval: Duration::from_millis(20),
                offer_timeout: Duration::from_secs(5),
                ..Default::default()
            },
            tasks: tasks::TasksConfig { resync: Duration::from_millis(100), ..Default::default() },
            liveness: liveness::LivenessConfig { resync: Duration::from_millis(100), ..Default::default() },
            jobs: stack.jobs,
            leader_election: None,
        };
        self.spawn("controllers", manager::run_all(self.client.clone(), config, self.cancel.clone()));
    }

    /// Adds `n` agents `a0..` with `cpus` and `mem`, attribute `rack` = `racks[i % len]`.
    pub async fn add_agents(&mut self, n: usize, cpus: f64, mem: f64, racks: &[&str], behavior: FakeBehavior) {
        for i in 0..n {
            let rack = racks[i % racks.len()];
            self.add_agent(
                &format!("a{i}"),
                Resources::scalars(cpus, mem, 0.0, 0.0),
                &[("rack", rack)],
                behavior.clone(),
            )
            .await;
        }
    }

    /// Tasks of `ns` in `state`.
    pub async fn in_state(&self, ns: &str, state: meseta_schemas::kinds::TaskState) -> Vec<Task> {
        self.list_tasks(ns).await.into_iter().filter(|t| t.state() == state).collect()
    }
}

/// Tasks as `name=STATE@agent`, for failure messages.
pub fn summary(tasks: &[Task]) -> String {
    tasks
        .iter()
        .map(|t| format!("{}={}@{}", t.metadata.name, t.state(), t.spec.agent.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A job of `type_` with `instances` small instances.
pub fn job(name: &str, type_: meseta_schemas::kinds::JobType, instances: u32) -> meseta_schemas::kinds::Job {
    use meseta_schemas::kinds::{Job, JobSpec};
    Job::new(name, JobSpec { type_, instances, template: small_task(0.5, 64.0), ..Default::default() })
        .in_namespace("r")
}
