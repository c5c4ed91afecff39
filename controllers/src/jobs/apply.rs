//! The jobs controller's writes: framework registration, job plans, offer
//! accepts and declines, preemption.
//!
//! Owns turning plans into API calls, tolerating a stale cache (creates of
//! existing names and uses of consumed offers are expected and ignored).
//! It must not decide anything the pure planners decide.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Framework, FrameworkSpec, Job, Lease, LeaseSpec, Task, TaskState};
use meseta_schemas::{OwnerReference, Time, API_VERSION};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::constraints::{AgentAttributes, ConstraintContext};
use super::demand::Change;
use super::instances::{
    plan_job, NewTask, HASH_ANNOTATION, INSTANCE_LABEL, JOB_LABEL, RAPID_ANNOTATION, THROTTLE_ANNOTATION,
};
use super::plan::{plan_launches, OfferView, PendingTask};
use super::preempt::{choose_victims, AgentRoom, Candidate};
use super::{waits_for_offer, Caches, JobsConfig, Memory, FRAMEWORK};
use crate::tasks::plan::entered_state_at;
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

/// Makes sure `meseta` exists in each role and renews its lease every few seconds.
pub(crate) async fn register(client: &Client, roles: &HashSet<String>, done: &mut HashMap<String, Instant>) {
    for role in roles {
        if done.get(role).is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(3)) {
            continue;
        }
        let fws = Api::<Framework>::namespaced(client.clone(), role);
        if let Ok(None) = fws.get_opt(FRAMEWORK).await {
            let fw = Framework::new(FRAMEWORK, FrameworkSpec::default()).in_namespace(role);
            if let Ok(mut created) = fws.create(&fw).await {
                created.status =
                    Some(meseta_schemas::kinds::FrameworkStatus { registered: true, ..Default::default() });
                let _ = fws.replace_status(&created).await;
            }
        }
        let leases = Api::<Lease>::namespaced(client.clone(), role);
        let name = format!("framework-{FRAMEWORK}");
        let now = chrono::Utc::now();
        let spec = LeaseSpec {
            holder_identity: Some("meseta-jobs-controller".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(now),
            acquire_time: None,
            lease_transitions: 0,
        };
        let result = match leases.get_opt(&name).await {
            Ok(Some(_)) => leases
                .patch_merge(&name, &json!({"spec": {"renewTime": now, "holderIdentity": spec.holder_identity}}))
                .await
                .map(|_| ()),
            Ok(None) => leases
                .create(&Lease::new(&name, LeaseSpec { acquire_time: Some(now), ..spec }).in_namespace(role))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                done.insert(role.clone(), Instant::now());
            }
            Err(e) => tracing::warn!(%role, error = %e, "cannot renew the built-in framework's lease"),
        }
    }
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

