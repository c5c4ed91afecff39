//! Preemption: which non-production tasks make room for a production task
//! that found no resources for a while.
//!
//! Owns the victim choice. It must not decide when to preempt (the loop
//! waits out the preemption delay) nor kill anything.
//!
//! # Rule
//! Victims are non-production tasks holding resources, of a priority no
//! higher than the production task's. On each agent whose attributes admit
//! the task, victims are taken lowest priority first (then the largest)
//! until the agent's free resources plus theirs fit the task; the agent
//! needing the fewest victims wins. No agent works: nothing is preempted.

use meseta_schemas::resources::Resources;

use super::constraints::AgentAttributes;

/// A task that may be preempted.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What it holds.
    pub resources: Resources,
    /// Its priority.
    pub priority: i32,
    /// Whether it is production (never a victim).
    pub production: bool,
}

/// An agent as preemption sees it.
#[derive(Debug, Clone, Default)]
pub struct AgentRoom {
    /// Agent name.
    pub name: String,
    /// Hostname and attributes.
    pub attributes: AgentAttributes,
    /// Total minus what tasks hold.
    pub free: Resources,
    /// The tasks on it.
    pub tasks: Vec<Candidate>,
}

/// The agent and victims that make room for `need` at `priority`, if any.
/// `admits` says whether the task's constraints allow an agent.
pub fn choose_victims(
    need: &Resources,
    priority: i32,
    agents: &[AgentRoom],
    mut admits: impl FnMut(&AgentAttributes) -> bool,
) -> Option<(String, Vec<Candidate>)> {
    let need = Resources { ports: Vec::new(), ..need.clone() };
    let mut best: Option<(String, Vec<Candidate>)> = None;
    for agent in agents {
        if !admits(&agent.attributes) {
            continue;
        }
        let mut pool: Vec<&Candidate> =
            agent.tasks.iter().filter(|t| !t.production && t.priority <= priority).collect();
        pool.sort_by(|a, b| {
            a.priority.cmp(&b.priority).then(b.resources.cpus.total_cmp(&a.resources.cpus)).then(a.name.cmp(&b.name))
        });
        let mut free = Resources { ports: Vec::new(), ..agent.free.clone() };
        let mut victims = Vec::new();
        for v in pool {
            if need.fits(&free) {
                break;
            }
            free = free.add(&Resources { ports: Vec::new(), ..v.resources.clone() });
            victims.push(v.clone());
        }
        if victims.is_empty() || !need.fits(&free) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| victims.len() < b.len()) {
            best = Some((agent.name.clone(), victims));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, cpus: f64, priority: i32, production: bool) -> Candidate {
        Candidate {
            namespace: "r".into(),
            name: name.into(),
            resources: Resources::scalars(cpus, 0.0, 0.0, 0.0),
            priority,
            production,
        }
    }

    fn room(name: &str, free: f64, tasks: Vec<Candidate>) -> AgentRoom {
        AgentRoom { name: name.into(), free: Resources::scalars(free, 0.0, 0.0, 0.0), tasks, ..Default::default() }
    }

    #[test]
    fn picks_the_fewest_lowest_priority_non_production_victims() {
        let agents = vec![
            room("a1", 0.0, vec![cand("p", 4.0, -5, true), cand("x", 1.0, 0, false), cand("y", 1.0, 0, false)]),
            room("a2", 1.0, vec![cand("low", 1.0, -1, false), cand("high", 2.0, 9, false)]),
        ];
        let (agent, victims) = choose_victims(&Resources::scalars(2.0, 0.0, 0.0, 0.0), 0, &agents, |_| true).unwrap();
        assert_eq!(agent, "a2");
        assert_eq!(victims.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), vec!["low"]);
        // Production tasks and higher priorities are never victims.
        assert!(choose_victims(&Resources::scalars(4.0, 0.0, 0.0, 0.0), 0, &agents, |_| true).is_none());
        // Constraints can rule agents out.
        assert!(choose_victims(&Resources::scalars(2.0, 0.0, 0.0, 0.0), 0, &agents, |_| false).is_none());
    }
}
