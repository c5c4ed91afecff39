//! The jobs controller's placement: PENDING tasks, and new tasks not yet
//! created, on the built-in framework's offers (accepts and declines) and
//! the offer demand (suppress / revive) per role.
//!
//! A new task placed on an offer is created by the accept itself (a
//! `Launch` of the task object): one write where a create and a placement
//! were two, and the task goes from PENDING to ASSIGNED in that write. When
//! the accept is refused, the new task is created PENDING instead.
//!
//! Owns turning launch plans into API calls, tolerating a stale cache (uses
//! of consumed offers are expected; their tasks are placed again). It must
//! not decide anything the pure planners decide.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Framework, Task};
use serde::de::IgnoredAny;
use serde_json::json;
use tokio::time::Instant;

use super::apply::{attributes_of, group_of, jobs_by_key};
use super::constraints::{AgentAttributes, ConstraintContext};
use super::demand::Change;
use super::plan::{plan_launches, OfferView, PendingTask};
use super::reconcile::{create_fresh, Fresh};
use super::{waits_for_offer, Caches, JobsConfig, Memory, FRAMEWORK};

/// A role and names of its tasks.
type RoleTasks = (String, Vec<String>);

/// Offers that expire sooner than this are left alone: an accept could reach
/// the apiserver after the expiry and be refused, and its tasks would wait
/// a pass longer. The allocator offers the agent again once it expired.
const EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Which tasks go first: production, then higher priority, then the
/// PENDING tasks before new ones, then the oldest, then by name.
type Order = (bool, i32, bool, Option<meseta_schemas::Time>);

/// The body of an accept that launches PENDING tasks by name and new tasks
/// as objects, serialized straight from them: a `json!` tree copied every
/// new task's fields first, and dropped them after.
#[derive(Debug, serde::Serialize)]
struct AcceptBody<'a> {
    framework: &'static str,
    operations: Vec<Launch<'a>>,
    filters: AcceptFilters,
}

/// One `Launch` operation: names or objects, whichever it has.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Launch<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    task_names: &'a [String],
    #[serde(skip_serializing_if = "<[Task]>::is_empty")]
    tasks: &'a [Task],
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AcceptFilters {
    refuse_seconds: u32,
}

impl<'a> AcceptBody<'a> {
    /// Launches `named` (PENDING tasks) and `new` (task objects); an empty
    /// list makes no operation. What is left of the offer is refused for a
    /// second.
    fn launching(named: &'a [String], new: &'a [Task]) -> Self {
        let mut operations = Vec::new();
        if !named.is_empty() {
            operations.push(Launch { kind: "Launch", task_names: named, tasks: &[] });
        }
        if !new.is_empty() {
            operations.push(Launch { kind: "Launch", task_names: &[], tasks: new });
        }
        AcceptBody { framework: FRAMEWORK, operations, filters: AcceptFilters { refuse_seconds: 1 } }
    }
}

fn order(t: &Task, fresh: bool) -> Order {
    (t.spec.production, t.spec.priority, fresh, t.metadata.creation_timestamp)
}

