//! One task's runner: launches its container (or re-adopts the one a
//! previous agent started), follows it, runs its health checks, kills it
//! when asked, and pushes every state change to the status queue.
//!
//! A runner is a tokio task, not a thread; it polls its container's state
//! every [`super::AgentConfig::poll_interval`]. It must not write to the
//! apiserver itself: the sender delivers what it pushes.

use std::sync::Arc;
use std::time::Duration;

use meseta_schemas::kinds::{Task, TaskState, TaskStatus};
use meseta_schemas::meta::ObjectMeta;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::health::{probe, HealthTracker, HealthVerdict, ProbeTarget};
use super::status_queue::StatusUpdate;
use super::Shared;
use crate::runtime::{kill_with_grace, ContainerConfig, ContainerId, ContainerState, RuntimeError};

/// Grace period between SIGTERM and SIGKILL when the task names none.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Why a runner kills its task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KillReason {
    /// The task asked for it (killRequested, KILLING, PREEMPTING, ...): report KILLED.
    Requested(String),
    /// The task object is gone: kill and clean up, report nothing.
    Deleted,
    /// The agent stops and was told to take its tasks down: report KILLED.
    Shutdown,
}

/// The agent's handle on a runner.
#[derive(Debug, Clone)]
pub(crate) struct RunnerHandle {
    pub(crate) uid: String,
    kill: Arc<watch::Sender<Option<KillReason>>>,
    /// Cancelled once the runner has ended.
    pub(crate) done: CancellationToken,
    /// The runner's copy of its task ([`runner_copy`]; resources, for accounting).
    pub(crate) task: Arc<Task>,
}

impl RunnerHandle {
    /// Asks the runner to kill its task (the first reason wins).
    pub(crate) fn kill(&self, reason: KillReason) {
        self.kill.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// What a runner keeps of the task it was started for: its name, namespace
/// and uid, its spec, and the state and ports it was assigned with.
///
/// A runner lives as long as its task, and the agent's newest copy of the
/// task (its `Known`) is soon another one: were the runner to keep the copy
/// it was started from, every running task would be held twice, labels,
/// annotations, owner references and state history included.
pub(crate) fn runner_copy(task: &Task) -> Task {
    let status =
        task.status.as_ref().map(|s| TaskStatus { state: s.state, ports: s.ports.clone(), ..Default::default() });
    Task {
        api_version: String::new(),
        kind: String::new(),
        metadata: ObjectMeta {
            name: task.metadata.name.clone(),
            namespace: task.metadata.namespace.clone(),
            uid: task.metadata.uid.clone(),
            ..Default::default()
        },
        spec: task.spec.clone(),
        status,
    }
}

/// Starts the runner of `task` (container `id`), with the task's
/// [`runner_copy`].
pub(crate) fn spawn(shared: Arc<Shared>, id: ContainerId, task: &Task) -> RunnerHandle {
    let task = Arc::new(runner_copy(task));
    let (tx, rx) = watch::channel(None);
    let done = CancellationToken::new();
    let handle = RunnerHandle {
        uid: task.metadata.uid.clone().unwrap_or_default(),
        kill: Arc::new(tx),
        done: done.clone(),
        task: task.clone(),
    };
    let span = tracing::info_span!("task", id = %id);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            run(&shared, &id, &task, rx).await;
            shared.runners.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            done.cancel();
        },
        span,
    ));
    handle
}

struct Ctx<'a> {
    shared: &'a Shared,
    id: &'a ContainerId,
    task: &'a Task,
    uid: String,
    /// The last state this runner reported (for the tasks-by-state gauge).
    current: std::sync::Mutex<Option<TaskState>>,
}

