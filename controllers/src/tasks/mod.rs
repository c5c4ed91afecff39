//! The tasks controller: the Aurora lifecycle rules that need no agent.
//!
//! Owns kills of tasks (`spec.killRequested` → KILLED for unbound tasks,
//! KILLING for bound ones), the transient-state timeout (ASSIGNED / STARTING
//! too long → LOST), garbage collection of finished tasks not owned by a
//! Job, and the MTTA / MTTR / per-state metrics. It must not place or
//! replace tasks (the jobs controller does) nor talk to agents.
//!
//! # Layout
//! - `plan`: the pure rules, [`plan::plan`].
//! - `write`: [`transition_task`], the conflict-retrying status write every controller here uses.
//! - `metrics`: [`TaskMetrics`].
//! - `cache`: reflector caches that wake a loop.

pub(crate) mod cache;
pub mod metrics;
pub mod plan;
mod write;

use std::sync::Arc;
use std::time::Duration;

use meseta_client::{Api, Client, DeleteParams};
use meseta_schemas::kinds::{Task, TaskState};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::watches::Watches;
pub use metrics::TaskMetrics;
use plan::TaskAction;
pub use write::transition_task;

/// How long a burst of changes is coalesced before a pass.
const SETTLE: Duration = Duration::from_millis(20);

/// Settings of the tasks controller.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    /// How long a task may stay ASSIGNED or STARTING before it is LOST. Default 5 min.
    pub transient_timeout: Duration,
    /// How long finished tasks not owned by a Job are kept. Default 1 h.
    pub retention: Duration,
    /// How often everything is looked at even without a change. Default 1 s.
    pub resync: Duration,
    /// Where "now" comes from. Default: the system clock.
    pub clock: Clock,
    /// Where the metrics are registered (none: kept but not exported).
    pub registry: Option<prometheus::Registry>,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            transient_timeout: Duration::from_secs(300),
            retention: Duration::from_secs(3600),
            resync: Duration::from_secs(1),
            clock: Clock::system(),
            registry: None,
        }
    }
}

/// Runs the tasks controller until `cancel`.
pub async fn run(client: Client, config: TasksConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let watches = Watches::new(client.clone(), cancel.clone());
    run_shared(client, config, &watches, cancel).await
}

/// [`run`], with the Task cache of `watches`.
pub async fn run_shared(
    client: Client,
    config: TasksConfig,
    watches: &Watches,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let api: Api<Task> = Api::all(client.clone());
    let tasks = watches.tasks(changed.clone(), |_| {});
    let metrics = TaskMetrics::new(config.registry.as_ref());
    let mut observed = metrics::Observed::default();
    // A pass looks at every task: with many tasks it is paced by its cost.
    let mut busy = Duration::ZERO;
    while cache::wait_tick(&changed, config.resync, cache::paced_settle(SETTLE, busy), &cancel).await {
        if !tasks.is_ready() {
            continue;
        }
        let started = std::time::Instant::now();
        let all = tasks.list();
        observed.update(&metrics, &all);
        let now = config.clock.now();
        let mut work = Vec::new();
        for t in all {
            if let Some(action) = plan::plan(&t, now, config.transient_timeout, config.retention) {
                work.push((t, action));
            }
        }
        busy = started.elapsed();
        let writes = work.into_iter().map(|(t, action)| apply(&api, t, action, now));
        futures::future::join_all(writes).await;
    }
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(task = %task.metadata.name, ?action))]
async fn apply(api: &Api<Task>, task: Arc<Task>, action: TaskAction, now: meseta_schemas::Time) {
    let result = match &action {
        TaskAction::KillUnbound => {
            let chain = [TaskState::Killing, TaskState::Killed];
            let still =
                |t: &Task| t.spec.kill_requested && matches!(t.state(), TaskState::Pending | TaskState::Throttled);
            transition_task(api, &task, &chain, "killed before it was placed", now, still).await.map(|_| ())
        }
        TaskAction::Killing => {
            let still = |t: &Task| t.spec.kill_requested && !t.state().is_terminal();
            transition_task(api, &task, &[TaskState::Killing], "kill requested", now, still).await.map(|_| ())
        }
        TaskAction::Lost(why) => {
            let state = task.state();
            let still = move |t: &Task| t.state() == state;
            transition_task(api, &task, &[TaskState::Lost], why, now, still).await.map(|_| ())
        }
        TaskAction::Delete => {
            let ns = task.metadata.namespace.clone().unwrap_or_default();
            let api = Api::<Task>::namespaced(api.client().clone(), ns);
            match api.delete(&task.metadata.name, &DeleteParams::default()).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(task = %task.metadata.name, error = %e, "task action failed; retrying next round");
    }
}
