//! The agent loop: [`Agent`] joins the cluster, watches the tasks bound to
//! it and runs each through a [`ContainerRuntime`].
//!
//! # Layout
//! - `join`: resource detection, the `Agent` object, the heartbeat `Lease`.
//! - `status_queue` / `sender`: durable status updates and their delivery.
//! - `runner`: one task from launch (or re-adoption) to its terminal report.
//! - `health`: health-check bookkeeping and probes.
//! - `usage`: cgroup usage published on tasks and on the `Agent`.
//! - `metrics`: Prometheus metrics.
//!
//! # Expected flow
//! One watch per agent (`fieldSelector=spec.agent=<name>`, all namespaces,
//! re-listed on 410, reconnected with backoff). Each event is handled
//! level-triggered: a task that holds resources and has no runner gets one
//! (which launches it, or re-adopts its container after a restart); a runner
//! is told to kill when the task asks for it; containers of tasks that no
//! longer exist are killed and deleted after each full list.
//!
//! # Guarantees
//! - Never two containers for one task: the runtime refuses a second
//!   `create`, and a runner first asks the runtime what exists.
//! - Every state change is pushed to the durable queue before the next step
//!   (e.g. the terminal report before the container is deleted).
//! - Stopping the agent (cancel) leaves tasks running unless
//!   [`AgentConfig::kill_tasks_on_shutdown`].
//!
//! It must not allocate resources or decide placement: tasks arrive bound.

pub mod health;
pub mod join;
mod known;
pub mod metrics;
mod runner;
mod sender;
pub mod status_queue;
mod usage;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use meseta_client::backoff::StreamBackoffExt;
use meseta_client::watcher::Event;
use meseta_client::{Api, Client, WatchParams};
use meseta_schemas::kinds::{Task, TaskState};
use meseta_schemas::resources::Resources;
use tokio_util::sync::CancellationToken;

use crate::runtime::{ContainerId, ContainerRuntime};
pub use metrics::AgentMetrics;
use runner::{KillReason, RunnerHandle};
use status_queue::StatusQueue;

/// How an [`Agent`] runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The `Agent` object's name (DNS subdomain).
    pub name: String,
    /// The hostname written to `Agent.spec.hostname` (what `hostname`
    /// constraints such as `UNIQUE` compare); `None` (the default): this
    /// machine's hostname. Set it to give several agents on one machine
    /// distinct hostnames. Checked by [`join::validate_hostname`].
    pub hostname: Option<String>,
    /// Where the agent's HTTP server (logs, metrics) is reached, written to
    /// `Agent.spec.address`, e.g. `http://127.0.0.1:5051`; may be empty.
    pub address: String,
    /// Address to serve HTTP on; `None` runs no server (simulated agents).
    pub listen: Option<SocketAddr>,
    /// Work dir (sandboxes, containers, the durable status queue); `None`:
    /// status updates are kept in memory only (simulated agents).
    pub work_dir: Option<PathBuf>,
    /// Resources advertised on the `Agent`.
    pub resources: Resources,
    /// Static reservations by role.
    pub reservations: BTreeMap<String, Resources>,
    /// Attributes (`rack: a`).
    pub attributes: BTreeMap<String, String>,
    /// The heartbeat lease's duration (default 15 s); renewed every fifth of it.
    pub lease_duration: Duration,
    /// How often a runner looks at its container's state (default 100 ms).
    pub poll_interval: Duration,
    /// How often usage is read from cgroups and published (default 10 s);
    /// `None` turns it off (simulated agents).
    pub usage_interval: Option<Duration>,
    /// Whether stopping the agent kills its tasks (default false).
    pub kill_tasks_on_shutdown: bool,
    /// Whether tasks run under seccomp (reported as a condition).
    pub seccomp: bool,
}

impl AgentConfig {
    /// A config with the documented defaults.
    pub fn new(name: impl Into<String>, resources: Resources) -> Self {
        AgentConfig {
            name: name.into(),
            hostname: None,
            address: String::new(),
            listen: None,
            work_dir: None,
            resources,
            reservations: BTreeMap::new(),
            attributes: BTreeMap::new(),
            lease_duration: Duration::from_secs(15),
            poll_interval: Duration::from_millis(100),
            usage_interval: None,
            kill_tasks_on_shutdown: false,
            seccomp: false,
        }
    }
}

/// State shared by the agent's loops and runners.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: AgentConfig,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) queue: Arc<StatusQueue>,
    pub(crate) metrics: AgentMetrics,
    /// Runners by container id.
    pub(crate) runners: Mutex<HashMap<ContainerId, RunnerHandle>>,
    /// Uids of tasks whose terminal state this agent has reported.
    pub(crate) finished: Mutex<HashSet<String>>,
    /// The newest copy of each task seen, for status writes.
    pub(crate) known: Arc<known::Known>,
    pub(crate) cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn sandbox_dir(&self, id: &ContainerId) -> Option<PathBuf> {
        self.config.work_dir.as_ref().map(|w| w.join("sandboxes").join(id.namespace()).join(id.name()))
    }
}

