//! Placement constraints (Marathon / Aurora): whether an agent may take one
//! more instance of a job, given where the job's instances already are.
//!
//! Owns the meaning of each [`ConstraintOperator`] and the per-job counts of
//! instances by attribute value. It must not look at resources (the planner
//! does) nor do I/O.
//!
//! - `UNIQUE`: at most one instance per distinct value of the attribute.
//! - `EQUALS v`: only agents whose attribute is `v`.
//! - `LIKE re` / `UNLIKE re`: only agents whose attribute matches (does not
//!   match) the regular expression, anchored at both ends.
//! - `MAX_PER n`: at most `n` instances per distinct value.
//!
//! The attribute `hostname` is the agent's hostname. An agent without the
//! attribute never satisfies `UNIQUE`, `EQUALS`, `LIKE` or `MAX_PER`, and
//! always satisfies `UNLIKE`.

use std::collections::{BTreeMap, HashMap};

use meseta_schemas::kinds::{Constraint, ConstraintOperator};
use regex::Regex;

/// What constraints read of an agent: its hostname and attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentAttributes {
    /// The agent's hostname (the `hostname` attribute).
    pub hostname: String,
    /// Free-form attributes.
    pub attributes: BTreeMap<String, String>,
}

impl AgentAttributes {
    /// The value of `attribute` on this agent.
    pub fn get(&self, attribute: &str) -> Option<&str> {
        if attribute == "hostname" {
            return Some(self.hostname.as_str()).filter(|h| !h.is_empty());
        }
        self.attributes.get(attribute).map(String::as_str)
    }
}

/// How many active instances of each group (job) sit on each attribute value.
#[derive(Debug, Clone, Default)]
pub struct ConstraintContext {
    counts: HashMap<(String, String, String), u32>,
    regexes: HashMap<String, Option<Regex>>,
}

impl ConstraintContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one active instance of `group` on an agent with `agent`'s
    /// attributes, counting it for every attribute in `constraints`.
    pub fn record(&mut self, group: &str, constraints: &[Constraint], agent: &AgentAttributes) {
        for c in constraints {
            if let Some(v) = agent.get(&c.attribute) {
                *self.counts.entry((group.to_string(), c.attribute.clone(), v.to_string())).or_default() += 1;
            }
        }
    }

    fn count(&self, group: &str, attribute: &str, value: &str) -> u32 {
        self.counts.get(&(group.to_string(), attribute.to_string(), value.to_string())).copied().unwrap_or(0)
    }

    fn matches(&mut self, pattern: &str, value: &str) -> bool {
        let re =
            self.regexes.entry(pattern.to_string()).or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).ok());
        re.as_ref().is_some_and(|re| re.is_match(value))
    }

    /// `Ok` when one more instance of `group` may go to `agent`, else the
    /// first constraint that refuses it, said for a person.
    pub fn admits(&mut self, group: &str, constraints: &[Constraint], agent: &AgentAttributes) -> Result<(), String> {
        for c in constraints {
            let value = agent.get(&c.attribute);
            let operand = c.value.as_deref().unwrap_or_default();
            let ok = match (c.operator, value) {
                (ConstraintOperator::Unlike, None) => true,
                (_, None) => false,
                (ConstraintOperator::Unique, Some(v)) => self.count(group, &c.attribute, v) == 0,
                (ConstraintOperator::Equals, Some(v)) => v == operand,
                (ConstraintOperator::Like, Some(v)) => self.matches(operand, v),
                (ConstraintOperator::Unlike, Some(v)) => !self.matches(operand, v),
                (ConstraintOperator::MaxPer, Some(v)) => {
                    let max = operand.parse::<u32>().unwrap_or(1);
                    self.count(group, &c.attribute, v) < max
                }
            };
            if !ok {
                return Err(format!(
                    "constraint {} {:?}{} not met by {}={}",
                    c.attribute,
                    c.operator,
                    c.value.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                    c.attribute,
                    value.unwrap_or("<unset>")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(host: &str, rack: &str) -> AgentAttributes {
        AgentAttributes { hostname: host.into(), attributes: [("rack".to_string(), rack.to_string())].into() }
    }

    fn c(attribute: &str, operator: ConstraintOperator, value: Option<&str>) -> Constraint {
        Constraint { attribute: attribute.into(), operator, value: value.map(str::to_string) }
    }

    #[test]
    fn each_operator_admits_and_refuses() {
        use ConstraintOperator::*;
        let a = agent("h1", "r1");
        let cases: Vec<(Constraint, bool)> = vec![
            (c("hostname", Unique, None), true),
            (c("rack", Equals, Some("r1")), true),
            (c("rack", Equals, Some("r2")), false),
            (c("rack", Like, Some("r[0-9]")), true),
            (c("rack", Like, Some("r")), false),
            (c("rack", Unlike, Some("r1")), false),
            (c("zone", Unlike, Some("z")), true),
            (c("zone", Equals, Some("z")), false),
            (c("zone", Unique, None), false),
            (c("rack", MaxPer, Some("1")), true),
        ];
        for (constraint, want) in cases {
            let mut ctx = ConstraintContext::new();
            assert_eq!(ctx.admits("j", std::slice::from_ref(&constraint), &a).is_ok(), want, "{constraint:?}");
        }
    }

    #[test]
    fn unique_and_max_per_count_instances_of_the_same_group_only() {
        use ConstraintOperator::*;
        let a = agent("h1", "r1");
        let unique = [c("hostname", Unique, None)];
        let max2 = [c("rack", MaxPer, Some("2"))];
        let mut ctx = ConstraintContext::new();
        ctx.record("j", &unique, &a);
        let err = ctx.admits("j", &unique, &a).unwrap_err();
        assert!(err.contains("hostname"), "{err}");
        assert!(ctx.admits("other", &unique, &a).is_ok());
        ctx.record("k", &max2, &a);
        assert!(ctx.admits("k", &max2, &a).is_ok());
        ctx.record("k", &max2, &a);
        assert!(ctx.admits("k", &max2, &a).is_err());
        assert!(ctx.admits("k", &max2, &agent("h2", "r2")).is_ok());
    }
}