impl Ctx<'_> {
    fn update(&self) -> StatusUpdate {
        StatusUpdate::new(&self.uid, self.id.namespace(), self.id.name())
    }

    fn push(&self, update: StatusUpdate) {
        if let Some(state) = update.state {
            let prev = self.current.lock().unwrap_or_else(|e| e.into_inner()).replace(state);
            if let Some(prev) = prev {
                self.shared.metrics.tasks.with_label_values(&[prev.as_str()]).dec();
            }
            self.shared.metrics.tasks.with_label_values(&[state.as_str()]).inc();
        }
        if let Err(e) = self.shared.queue.push(update) {
            tracing::error!(error = %e, "cannot queue a status update");
        }
    }

    fn finish(&self, state: TaskState, message: String, exit_code: Option<i32>) {
        let mut u = self.update().state(state, message);
        u.exit_code = exit_code;
        self.push(u);
        self.shared.finished.lock().unwrap_or_else(|e| e.into_inner()).insert(self.uid.clone());
    }
}

async fn run(shared: &Shared, id: &ContainerId, task: &Task, mut kill: watch::Receiver<Option<KillReason>>) {
    let ctx = Ctx {
        shared,
        id,
        task,
        uid: task.metadata.uid.clone().unwrap_or_default(),
        current: std::sync::Mutex::new(Some(task.state())),
    };
    shared.metrics.tasks.with_label_values(&[task.state().as_str()]).inc();
    let rt = shared.runtime.as_ref();
    let mut state = match rt.state(id).await {
        Ok(ContainerState::Created) => {
            // An earlier agent stopped between create and start: start over.
            let _ = rt.delete(id).await;
            None
        }
        Ok(s) => Some(s),
        Err(RuntimeError::NotFound(_)) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the container's state");
            None
        }
    };
    if state.is_none() && task.state() != TaskState::Assigned {
        ctx.finish(TaskState::Lost, "the agent found no container for this task (it was lost)".into(), None);
        return;
    }
    let mut started_at = Instant::now();
    if state.is_none() {
        if let Some(reason) = kill.borrow().clone() {
            if reason != KillReason::Deleted {
                ctx.finish(TaskState::Killed, "killed before it started".into(), None);
            }
            return;
        }
        // Boxed, as are the kill and the probe below: a runner's future
        // lives as long as its task, and would otherwise keep the room of
        // its largest step (2.3 KB a task, 0.9 KB with them boxed).
        match Box::pin(launch(&ctx)).await {
            Ok(s) => {
                started_at = Instant::now();
                state = Some(s);
            }
            Err(message) => {
                shared.metrics.container_start_failures.inc();
                ctx.finish(TaskState::Failed, message, None);
                let _ = rt.delete(id).await;
                return;
            }
        }
    } else if matches!(task.state(), TaskState::Assigned | TaskState::Starting) {
        let mut u = ctx.update().state(TaskState::Running, "re-adopted after an agent restart");
        u.sandbox = shared.sandbox_dir(id).map(|p| p.display().to_string());
        ctx.push(u);
    }
    let state = state.unwrap_or(ContainerState::Unknown);
    if state.is_finished() {
        report_exit(&ctx, state);
    } else {
        supervise(&ctx, &mut kill, started_at).await;
    }
    if shared.cancel.is_cancelled() {
        return;
    }
    if let Err(e) = rt.delete(id).await {
        tracing::warn!(error = %e, "cannot delete the container");
    }
}

/// Creates and starts the container; the state after start, or why it failed.
async fn launch(ctx: &Ctx<'_>) -> Result<ContainerState, String> {
    let begin = Instant::now();
    let starting = ctx.update().state(TaskState::Starting, "preparing the sandbox");
    let ports = ctx.task.status.as_ref().map(|s| s.ports.clone()).unwrap_or_default();
    let config = match ContainerConfig::from_task(ctx.id.namespace(), ctx.id.name(), &ctx.task.spec, &ports) {
        Ok(config) => config,
        Err(e) => {
            ctx.push(starting);
            return Err(e.to_string());
        }
    };
    let rt = ctx.shared.runtime.as_ref();
    // The create runs on a blocking thread while STARTING is written (and
    // fsynced) to the queue here: `join!` polls the create first, which
    // hands it to its thread. STARTING is queued before anything later.
    let (created, ()) = tokio::join!(biased; rt.create(&config), async {
        ctx.push(starting);
    });
    created.map_err(|e| format!("cannot create the container: {e}"))?;
    rt.start(ctx.id).await.map_err(|e| format!("cannot start the container: {e}"))?;
    ctx.shared.metrics.container_starts.inc();
    ctx.shared.metrics.start_latency.observe(begin.elapsed().as_secs_f64());
    let mut u = ctx.update().state(TaskState::Running, "");
    u.sandbox = ctx.shared.sandbox_dir(ctx.id).filter(|p| p.is_dir()).map(|p| p.display().to_string());
    ctx.push(u);
    rt.state(ctx.id).await.map_err(|e| e.to_string())
}