/// Places PENDING tasks and the `fresh` tasks (new, not yet created) on
/// the built-in framework's offers, per role; the fresh tasks it launches
/// leave `fresh`. Returns how long the planning took (the writes not
/// counted).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn place(
    client: &Client,
    caches: &Caches,
    tasks: &[Arc<Task>],
    cfg: &JobsConfig,
    memory: &mut Memory,
    roles: &HashSet<String>,
    decline: bool,
    fresh: &mut Vec<Fresh>,
) -> Duration {
    let started = Instant::now();
    let Memory { in_flight, demand } = memory;
    let attrs = attributes_of(caches);
    let jobs = jobs_by_key(caches);
    let mut ctx = ConstraintContext::new();
    let mut pending: BTreeMap<String, Vec<(Order, PendingTask)>> = BTreeMap::new();
    // Every task waiting for an offer, its accept in flight or not.
    let mut waiting_by_role: HashMap<String, Vec<String>> = HashMap::new();
    // How many tasks each agent holds, of any framework.
    let mut load: HashMap<&str, usize> = HashMap::new();
    // Only jobs with constraints need their placed instances counted; most
    // have none, and the placed tasks are most of the tasks.
    let constrained = jobs.values().any(|j| !j.spec.constraints.is_empty());
    for t in tasks {
        if t.state().holds_resources() {
            if let Some(agent) = t.spec.agent.as_deref() {
                *load.entry(agent).or_default() += 1;
                if let (true, Some(a)) = (constrained, attrs.get(agent)) {
                    let (group, constraints) = group_of(t, &jobs);
                    ctx.record(&group, &constraints, a);
                }
            }
            continue;
        }
        if !waits_for_offer(t) {
            continue;
        }
        let ns = t.metadata.namespace.clone().unwrap_or_default();
        waiting_by_role.entry(ns.clone()).or_default().push(t.metadata.name.clone());
        if in_flight.tasks.contains_key(&(ns.clone(), t.metadata.name.clone())) {
            continue;
        }
        pending.entry(ns).or_default().push((order(t, false), pending_task(t, &jobs)));
    }
    // The fresh tasks, in the order planned, and where each is by role and
    // name until an accept takes it.
    let mut fresh_tasks: Vec<Option<Fresh>> = fresh.drain(..).map(Some).collect();
    let mut fresh_at: HashMap<(String, String), usize> = HashMap::with_capacity(fresh_tasks.len());
    for (i, f) in fresh_tasks.iter().flatten().enumerate() {
        waiting_by_role.entry(f.role.clone()).or_default().push(f.task.metadata.name.clone());
        pending.entry(f.role.clone()).or_default().push((order(&f.task, true), pending_task(&f.task, &jobs)));
        fresh_at.insert((f.role.clone(), f.task.metadata.name.clone()), i);
    }
    let mut offers_by_role: BTreeMap<String, Vec<OfferView>> = BTreeMap::new();
    // The apiserver judges expiry on its own clock, not on `cfg.clock`.
    let expiring = chrono::Utc::now() + EXPIRY_MARGIN;
    for o in caches.offers.list() {
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        if o.spec.framework != FRAMEWORK
            || o.spec.expires_at.is_some_and(|at| at <= expiring)
            || in_flight.offers.contains_key(&(ns.clone(), o.metadata.name.clone()))
        {
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
            load: load.get(o.spec.agent.as_str()).copied().unwrap_or(0),
        });
    }
    let mut work: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let (mut accepts, mut placed, mut declines, mut revives, mut unplaced, mut launched) = (0, 0, 0, 0, 0, 0);
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
        list.sort_by(|(a, pa), (b, pb)| {
            (b.0.cmp(&a.0)).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)).then(pa.name.cmp(&pb.name))
        });
        let tasks: Vec<PendingTask> = list.into_iter().map(|(_, p)| p).collect();
        let mut plan = plan_launches(&offers, &tasks, &mut ctx, cfg.tasks_per_offer);
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
        placed += plan.accepts.iter().map(|a| a.tasks.len()).sum::<usize>();
        declines += plan.declines.len();
        unplaced += plan.unplaced.len();
        for accept in plan.accepts {
            in_flight.offers.insert((role.clone(), accept.offer.clone()), now);
            let (mut named, mut new) = (Vec::new(), Vec::new());
            for t in accept.tasks {
                let key = (role.clone(), t);
                match fresh_at.remove(&key).and_then(|i| fresh_tasks[i].take()) {
                    Some(f) => new.push(f.task),
                    None => named.push(key.1.clone()),
                }
                in_flight.tasks.insert(key, now);
            }
            launched += new.len();
            let (api, refused, role) = (api.clone(), refused.clone(), role.clone());
            work.push(Box::pin(async move {
                let body = AcceptBody::launching(&named, &new);
                // The answer (the bound tasks) is not needed: asked for minimal.
                let r = api_offers(&api).post_subresource_minimal(&accept.offer, "accept", &body).await;
                if let Err(e) = r {
                    tracing::debug!(
                        offer = %accept.offer,
                        error = %e,
                        "accept refused; its PENDING tasks stay so and its new tasks are created PENDING"
                    );
                    for t in &new {
                        create_fresh(&api, t).await;
                    }
                    // Not bound: placed again next pass, created or not.
                    named.extend(new.into_iter().map(|t| t.metadata.name));
                    refused.lock().expect("refused accepts lock").push((role, named));
                }
            }));
        }
        for offer in plan.declines {
            in_flight.offers.insert((role.clone(), offer.clone()), now);
            let api = api.clone();
            let refuse = cfg.decline_refuse_seconds;
            work.push(Box::pin(async move {
                let body = json!({"framework": FRAMEWORK, "filters": {"refuseSeconds": refuse}});
                let r: meseta_client::Result<IgnoredAny> =
                    api_offers(&api).post_subresource(&offer, "decline", &body).await;
                if let Err(e) = r {
                    tracing::debug!(%offer, error = %e, "decline refused");
                }
            }));
        }
    }
    tracing::debug!(
        pending = pending_count,
        offers = offer_count,
        accepts,
        placed,
        launched,
        declines,
        unplaced,
        revives,
        "placing"
    );
    // The fresh tasks no accept took, in the order planned: the caller
    // creates them.
    fresh.extend(fresh_tasks.into_iter().flatten());
    let planning = started.elapsed();
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
    planning
}

/// What the launch planner needs of a task.
fn pending_task(t: &Task, jobs: &HashMap<(String, String), Arc<meseta_schemas::kinds::Job>>) -> PendingTask {
    let (group, constraints) = group_of(t, jobs);
    PendingTask {
        name: t.metadata.name.clone(),
        group,
        resources: t.spec.resources.clone(),
        ports: t.spec.ports.iter().map(|p| p.port).collect(),
        constraints,
        revocable: t.spec.revocable,
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

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::TaskSpec;
    use serde_json::json;

    use super::*;

    #[test]
    fn an_accept_body_names_pending_tasks_and_carries_new_ones_whole() {
        let new = vec![Task::new("web-1-0", TaskSpec { command: Some("sleep 1".into()), ..Default::default() })];
        let named = vec!["web-0-0".to_string()];
        let body = serde_json::to_value(AcceptBody::launching(&named, &new)).unwrap();
        assert_eq!(
            body,
            json!({
                "framework": FRAMEWORK,
                "operations": [
                    {"type": "Launch", "taskNames": ["web-0-0"]},
                    {"type": "Launch", "tasks": [serde_json::to_value(&new[0]).unwrap()]},
                ],
                "filters": {"refuseSeconds": 1},
            })
        );
        let only_new = serde_json::to_value(AcceptBody::launching(&[], &new)).unwrap();
        assert_eq!(only_new["operations"].as_array().map(Vec::len), Some(1));
        assert_eq!(only_new["operations"][0]["tasks"][0]["metadata"]["name"], "web-1-0");
        let only_named = serde_json::to_value(AcceptBody::launching(&named, &[])).unwrap();
        assert_eq!(only_named["operations"], json!([{"type": "Launch", "taskNames": ["web-0-0"]}]));
    }
}
