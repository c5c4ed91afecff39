use serde_json::json;

use super::*;

fn task(cpus: f64) -> Value {
    json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t", "namespace": "default"},
        "spec": {"command": "true", "resources": {"cpus": cpus, "mem": 32}}})
}

#[test]
fn an_update_takes_the_fields_it_changes() {
    let mut created = task(1.0);
    track_update(None, &mut created, "kubectl-client-side-apply", UpdateMode::Main, true);
    let entries = fields::read(&created);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].fields.contains(&vec!["spec".to_string(), "resources".into(), "cpus".into()]));
    let mut next = created.clone();
    next["spec"]["resources"]["cpus"] = json!(2.0);
    next["status"] = json!({"state": "RUNNING"});
    track_update(Some(&created), &mut next, "kubectl-edit", UpdateMode::Main, true);
    let entries = fields::read(&next);
    let edit = entries.iter().find(|e| e.manager == "kubectl-edit").expect("an entry for kubectl-edit");
    assert_eq!(edit.fields.len(), 1, "status is not the main resource's: {:?}", edit.fields);
    let csa = entries.iter().find(|e| e.manager == "kubectl-client-side-apply").unwrap();
    assert!(!csa.fields.contains(&vec!["spec".to_string(), "resources".into(), "cpus".into()]));
}

#[test]
fn apply_conflicts_unless_forced_and_shares_equal_values() {
    let mut live = task(1.0);
    track_update(None, &mut live, "kubectl-client-side-apply", UpdateMode::Main, true);
    // Same values: no conflict, shared ownership.
    assert!(apply_to(&live, &task(1.0), "kubectl", false, UpdateMode::Main, true).is_ok());
    let conflicts = apply_to(&live, &task(2.0), "kubectl", false, UpdateMode::Main, true).unwrap_err();
    assert_eq!(
        conflicts,
        vec![Conflict { manager: "kubectl-client-side-apply".into(), field: ".spec.resources.cpus".into() }]
    );
    let forced = apply_to(&live, &task(2.0), "kubectl", true, UpdateMode::Main, true).unwrap();
    assert_eq!(forced["spec"]["resources"]["cpus"], 2.0);
    // Now kubectl owns cpus alone: applying again with another value is no conflict.
    assert!(apply_to(&forced, &task(3.0), "kubectl", false, UpdateMode::Main, true).is_ok());
}

#[test]
fn fields_left_out_of_an_apply_are_removed_when_nobody_else_owns_them() {
    let first = apply_to(&json!({"metadata": {"name": "t"}}), &task(1.0), "m", false, UpdateMode::Main, true).unwrap();
    let mut config = task(1.0);
    config["spec"]["resources"].as_object_mut().unwrap().remove("mem");
    let second = apply_to(&first, &config, "m", false, UpdateMode::Main, true).unwrap();
    assert!(second["spec"]["resources"].get("mem").is_none());
    assert_eq!(second["spec"]["resources"]["cpus"], 1.0);
}

#[test]
fn conflict_messages_read_like_kubernetes() {
    let target = Target::parse("namespaces/default/tasks/t").unwrap();
    let one = conflict_status(&target, &[Conflict { manager: "a".into(), field: ".spec.x".into() }]);
    assert_eq!(one["message"], "Apply failed with 1 conflict: conflict with \"a\" using meseta.io/v1: .spec.x");
    assert_eq!(one["code"], 409);
    assert_eq!(one["details"]["causes"][0]["type"], "FieldManagerConflict");
    let two = conflict_status(
        &target,
        &[
            Conflict { manager: "a".into(), field: ".spec.x".into() },
            Conflict { manager: "a".into(), field: ".spec.y".into() },
        ],
    );
    assert_eq!(
        two["message"],
        "Apply failed with 2 conflicts: conflicts with \"a\" using meseta.io/v1:\n- .spec.x\n- .spec.y"
    );
}
