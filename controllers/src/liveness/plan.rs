//! The liveness decisions: which agents are unreachable, and which of their
//! tasks are declared lost now. Pure: a snapshot, the controller's
//! [`Memory`] and "now" in, actions out. It must not do I/O.
//!
//! # Rules
//! - **Expiry by observation** (Kubernetes' node lifecycle rule): an agent's
//!   lease is judged by when *this controller* saw its renewal change, not by
//!   the `renewTime` the agent wrote. It is expired when no change was seen
//!   for `leaseDurationSeconds`. A lagging watch or a skewed agent clock then
//!   never makes a live agent look dead; after a controller restart every
//!   agent gets one full lease duration. An agent without a lease counts
//!   from when it was first seen.
//! - Expired → `Ready=False` reason `Unreachable` and its offers rescinded at
//!   once; fresh again → `Ready=True`.
//! - **Declaring tasks lost is rate-limited** (Kubernetes'
//!   `--node-eviction-rate`, Mesos' `--agent_removal_rate_limit`): a token
//!   bucket admits `lost_agents_per_second` unreachable agents (burst one),
//!   longest-silent first. Once admitted, every non-terminal task of the
//!   agent goes LOST (PARTITIONED for partition-aware frameworks) until the
//!   agent is reachable again.
//! - **Disruption**: when more than `max_unreachable_fraction` of the agents
//!   (and more than one) are unreachable at once, the likelier fault is the
//!   control plane's own view, so no task is declared lost until that ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use meseta_schemas::kinds::{Agent, Condition, Lease, Offer, Task, TaskState};
use meseta_schemas::Time;

/// Reason of the `Ready=False` condition this controller sets.
pub const UNREACHABLE: &str = "Unreachable";

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

/// The limits on declaring tasks lost; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Lease duration assumed when a lease names none.
    pub default_duration: Duration,
    /// Unreachable agents whose tasks may be declared lost per second
    /// (burst one); `f64::INFINITY` for no limit.
    pub lost_agents_per_second: f64,
    /// Above this fraction of unreachable agents no task is declared lost.
    pub max_unreachable_fraction: f64,
}

/// What one agent's lease looked like when last seen.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The lease's renewal (renewTime, else acquireTime) as last seen.
    renewal: Option<Time>,
    /// When this controller first saw that renewal.
    at: Time,
    /// The round that last saw the agent (to forget agents that are gone).
    round: u64,
}

/// What the controller remembers between rounds.
#[derive(Debug, Default)]
pub struct Memory {
    seen: HashMap<String, Seen>,
    /// Unreachable agents admitted to having their tasks declared lost.
    admitted: HashSet<String>,
    /// Tokens of the admission bucket, and when it was last filled.
    tokens: f64,
    filled_at: Option<Time>,
    /// Whether the last round was in disruption (to log the change once).
    pub disrupted: bool,
    /// Rounds planned so far.
    round: u64,
}

/// The lease of agent `name` (`agent-<name>`), looked up through `key`, a
/// buffer reused so that no name is allocated per agent and round.
fn lease_of<'l>(leases: &'l HashMap<String, Arc<Lease>>, key: &mut String, name: &str) -> Option<&'l Lease> {
    key.clear();
    key.push_str("agent-");
    key.push_str(name);
    leases.get(key.as_str()).map(|l| l.as_ref())
}

impl Memory {
    /// Records what the leases say now: when each agent's renewal was last
    /// seen to change. Forgets agents that are gone.
    fn observe(&mut self, agents: &[Arc<Agent>], leases: &HashMap<String, Arc<Lease>>, now: Time) {
        self.round = self.round.wrapping_add(1);
        let round = self.round;
        let mut key = String::new();
        for agent in agents {
            let name = agent.metadata.name.as_str();
            let renewal = lease_of(leases, &mut key, name).and_then(|l| l.spec.renew_time.or(l.spec.acquire_time));
            match self.seen.get_mut(name) {
                Some(s) if s.renewal == renewal => s.round = round,
                Some(s) => *s = Seen { renewal, at: now, round },
                None => {
                    self.seen.insert(name.to_string(), Seen { renewal, at: now, round });
                }
            }
        }
        // Only agents of this round are left, so `seen` names the present ones.
        self.seen.retain(|_, s| s.round == round);
        let seen = &self.seen;
        self.admitted.retain(|name| seen.contains_key(name));
    }

    /// Whether the last round admitted agents whose tasks are to be declared
    /// lost (and is not in disruption): only then are tasks looked at.
    pub fn loses_tasks(&self) -> bool {
        !self.disrupted && !self.admitted.is_empty()
    }

    /// Tops the bucket up to `now` (burst one).
    fn fill(&mut self, now: Time, rate: f64) {
        let elapsed = match self.filled_at {
            Some(t) => (now - t).to_std().unwrap_or_default().as_secs_f64(),
            None => f64::INFINITY,
        };
        self.tokens = (self.tokens + elapsed * rate).min(1.0);
        if self.tokens.is_nan() {
            self.tokens = 1.0;
        }
        self.filled_at = Some(now);
    }
}

