//! Binds tasks to the agent and follows them with one watch.
//!
//! A task is bound the way the scheduler binds it: created with
//! `spec.agent`, then `status.state=ASSIGNED` written through the status
//! subresource. The clock starts when that write is acknowledged. The
//! [`Tracker`] records when the watch first showed each task RUNNING (a
//! `taskEvents` entry for RUNNING, which also covers updates the agent
//! coalesced into its terminal write) and terminal. It must not write
//! anything but the binds and kills it is asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use meseta_client::watcher::Event;
use meseta_client::{Api, Client, WatchParams};
use meseta_schemas::kinds::{KillPolicy, Task, TaskSpec, TaskState, TaskStatus};
use meseta_schemas::meta::Time;
use meseta_schemas::resources::Resources;
use tokio::sync::Notify;

/// What the watch showed of one task.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// When RUNNING was first seen.
    pub running: Option<Instant>,
    /// When a terminal state was first seen.
    pub terminal: Option<Instant>,
    /// The task as last seen.
    pub last: Option<Task>,
}

/// Follows every task of one namespace.
#[derive(Clone)]
pub struct Tracker {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    changed: Arc<Notify>,
    watch: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

impl Tracker {
    /// Starts watching namespace `ns`; returns once the watch has listed.
    pub async fn start(client: &Client, ns: &str) -> anyhow::Result<Tracker> {
        let tracker = Tracker { seen: Arc::default(), changed: Arc::default(), watch: Arc::default() };
        let api: Api<Task> = Api::namespaced(client.clone(), ns);
        let mut events = Box::pin(meseta_client::watcher(api, WatchParams::default()));
        match events.next().await {
            Some(Ok(Event::Restarted(_))) => {}
            other => bail!("the task watch did not start with a list: {other:?}"),
        }
        let t = tracker.clone();
        let handle = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Applied(task)) => t.record(task),
                    Ok(Event::Restarted(tasks)) => tasks.into_iter().for_each(|task| t.record(task)),
                    Ok(Event::Deleted(_)) => {}
                    Err(e) => eprintln!("task watch error (it resumes): {e}"),
                }
            }
        });
        *tracker.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.abort_handle());
        Ok(tracker)
    }

    /// Stops the watch (before the apiserver goes away).
    pub fn stop(&self) {
        if let Some(h) = self.watch.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
    }

    fn record(&self, task: Task) {
        let now = Instant::now();
        let state = task.state();
        let ran = task.status.as_ref().is_some_and(|s| s.task_events.iter().any(|e| e.state == TaskState::Running));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(task.metadata.name.clone()).or_default();
        if ran && entry.running.is_none() {
            entry.running = Some(now);
        }
        if state.is_terminal() && entry.terminal.is_none() {
            entry.terminal = Some(now);
        }
        entry.last = Some(task);
        drop(seen);
        self.changed.notify_waiters();
    }

    /// What was seen of `name` so far.
    pub fn get(&self, name: &str) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned().unwrap_or_default()
    }

    /// How many of `names` were seen terminal.
    pub fn terminal_count(&self, names: &[String]) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        names.iter().filter(|n| seen.get(n.as_str()).is_some_and(|s| s.terminal.is_some())).count()
    }

    /// Waits until `done` holds of what was seen, or `timeout`.
    pub async fn wait(&self, timeout: Duration, done: impl Fn(&Tracker) -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() && !done(self) {
                bail!("timed out after {timeout:?}");
            }
        }
    }
}

/// A `/bin/true` task (exec form) with small limits.
pub fn true_spec(agent: &str) -> TaskSpec {
    TaskSpec {
        args: vec!["/bin/true".into()],
        agent: Some(agent.into()),
        resources: Resources::scalars(0.1, 32.0, 0.0, 0.0),
        ..Default::default()
    }
}

/// A long-running task that stops within a second when killed.
pub fn sleep_spec(agent: &str) -> TaskSpec {
    TaskSpec {
        args: vec!["/bin/sleep".into(), "600".into()],
        kill_policy: Some(KillPolicy { grace_period_seconds: Some(1) }),
        ..true_spec(agent)
    }
}

/// Creates `name` (not yet bound: the agent ignores it until ASSIGNED).
pub async fn create(api: &Api<Task>, ns: &str, name: &str, spec: TaskSpec) -> anyhow::Result<Task> {
    api.create(&Task::new(name, spec).in_namespace(ns)).await.with_context(|| format!("creating task {ns}/{name}"))
}

/// Writes ASSIGNED on `task`; returns when the write was acknowledged
/// (monotonic and wall clock).
pub async fn assign(api: &Api<Task>, mut task: Task) -> anyhow::Result<(Instant, Time)> {
    let agent = task.spec.agent.clone();
    // Appended to the history the create started (PENDING "created").
    let current = task.status.clone().unwrap_or_default();
    let status = meseta_schemas::state_machine::transition(&current, TaskState::Assigned, "", chrono::Utc::now())?;
    task.status = Some(TaskStatus { agent, ..status });
    api.replace_status(&task).await.with_context(|| format!("assigning task {}", task.metadata.name))?;
    Ok((Instant::now(), chrono::Utc::now()))
}

/// When the agent says `task` entered `state` (its `taskEvents` entry).
pub fn event_time(task: &Task, state: TaskState) -> Option<Time> {
    task.status.as_ref()?.task_events.iter().find(|e| e.state == state).map(|e| e.timestamp)
}

/// Milliseconds from `from` to `to` (wall clock).
pub fn wall_ms(from: Time, to: Time) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}
