//! [`admit`] against the rule it implements, written out the plain way
//! (copy the stored object, merge, compare the whole objects): the same
//! object to write, the same "nothing changed", the same errors, for the
//! main resource and the `status` subresource.

use meseta_schemas::registry::{self, KindInfo};
use serde_json::{json, Value};

use super::*;
use crate::request::FieldValidation;

const REV: u64 = 5;

/// The rule, written out: `next` is stamped with the stored revision and
/// compared with the whole stored object.
fn reference(kind: &KindInfo, current: &Value, wanted: Value, mode: UpdateMode) -> Result<(Value, bool), String> {
    let (checked, _) = check(kind, &wanted, FieldValidation::Strict).map_err(|e| e.to_string())?;
    let mut next = match mode {
        UpdateMode::Main => {
            let mut next = checked;
            for field in SERVER_OWNED {
                match meta(current).get(field) {
                    Some(v) => meta_mut(&mut next).insert(field.into(), v.clone()),
                    None => meta_mut(&mut next).remove(field),
                };
            }
            if kind.has_status {
                set_status(&mut next, current.get("status").cloned());
            }
            if !object::same_desired_part(&next, current) {
                let generation = meta(current).get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta_mut(&mut next).insert("generation".into(), Value::from(generation + 1));
            }
            next
        }
        UpdateMode::Status => {
            check_task_transition(kind, current, &checked).map_err(|e| e.to_string())?;
            let mut next = current.clone();
            set_status(&mut next, checked.get("status").cloned());
            next
        }
    };
    if object::is_deleting(current) {
        let before = object::finalizers(current);
        if object::finalizers(&next).iter().any(|f| !before.contains(f)) {
            return Err("new finalizer".into());
        }
    }
    object::set_resource_version(&mut next, REV);
    let unchanged = &next == current;
    Ok((next, unchanged))
}