async fn create_task(api: &Api<Task>, t: Task, nt: NewTask, now: Time) {
    let created = match api.create(&t).await {
        Ok(c) => c,
        Err(e) if e.is_already_exists() => return,
        Err(e) => {
            tracing::warn!(task = %t.metadata.name, error = %e, "cannot create a task");
            return;
        }
    };
    if nt.failure_count == 0 && nt.throttled_until.is_none() {
        return;
    }
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

/// The task writes of one jobs pass, not yet started.
pub(crate) struct JobWrites {
    /// Tasks these writes create.
    pub(crate) created: usize,
    work: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl JobWrites {
    /// Runs the writes, `concurrency` at a time.
    pub(crate) async fn run(self, concurrency: usize) {
        futures::stream::iter(self.work).buffer_unordered(concurrency.max(1)).collect::<Vec<()>>().await;
    }
}

/// Plans every Job and writes the Jobs' status; returns the task writes
/// (creates capped at `max_creates_per_pass`, so a big Job is created over
/// several passes while earlier tasks are already being placed). A task
/// created in the last [`CREATE_MEMORY`] is not created again while the
/// cache does not show it yet (`creating` remembers them).
pub(crate) async fn reconcile_jobs(
    client: &Client,
    caches: &Caches,
    tasks: &[Arc<Task>],
    cfg: &JobsConfig,
    creating: &mut HashMap<(String, String), Instant>,
) -> JobWrites {
    let started = Instant::now();
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
        if plan.fired_at.is_none() && job.status.as_ref() == Some(&plan.status) {
            status_writes.push(Box::pin(async { true }));
            continue;
        }
        let mut next = (**job).clone();
        next.status = Some(plan.status.clone());
        let api = Api::<Job>::namespaced(client.clone(), ns);
        status_writes.push(Box::pin(async move { api.replace_status(&next).await.is_ok() }));
    }
    let written = futures::stream::iter(status_writes).buffered(cfg.concurrency.max(1)).collect::<Vec<bool>>().await;
    let mut work: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
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
    JobWrites { created, work }
}

fn attributes_of(caches: &Caches) -> HashMap<String, AgentAttributes> {
    caches
        .agents
        .list()
        .iter()
        .map(|a| {
            let host = if a.spec.hostname.is_empty() { a.metadata.name.clone() } else { a.spec.hostname.clone() };
            (a.metadata.name.clone(), AgentAttributes { hostname: host, attributes: a.spec.attributes.clone() })
        })
        .collect()
}

/// The cached Jobs by namespace and name.
fn jobs_by_key(caches: &Caches) -> HashMap<(String, String), Arc<Job>> {
    caches
        .jobs
        .list()
        .into_iter()
        .map(|j| ((j.metadata.namespace.clone().unwrap_or_default(), j.metadata.name.clone()), j))
        .collect()
}

/// Constraint group and constraints of a task: its job's, or its own name and none.
fn group_of<'a>(
    task: &'a Task,
    jobs: &'a HashMap<(String, String), Arc<Job>>,
) -> (String, Vec<meseta_schemas::kinds::Constraint>) {
    let ns = task.metadata.namespace.clone().unwrap_or_default();
    match task.metadata.labels.get(JOB_LABEL) {
        Some(j) => {
            let constraints =
                jobs.get(&(ns.clone(), j.clone())).map(|j| j.spec.constraints.clone()).unwrap_or_default();
            (format!("{ns}/{j}"), constraints)
        }
        None => (format!("{ns}/{}", task.metadata.name), Vec::new()),
    }
}

/// A role and names of its tasks.
type RoleTasks = (String, Vec<String>);

