//! List and watch filtering: a label selector and a field selector together.
//!
//! Owns turning the query parameters into one predicate over objects. The
//! parsing and matching rules themselves live in [`crate::selector`].

use serde_json::Value;

use crate::error::ApiError;
use crate::object;
use crate::request::Params;
use crate::selector::{FieldSelector, LabelSelector};

/// The `labelSelector` and `fieldSelector` of a request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    name: Option<String>,
}

impl Filter {
    /// Parses the selectors of a request; a bad selector is a 400 naming it.
    pub fn from_params(params: &Params) -> Result<Filter, ApiError> {
        let labels = match params.label_selector.as_deref() {
            None | Some("") => None,
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(format!("invalid labelSelector: {e}")))?)
            }
        };
        let fields = match params.field_selector.as_deref() {
            None | Some("") => None,
            Some(s) => {
                Some(FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(format!("invalid fieldSelector: {e}")))?)
            }
        };
        Ok(Filter { labels: labels.filter(|l| !l.is_empty()), fields: fields.filter(|f| !f.is_empty()), name: None })
    }

    /// The same filter narrowed to the object named `name` (watch of one object).
    pub fn with_name(mut self, name: &str) -> Filter {
        self.name = Some(name.to_string());
        self
    }

    /// Whether the filter lets everything through.
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none() && self.name.is_none()
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.name.as_deref().is_some_and(|n| n != object::name(obj)) {
            return false;
        }
        if let Some(l) = &self.labels {
            if !l.matches(&object::labels(obj)) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            if !f.matches(obj) {
                return false;
            }
        }
        true
    }
}
