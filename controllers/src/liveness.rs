//! The agent liveness controller: agents whose heartbeat `Lease` expired.
//!
//! Owns the agent's `Ready` condition while it is `Unreachable`, rescinding
//! the offers of unreachable agents, and declaring their tasks LOST (or
//! PARTITIONED for partition-aware frameworks). It must not replace tasks
//! (the jobs controller does) nor touch agents whose lease is fresh beyond
//! clearing its own `Unreachable` mark.
//!
//! # Rules
//! - Lease `meseta-system/agent-<name>` expired (`renewTime +
//!   leaseDurationSeconds < now`; no lease at all counts from the agent's
//!   creation) → condition `Ready=False`, reason `Unreachable`; its offers are
//!   deleted; each of its non-terminal tasks is marked `spec.killRequested`
//!   and then goes LOST (PARTITIONED, without the kill mark, when its
//!   framework is partition-aware).
//! - The kill mark is the reconciliation rule: when the agent comes back it
//!   still runs the container of a task that was declared LOST and replaced;
//!   agentd kills every container whose task asks for a kill, so the errant
//!   duplicate dies. The LOST object is kept (history) until collected.
//! - Lease fresh again and the agent marked `Unreachable` → `Ready=True`
//!   (reason `LeaseRenewed`), so the allocator offers it again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use meseta_client::{Api, Client, DeleteParams, WatchParams};
use meseta_schemas::kinds::{Agent, Condition, Framework, FrameworkCapability, Lease, Offer, Task, TaskState};
use meseta_schemas::Time;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::tasks::{cache, transition_task};

/// Namespace of agent heartbeat leases.
pub const LEASE_NAMESPACE: &str = "meseta-system";
/// Reason of the `Ready=False` condition this controller sets.
pub const UNREACHABLE: &str = "Unreachable";

/// Settings of the liveness controller.
#[derive(Debug, Clone)]
pub struct LivenessConfig {
    /// Lease duration assumed when a lease names none. Default 15 s.
    pub default_lease_duration: Duration,
    /// How often everything is looked at even without a change. Default 1 s.
    pub resync: Duration,
    /// Where "now" comes from.
    pub clock: Clock,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            default_lease_duration: Duration::from_secs(15),
            resync: Duration::from_secs(1),
            clock: Clock::system(),
        }
    }
}

/// One thing the liveness controller does.
#[derive(Debug, Clone, PartialEq)]
pub enum LivenessAction {
    /// Set `Ready=False` reason `Unreachable` on the agent.
    MarkUnreachable(String),
    /// Set `Ready=True` on an agent this controller had marked unreachable.
    MarkReachable(String),
    /// The task (namespace, name) on an unreachable agent goes LOST (or PARTITIONED).
    LoseTask {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// PARTITIONED instead of LOST.
        partitioned: bool,
    },
    /// Delete the offer (namespace, name) of an unreachable agent.
    Rescind(String, String),
}