/// The first wait before looking at a just-started container: 1/32 of the
/// poll interval, at least 2 ms, at most the interval.
fn first_poll(poll: Duration) -> Duration {
    (poll / 32).max(Duration::from_millis(2)).min(poll)
}

/// The wait after `current`: doubled, capped at the poll interval.
fn next_poll(current: Duration, poll: Duration) -> Duration {
    (current * 2).min(poll)
}

async fn supervise(ctx: &Ctx<'_>, kill: &mut watch::Receiver<Option<KillReason>>, started_at: Instant) {
    let rt = ctx.shared.runtime.as_ref();
    let poll = ctx.shared.config.poll_interval;
    // A runner lives as long as its task: what only a health check needs
    // is boxed, and only when there is one.
    let mut health = ctx.task.spec.health_check.as_ref().map(|c| {
        let target = ProbeTarget {
            ports: ctx.task.status.as_ref().map(|s| s.ports.clone()).unwrap_or_default(),
            sandbox: ctx.shared.sandbox_dir(ctx.id),
            user: ctx.task.spec.user.clone(),
        };
        Box::new((c.clone(), HealthTracker::new(c, started_at), target))
    });
    let grace = ctx
        .task
        .spec
        .kill_policy
        .as_ref()
        .and_then(|k| k.grace_period_seconds)
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.into()));
    let mut pending_kill = kill.borrow().clone();
    // Short tasks exit within milliseconds of starting: look soon, then back off to `poll`.
    let mut wait = first_poll(poll);
    loop {
        if let Some(reason) = pending_kill.take() {
            let end = Box::pin(kill_with_grace(rt, ctx.id, grace)).await;
            let code = match &end {
                Ok(ContainerState::Exited { code, .. }) => Some(*code),
                _ => None,
            };
            match reason {
                KillReason::Deleted => {}
                KillReason::Requested(message) => ctx.finish(TaskState::Killed, message, code),
                KillReason::Shutdown => ctx.finish(TaskState::Killed, "killed: the agent was stopped".into(), code),
            }
            return;
        }
        tokio::select! {
            _ = ctx.shared.cancel.cancelled() => return,
            changed = kill.changed() => {
                if changed.is_err() { return; }
                pending_kill = kill.borrow().clone();
                continue;
            }
            _ = tokio::time::sleep(wait) => wait = next_poll(wait, poll),
            // The runtime may learn of the exit before the next poll.
            ended = rt.exited(ctx.id) => {
                if let Some(state) = ended.filter(ContainerState::is_finished) {
                    return report_exit(ctx, state);
                }
            }
        }
        match rt.state(ctx.id).await {
            Ok(s) if s.is_finished() => return report_exit(ctx, s),
            Ok(_) => {}
            Err(RuntimeError::NotFound(_)) => {
                return ctx.finish(TaskState::Lost, "the task's container disappeared".into(), None);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the container's state"),
        }
        if let Some((check, tracker, target)) = health.as_deref_mut() {
            let now = Instant::now();
            if tracker.due(now) {
                let result = Box::pin(probe(check, target, tracker.timeout())).await;
                match tracker.record(Instant::now(), result) {
                    HealthVerdict::Healthy => push_health(ctx, true),
                    HealthVerdict::Unhealthy { failures } => {
                        tracing::info!(failures, "health check failing");
                        push_health(ctx, false)
                    }
                    HealthVerdict::Kill { message } => {
                        tracing::info!(%message, "killing an unhealthy task");
                        push_health(ctx, false);
                        let end = Box::pin(kill_with_grace(rt, ctx.id, grace)).await;
                        let code = match end {
                            Ok(ContainerState::Exited { code, .. }) => Some(code),
                            _ => None,
                        };
                        return ctx.finish(TaskState::Failed, message, code);
                    }
                    HealthVerdict::Unchanged => {}
                }
            }
        }
    }
}

