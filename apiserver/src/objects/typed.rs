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

use std::cell::Cell;

use meseta_schemas::kinds::{Agent, Event, Framework, Job, Lease, Offer, Quota, Reservation, Role, Task};
use meseta_schemas::registry::KindInfo;
use meseta_schemas::{Resource, Validate, API_VERSION};
use serde_json::value::RawValue;
use serde_json::Value;

use super::strict::Strict;
use crate::error::ApiError;

/// A body the short way checked: the object, and the text of its
/// `metadata.managedFields` when it has them. Those opaque entries are most
/// of a body's decode, and an update's body usually sends back the stored
/// ones: they are built from the text only when they are not those.
#[derive(Debug)]
pub(crate) struct Checked {
    object: Value,
    managed_fields: Option<Box<RawValue>>,
}

impl Checked {
    /// The checked object without its managedFields.
    pub(crate) fn object(&self) -> &Value {
        &self.object
    }

    /// The checked object: what [`super::check`] gives for the body.
    pub(crate) fn into_value(self) -> Result<Value, ApiError> {
        with_managed_fields(self.object, self.managed_fields.as_deref(), None)
    }

    /// [`Checked::into_value`] for an update of `current`, whose managedFields
    /// stand in for the body's when they are the same entries.
    pub(crate) fn value_against(&self, current: &Value) -> Result<Value, ApiError> {
        with_managed_fields(self.object.clone(), self.managed_fields.as_deref(), Some(current))
    }

    /// [`Checked::value_against`], consuming the body.
    pub(crate) fn into_value_against(self, current: &Value) -> Result<Value, ApiError> {
        with_managed_fields(self.object, self.managed_fields.as_deref(), Some(current))
    }
}

/// `object` with the managedFields `text` describes: `current`'s entries
/// when they serialize to that very text (so they decode from it to the
/// same `Value`s), else the text decoded.
fn with_managed_fields(mut object: Value, text: Option<&RawValue>, current: Option<&Value>) -> Result<Value, ApiError> {
    let Some(text) = text else { return Ok(object) };
    let stored = current.and_then(|c| c.get("metadata")).and_then(|m| m.get("managedFields"));
    let same = stored.filter(|s| serializes_to(s, text.get().as_bytes()));
    let entries = match same {
        Some(stored) => stored.clone(),
        None => serde_json::from_str::<Vec<Value>>(text.get())
            .map(Value::Array)
            .map_err(|err| ApiError::BadRequest(format!("metadata.managedFields: {err}")))?,
    };
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => meta.insert("managedFields".into(), entries),
        None => return Err(ApiError::Internal("a checked object without metadata".into())),
    };
    Ok(object)
}

/// Whether `value` serializes to exactly `text`, decided as the serializer
/// writes: no copy of the text is made, and the first difference ends it.
fn serializes_to(value: &Value, text: &[u8]) -> bool {
    struct Compare<'a>(&'a [u8]);
    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match self.0.strip_prefix(buf) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(buf.len())
                }
                None => Err(std::io::ErrorKind::InvalidData.into()),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut rest = Compare(text);
    serde_json::to_writer(&mut rest, value).is_ok() && rest.0.is_empty()
}

