//! The simulated cluster of the schedule bench: an apiserver served from this
//! process on a temporary data directory, every controller through
//! `run_all`, and simulated agents (the real agent loop on its own fake
//! runtime each).
//!
//! The apiserver and the controllers each run on a Tokio runtime of their
//! own (threads named as [`super::cpu`] expects, so their CPU time can be
//! told apart); the agents run on the caller's runtime.
//!
//! Owns start-up and the wait for agents to be `Ready`. It must not measure
//! anything: the bench binary does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meseta_agentd::runtime::fake::{FakeBehavior, FakeRuntime};
use meseta_agentd::runtime::ContainerRuntime;
use meseta_agentd::{Agent as AgentLoop, AgentConfig};
use meseta_apiserver::store::sled::SledOptions;
use meseta_client::{Api, Client, ListParams};
use meseta_controllers::manager::{run_all, ManagerConfig};
use meseta_schemas::{Agent, Resources};

use super::cpu::{APISERVER_THREADS, CONTROLLERS_THREADS};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the simulated agents are built.
#[derive(Debug, Clone)]
pub struct AgentShape {
    /// CPUs each agent advertises.
    pub cpus: f64,
    /// Memory each agent advertises, MiB.
    pub mem: f64,
    /// How often a runner looks at its (fake) container.
    pub poll_interval: Duration,
}

/// The running cluster; [`SimCluster::stop`] stops it all, the apiserver
/// last.
pub struct SimCluster {
    /// `http://127.0.0.1:PORT` of the apiserver.
    pub url: String,
    /// Cancels the controllers and the agents.
    pub cancel: CancellationToken,
    /// Stops the apiserver (at `stop`, once the others ended, or on drop).
    server_stop: CancellationToken,
    _dir: TempDir,
    /// The apiserver's loop.
    server: Option<JoinHandle<()>>,
    /// The controllers' and the agents' loops.
    handles: Vec<JoinHandle<()>>,
    /// The apiserver's and the controllers' runtimes.
    runtimes: Vec<Runtime>,
}

/// A multi-threaded runtime (one worker per core) whose threads are named `name`.
fn runtime(name: &str) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

impl SimCluster {
    /// Serves an apiserver on `127.0.0.1:0` from a fresh temporary data
    /// directory (production settings: the sled store with `store`, default
    /// bookmark interval) and starts the controllers with `config` (the
    /// bench passes the defaults, or one setting changed to compare it).
    pub async fn start(config: ManagerConfig, store: SledOptions) -> anyhow::Result<SimCluster> {
        let dir = tempfile::Builder::new().prefix("meseta-bench-schedule-").tempdir().context("creating a temp dir")?;
        let store = meseta_apiserver::open_sled_with(dir.path(), store).context("opening the store")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let cancel = CancellationToken::new();
        let server_stop = CancellationToken::new();
        let stop = server_stop.clone();
        let (api_rt, controllers_rt) = (runtime(APISERVER_THREADS)?, runtime(CONTROLLERS_THREADS)?);
        let server = api_rt.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("schedule: cannot listen: {e}"),
            };
            let state = meseta_apiserver::AppState::new(store);
            if let Err(e) = meseta_apiserver::serve(listener, state, async move { stop.cancelled().await }).await {
                eprintln!("schedule: the apiserver failed: {e}");
            }
        });
        let client = Client::new(&url)?;
        let c = cancel.clone();
        let controllers = controllers_rt.spawn(async move {
            if let Err(e) = run_all(client, config, c.clone()).await {
                if !c.is_cancelled() {
                    eprintln!("schedule: the controllers failed: {e:#}");
                }
            }
        });
        Ok(SimCluster {
            url,
            cancel,
            server_stop,
            _dir: dir,
            server: Some(server),
            handles: vec![controllers],
            runtimes: vec![api_rt, controllers_rt],
        })
    }

    /// Starts `n` agents `sim-0..` shaped as `shape`, each with its own
    /// client and its own fake runtime whose containers start at once and
    /// run until killed.
    pub fn add_agents(&mut self, n: usize, shape: &AgentShape) -> anyhow::Result<()> {
        // One connection pool for all: each agent still holds its own task
        // watch, but idle request connections are shared, so a thousand
        // agents in one process stay far from the open-files limit.
        let client = Client::new(&self.url)?;
        for i in 0..n {
            let mut config = AgentConfig::new(format!("sim-{i}"), Resources::scalars(shape.cpus, shape.mem, 0.0, 0.0));
            config.poll_interval = shape.poll_interval;
            config.hostname = Some(format!("sim-{i}"));
            let runtime: Arc<dyn ContainerRuntime> = Arc::new(FakeRuntime::new(FakeBehavior::default()));
            let agent = AgentLoop::new(client.clone(), config, runtime)?;
            let cancel = self.cancel.clone();
            self.handles.push(tokio::spawn(async move {
                if let Err(e) = agent.run(cancel).await {
                    eprintln!("schedule: agent sim-{i} failed: {e:#}");
                }
            }));
        }
        Ok(())
    }

    /// Waits until `n` agents are `Ready=True`, for at most `limit`.
    pub async fn wait_ready(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let agents: Api<Agent> = Api::all(Client::new(&self.url)?);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let list = agents.list(&ListParams::default()).await?;
            let ready = list.items.iter().filter(|a| is_ready(a)).count();
            if ready >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("only {ready} of {n} agents became Ready within {:.0} s", limit.as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops everything and waits (briefly) for the loops to end: the
    /// controllers and the agents first, so none of their writes (a lease
    /// renewal, a status) meets a stopped apiserver and logs a failure.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(controllers) = self.runtimes.pop() {
            controllers.shutdown_background();
        }
        let others = futures::future::join_all(std::mem::take(&mut self.handles));
        let _ = tokio::time::timeout(Duration::from_secs(10), others).await;
        self.server_stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }
}

impl Drop for SimCluster {
    /// Stops the runtimes without waiting (a runtime must not be dropped
    /// from within async code).
    fn drop(&mut self) {
        self.cancel.cancel();
        self.server_stop.cancel();
        for rt in self.runtimes.drain(..) {
            rt.shutdown_background();
        }
    }
}

fn is_ready(agent: &Agent) -> bool {
    agent.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