fn push_health(ctx: &Ctx<'_>, healthy: bool) {
    let mut u = ctx.update();
    u.healthy = Some(healthy);
    ctx.push(u);
}

/// The terminal report of a container that ended by itself.
fn report_exit(ctx: &Ctx<'_>, state: ContainerState) {
    match state {
        ContainerState::Exited { code: 0, .. } => ctx.finish(TaskState::Finished, "exited with code 0".into(), Some(0)),
        ContainerState::Exited { code, oom: true, .. } => {
            let mem = ctx.task.spec.resources.mem;
            let message = format!(
                "out of memory: the task used more than its memory limit ({mem} MiB) and was killed by the OOM killer"
            );
            ctx.finish(TaskState::Failed, message, Some(code))
        }
        ContainerState::Exited { code, message, .. } => {
            let message = if !message.is_empty() {
                message
            } else if code > 128 {
                format!("killed by signal {}", code - 128)
            } else {
                format!("exited with code {code}")
            };
            ctx.finish(TaskState::Failed, message, Some(code))
        }
        ContainerState::Unknown => ctx.finish(
            TaskState::Lost,
            "the container's supervisor died without recording how the task ended".into(),
            None,
        ),
        ContainerState::Created | ContainerState::Running { .. } => {}
    }
}

#[cfg(test)]
mod poll_tests {
    use meseta_schemas::kinds::{TaskEvent, TaskSpec};
    use meseta_schemas::resources::Resources;

    use super::*;

    #[test]
    fn a_runner_keeps_what_it_runs_by_and_nothing_else() {
        let spec = TaskSpec {
            command: Some("sleep 1".into()),
            resources: Resources::scalars(0.5, 64.0, 0.0, 0.0),
            user: Some("nobody".into()),
            ..Default::default()
        };
        let mut task = Task::new("web-0-0", spec.clone()).in_namespace("prod");
        task.metadata.uid = Some("u1".into());
        task.metadata.resource_version = Some("42".into());
        task.metadata.labels.insert("meseta.io/job".into(), "web".into());
        task.metadata.annotations.insert("meseta.io/template-hash".into(), "abc".into());
        task.status = Some(TaskStatus {
            state: TaskState::Assigned,
            agent: Some("a1".into()),
            ports: vec![31000, 31001],
            message: "assigned".into(),
            task_events: vec![TaskEvent {
                timestamp: chrono::Utc::now(),
                state: TaskState::Assigned,
                message: "x".into(),
            }],
            ..Default::default()
        });
        let copy = runner_copy(&task);
        assert_eq!((copy.metadata.name.as_str(), copy.metadata.namespace.as_deref()), ("web-0-0", Some("prod")));
        assert_eq!(copy.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(copy.spec, spec);
        assert_eq!(copy.state(), TaskState::Assigned);
        assert_eq!(copy.status.as_ref().map(|s| s.ports.clone()), Some(vec![31000, 31001]));
        assert!(copy.metadata.labels.is_empty() && copy.metadata.annotations.is_empty());
        let status = copy.status.unwrap();
        assert!(status.task_events.is_empty() && status.agent.is_none() && status.message.is_empty());
        task.status = None;
        assert_eq!(runner_copy(&task).state(), TaskState::Pending, "no status stays none");
    }

    #[test]
    fn exit_polling_starts_soon_and_backs_off_to_the_interval() {
        let poll = Duration::from_millis(100);
        let mut w = first_poll(poll);
        assert_eq!(w, Duration::from_millis(3) + Duration::from_micros(125));
        let mut waits = vec![w];
        for _ in 0..8 {
            w = next_poll(w, poll);
            waits.push(w);
        }
        assert!(waits.windows(2).all(|p| p[1] >= p[0]), "{waits:?}");
        assert_eq!(*waits.last().unwrap(), poll);
        assert_eq!(first_poll(Duration::from_millis(1)), Duration::from_millis(1), "never longer than the interval");
        assert_eq!(first_poll(Duration::from_millis(10)), Duration::from_millis(2), "at least 2 ms");
    }
}
