//! A read-only core `v1` events shim for `kubectl describe`:
//! `GET /api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name=t1,...`
//! answers with a `v1` `EventList` built from Meseta's `Event` objects of that
//! namespace (the shapes coincide: involvedObject, reason, message, count,
//! type, source, timestamps).
//!
//! Only equality terms on the event's own fields are understood
//! (`involvedObject.name`, `involvedObject.kind`, `involvedObject.uid`, ...);
//! any other `/api/v1` path stays 404, which kubectl tolerates. It must not
//! write anything.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use meseta_schemas::registry;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::objects::{self, Filter};
use crate::path::collection_prefix;
use crate::request::Params;
use crate::state::AppState;

/// `GET /api/v1/namespaces/{ns}/events`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match events(&state, &namespace, query.as_deref()).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn events(state: &AppState, namespace: &str, query: Option<&str>) -> Result<Value, ApiError> {
    let params = Params::parse(query)?;
    let terms = parse_terms(params.field_selector.as_deref().unwrap_or_default())?;
    let kind =
        registry::by_kind("Event").ok_or_else(|| ApiError::Internal("the Event kind is not registered".into()))?;
    let prefix = collection_prefix(kind, Some(namespace));
    let page = objects::list(state.store().as_ref(), &prefix, &Filter::default(), None, None).await?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .filter(|e| terms.iter().all(|(path, want)| matches(e, path, want)))
        .map(|mut e| {
            e["apiVersion"] = json!("v1");
            e
        })
        .collect();
    Ok(json!({
        "kind": "EventList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": items,
    }))
}

/// `a.b=c,d==e` into (path, value) pairs; `!=` and other operators are refused.
fn parse_terms(selector: &str) -> Result<Vec<(String, String)>, ApiError> {
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            if t.contains("!=") {
                return Err(ApiError::BadRequest(format!(
                    "invalid fieldSelector: \"{t}\": only = and == are supported"
                )));
            }
            let (k, v) = t
                .split_once("==")
                .or_else(|| t.split_once('='))
                .ok_or_else(|| ApiError::BadRequest(format!("invalid fieldSelector: \"{t}\": expected field=value")))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Fields an event may leave out (recorders often do); a term on one of
/// them only applies when the event has it.
const OPTIONAL: [&str; 4] =
    ["involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath"];

fn matches(event: &Value, path: &str, want: &str) -> bool {
    let have = lookup(event, path);
    have == want || (have.is_empty() && OPTIONAL.contains(&path))
}

/// The string at a dotted path (missing = empty, as Kubernetes matches).
fn lookup(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return String::new(),
        };
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_match_nested_fields() {
        let terms =
            parse_terms("involvedObject.name=t1,involvedObject.namespace==default,involvedObject.uid=").unwrap();
        let e = json!({"involvedObject": {"name": "t1", "namespace": "default"}});
        assert!(terms.iter().all(|(p, v)| matches(&e, p, v)));
        let other = json!({"involvedObject": {"name": "t2", "namespace": "default"}});
        assert!(!terms.iter().all(|(p, v)| matches(&other, p, v)));
        assert!(matches(&e, "involvedObject.uid", "1234"));
        assert!(!matches(&e, "involvedObject.kind", "Task"));
        assert!(parse_terms("a!=b").is_err());
    }
}
