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
//! - `passes`: which tasks a pass looks at (those whose events came, every
//!   task at the first pass, after a re-list and every `resync`).
//! - `write`: [`transition_task`], the conflict-retrying status write every controller here uses.
//! - `metrics`: [`TaskMetrics`].
//! - `cache`: reflector caches that wake a loop.

pub(crate) mod cache;
pub mod metrics;
mod passes;
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
use passes::{Passes, Rules};
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
    /// How often every task is looked at (the transient timeout, the
    /// retention, the per-state counts); between those full passes a pass
    /// looks only at the tasks whose events came since the last one.
    /// Default 10 s.
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
            resync: Duration::from_secs(10),
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
    let mut passes = Passes::new(config.resync);
    let tasks = watches.tasks(changed.clone(), passes.changes().observer());
    let metrics = TaskMetrics::new(config.registry.as_ref());
    let rules = Rules { transient_timeout: config.transient_timeout, retention: config.retention };
    // A full pass looks at every task: with many tasks the passes are paced by its cost.
    let mut busy = Duration::ZERO;
    loop {
        let until_full = passes.until_full(tokio::time::Instant::now());
        if !cache::wait_tick(&changed, until_full, cache::paced_settle(SETTLE, busy), &cancel).await {
            break;
        }
        if !tasks.is_ready() {
            continue;
        }
        let started = std::time::Instant::now();
        let now = config.clock.now();
        let planned = passes.plan(&tasks, &metrics, rules, now, tokio::time::Instant::now());
        busy = started.elapsed();
        if planned.full {
            tracing::debug!(tasks = planned.looked_at, actions = planned.work.len(), ?busy, "full tasks pass");
        }
        let (api, changes) = (&api, passes.changes());
        let writes = planned.work.into_iter().map(|(t, action)| async move {
            if !apply(api, &t, action, now).await {
                changes.retry(&t);
            }
        });
        futures::future::join_all(writes).await;
    }
    Ok(())
}

/// Applies `action` to `task`; `false` when it failed (to be retried).
#[tracing::instrument(level = "debug", skip_all, fields(task = %task.metadata.name, ?action))]
async fn apply(api: &Api<Task>, task: &Task, action: TaskAction, now: meseta_schemas::Time) -> bool {
    let result = match &action {
        TaskAction::KillUnbound => {
            let chain = [TaskState::Killing, TaskState::Killed];
            let still =
                |t: &Task| t.spec.kill_requested && matches!(t.state(), TaskState::Pending | TaskState::Throttled);
            transition_task(api, task, &chain, "killed before it was placed", now, still).await.map(|_| ())
        }
        TaskAction::Killing => {
            let still = |t: &Task| t.spec.kill_requested && !t.state().is_terminal();
            transition_task(api, task, &[TaskState::Killing], "kill requested", now, still).await.map(|_| ())
        }
        TaskAction::Lost(why) => {
            let state = task.state();
            let still = move |t: &Task| t.state() == state;
            transition_task(api, task, &[TaskState::Lost], why, now, still).await.map(|_| ())
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
        return false;
    }
    true
}
