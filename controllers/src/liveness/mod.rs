//! The agent liveness controller: agents whose heartbeat `Lease` went silent.
//!
//! Owns the agent's `Ready` condition while it is `Unreachable`, rescinding
//! the offers of unreachable agents, and declaring their tasks LOST (or
//! PARTITIONED for partition-aware frameworks). It must not replace tasks
//! (the jobs controller does) nor touch agents whose lease is fresh beyond
//! clearing its own `Unreachable` mark. The decisions are in [`plan`]
//! (pure; its docs state the rules); this module reads the caches and writes.
//!
//! # Reconciliation
//! Declaring a task LOST also marks it `spec.killRequested`: when the agent
//! comes back it still runs the container of a task that was declared LOST
//! and replaced; agentd kills every container whose task asks for a kill, so
//! the errant duplicate dies. The LOST object is kept (history) until
//! collected.

mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meseta_client::watcher::Event;
use meseta_client::{Api, Client, DeleteParams, WatchParams};
use meseta_schemas::kinds::{Agent, Condition, FrameworkCapability, Lease, Offer, Task, TaskState};
use meseta_schemas::Time;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::plan::{
    plan, plan_agents, plan_lost_tasks, plan_rescinds, AgentsVerdict, Limits, LivenessAction, Memory, Snapshot,
    UNREACHABLE,
};
use crate::clock::Clock;
use crate::tasks::{cache, transition_task};
use crate::watches::Watches;

/// Namespace of agent heartbeat leases.
pub const LEASE_NAMESPACE: &str = "meseta-system";

/// How long a burst of changes is coalesced before a pass.
const SETTLE: Duration = Duration::from_millis(20);

/// Settings of the liveness controller.
#[derive(Debug, Clone)]
pub struct LivenessConfig {
    /// Lease duration assumed when a lease names none. Default 15 s.
    pub default_lease_duration: Duration,
    /// Unreachable agents whose tasks may be declared lost per second, one
    /// at a time (Kubernetes' node eviction rate). Default 0.1: one agent
    /// every 10 s. `f64::INFINITY` for no limit.
    pub lost_agents_per_second: f64,
    /// When more than this fraction of the agents (and more than one) is
    /// unreachable, no task is declared lost. Default 0.55 (Kubernetes'
    /// unhealthy zone threshold).
    pub max_unreachable_fraction: f64,
    /// How often every lease, offer and task is looked at (only agent
    /// changes wake a pass sooner). Default 1 s.
    pub resync: Duration,
    /// Where "now" comes from.
    pub clock: Clock,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            default_lease_duration: Duration::from_secs(15),
            lost_agents_per_second: 0.1,
            max_unreachable_fraction: 0.55,
            resync: Duration::from_secs(1),
            clock: Clock::system(),
        }
    }
}

impl LivenessConfig {
    fn limits(&self) -> Limits {
        Limits {
            default_duration: self.default_lease_duration,
            lost_agents_per_second: self.lost_agents_per_second,
            max_unreachable_fraction: self.max_unreachable_fraction,
        }
    }
}

/// Runs the liveness controller until `cancel`.
pub async fn run(client: Client, config: LivenessConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let watches = Watches::new(client.clone(), cancel.clone());
    run_shared(client, config, &watches, cancel).await
}

/// [`run`], with the Task cache of `watches`.
pub async fn run_shared(
    client: Client,
    config: LivenessConfig,
    watches: &Watches,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Only agent changes (one registers, leaves, or is edited) wake this
    // loop; everything else is looked at by the pass every `resync`, as
    // Kubernetes' node lifecycle controller checks leases every monitor
    // period. A renewal can only make an agent fresher, so it need not wake
    // a pass: its observation is at most one `resync` late, against a
    // lease of seconds. Waking on every renewal and offer change made a
    // pass over every agent run hundreds of times a second on a busy
    // cluster.
    let changed = Arc::new(Notify::new());
    let quiet = || Arc::new(Notify::new());
    let wp = WatchParams::default;
    let agents = watches.agents(changed.clone());
    // The agents' leases by name, kept up to date from the lease watch's
    // events, so a pass looks each up without building a map of them all.
    let lease_map: Arc<Mutex<HashMap<String, Arc<Lease>>>> = Arc::default();
    let leases = cache::spawn_cache_observing(
        Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
        wp(),
        quiet(),
        cancel.clone(),
        track_leases(lease_map.clone()),
    );
    let tasks = watches.tasks(quiet(), |_| {});
    let offers = cache::spawn_cache(Api::<Offer>::all(client.clone()), wp(), quiet(), cancel.clone());
    let frameworks = watches.frameworks(quiet());
    let mut memory = Memory::default();
    // Passes look at every agent: with many agents they are paced by their cost.
    let mut busy = Duration::ZERO;
    while cache::wait_tick(&changed, config.resync, cache::paced_settle(SETTLE, busy), &cancel).await {
        if ![agents.is_ready(), leases.is_ready(), tasks.is_ready(), offers.is_ready(), frameworks.is_ready()]
            .iter()
            .all(|r| *r)
        {
            continue;
        }
        let started = std::time::Instant::now();
        let now = config.clock.now();
        let was_disrupted = memory.disrupted;
        let agent_list = agents.list();
        let verdict = {
            let lease_map = lease_map.lock().expect("lease map lock");
            plan_agents(&mut memory, &agent_list, &lease_map, now, config.limits())
        };
        let mut actions = verdict.actions;
        // Tasks, frameworks and offers matter only while an agent is
        // unreachable: most passes look at none of them.
        if memory.loses_tasks() {
            let aware: HashSet<(String, String)> = frameworks
                .list()
                .iter()
                .filter(|f| f.spec.capabilities.contains(&FrameworkCapability::PartitionAware))
                .map(|f| (f.metadata.namespace.clone().unwrap_or_default(), f.metadata.name.clone()))
                .collect();
            actions.extend(plan_lost_tasks(&memory, &tasks.list(), &aware));
        }
        if !verdict.unreachable.is_empty() {
            actions.extend(plan_rescinds(&verdict.unreachable, &offers.list()));
        }
        busy = started.elapsed();
        if memory.disrupted != was_disrupted {
            if memory.disrupted {
                tracing::warn!(
                    "more than {:.0} % of the agents are unreachable: suspecting the control plane's view, \
                     no task is declared lost until most agents renew their leases again",
                    config.max_unreachable_fraction * 100.0
                );
            } else {
                tracing::info!("most agents renew their leases again: unreachable agents' tasks may be declared lost");
            }
        }
        let writes = actions.into_iter().map(|a| apply(&client, &tasks, a, now));
        futures::future::join_all(writes).await;
    }
    Ok(())
}