/// Places PENDING tasks on the built-in framework's offers, per role.
pub(crate) async fn place(
    client: &Client,
    caches: &Caches,
    tasks: &[Arc<Task>],
    cfg: &JobsConfig,
    memory: &mut Memory,
    roles: &HashSet<String>,
    decline: bool,
) {
    let Memory { in_flight, demand } = memory;
    let attrs = attributes_of(caches);
    let jobs = jobs_by_key(caches);
    let mut ctx = ConstraintContext::new();
    let mut pending: BTreeMap<String, Vec<(Arc<Task>, PendingTask)>> = BTreeMap::new();
    // Every task waiting for an offer, its accept in flight or not.
    let mut waiting_by_role: HashMap<String, Vec<String>> = HashMap::new();
    for t in tasks {
        let ns = t.metadata.namespace.clone().unwrap_or_default();
        let (group, constraints) = group_of(t, &jobs);
        if t.state().holds_resources() {
            if let Some(a) = t.spec.agent.as_deref().and_then(|a| attrs.get(a)) {
                ctx.record(&group, &constraints, a);
            }
            continue;
        }
        if !waits_for_offer(t) {
            continue;
        }
        waiting_by_role.entry(ns.clone()).or_default().push(t.metadata.name.clone());
        if in_flight.tasks.contains_key(&(ns.clone(), t.metadata.name.clone())) {
            continue;
        }
        let p = PendingTask {
            name: t.metadata.name.clone(),
            group,
            resources: t.spec.resources.clone(),
            ports: t.spec.ports.iter().map(|p| p.port).collect(),
            constraints,
            revocable: t.spec.revocable,
        };
        pending.entry(ns).or_default().push((t.clone(), p));
    }
    let mut offers_by_role: BTreeMap<String, Vec<OfferView>> = BTreeMap::new();
    for o in caches.offers.list() {
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        if o.spec.framework != FRAMEWORK || in_flight.offers.contains_key(&(ns.clone(), o.metadata.name.clone())) {
            continue;
        }
        let a = attrs
            .get(&o.spec.agent)
            .cloned()
            .unwrap_or_else(|| AgentAttributes { hostname: o.spec.hostname.clone(), ..Default::default() });
        offers_by_role.entry(ns).or_default().push(OfferView {
            name: o.metadata.name.clone(),
            agent: o.spec.agent.clone(),
            attributes: a,
            resources: o.spec.resources.add(&o.spec.reserved),
            revocable: o.spec.revocable.clone(),
        });
    }
    let mut work: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let (mut accepts, mut declines, mut revives, mut unplaced) = (0, 0, 0, 0);
    let pending_count: usize = pending.values().map(Vec::len).sum();
    let offer_count: usize = offers_by_role.values().map(Vec::len).sum();
    let unwritten: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    // The tasks of accepts the apiserver refused, with their role.
    let refused: Arc<std::sync::Mutex<Vec<RoleTasks>>> = Arc::default();
    for role in roles {
        let waiting = waiting_by_role.get(role).into_iter().flatten().map(String::as_str);
        if let Some(change) = demand.step(role, waiting, Instant::now(), cfg.idle_suppress_after) {
            revives += usize::from(change == Change::Revive);
            let (client, role, unwritten) = (client.clone(), role.clone(), unwritten.clone());
            work.push(Box::pin(async move {
                if !set_demand(&client, &role, change).await {
                    unwritten.lock().expect("unwritten demand lock").push(role);
                }
            }));
        }
    }
    let now = Instant::now();
    for (role, offers) in offers_by_role {
        let mut list = pending.remove(&role).unwrap_or_default();
        list.sort_by(|(a, _), (b, _)| {
            b.spec.production.cmp(&a.spec.production).then(b.spec.priority.cmp(&a.spec.priority)).then(
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
                    .then(a.metadata.name.cmp(&b.metadata.name)),
            )
        });
        let tasks: Vec<PendingTask> = list.into_iter().map(|(_, p)| p).collect();
        let mut plan = plan_launches(&offers, &tasks, &mut ctx);
        if !decline {
            // Tasks were just created that this pass does not see: the
            // offers may fit them next pass.
            plan.declines.clear();
        }
        if !plan.declines.is_empty() {
            demand.declined(&role, waiting_by_role.get(&role).into_iter().flatten().map(String::as_str));
        }
        let api = Api::<Task>::namespaced(client.clone(), &role);
        accepts += plan.accepts.len();
        declines += plan.declines.len();
        unplaced += plan.unplaced.len();
        for accept in plan.accepts {
            in_flight.offers.insert((role.clone(), accept.offer.clone()), now);
            for t in &accept.tasks {
                in_flight.tasks.insert((role.clone(), t.clone()), now);
            }
            let (api, refused, role) = (api.clone(), refused.clone(), role.clone());
            work.push(Box::pin(async move {
                let body = json!({
                    "framework": FRAMEWORK,
                    "operations": [{"type": "Launch", "taskNames": accept.tasks}],
                    "filters": {"refuseSeconds": 1},
                });
                let r: meseta_client::Result<Value> =
                    api_offers(&api).post_subresource(&accept.offer, "accept", &body).await;
                if let Err(e) = r {
                    tracing::debug!(offer = %accept.offer, error = %e, "accept refused; the tasks stay PENDING");
                    refused.lock().expect("refused accepts lock").push((role, accept.tasks));
                }
            }));
        }
        for offer in plan.declines {
            in_flight.offers.insert((role.clone(), offer.clone()), now);
            let api = api.clone();
            let refuse = cfg.decline_refuse_seconds;
            work.push(Box::pin(async move {
                let body = json!({"framework": FRAMEWORK, "filters": {"refuseSeconds": refuse}});
                let r: meseta_client::Result<Value> = api_offers(&api).post_subresource(&offer, "decline", &body).await;
                if let Err(e) = r {
                    tracing::debug!(%offer, error = %e, "decline refused");
                }
            }));
        }
    }
    tracing::debug!(pending = pending_count, offers = offer_count, accepts, declines, unplaced, revives, "placing");
    futures::stream::iter(work).buffer_unordered(cfg.concurrency.max(1)).collect::<Vec<()>>().await;
    // Decided again next pass, as after a restart.
    for role in unwritten.lock().expect("unwritten demand lock").drain(..) {
        demand.unknown(&role);
    }
    // Not bound: placed again next pass, not after the in-flight timeout.
    for (role, names) in refused.lock().expect("refused accepts lock").drain(..) {
        for name in names {
            in_flight.tasks.remove(&(role.clone(), name));
        }
    }
}