/// A node agent. See the module docs.
pub struct Agent {
    shared: Arc<Shared>,
}

/// Errors that stop an agent before it runs.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The durable status queue cannot be opened.
    #[error(transparent)]
    Queue(#[from] status_queue::QueueError),
    /// The HTTP server cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent's name is not a DNS subdomain.
    #[error("agent name {0:?} is not a DNS subdomain (lower-case letters, digits, '-', '.')")]
    InvalidName(String),
    /// [`AgentConfig::hostname`] is not a usable hostname.
    #[error("hostname {hostname:?}: {reason}")]
    InvalidHostname {
        /// The hostname given.
        hostname: String,
        /// Why it cannot be used.
        reason: String,
    },
}

impl Agent {
    /// An agent talking to the apiserver through `client`, running tasks with `runtime`.
    ///
    /// The runtime must belong to this agent alone: after every full list the
    /// agent kills and deletes containers its runtime lists that none of its
    /// tasks explains (simulated agents each get their own `FakeRuntime`).
    pub fn new(client: Client, config: AgentConfig, runtime: Arc<dyn ContainerRuntime>) -> Result<Self, AgentError> {
        if ContainerId::new(&config.name, "x").is_err() {
            return Err(AgentError::InvalidName(config.name));
        }
        if let Some(hostname) = &config.hostname {
            if let Err(reason) = join::validate_hostname(hostname) {
                return Err(AgentError::InvalidHostname { hostname: hostname.clone(), reason });
            }
        }
        let queue = match &config.work_dir {
            Some(w) => StatusQueue::open(w.join("status"))?,
            None => StatusQueue::in_memory(),
        };
        Ok(Agent {
            shared: Arc::new(Shared {
                client,
                config,
                runtime,
                queue: Arc::new(queue),
                metrics: AgentMetrics::new(),
                runners: Mutex::default(),
                finished: Mutex::default(),
                known: Arc::default(),
                cancel: CancellationToken::new(),
            }),
        })
    }

    /// The agent's metrics (also served on `/metrics`).
    pub fn metrics(&self) -> &AgentMetrics {
        &self.shared.metrics
    }

    /// Status updates not yet accepted by the apiserver.
    pub fn pending_status_updates(&self) -> usize {
        self.shared.queue.depth()
    }

    /// Runs until `cancel`: joins, heartbeats, runs tasks. Returns after a
    /// graceful stop (tasks keep running unless configured otherwise).
    pub async fn run(&self, cancel: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let name = shared.config.name.clone();
        let _span = tracing::info_span!("agent", %name);
        let inner_cancel = shared.cancel.clone();
        let _guard = inner_cancel.clone().drop_guard();

        let server = match shared.config.listen {
            Some(addr) => {
                let listener =
                    tokio::net::TcpListener::bind(addr).await.map_err(|source| AgentError::Listen { addr, source })?;
                Some(tokio::spawn(crate::http::serve(listener, shared.clone(), inner_cancel.clone())))
            }
            None => None,
        };

        // Join: retry until the apiserver answers. The lease is renewed
        // first, so an agent is never Ready without a lease to judge it by.
        let mut delay = Duration::from_millis(200);
        let lease_secs = lease_seconds(shared.config.lease_duration);
        loop {
            let joined = async {
                join::renew_lease(&shared.client, &shared.config.name, lease_secs).await?;
                join::upsert_agent(&shared.client, &shared.config, shared.config.seccomp).await.map(|_| ())
            }
            .await;
            match joined {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "cannot register the Agent; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        tracing::info!(%name, "agent joined");

        let lease = tokio::spawn(lease_loop(shared.clone(), inner_cancel.clone()));
        let sender = tokio::spawn(sender::run(
            shared.client.clone(),
            shared.queue.clone(),
            shared.known.clone(),
            inner_cancel.child_token(),
        ));
        let usage = shared.config.usage_interval.map(|i| tokio::spawn(usage::run(shared.clone(), i)));

        let api: Api<Task> = Api::all(shared.client.clone());
        // The agent never reads field ownership: its decode is skipped.
        let params = WatchParams::default().fields(format!("spec.agent={name}")).strip_managed_fields();
        let mut events = std::pin::pin!(meseta_client::watcher(api, params).default_backoff());
        loop {
            let event = tokio::select! {
                e = events.next() => e,
                _ = cancel.cancelled() => break,
            };
            match event {
                Some(Ok(Event::Restarted(tasks))) => {
                    let tasks: Vec<Arc<Task>> = tasks.into_iter().map(Arc::new).collect();
                    for t in &tasks {
                        handle_task(&shared, t);
                    }
                    cleanup_orphans(&shared, &tasks).await;
                }
                Some(Ok(Event::Applied(t))) => handle_task(&shared, &Arc::new(t)),
                Some(Ok(Event::Deleted(t))) => handle_deleted(&shared, &t),
                Some(Err(e)) => tracing::warn!(error = %e, "task watch failed; retrying"),
                None => break,
            }
        }

        tracing::info!(%name, "agent stopping");
        if shared.config.kill_tasks_on_shutdown {
            let handles: Vec<_> = shared.runners.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            for h in &handles {
                h.kill(KillReason::Shutdown);
            }
            for h in handles {
                h.done.cancelled().await;
            }
        }
        // Give pending updates a last chance, then stop everything.
        let _ =
            tokio::time::timeout(Duration::from_secs(2), sender::drain(&shared.client, &shared.queue, &shared.known))
                .await;
        inner_cancel.cancel();
        let _ = sender.await;
        let _ = lease.await;
        if let Some(u) = usage {
            let _ = u.await;
        }
        if let Some(s) = server {
            let _ = s.await;
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            join::mark_not_ready(&shared.client, &name, "AgentStopped", "the agent was stopped"),
        )
        .await;
        Ok(())
    }
}

/// The lease's `leaseDurationSeconds` for a lease duration.
fn lease_seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX).max(1)
}

