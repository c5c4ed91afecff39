//! Which `(framework, agent)` pairs are excluded this cycle. Owns the index
//! of active decline filters (`until > now`), built once per cycle so a
//! lookup is one hash probe, and only for frameworks that have filters at
//! all. It must not know about resources.

use std::collections::{HashMap, HashSet};

use crate::meta::Time;

use super::{AgentInput, FrameworkInput};

/// Active decline filters by framework and agent index.
#[derive(Debug, Default)]
pub(crate) struct FilterIndex {
    /// Per framework: whether it has any active filter.
    has_any: Vec<bool>,
    pairs: HashSet<(u32, u32)>,
}

impl FilterIndex {
    /// Index the filters of `frameworks` (in engine order) still active at
    /// `now`; agent indices are positions in `agents`. Filters naming
    /// unknown agents are ignored. Agent names are hashed only when some
    /// filter is active.
    pub(crate) fn build(frameworks: &[&FrameworkInput], agents: &[AgentInput], now: Time) -> FilterIndex {
        let mut by_agent: HashMap<&str, Vec<u32>> = HashMap::new();
        for (f, fw) in frameworks.iter().enumerate() {
            for (agent, until) in &fw.filters {
                if *until > now {
                    by_agent.entry(agent.as_str()).or_default().push(f as u32);
                }
            }
        }
        let mut idx = FilterIndex { has_any: vec![false; frameworks.len()], pairs: HashSet::new() };
        if by_agent.is_empty() {
            return idx;
        }
        for (a, agent) in agents.iter().enumerate() {
            for &f in by_agent.get(agent.name.as_str()).into_iter().flatten() {
                idx.pairs.insert((f, a as u32));
                idx.has_any[f as usize] = true;
            }
        }
        idx
    }

    /// Whether framework `f` must not be offered agent `a`.
    pub(crate) fn blocks(&self, f: u32, a: u32) -> bool {
        self.has_any[f as usize] && self.pairs.contains(&(f, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_filters_in_the_future_block() {
        let now = chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut fw = FrameworkInput::default();
        fw.filters.insert("a0".into(), now + chrono::Duration::seconds(5));
        fw.filters.insert("a1".into(), now);
        fw.filters.insert("gone".into(), now + chrono::Duration::seconds(5));
        let agents: Vec<AgentInput> =
            ["a0", "a1"].iter().map(|n| AgentInput { name: n.to_string(), ..Default::default() }).collect();
        let idx = FilterIndex::build(&[&fw, &FrameworkInput::default()], &agents, now);
        assert!(idx.blocks(0, 0));
        assert!(!idx.blocks(0, 1));
        assert!(!idx.blocks(1, 0));
    }
}
