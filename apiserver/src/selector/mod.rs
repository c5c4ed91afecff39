//! Label and field selectors: the `labelSelector` and `fieldSelector` query parameters of list and
//! watch requests, parsed and matched exactly as Kubernetes does.
//!
//! This module owns the syntax and the matching rules only. It knows nothing about kinds, the
//! store or HTTP: which field paths a kind supports, and how a selector narrows a store scan, are
//! the caller's business ([`FieldSelector::exact`] and [`LabelSelector::requires_exact`] help with
//! the latter).
//!
//! - [`LabelSelector`]: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>3`, `k<3`.
//! - [`FieldSelector`]: `path=value`, `path==value`, `path!=value` over dotted JSON paths.
//!
//! Both render back to a canonical string with `Display` that parses to an equal selector.

mod field;
mod label;
mod label_parse;
mod names;

#[cfg(test)]
mod tests;

pub use field::{FieldOp, FieldSelector};
pub use label::{LabelOp, LabelRequirement, LabelSelector};

/// A selector string that could not be parsed. The message names the offending part and quotes the
/// whole selector, e.g. `unable to parse requirement: found 'prod', expected: '(' in "env in prod"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} in {selector:?}")]
pub struct SelectorError {
    /// The selector exactly as given.
    pub selector: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SelectorError {
    fn new(selector: &str, reason: impl Into<String>) -> Self {
        SelectorError { selector: selector.to_owned(), reason: reason.into() }
    }
}
