//! The short way in for a submitted object: a plain JSON body decoded
//! straight into its kind's Rust type, without building a
//! `serde_json::Value` of the body and decoding the kind from that.
//!
//! Only a body with nothing to report takes it: it decodes, has no field
//! the kind lacks, names the right `apiVersion` and `kind`, fits the path's
//! namespace and passes validation. For anything else [`check_json`] answers
//! `None` and the caller goes the general way ([`super::check`] over the
//! decoded `Value`), which words every error; both ways give the same
//! object. It must not touch the store.

use meseta_schemas::kinds::{Agent, Event, Framework, Job, Lease, Offer, Quota, Reservation, Role, Task};
use meseta_schemas::registry::KindInfo;
use meseta_schemas::{Resource, Validate, API_VERSION};
use serde_json::Value;

/// The checked object of `kind` a JSON `body` describes, placed in
/// `namespace` (the path's): what [`super::check`] returns for the decoded
/// body with its namespace filled in. `None` when the short way does not
/// apply (see the module doc).
pub(crate) fn check_json(kind: &KindInfo, body: &[u8], namespace: Option<&str>) -> Option<Value> {
    match kind.kind {
        Task::KIND => check_as::<Task>(kind, body, namespace),
        Job::KIND => check_as::<Job>(kind, body, namespace),
        Agent::KIND => check_as::<Agent>(kind, body, namespace),
        Lease::KIND => check_as::<Lease>(kind, body, namespace),
        Offer::KIND => check_as::<Offer>(kind, body, namespace),
        Event::KIND => check_as::<Event>(kind, body, namespace),
        Framework::KIND => check_as::<Framework>(kind, body, namespace),
        Role::KIND => check_as::<Role>(kind, body, namespace),
        Reservation::KIND => check_as::<Reservation>(kind, body, namespace),
        Quota::KIND => check_as::<Quota>(kind, body, namespace),
        _ => None,
    }
}

fn check_as<K: Resource + Validate>(kind: &KindInfo, body: &[u8], namespace: Option<&str>) -> Option<Value> {
    let mut unknown = false;
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut on_unknown = |_: serde_ignored::Path<'_>| unknown = true;
    let mut obj = K::deserialize(serde_ignored::Deserializer::new(&mut de, &mut on_unknown)).ok()?;
    de.end().ok()?;
    if unknown {
        return None;
    }
    let meta = obj.meta_mut();
    if !kind.namespaced {
        meta.namespace = None;
    } else {
        let ns = namespace?;
        match meta.namespace.as_deref() {
            None | Some("") => meta.namespace = Some(ns.to_string()),
            Some(given) if given == ns => {}
            Some(_) => return None,
        }
    }
    if !obj.validate().is_empty() {
        return None;
    }
    // The opaque managedFields entries (an update's body sends them back)
    // are `Value`s already: moved into the result rather than copied through
    // the serialiser, which would give the same entries.
    let managed = obj.meta_mut().managed_fields.take();
    let mut value = serde_json::to_value(&obj).ok()?;
    if let Some(entries) = managed {
        value.get_mut("metadata")?.as_object_mut()?.insert("managedFields".into(), Value::Array(entries));
    }
    let named = |field: &str, want: &str| value.get(field).and_then(Value::as_str) == Some(want);
    (named("apiVersion", API_VERSION) && named("kind", K::KIND)).then_some(value)
}

#[cfg(test)]
mod tests {
    use meseta_schemas::registry;
    use serde_json::json;

    use super::*;
    use crate::request::FieldValidation;

    fn task() -> Value {
        json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t", "labels": {"a": "b"},
            "annotations": {}}, "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}})
    }

    #[test]
    fn the_short_way_gives_what_the_general_way_gives() {
        let kind = registry::by_kind("Task").unwrap();
        let body = serde_json::to_vec(&task()).unwrap();
        let fast = check_json(kind, &body, Some("ns")).expect("a plain Task takes the short way");
        let mut placed = task();
        placed["metadata"]["namespace"] = json!("ns");
        let (slow, warnings) = super::super::check(kind, &placed, FieldValidation::Strict).unwrap();
        assert_eq!(fast, slow);
        assert!(warnings.is_empty());
    }

    #[test]
    fn managed_fields_come_through_the_short_way_unchanged() {
        let kind = registry::by_kind("Task").unwrap();
        let mut t = task();
        t["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Update", "apiVersion": "meseta.io/v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:command": {}, "f:n": 1.5, "f:l": [-1, 2]}}}]);
        let fast = check_json(kind, &serde_json::to_vec(&t).unwrap(), Some("ns")).expect("the short way");
        t["metadata"]["namespace"] = json!("ns");
        let (slow, _) = super::super::check(kind, &t, FieldValidation::Strict).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast["metadata"]["managedFields"], t["metadata"]["managedFields"]);
    }

    #[test]
    fn anything_to_report_goes_the_general_way() {
        let kind = registry::by_kind("Task").unwrap();
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut t = task();
            edit(&mut t);
            serde_json::to_vec(&t).unwrap()
        };
        let cases = [
            with(&|t| t["spec"]["spex"] = json!(1)),
            with(&|t| t["apiVersion"] = json!("v1")),
            with(&|t| t["kind"] = json!("Job")),
            with(&|t| t["metadata"]["namespace"] = json!("other")),
            with(&|t| t["spec"]["resources"]["cpus"] = json!("lots")),
            with(&|t| t["spec"]["resources"]["cpus"] = json!(-1)),
            b"{\"apiVersion\": \"meseta.io/v1\"} trailing".to_vec(),
            b"[]".to_vec(),
        ];
        for body in cases {
            assert!(check_json(kind, &body, Some("ns")).is_none(), "{}", String::from_utf8_lossy(&body));
        }
        assert!(check_json(kind, &with(&|_| {}), None).is_none(), "a namespaced kind needs the path's namespace");
    }
}
