//! Which `(framework, agent)` pairs are excluded this cycle. Owns the index
//! of active decline filters (`until > now`), built once per cycle so a
//! lookup is one hash probe, and only for frameworks that have filters at
//! all. It must not know about resources.

use std::collections::{HashMap, HashSet};

use crate::meta::Time;

use super::FrameworkInput;

/// Active decline filters by framework and agent index.
#[derive(Debug, Default)]
pub(crate) struct FilterIndex {
    /// Per framework: whether it has any active filter.
    has_any: Vec<bool>,
    pairs: HashSet<(u32, u32)>,
}

impl FilterIndex {
    /// Index the filters of `frameworks` (in engine order) still active at `now`.
    /// Filters naming unknown agents are ignored.
    pub(crate) fn build(frameworks: &[&FrameworkInput], agent_index: &HashMap<&str, u32>, now: Time) -> FilterIndex {
        let mut idx = FilterIndex { has_any: vec![false; frameworks.len()], pairs: HashSet::new() };
        for (f, fw) in frameworks.iter().enumerate() {
            for (agent, until) in &fw.filters {
                if *until <= now {
                    continue;
                }
                if let Some(&a) = agent_index.get(agent.as_str()) {
                    idx.pairs.insert((f as u32, a));
                    idx.has_any[f] = true;
                }
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
        let agents: HashMap<&str, u32> = [("a0", 0), ("a1", 1)].into_iter().collect();
        let idx = FilterIndex::build(&[&fw, &FrameworkInput::default()], &agents, now);
        assert!(idx.blocks(0, 0));
        assert!(!idx.blocks(0, 1));
        assert!(!idx.blocks(1, 0));
    }
}
