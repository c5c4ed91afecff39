//! The jobs controller's task writes from the job plans: each Job planned
//! ([`super::instances::plan_job`]), its status written, and its tasks
//! created, killed, released from throttling or deleted. New tasks with
//! nothing to add after their create ([`JobWrites::fresh`]) go to placement
//! first, which launches what fits the offers at hand straight from them;
//! the rest are created PENDING ([`JobWrites::creates_of`]).
//!
//! Owns turning job plans into API calls, tolerating a stale cache (creates
//! of existing names are expected and ignored; a created task not yet
//! cached is not created again). It must not decide anything the pure
//! planner decides, nor place tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Job, Task, TaskState};
use meseta_schemas::{OwnerReference, Time, API_VERSION};
use serde_json::json;
use tokio::time::Instant;

use super::instances::{
    plan_job, NewTask, HASH_ANNOTATION, INSTANCE_LABEL, JOB_LABEL, RAPID_ANNOTATION, THROTTLE_ANNOTATION,
};
use super::{Caches, JobsConfig};
use crate::tasks::transition_task;

/// A stable hash (FNV-1a) of the job's task template.
pub(crate) fn template_hash(job: &Job) -> String {
    let text = serde_json::to_string(&job.spec.template).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn new_task(job: &Job, hash: &str, nt: &NewTask) -> Task {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let mut spec = job.spec.template.clone();
    spec.framework = None;
    spec.agent = None;
    spec.kill_requested = false;
    spec.production = job.spec.production;
    spec.priority = job.spec.priority;
    let mut t = Task::new(format!("{}-{}-{}", job.metadata.name, nt.instance, nt.n), spec).in_namespace(ns);
    let labels = &mut t.metadata.labels;
    labels.insert(JOB_LABEL.into(), job.metadata.name.clone());
    labels.insert(INSTANCE_LABEL.into(), nt.instance.to_string());
    let ann = &mut t.metadata.annotations;
    ann.insert(HASH_ANNOTATION.into(), hash.to_string());
    if nt.rapid > 0 {
        ann.insert(RAPID_ANNOTATION.into(), nt.rapid.to_string());
    }
    if let Some(u) = nt.throttled_until {
        ann.insert(THROTTLE_ANNOTATION.into(), u.to_rfc3339());
    }
    t.metadata.owner_references.push(OwnerReference {
        api_version: API_VERSION.into(),
        kind: "Job".into(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    });
    t
}

/// Creates `t` PENDING without reading it back (the cache learns of it from
/// the watch); a task that already exists is left as it is.
pub(crate) async fn create_fresh(api: &Api<Task>, t: &Task) {
    match api.create_unread(t).await {
        Ok(()) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => tracing::warn!(task = %t.metadata.name, error = %e, "cannot create a task"),
    }
}

/// Creates a task that has a failure count or a restart penalty to record.
async fn create_task(api: &Api<Task>, t: Task, nt: NewTask, now: Time) {
    let created = match api.create(&t).await {
        Ok(c) => c,
        Err(e) if e.is_already_exists() => return,
        Err(e) => {
            tracing::warn!(task = %t.metadata.name, error = %e, "cannot create a task");
            return;
        }
    };
    let mut c = created;
    let mut status = c.status.clone().unwrap_or_default();
    status.failure_count = nt.failure_count;
    c.status = Some(status);
    if let Some(until) = nt.throttled_until {
        let msg = format!("restart penalty until {}", until.to_rfc3339());
        let _ = transition_task(api, &c, &[TaskState::Throttled], &msg, now, |t| t.state() == TaskState::Pending).await;
    } else if let Err(e) = api.replace_status(&c).await {
        tracing::debug!(task = %c.metadata.name, error = %e, "cannot record the failure count");
    }
}

async fn kill(api: &Api<Task>, name: String) {
    if let Err(e) = api.patch_merge(&name, &json!({"spec": {"killRequested": true}})).await {
        if !e.is_not_found() {
            tracing::warn!(task = %name, error = %e, "cannot request a kill");
        }
    }
}

/// How long a create is remembered while the cache does not show the task.
const CREATE_MEMORY: Duration = Duration::from_secs(10);

/// A new task with nothing to add after its create, and its role.
pub(crate) struct Fresh {
    pub(crate) role: String,
    pub(crate) task: Task,
}

/// The task writes of one jobs pass, not yet started.
pub(crate) struct JobWrites {
    /// Tasks these writes create, or launch from offers.
    pub(crate) created: usize,
    /// New tasks with nothing to add after their create: placement launches
    /// what fits the offers at hand, [`JobWrites::creates_of`] creates the
    /// rest.
    pub(crate) fresh: Vec<Fresh>,
    work: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl JobWrites {
    /// The creates of the fresh tasks placement did not launch.
    pub(crate) fn creates_of(client: &Client, rest: Vec<Fresh>) -> JobWrites {
        let mut work: Vec<futures::future::BoxFuture<'static, ()>> = Vec::with_capacity(rest.len());
        for Fresh { role, task } in rest {
            let api = Api::<Task>::namespaced(client.clone(), &role);
            work.push(Box::pin(async move { create_fresh(&api, &task).await }));
        }
        JobWrites { created: work.len(), fresh: Vec::new(), work }
    }

    /// Runs the writes, `concurrency` at a time.
    pub(crate) async fn run(self, concurrency: usize) {
        futures::stream::iter(self.work).buffer_unordered(concurrency.max(1)).collect::<Vec<()>>().await;
    }
}

/// Plans every Job and writes the Jobs' status; returns the task writes
/// (creates capped at `max_creates_per_pass`, so a big Job is created over
/// several passes while earlier tasks are already being placed). A task
/// created in the last [`CREATE_MEMORY`] is not created again while the
/// cache does not show it yet (`creating` remembers them). A Job's status
/// is written at most once per `status_period` (`status_at` remembers when)
/// unless a cron firing goes with it.
pub(crate) async fn reconcile_jobs(
    client: &Client,
    caches: &Caches,
    tasks: &[Arc<Task>],
    cfg: &JobsConfig,
    creating: &mut HashMap<(String, String), Instant>,
    status_at: &mut HashMap<(String, String), Instant>,
) -> JobWrites {
    let started = Instant::now();
    status_at.retain(|_, at| started.duration_since(*at) < cfg.status_period);
    creating.retain(|_, at| started.duration_since(*at) < CREATE_MEMORY);
    let now = cfg.clock.now();
    let mut by_job: HashMap<(String, String), Vec<Arc<Task>>> = HashMap::new();
    for t in tasks {
        if let Some(job) = t.metadata.labels.get(JOB_LABEL) {
            by_job.entry((t.metadata.namespace.clone().unwrap_or_default(), job.clone())).or_default().push(t.clone());
        }
    }
    let mut planned = Vec::new();
    for job in caches.jobs.list() {
        if job.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let mine = by_job.remove(&(ns.clone(), job.metadata.name.clone())).unwrap_or_default();
        let hash = template_hash(&job);
        let plan = plan_job(&job, &mine, &hash, now, &cfg.plan);
        planned.push((job, ns, mine, hash, plan));
    }
    // A cron firing and the status go first (with the job's resourceVersion),
    // so a stale cache cannot fire twice; the Jobs' writes run side by side.
    let mut status_writes: Vec<futures::future::BoxFuture<'static, bool>> = Vec::new();
    for (job, ns, _, _, plan) in &planned {
        let key = (ns.clone(), job.metadata.name.clone());
        let recent = status_at.get(&key).is_some_and(|at| started.duration_since(*at) < cfg.status_period);
        if plan.fired_at.is_none() && (recent || job.status.as_ref() == Some(&plan.status)) {
            status_writes.push(Box::pin(async { true }));
            continue;
        }
        status_at.insert(key, started);
        let mut next = (**job).clone();
        next.status = Some(plan.status.clone());
        let api = Api::<Job>::namespaced(client.clone(), ns);
        status_writes.push(Box::pin(async move { api.replace_status(&next).await.is_ok() }));
    }
    let written = futures::stream::iter(status_writes).buffered(cfg.concurrency.max(1)).collect::<Vec<bool>>().await;
    let mut work: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let mut fresh = Vec::new();
    let mut created = 0;
    for ((job, ns, mine, hash, plan), status_written) in planned.into_iter().zip(written) {
        if plan.fired_at.is_some() && !status_written {
            continue;
        }
        let api = Api::<Task>::namespaced(client.clone(), &ns);
        for nt in plan.create {
            if created >= cfg.max_creates_per_pass {
                break;
            }
            let t = new_task(&job, &hash, &nt);
            let key = (ns.clone(), t.metadata.name.clone());
            if creating.contains_key(&key) {
                continue;
            }
            creating.insert(key, started);
            created += 1;
            if nt.failure_count == 0 && nt.throttled_until.is_none() {
                fresh.push(Fresh { role: ns.clone(), task: t });
                continue;
            }
            let api = api.clone();
            work.push(Box::pin(async move { create_task(&api, t, nt, now).await }));
        }
        for name in plan.kill {
            let api = api.clone();
            work.push(Box::pin(async move { kill(&api, name).await }));
        }
        for name in plan.release {
            let Some(t) = mine.iter().find(|t| t.metadata.name == name).cloned() else { continue };
            let api = api.clone();
            work.push(Box::pin(async move {
                let _ = transition_task(&api, &t, &[TaskState::Pending], "restart penalty over", now, |t| {
                    t.state() == TaskState::Throttled
                })
                .await;
            }));
        }
        for name in plan.delete {
            let api = api.clone();
            work.push(Box::pin(async move {
                let _ = api.delete(&name, &Default::default()).await;
            }));
        }
    }
    JobWrites { created, fresh, work }
}