fn ready(agent: &Agent) -> Option<&Condition> {
    agent.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

/// Whether the agent's lease has expired at `now`.
pub fn lease_expired(agent: &Agent, lease: Option<&Lease>, now: Time, default_duration: Duration) -> bool {
    let duration = lease
        .and_then(|l| l.spec.lease_duration_seconds)
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(default_duration);
    let since = lease.and_then(|l| l.spec.renew_time.or(l.spec.acquire_time)).or(agent.metadata.creation_timestamp);
    match since {
        Some(t) => now - t > chrono::Duration::from_std(duration).unwrap_or_default(),
        None => false,
    }
}

/// The liveness decisions for a snapshot; see the module docs.
pub fn plan(
    agents: &[Arc<Agent>],
    leases: &HashMap<String, Arc<Lease>>,
    tasks: &[Arc<Task>],
    offers: &[Arc<Offer>],
    partition_aware: &HashSet<(String, String)>,
    now: Time,
    default_duration: Duration,
) -> Vec<LivenessAction> {
    let mut actions = Vec::new();
    let mut lost = HashSet::new();
    for agent in agents {
        let name = agent.metadata.name.as_str();
        let lease = leases.get(&format!("agent-{name}")).map(|l| l.as_ref());
        let marked = ready(agent).is_some_and(|c| c.status == "False" && c.reason == UNREACHABLE);
        if lease_expired(agent, lease, now, default_duration) {
            if !marked {
                actions.push(LivenessAction::MarkUnreachable(name.to_string()));
            }
            lost.insert(name.to_string());
        } else if marked {
            actions.push(LivenessAction::MarkReachable(name.to_string()));
        }
    }
    for t in tasks {
        let Some(agent) = t.spec.agent.as_deref() else { continue };
        let state = t.state();
        if !lost.contains(agent) || state.is_terminal() || state == TaskState::Partitioned {
            continue;
        }
        let ns = t.metadata.namespace.clone().unwrap_or_default();
        let fw = t.spec.framework.clone().unwrap_or_else(|| "meseta".into());
        let partitioned = partition_aware.contains(&(ns.clone(), fw));
        actions.push(LivenessAction::LoseTask { namespace: ns, name: t.metadata.name.clone(), partitioned });
    }
    for o in offers {
        if lost.contains(&o.spec.agent) {
            actions.push(LivenessAction::Rescind(
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone(),
            ));
        }
    }
    actions
}

/// Runs the liveness controller until `cancel`.
pub async fn run(client: Client, config: LivenessConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let wp = WatchParams::default;
    let agents = cache::spawn_cache(Api::<Agent>::all(client.clone()), wp(), changed.clone(), cancel.clone());
    let leases = cache::spawn_cache(
        Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
        wp(),
        changed.clone(),
        cancel.clone(),
    );
    let tasks = cache::spawn_cache(Api::<Task>::all(client.clone()), wp(), changed.clone(), cancel.clone());
    let offers = cache::spawn_cache(Api::<Offer>::all(client.clone()), wp(), changed.clone(), cancel.clone());
    let frameworks = cache::spawn_cache(Api::<Framework>::all(client.clone()), wp(), changed.clone(), cancel.clone());
    while cache::wait_tick(&changed, config.resync, Duration::from_millis(20), &cancel).await {
        if ![agents.is_ready(), leases.is_ready(), tasks.is_ready(), offers.is_ready(), frameworks.is_ready()]
            .iter()
            .all(|r| *r)
        {
            continue;
        }
        let lease_map: HashMap<String, Arc<Lease>> =
            leases.list().into_iter().map(|l| (l.metadata.name.clone(), l)).collect();
        let aware: HashSet<(String, String)> = frameworks
            .list()
            .iter()
            .filter(|f| f.spec.capabilities.contains(&FrameworkCapability::PartitionAware))
            .map(|f| (f.metadata.namespace.clone().unwrap_or_default(), f.metadata.name.clone()))
            .collect();
        let now = config.clock.now();
        let actions =
            plan(&agents.list(), &lease_map, &tasks.list(), &offers.list(), &aware, now, config.default_lease_duration);
        let writes = actions.into_iter().map(|a| apply(&client, &tasks, a, now));
        futures::future::join_all(writes).await;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::LeaseSpec;

    use super::*;

    fn at(s: i64) -> Time {
        chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn agent(name: &str, unreachable: bool) -> Arc<Agent> {
        let mut a = Agent::default();
        a.metadata.name = name.into();
        a.metadata.creation_timestamp = Some(at(0));
        if unreachable {
            a.status = Some(Default::default());
            a.status.as_mut().unwrap().conditions.push(Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: UNREACHABLE.into(),
                ..Default::default()
            });
        }
        Arc::new(a)
    }

    fn lease(agent: &str, renewed: i64) -> (String, Arc<Lease>) {
        let mut l = Lease::default();
        l.metadata.name = format!("agent-{agent}");
        l.spec = LeaseSpec { renew_time: Some(at(renewed)), lease_duration_seconds: Some(15), ..Default::default() };
        (l.metadata.name.clone(), Arc::new(l))
    }

    fn task(name: &str, agent: &str, state: TaskState, fw: Option<&str>) -> Arc<Task> {
        let mut t = Task::default();
        t.metadata.name = name.into();
        t.metadata.namespace = Some("r".into());
        t.spec.agent = Some(agent.into());
        t.spec.framework = fw.map(str::to_string);
        t.status = Some(meseta_schemas::kinds::TaskStatus { state, ..Default::default() });
        Arc::new(t)
    }

    #[test]
    fn expired_lease_loses_tasks_rescinds_offers_and_a_fresh_one_restores() {
        let agents = vec![agent("a1", false), agent("a2", true), agent("a3", false)];
        let leases: HashMap<_, _> = [lease("a1", 0), lease("a2", 95), lease("a3", 90)].into();
        let tasks = vec![
            task("t1", "a1", TaskState::Running, None),
            task("t2", "a1", TaskState::Finished, None),
            task("t3", "a1", TaskState::Starting, Some("pa")),
            task("t4", "a3", TaskState::Running, None),
        ];
        let mut o = Offer::default();
        o.metadata.name = "o1".into();
        o.metadata.namespace = Some("r".into());
        o.spec.agent = "a1".into();
        let aware: HashSet<_> = [("r".to_string(), "pa".to_string())].into();
        let actions = plan(&agents, &leases, &tasks, &[Arc::new(o)], &aware, at(100), Duration::from_secs(15));
        assert_eq!(
            actions,
            vec![
                LivenessAction::MarkUnreachable("a1".into()),
                LivenessAction::MarkReachable("a2".into()),
                LivenessAction::LoseTask { namespace: "r".into(), name: "t1".into(), partitioned: false },
                LivenessAction::LoseTask { namespace: "r".into(), name: "t3".into(), partitioned: true },
                LivenessAction::Rescind("r".into(), "o1".into()),
            ]
        );
    }

    #[test]
    fn an_agent_without_a_lease_counts_from_its_creation() {
        let a = agent("a", false);
        assert!(!lease_expired(&a, None, at(10), Duration::from_secs(15)));
        assert!(lease_expired(&a, None, at(16), Duration::from_secs(15)));
    }
}