/// The checked object of `kind` a JSON `body` describes, placed in
/// `namespace` (the path's): what [`super::check`] returns for the decoded
/// body with its namespace filled in (see [`Checked`]). `None` when the
/// short way does not apply (see the module doc).
pub(crate) fn check_json(kind: &KindInfo, body: &[u8], namespace: Option<&str>) -> Option<Checked> {
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

fn check_as<K: Resource + Validate>(kind: &KindInfo, body: &[u8], namespace: Option<&str>) -> Option<Checked> {
    let (obj, managed_fields) = decode_checked::<K>(kind, body, namespace)?;
    let value = serde_json::to_value(&obj).ok()?;
    let named = |field: &str, want: &str| value.get(field).and_then(Value::as_str) == Some(want);
    (named("apiVersion", API_VERSION) && named("kind", K::KIND)).then_some(Checked { object: value, managed_fields })
}

/// [`check_json`] of a Task, giving the typed Task; its managedFields, if
/// sent, are left out (a status write keeps the stored ones).
pub(crate) fn check_task(kind: &KindInfo, body: &[u8], namespace: Option<&str>) -> Option<Task> {
    if kind.kind != Task::KIND {
        return None;
    }
    let (task, _) = decode_checked::<Task>(kind, body, namespace)?;
    (task.api_version == API_VERSION && task.kind == Task::KIND).then_some(task)
}

/// The `K` a JSON `body` describes, placed in `namespace`, and the text of
/// its managedFields; `None` when the short way does not apply. Its
/// `apiVersion` and `kind` are the caller's to check.
fn decode_checked<K: Resource + Validate>(
    kind: &KindInfo,
    body: &[u8],
    namespace: Option<&str>,
) -> Option<(K, Option<Box<RawValue>>)> {
    let ignored = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let (decoded, mut texts) =
        meseta_schemas::managed_fields_as_text(|| K::deserialize(Strict::new(&mut de, &ignored)));
    let mut obj = decoded.ok()?;
    de.end().ok()?;
    // One metadata, so at most one list of entries, and a list it must be.
    if ignored.get() || texts.len() > 1 || texts.first().is_some_and(|t| !t.get().starts_with('[')) {
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
    obj.validate().is_empty().then(|| (obj, texts.pop()))
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
        let fast = check_json(kind, &body, Some("ns")).expect("a plain Task takes the short way").into_value().unwrap();
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
        let fast = check_json(kind, &serde_json::to_vec(&t).unwrap(), Some("ns"))
            .expect("the short way")
            .into_value()
            .unwrap();
        t["metadata"]["namespace"] = json!("ns");
        let (slow, _) = super::super::check(kind, &t, FieldValidation::Strict).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast["metadata"]["managedFields"], t["metadata"]["managedFields"]);
    }

    #[test]
    fn managed_fields_sent_back_or_not_give_what_the_general_way_gives() {
        let kind = registry::by_kind("Task").unwrap();
        let entries = json!([{"manager": "m", "operation": "Update", "apiVersion": "meseta.io/v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:n": 1.5}}}]);
        let mut current = task();
        current["metadata"]["managedFields"] = entries.clone();
        let compact = serde_json::to_string(&entries).unwrap();
        let other = json!([{"manager": "other", "operation": "Update"}]);
        let bodies = [
            // Sent back as read: the stored entries stand in.
            compact.clone(),
            // The same entries written another way, and other entries: decoded.
            serde_json::to_string_pretty(&entries).unwrap(),
            serde_json::to_string(&other).unwrap(),
            "[]".to_string(),
        ];
        for sent in bodies {
            let mut t = task();
            t["metadata"]["managedFields"] = serde_json::from_str(&sent).unwrap();
            let mut text = serde_json::to_string(&t).unwrap();
            text = text.replace(&serde_json::to_string(&t["metadata"]["managedFields"]).unwrap(), &sent);
            let checked = check_json(kind, text.as_bytes(), Some("ns")).expect("the short way");
            t["metadata"]["namespace"] = json!("ns");
            let (slow, _) = super::super::check(kind, &t, FieldValidation::Strict).unwrap();
            assert_eq!(checked.value_against(&current).unwrap(), slow, "{sent}");
            assert_eq!(checked.value_against(&task()).unwrap(), slow, "no stored entries: {sent}");
            assert_eq!(checked.into_value_against(&current).unwrap(), slow, "{sent}");
        }
    }

    #[test]
    fn a_value_serializes_to_its_compact_text_only() {
        let value = json!([{"a": 1.5, "b": "x\"y", "c": [1, null]}]);
        let text = serde_json::to_string(&value).unwrap();
        assert!(serializes_to(&value, text.as_bytes()));
        assert!(!serializes_to(&value, &text.as_bytes()[..text.len() - 1]), "a prefix");
        assert!(!serializes_to(&value, format!("{text} ").as_bytes()), "more than it");
        assert!(!serializes_to(&value, serde_json::to_string_pretty(&value).unwrap().as_bytes()));
        assert!(!serializes_to(&value, text.replace("1.5", "1.6").as_bytes()));
    }

    #[test]
    fn managed_fields_that_are_not_a_list_go_the_general_way() {
        let kind = registry::by_kind("Task").unwrap();
        for entries in [json!({"manager": "m"}), json!("m"), json!(1)] {
            let mut t = task();
            t["metadata"]["managedFields"] = entries;
            assert!(check_json(kind, &serde_json::to_vec(&t).unwrap(), Some("ns")).is_none(), "{t}");
        }
        let mut t = task();
        t["metadata"]["managedFields"] = Value::Null;
        let checked = check_json(kind, &serde_json::to_vec(&t).unwrap(), Some("ns")).expect("null is none");
        assert!(checked.into_value().unwrap()["metadata"].get("managedFields").is_none());
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

    #[test]
    fn a_task_checked_the_short_way_is_the_task_the_general_way_gives() {
        let kind = registry::by_kind("Task").unwrap();
        let body = serde_json::to_vec(&task()).unwrap();
        let typed = check_task(kind, &body, Some("ns")).expect("a plain Task takes the short way");
        let general = check_json(kind, &body, Some("ns")).unwrap().into_value().unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), general);

        let mut other = task();
        other["kind"] = json!("Job");
        assert!(check_task(kind, &serde_json::to_vec(&other).unwrap(), Some("ns")).is_none(), "another kind");
        let mut other = task();
        other["apiVersion"] = json!("meseta.io/v2");
        assert!(check_task(kind, &serde_json::to_vec(&other).unwrap(), Some("ns")).is_none(), "another version");
        let jobs = registry::by_kind("Job").unwrap();
        assert!(check_task(jobs, &body, Some("ns")).is_none(), "only for the tasks resource");
    }
}