fn ready(agent: &Agent) -> Option<&Condition> {
    agent.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

fn duration_of(lease: Option<&Lease>, default: Duration) -> chrono::Duration {
    let d = lease.and_then(|l| l.spec.lease_duration_seconds).map(|s| Duration::from_secs(s.into())).unwrap_or(default);
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What the controller's caches hold in one round.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every agent.
    pub agents: &'a [Arc<Agent>],
    /// Agent leases by lease name (`agent-<name>`).
    pub leases: &'a HashMap<String, Arc<Lease>>,
    /// Every task.
    pub tasks: &'a [Arc<Task>],
    /// Every offer.
    pub offers: &'a [Arc<Offer>],
    /// (namespace, framework) of the partition-aware frameworks.
    pub partition_aware: &'a HashSet<(String, String)>,
}

/// What a round decided about the agents themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentsVerdict {
    /// Agents to mark unreachable or reachable again.
    pub actions: Vec<LivenessAction>,
    /// Every unreachable agent (whose offers are rescinded).
    pub unreachable: Vec<String>,
}

/// The liveness decisions for a snapshot; see the module docs. The same as
/// [`plan_agents`], then [`plan_lost_tasks`] (when [`Memory::loses_tasks`]),
/// then [`plan_rescinds`].
pub fn plan(memory: &mut Memory, snapshot: Snapshot<'_>, now: Time, limits: Limits) -> Vec<LivenessAction> {
    let Snapshot { agents, leases, tasks, offers, partition_aware } = snapshot;
    let verdict = plan_agents(memory, agents, leases, now, limits);
    let mut actions = verdict.actions;
    if memory.loses_tasks() {
        actions.extend(plan_lost_tasks(memory, tasks, partition_aware));
    }
    actions.extend(plan_rescinds(&verdict.unreachable, offers));
    actions
}

/// The first step of [`plan`]: which agents are unreachable (marking them,
/// or marking them reachable again), disruption, and which unreachable
/// agents are admitted to having their tasks declared lost.
pub fn plan_agents(
    memory: &mut Memory,
    agents: &[Arc<Agent>],
    leases: &HashMap<String, Arc<Lease>>,
    now: Time,
    limits: Limits,
) -> AgentsVerdict {
    memory.observe(agents, leases, now);
    let mut actions = Vec::new();
    // Unreachable agents with how long they have been silent.
    let mut unreachable: Vec<(&str, chrono::Duration)> = Vec::new();
    let mut key = String::new();
    for agent in agents {
        let name = agent.metadata.name.as_str();
        let lease = lease_of(leases, &mut key, name);
        let marked = ready(agent).is_some_and(|c| c.status == "False" && c.reason == UNREACHABLE);
        let silent = memory.seen.get(name).map(|s| now - s.at).unwrap_or_default();
        if silent > duration_of(lease, limits.default_duration) {
            if !marked {
                actions.push(LivenessAction::MarkUnreachable(name.to_string()));
            }
            unreachable.push((name, silent));
        } else {
            if marked {
                actions.push(LivenessAction::MarkReachable(name.to_string()));
            }
            if !memory.admitted.is_empty() {
                memory.admitted.remove(name);
            }
        }
    }
    memory.fill(now, limits.lost_agents_per_second);
    memory.disrupted =
        unreachable.len() > 1 && unreachable.len() as f64 > limits.max_unreachable_fraction * agents.len() as f64;
    if !memory.disrupted {
        let unlimited = limits.lost_agents_per_second.is_infinite();
        unreachable.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (name, _) in &unreachable {
            if memory.admitted.contains(*name) {
                continue;
            }
            if !unlimited {
                // (A little slack: tenths of a token added up per round.)
                if memory.tokens < 1.0 - 1e-9 {
                    break;
                }
                memory.tokens = (memory.tokens - 1.0).max(0.0);
            }
            memory.admitted.insert(name.to_string());
        }
    }
    AgentsVerdict { actions, unreachable: unreachable.into_iter().map(|(n, _)| n.to_string()).collect() }
}

/// The second step of [`plan`]: every task of an admitted agent that is
/// neither terminal nor PARTITIONED goes LOST (PARTITIONED when its
/// framework is partition-aware). Nothing while [`Memory::loses_tasks`] is false.
pub fn plan_lost_tasks(
    memory: &Memory,
    tasks: &[Arc<Task>],
    partition_aware: &HashSet<(String, String)>,
) -> Vec<LivenessAction> {
    let mut actions = Vec::new();
    if !memory.loses_tasks() {
        return actions;
    }
    for t in tasks {
        let Some(agent) = t.spec.agent.as_deref() else { continue };
        let state = t.state();
        if !memory.admitted.contains(agent) || state.is_terminal() || state == TaskState::Partitioned {
            continue;
        }
        let ns = t.metadata.namespace.clone().unwrap_or_default();
        let fw = t.spec.framework.clone().unwrap_or_else(|| "meseta".into());
        let partitioned = partition_aware.contains(&(ns.clone(), fw));
        actions.push(LivenessAction::LoseTask { namespace: ns, name: t.metadata.name.clone(), partitioned });
    }
    actions
}

/// The last step of [`plan`]: the offers of the `unreachable` agents are rescinded.
pub fn plan_rescinds(unreachable: &[String], offers: &[Arc<Offer>]) -> Vec<LivenessAction> {
    if unreachable.is_empty() {
        return Vec::new();
    }
    let lost: HashSet<&str> = unreachable.iter().map(String::as_str).collect();
    offers
        .iter()
        .filter(|o| lost.contains(o.spec.agent.as_str()))
        .map(|o| LivenessAction::Rescind(o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone()))
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
