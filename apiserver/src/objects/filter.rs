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

    /// Whether stored bytes pass the filter, decided without decoding them:
    /// `None` when it cannot be told from the bytes alone (a label selector,
    /// a name, a term on `metadata.resourceVersion`, which the stored bytes
    /// leave out, or bytes the field reader gives up on), so the caller
    /// decodes the object and asks [`Filter::matches`].
    pub fn matches_stored(&self, stored: &[u8]) -> Option<bool> {
        if self.labels.is_some() || self.name.is_some() {
            return None;
        }
        let fields = self.fields.as_ref()?;
        if !crate::watch::index::bytes_can_match(fields) {
            return None;
        }
        crate::watch::index::fields_match(stored, fields)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(labels: Option<&str>, fields: Option<&str>) -> Filter {
        let params = Params {
            label_selector: labels.map(str::to_string),
            field_selector: fields.map(str::to_string),
            ..Default::default()
        };
        Filter::from_params(&params).expect("selectors parse")
    }

    #[test]
    fn field_selectors_on_stored_bytes_decide_as_on_the_object() {
        let objects = [
            json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"agent": "x"}, "status": {"state": "RUNNING"}}),
            json!({"metadata": {"name": "b", "namespace": "n"}, "spec": {"agent": "y"}, "status": {"state": "PENDING"}}),
            json!({"metadata": {"name": "c", "namespace": "n"}, "spec": {}}),
        ];
        let selectors = [
            "status.state=RUNNING",
            "status.state!=RUNNING",
            "spec.agent=",
            "spec.agent=x,status.state=RUNNING",
            "metadata.name!=b",
            "metadata.namespace=n",
        ];
        for sel in selectors {
            let f = filter(None, Some(sel));
            for obj in &objects {
                let bytes = serde_json::to_vec(obj).unwrap();
                assert_eq!(f.matches_stored(&bytes), Some(f.matches(obj)), "{sel} on {obj}");
            }
        }
    }

    #[test]
    fn what_the_stored_bytes_cannot_tell_is_left_to_the_object() {
        let bytes = br#"{"metadata":{"name":"a","labels":{"app":"web"}},"status":{"state":"RUNNING"}}"#;
        assert_eq!(filter(Some("app=web"), Some("status.state=RUNNING")).matches_stored(bytes), None);
        assert_eq!(filter(None, Some("metadata.resourceVersion=5")).matches_stored(bytes), None);
        assert_eq!(filter(None, None).with_name("a").matches_stored(bytes), None);
        assert_eq!(filter(None, Some("status.state=RUNNING")).matches_stored(b"not json"), None);
    }
}
