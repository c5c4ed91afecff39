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
}

impl Memory {
    /// Records what the leases say now: when each agent's renewal was last
    /// seen to change. Forgets agents that are gone.
    fn observe(&mut self, agents: &[Arc<Agent>], leases: &HashMap<String, Arc<Lease>>, now: Time) {
        let mut present = HashSet::new();
        for agent in agents {
            let name = agent.metadata.name.as_str();
            present.insert(name);
            let renewal = leases.get(&format!("agent-{name}")).and_then(|l| l.spec.renew_time.or(l.spec.acquire_time));
            match self.seen.get_mut(name) {
                Some(s) if s.renewal == renewal => {}
                Some(s) => *s = Seen { renewal, at: now },
                None => {
                    self.seen.insert(name.to_string(), Seen { renewal, at: now });
                }
            }
        }
        self.seen.retain(|name, _| present.contains(name.as_str()));
        self.admitted.retain(|name| present.contains(name.as_str()));
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

/// The liveness decisions for a snapshot; see the module docs.
pub fn plan(memory: &mut Memory, snapshot: Snapshot<'_>, now: Time, limits: Limits) -> Vec<LivenessAction> {
    let Snapshot { agents, leases, tasks, offers, partition_aware } = snapshot;
    memory.observe(agents, leases, now);
    let mut actions = Vec::new();
    // Unreachable agents with how long they have been silent.
    let mut unreachable: Vec<(&str, chrono::Duration)> = Vec::new();
    for agent in agents {
        let name = agent.metadata.name.as_str();
        let lease = leases.get(&format!("agent-{name}")).map(|l| l.as_ref());
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
            memory.admitted.remove(name);
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
        // Most passes find no agent admitted: no task to look at.
        for t in tasks.iter().filter(|_| !memory.admitted.is_empty()) {
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
    }
    let lost: HashSet<&str> = unreachable.iter().map(|(n, _)| *n).collect();
    for o in offers {
        if lost.contains(o.spec.agent.as_str()) {
            actions.push(LivenessAction::Rescind(
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone(),
            ));
        }
    }
    actions
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
