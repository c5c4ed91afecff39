//! Label selectors: requirements, matching against a label map, and canonical rendering. The
//! syntax is read by the sibling `label_parse` module.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::label_parse::parse_requirements;
use super::names::{check_label_key, check_label_value};
use super::SelectorError;

/// How a [`LabelRequirement`] relates its key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOp {
    /// `k=v`: the label exists and equals the value.
    Equals,
    /// `k==v`: same as [`LabelOp::Equals`].
    DoubleEquals,
    /// `k!=v`: the label is absent or differs from the value.
    NotEquals,
    /// `k in (a,b)`: the label exists and is one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or none of the values.
    NotIn,
    /// `k`: the label exists, whatever its value.
    Exists,
    /// `!k`: the label does not exist.
    DoesNotExist,
    /// `k>3`: the label exists, is an integer, and is greater than the value.
    GreaterThan,
    /// `k<3`: the label exists, is an integer, and is less than the value.
    LessThan,
}

/// One comma-separated term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    key: String,
    op: LabelOp,
    /// Sorted and de-duplicated; one value for the exact-match and comparison operators, none for
    /// `Exists`/`DoesNotExist`.
    values: Vec<String>,
}

impl LabelRequirement {
    /// Builds a requirement, validating the key, the number of values and every value as Kubernetes
    /// does. `reason` in the error explains what is wrong (without the selector text around it).
    pub fn new(key: &str, op: LabelOp, values: Vec<String>) -> Result<Self, String> {
        check_label_key(key)?;
        let mut values = values;
        values.sort();
        values.dedup();
        match op {
            LabelOp::In | LabelOp::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".to_owned())
            }
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals if values.len() != 1 => {
                return Err("exact-match compatibility requires one single value".to_owned())
            }
            LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => {
                return Err("values set must be empty for exists and does not exist".to_owned())
            }
            LabelOp::GreaterThan | LabelOp::LessThan => {
                if values.len() != 1 {
                    return Err("for 'Gt', 'Lt' operators, exactly one value is required".to_owned());
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!("for 'Gt', 'Lt' operators, the value must be an integer, not {:?}", values[0]));
                }
            }
            _ => {}
        }
        for value in &values {
            check_label_value(key, value)?;
        }
        Ok(LabelRequirement { key: key.to_owned(), op, values })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn op(&self) -> LabelOp {
        self.op
    }

    /// The values, sorted; empty for `Exists` and `DoesNotExist`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label map satisfies this requirement (Kubernetes semantics: `!=` and `notin`
    /// match maps without the key).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let found = labels.get(&self.key);
        let has = |v: &String| self.values.binary_search(v).is_ok();
        match self.op {
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In => found.is_some_and(has),
            LabelOp::NotEquals | LabelOp::NotIn => !found.is_some_and(has),
            LabelOp::Exists => found.is_some(),
            LabelOp::DoesNotExist => found.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let (Some(actual), Some(bound)) = (found.and_then(|v| v.parse::<i64>().ok()), self.int_value()) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }

    fn int_value(&self) -> Option<i64> {
        self.values.first().and_then(|v| v.parse().ok())
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.op {
            LabelOp::Equals => write!(f, "{}={values}", self.key),
            LabelOp::DoubleEquals => write!(f, "{}=={values}", self.key),
            LabelOp::NotEquals => write!(f, "{}!={values}", self.key),
            LabelOp::In => write!(f, "{} in ({values})", self.key),
            LabelOp::NotIn => write!(f, "{} notin ({values})", self.key),
            LabelOp::Exists => write!(f, "{}", self.key),
            LabelOp::DoesNotExist => write!(f, "!{}", self.key),
            LabelOp::GreaterThan => write!(f, "{}>{values}", self.key),
            LabelOp::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted by key (stable), as Kubernetes does, so rendering is deterministic.
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses Kubernetes label selector syntax, e.g. `env=prod,tier in (web,api),!canary`.
    pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = parse_requirements(selector).map_err(|reason| SelectorError::new(selector, reason))?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Builds a selector from requirements (e.g. an object's `matchLabels`/`matchExpressions`).
    pub fn from_requirements(requirements: impl IntoIterator<Item = LabelRequirement>) -> LabelSelector {
        let mut requirements: Vec<_> = requirements.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// If the first requirement on `key` pins it to a single value (`=`, `==`, or `in` with one
    /// value), that value; lets a caller narrow a scan by an indexed label.
    pub fn requires_exact(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}