/// Writes a demand change on the role's built-in framework: a suppression,
/// or a revive (filters cleared, suppression lifted). Writes nothing when
/// the framework already is that way. False when it could not be written.
async fn set_demand(client: &Client, role: &str, change: Change) -> bool {
    let api = Api::<Framework>::namespaced(client.clone(), role);
    let fw = match api.get(FRAMEWORK).await {
        Ok(fw) => fw,
        Err(e) => {
            tracing::debug!(%role, error = %e, "cannot read the framework");
            return false;
        }
    };
    let patch = match change {
        Change::Suppress if fw.spec.suppressed => return true,
        Change::Suppress => json!({"spec": {"suppressed": true}}),
        Change::Revive if !fw.spec.suppressed && fw.status.as_ref().is_none_or(|s| s.filters.is_empty()) => {
            return true
        }
        Change::Revive => {
            json!({"spec": {"suppressed": false, "reviveGeneration": fw.spec.revive_generation.wrapping_add(1)}})
        }
    };
    match api.patch_merge(FRAMEWORK, &patch).await {
        Ok(_) => {
            tracing::debug!(%role, ?change, "offer demand changed");
            true
        }
        Err(e) => {
            tracing::debug!(%role, error = %e, "cannot change the offer demand");
            false
        }
    }
}

fn api_offers(tasks: &Api<Task>) -> Api<meseta_schemas::kinds::Offer> {
    Api::namespaced(tasks.client().clone(), tasks.namespace().unwrap_or_default())
}

/// Preempts for production tasks PENDING longer than the preemption delay.
pub(crate) async fn preempt(client: &Client, caches: &Caches, tasks: &[Arc<Task>], cfg: &JobsConfig) {
    if tasks.iter().any(|t| t.state() == TaskState::Preempting) {
        return; // one round at a time: wait for the last victims to go
    }
    let now = cfg.clock.now();
    let delay = chrono::Duration::from_std(cfg.preemption_delay).unwrap_or_default();
    let Some(waiting) = tasks
        .iter()
        .filter(|t| t.spec.production && waits_for_offer(t))
        .filter(|t| entered_state_at(t).is_some_and(|e| now - e >= delay))
        .max_by_key(|t| t.spec.priority)
    else {
        return;
    };
    let attrs = attributes_of(caches);
    let mut rooms: HashMap<String, AgentRoom> = HashMap::new();
    for a in caches.agents.list() {
        let ready =
            a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready || a.spec.unschedulable {
            continue;
        }
        rooms.insert(
            a.metadata.name.clone(),
            AgentRoom {
                name: a.metadata.name.clone(),
                attributes: attrs.get(&a.metadata.name).cloned().unwrap_or_default(),
                free: a.spec.resources.clone(),
                tasks: Vec::new(),
            },
        );
    }
    for t in tasks.iter().filter(|t| t.state().holds_resources()) {
        let Some(room) = t.spec.agent.as_deref().and_then(|a| rooms.get_mut(a)) else { continue };
        room.free = room.free.saturating_sub(&t.spec.resources);
        if t.state() == TaskState::Running || t.state() == TaskState::Starting || t.state() == TaskState::Assigned {
            room.tasks.push(Candidate {
                namespace: t.metadata.namespace.clone().unwrap_or_default(),
                name: t.metadata.name.clone(),
                resources: t.spec.resources.clone(),
                priority: t.spec.priority,
                production: t.spec.production,
            });
        }
    }
    let jobs = jobs_by_key(caches);
    let (group, constraints) = group_of(waiting, &jobs);
    let mut ctx = ConstraintContext::new();
    for t in tasks.iter().filter(|t| t.state().holds_resources()) {
        let (g, c) = group_of(t, &jobs);
        if g == group {
            if let Some(a) = t.spec.agent.as_deref().and_then(|a| attrs.get(a)) {
                ctx.record(&g, &c, a);
            }
        }
    }
    let rooms: Vec<AgentRoom> = rooms.into_values().collect();
    let Some((agent, victims)) = choose_victims(&waiting.spec.resources, waiting.spec.priority, &rooms, |a| {
        ctx.admits(&group, &constraints, a).is_ok()
    }) else {
        return;
    };
    tracing::info!(task = %waiting.metadata.name, %agent, victims = victims.len(), "preempting for a production task");
    let msg = format!("preempted for production task {}", waiting.metadata.name);
    for v in victims {
        let api = Api::<Task>::namespaced(client.clone(), &v.namespace);
        let Some(t) = caches.tasks.get(Some(&v.namespace), &v.name) else { continue };
        let _ = transition_task(&api, &t, &[TaskState::Preempting], &msg, now, |t| {
            matches!(t.state(), TaskState::Assigned | TaskState::Starting | TaskState::Running)
        })
        .await;
    }
}