/// The lease watch's observer that keeps `map` (leases by name) equal to
/// the lease cache.
fn track_leases(map: Arc<Mutex<HashMap<String, Arc<Lease>>>>) -> impl FnMut(&Event<Lease>) + Send + 'static {
    move |event| {
        let mut map = map.lock().expect("lease map lock");
        match event {
            Event::Applied(l) => {
                map.insert(l.metadata.name.clone(), Arc::new(l.clone()));
            }
            Event::Deleted(l) => {
                map.remove(&l.metadata.name);
            }
            Event::Restarted(all) => {
                *map = all.iter().map(|l| (l.metadata.name.clone(), Arc::new(l.clone()))).collect();
            }
        }
    }
}

async fn set_ready(
    client: &Client,
    agent: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Time,
) -> meseta_client::Result<()> {
    let api = Api::<Agent>::all(client.clone());
    let Some(mut current) = api.get_opt(agent).await? else { return Ok(()) };
    let mut st = current.status.clone().unwrap_or_default();
    st.conditions.retain(|c| c.type_ != "Ready");
    st.conditions.push(Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Some(now),
        observed_generation: None,
    });
    current.status = Some(st);
    api.replace_status(&current).await.map(|_| ())
}

#[tracing::instrument(level = "debug", skip(client, tasks))]
async fn apply(client: &Client, tasks: &meseta_client::reflector::Store<Task>, action: LivenessAction, now: Time) {
    let result = match &action {
        LivenessAction::MarkUnreachable(agent) => {
            tracing::info!(%agent, "agent lease expired: unreachable");
            set_ready(client, agent, "False", UNREACHABLE, "the agent's lease expired", now).await
        }
        LivenessAction::MarkReachable(agent) => {
            tracing::info!(%agent, "agent lease renewed: reachable again");
            set_ready(client, agent, "True", "LeaseRenewed", "the agent renews its lease again", now).await
        }
        LivenessAction::Rescind(ns, name) => {
            match Api::<Offer>::namespaced(client.clone(), ns).delete(name, &DeleteParams::default()).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        }
        LivenessAction::LoseTask { namespace, name, partitioned } => {
            lose_task(client, tasks, namespace, name, *partitioned, now).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(?action, error = %e, "liveness action failed; retrying next round");
    }
}

async fn lose_task(
    client: &Client,
    tasks: &meseta_client::reflector::Store<Task>,
    ns: &str,
    name: &str,
    partitioned: bool,
    now: Time,
) -> meseta_client::Result<()> {
    let api = Api::<Task>::namespaced(client.clone(), ns);
    let Some(mut task) = tasks.get(Some(ns), name).map(|t| (*t).clone()) else { return Ok(()) };
    let agent = task.spec.agent.clone().unwrap_or_default();
    if !partitioned && !task.spec.kill_requested {
        match api.patch_merge(name, &json!({"spec": {"killRequested": true}})).await {
            Ok(t) => task = t,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let (to, msg) = if partitioned {
        (TaskState::Partitioned, format!("agent {agent} is unreachable"))
    } else {
        (TaskState::Lost, format!("agent {agent} is unreachable; the task is presumed lost"))
    };
    let still = |t: &Task| !t.state().is_terminal() && t.state() != TaskState::Partitioned;
    transition_task(&api, &task, &[to], &msg, now, still).await.map(|_| ())
}