fn through_admit(kind: &KindInfo, current: &Value, wanted: Value, mode: UpdateMode) -> Result<(Value, bool), String> {
    let mut current = current.clone();
    let opts = WriteOptions::default();
    match admit(kind, &mut current, wanted, mode, opts, None) {
        Ok(Admitted { mut next, unchanged, .. }) => {
            assert!(object::meta_str(&next, "resourceVersion").is_none(), "admitted objects carry no revision");
            object::set_resource_version(&mut next, REV);
            Ok((next, unchanged))
        }
        Err(ApiError::Invalid { causes, .. }) if causes.iter().any(|c| c.field == "metadata.finalizers") => {
            Err("new finalizer".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A stored Task as an update reads it (normalized as the server writes
/// it, revision stamped).
fn stored() -> Value {
    let raw = json!({"apiVersion": "meseta.io/v1", "kind": "Task",
        "metadata": {"name": "t", "namespace": "ns", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "generation": 3, "resourceVersion": REV.to_string(), "labels": {"a": "b"}, "annotations": {"n": "1"},
            "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "meseta.io/v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:n": {}}}}}]},
        "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}},
        "status": {"state": "PENDING", "taskEvents": [
            {"timestamp": "2026-01-01T00:00:00.000000001Z", "state": "PENDING", "message": "created"}]}});
    check(task(), &raw, FieldValidation::Strict).expect("a valid Task").0
}

/// What a client sends back after reading `stored()` and editing it.
fn sent(edit: impl Fn(&mut Value)) -> Value {
    let mut v = stored();
    edit(&mut v);
    v
}

fn task() -> &'static KindInfo {
    registry::by_kind("Task").expect("Task is registered")
}

fn agree(current: &Value, wanted: Value, mode: UpdateMode) -> (Value, bool) {
    let want = reference(task(), current, wanted.clone(), mode);
    let got = through_admit(task(), current, wanted.clone(), mode);
    assert_eq!(got, want, "{mode:?} of {wanted}");
    want.expect("the update is admitted")
}

#[test]
fn main_resource_updates_agree_with_the_rule() {
    let current = stored();
    let (_, unchanged) = agree(&current, sent(|_| {}), UpdateMode::Main);
    assert!(unchanged, "sending back what was read changes nothing");
    let (next, unchanged) = agree(&current, sent(|v| v["metadata"]["annotations"]["n"] = json!("2")), UpdateMode::Main);
    assert!(!unchanged);
    assert_eq!(next["metadata"]["generation"], 3, "metadata is not the desired state");
    let (next, unchanged) = agree(&current, sent(|v| v["spec"]["command"] = json!("sleep 2")), UpdateMode::Main);
    assert!(!unchanged);
    assert_eq!(next["metadata"]["generation"], 4, "a spec change bumps the generation");
    assert_eq!(next["status"], current["status"], "the main resource keeps the stored status");
    let (_, unchanged) = agree(&current, sent(|v| v["status"]["state"] = json!("RUNNING")), UpdateMode::Main);
    assert!(unchanged, "a status sent to the main resource is ignored");
    let bare = sent(|v| {
        let m = v["metadata"].as_object_mut().unwrap();
        for k in ["uid", "creationTimestamp", "generation", "resourceVersion", "managedFields"] {
            m.remove(k);
        }
        v.as_object_mut().unwrap().remove("status");
    });
    let (next, unchanged) = agree(&current, bare, UpdateMode::Main);
    assert!(!unchanged, "leaving managedFields out drops them here (tracking puts them back before)");
    assert_eq!(next["metadata"]["uid"], "u-1");
    agree(&current, sent(|v| v["metadata"]["resourceVersion"] = json!("4")), UpdateMode::Main);
    agree(&current, sent(|v| v["metadata"]["uid"] = json!("other")), UpdateMode::Main);
}

#[test]
fn status_updates_agree_with_the_rule() {
    let current = stored();
    let (_, unchanged) = agree(&current, sent(|_| {}), UpdateMode::Status);
    assert!(unchanged);
    let (next, unchanged) = agree(&current, sent(|v| v["status"]["message"] = json!("m")), UpdateMode::Status);
    assert!(!unchanged);
    assert_eq!(next["status"]["message"], "m");
    let (next, _) = agree(&current, sent(|v| v["spec"]["command"] = json!("x")), UpdateMode::Status);
    assert_eq!(next["spec"], current["spec"], "the status subresource changes only the status");
    assert_eq!(next["metadata"]["generation"], 3);
    let (next, unchanged) = agree(&current, sent(|v| v["status"] = Value::Null), UpdateMode::Status);
    assert!(!unchanged && next.get("status").is_none());
    let no_status = sent(|v| {
        v.as_object_mut().unwrap().remove("status");
    });
    let (_, unchanged) = agree(&no_status, no_status.clone(), UpdateMode::Status);
    assert!(unchanged);
    let mut null_status = no_status.clone();
    null_status["status"] = Value::Null;
    let (_, unchanged) = agree(&null_status, no_status, UpdateMode::Status);
    assert!(!unchanged, "a stored null status is replaced by none");
    let illegal = sent(|v| v["status"]["state"] = json!("FINISHED"));
    let want = reference(task(), &current, illegal.clone(), UpdateMode::Status);
    assert!(want.as_ref().is_err_and(|e| e.contains("status.state")), "{want:?}");
    assert_eq!(through_admit(task(), &current, illegal, UpdateMode::Status), want);
}

#[test]
fn deleting_objects_and_kinds_without_status_agree_with_the_rule() {
    let deleting = sent(|v| {
        v["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
        v["metadata"]["finalizers"] = json!(["a"]);
    });
    agree(&deleting, sent(|v| v["metadata"]["finalizers"] = json!(["a"])), UpdateMode::Main);
    let added = sent(|v| v["metadata"]["finalizers"] = json!(["a", "b"]));
    assert_eq!(through_admit(task(), &deleting, added.clone(), UpdateMode::Main), Err("new finalizer".into()));
    assert_eq!(reference(task(), &deleting, added, UpdateMode::Main), Err("new finalizer".into()));
    let lease = registry::by_kind("Lease").expect("Lease is registered");
    assert!(!lease.has_status);
    let current = json!({"apiVersion": "meseta.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "ns", "uid": "u", "generation": 1, "resourceVersion": REV.to_string()},
        "spec": {"holderIdentity": "a"}});
    for wanted in [
        current.clone(),
        json!({"apiVersion": "meseta.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "ns"}, "spec": {"holderIdentity": "b"}}),
    ] {
        let want = reference(lease, &current, wanted.clone(), UpdateMode::Main);
        assert!(want.is_ok(), "{want:?}");
        assert_eq!(through_admit(lease, &current, wanted, UpdateMode::Main), want);
    }
}