async fn lease_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    let duration = shared.config.lease_duration;
    let every = (duration / 5).max(Duration::from_millis(200));
    let secs = lease_seconds(duration);
    loop {
        if let Err(e) = join::renew_lease(&shared.client, &shared.config.name, secs).await {
            tracing::warn!(error = %e, "cannot renew the agent's lease");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Whether the task asks to be killed.
pub(crate) fn kill_wanted(task: &Task) -> bool {
    task.spec.kill_requested
        || matches!(
            task.state(),
            TaskState::Killing | TaskState::Preempting | TaskState::Restarting | TaskState::Draining
        )
}

fn task_id(task: &Task) -> Option<ContainerId> {
    ContainerId::new(task.metadata.namespace.as_deref().unwrap_or("default"), &task.metadata.name).ok()
}

/// Level-triggered handling of one task as last seen.
fn handle_task(shared: &Arc<Shared>, task: &Arc<Task>) {
    if task.spec.agent.as_deref() != Some(shared.config.name.as_str()) {
        return;
    }
    shared.known.remember(task);
    let Some(id) = task_id(task) else { return };
    let uid = task.metadata.uid.clone().unwrap_or_default();
    let mut runners = shared.runners.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = runners.get(&id) {
        if h.uid != uid {
            h.kill(KillReason::Deleted);
        } else if kill_wanted(task) {
            h.kill(KillReason::Requested(kill_message(task)));
        }
        return;
    }
    let state = task.state();
    let done = shared.finished.lock().unwrap_or_else(|e| e.into_inner()).contains(&uid)
        || shared.queue.has_terminal(id.as_str());
    if done || !state.holds_resources() {
        return;
    }
    let handle = runner::spawn(shared.clone(), id.clone(), task);
    if kill_wanted(task) {
        handle.kill(KillReason::Requested(kill_message(task)));
    }
    runners.insert(id, handle);
}

fn kill_message(task: &Task) -> String {
    let state = task.state();
    if matches!(state, TaskState::Preempting | TaskState::Restarting | TaskState::Draining) {
        format!("killed: task is {state}")
    } else {
        "killed as requested".to_string()
    }
}

fn handle_deleted(shared: &Arc<Shared>, task: &Task) {
    shared.known.forget(task);
    let Some(id) = task_id(task) else { return };
    let uid = task.metadata.uid.clone().unwrap_or_default();
    if let Some(h) = shared.runners.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        if h.uid == uid {
            h.kill(KillReason::Deleted);
        }
    }
    shared.finished.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
}

/// Kills and deletes containers whose task is gone or finished (and has no runner).
async fn cleanup_orphans(shared: &Arc<Shared>, tasks: &[Arc<Task>]) {
    let live: HashSet<ContainerId> = tasks
        .iter()
        .filter(|t| t.state().holds_resources())
        .filter_map(|t| task_id(t))
        .filter(|id| !shared.queue.has_terminal(id.as_str()))
        .collect();
    let present: HashSet<ContainerId> = tasks.iter().filter_map(|t| task_id(t)).collect();
    let Ok(ids) = shared.runtime.list().await else { return };
    for id in ids {
        let has_runner = shared.runners.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id);
        if has_runner || live.contains(&id) {
            continue;
        }
        let runtime = shared.runtime.clone();
        let deleted = !present.contains(&id);
        tokio::spawn(async move {
            tracing::info!(%id, deleted, "cleaning up a container whose task is gone or finished");
            let _ = crate::runtime::kill_with_grace(runtime.as_ref(), &id, Duration::from_secs(3)).await;
            if let Err(e) = runtime.delete(&id).await {
                tracing::warn!(%id, error = %e, "cannot delete an orphaned container");
            }
        });
    }
    // Forget finished uids of tasks that no longer exist.
    let uids: HashSet<String> = tasks.iter().filter_map(|t| t.metadata.uid.clone()).collect();
    shared.finished.lock().unwrap_or_else(|e| e.into_inner()).retain(|u| uids.contains(u));
}
