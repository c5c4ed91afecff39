//! Validation of Job and every other kind through the generic path the
//! apiserver uses (`registry::by_plural(..).check`).

use meseta_schemas::registry::{by_plural, kinds};
use meseta_schemas::validation::cron_schedule;
use meseta_schemas::{FieldError, FieldErrorKind};
use serde_json::{json, Value};

fn object(kind: &str, namespaced: bool, spec: Value) -> Value {
    let mut meta = json!({"name": "x"});
    if namespaced {
        meta["namespace"] = json!("web");
    }
    json!({"apiVersion": "meseta.io/v1", "kind": kind, "metadata": meta, "spec": spec})
}

fn errors(plural: &str, spec: Value) -> Vec<FieldError> {
    let info = by_plural(plural).unwrap();
    let c = (info.check)(&object(info.kind, info.namespaced, spec));
    assert!(c.unknown_fields.is_empty(), "test input has unknown fields: {:?}", c.unknown_fields);
    c.errors
}

fn fields(errs: &[FieldError]) -> Vec<&str> {
    let mut f: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    f.sort();
    f
}

fn only(errs: &[FieldError], field: &str) -> FieldError {
    let hits: Vec<&FieldError> = errs.iter().filter(|e| e.field == field).collect();
    assert_eq!(hits.len(), 1, "want one error on {field}, got {errs:#?}");
    hits[0].clone()
}

fn template() -> Value {
    json!({"command": "echo hi", "resources": {"cpus": 0.1, "mem": 32}})
}

/// A minimal valid spec per kind; each kind's rules are then tested by
/// breaking one.
fn good(plural: &str) -> Value {
    match plural {
        "roles" => json!({"weight": 2}),
        "agents" => json!({"address": "10.0.0.1:5051", "resources": {"cpus": 4, "mem": 8192}}),
        "leases" => json!({"holderIdentity": "agent-1", "leaseDurationSeconds": 10}),
        "frameworks" => json!({"capabilities": ["Revocable"]}),
        "offers" => json!({"framework": "f", "agent": "a", "resources": {"cpus": 1}}),
        "tasks" => template(),
        "jobs" => json!({"type": "service", "template": template()}),
        "reservations" => json!({"agent": "a", "resources": {"cpus": 1}}),
        "quotas" => json!({"guarantee": {"cpus": 1}, "limit": {"cpus": 2}}),
        other => panic!("no example for {other}"),
    }
}

#[test]
fn every_kind_accepts_a_good_object() {
    for k in kinds() {
        let v = if k.plural == "events" {
            json!({"apiVersion": "meseta.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "web"},
                   "involvedObject": {"kind": "Task", "name": "t"}, "reason": "Started", "message": "ok"})
        } else {
            object(k.kind, k.namespaced, good(k.plural))
        };
        let c = (k.check)(&v);
        assert!(
            c.errors.is_empty() && c.unknown_fields.is_empty(),
            "{}: {:#?} {:?}",
            k.kind,
            c.errors,
            c.unknown_fields
        );
    }
}

#[test]
fn unknown_job_type_lists_the_allowed_ones() {
    let errs = errors("jobs", json!({"type": "batch", "template": template()}));
    let e = only(&errs, "spec.type");
    assert_eq!(e.kind, FieldErrorKind::TypeInvalid);
    assert!(e.detail.contains("`batch`") && e.detail.contains("`service`, `adhoc`, `cron`"), "{}", e.detail);
}

#[test]
fn job_rules_all_reported_together() {
    let errs = errors(
        "jobs",
        json!({
            "type": "adhoc",
            "production": true,
            "maxTaskFailures": 0,
            "cron": {"schedule": "* * * * *"},
            "template": {"command": "x", "agent": "a1", "revocable": true, "resources": {"cpus": -1}},
            "updateStrategy": {"batchSize": 0, "minimumHealthyPercent": 101},
        }),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.cron",
            "spec.maxTaskFailures",
            "spec.template.agent",
            "spec.template.resources.cpus",
            "spec.template.revocable",
            "spec.updateStrategy.batchSize",
            "spec.updateStrategy.minimumHealthyPercent"
        ]
    );
    assert!(only(&errs, "spec.cron").detail.contains("set type: cron"));
    assert!(only(&errs, "spec.maxTaskFailures").detail.contains("-1 for unlimited"));
    assert!(errors("jobs", json!({"maxTaskFailures": -2, "template": template()}))
        .iter()
        .any(|e| e.field == "spec.maxTaskFailures"));
    assert!(errors("jobs", json!({"maxTaskFailures": -1, "template": template()})).is_empty());
    assert_eq!(fields(&errors("jobs", json!({}))), ["spec.template.command"], "the template is checked");
}

#[test]
fn cron_jobs_need_a_valid_schedule() {
    let cron = |schedule: Value| errors("jobs", json!({"type": "cron", "cron": schedule, "template": template()}));
    assert_eq!(
        only(&errors("jobs", json!({"type": "cron", "template": template()})), "spec.cron").kind,
        FieldErrorKind::Required
    );
    for (bad, why) in [
        ("* * * *", "has 4 fields"),
        ("@daily", "has 1 fields"),
        ("61 * * * *", "minute field \"61\": 61 is outside 0-59"),
        ("*/0 * * * *", "step \"0\""),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field \"0\": 0 is outside 1-31"),
        ("* * * FOO *", "\"FOO\" is not a number"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty value"),
    ] {
        let errs = cron(json!({"schedule": bad}));
        let e = only(&errs, "spec.cron.schedule");
        assert!(e.detail.contains(why), "{bad}: {}", e.detail);
        assert!(e.detail.contains("e.g. \"*/5 * * * *\""), "{bad}: the message shows a good one");
    }
    for good in ["*/5 * * * *", "0 9 * * MON-FRI", "0 0 1 jan,jul *", "15,45 */2 1-15 * 0", "0 0 * * 7"] {
        assert!(cron(json!({"schedule": good})).is_empty(), "{good}");
        assert_eq!(cron_schedule(good), None);
    }
}

#[test]
fn constraint_rules() {
    let errs = errors(
        "jobs",
        json!({
            "template": template(),
            "constraints": [
                {"attribute": "rack", "operator": "MAX_PER"},
                {"attribute": "rack", "operator": "MAX_PER", "value": "0"},
                {"attribute": "rack", "operator": "MAX_PER", "value": "two"},
                {"attribute": "host", "operator": "LIKE", "value": "web-(["},
                {"attribute": "zone", "operator": "EQUALS"},
                {"attribute": "hostname", "operator": "UNIQUE", "value": "1"},
                {"attribute": "", "operator": "UNLIKE", "value": "a.*"},
                {"attribute": "hostname", "operator": "UNIQUE"},
                {"attribute": "rack", "operator": "MAX_PER", "value": "2"},
            ],
        }),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.constraints[0].value",
            "spec.constraints[1].value",
            "spec.constraints[2].value",
            "spec.constraints[3].value",
            "spec.constraints[4].value",
            "spec.constraints[5].value",
            "spec.constraints[6].attribute"
        ]
    );
    let e = only(&errs, "spec.constraints[0].value");
    assert_eq!(e.kind, FieldErrorKind::Required);
    assert_eq!(e.detail, "MAX_PER needs a value");
    assert!(only(&errs, "spec.constraints[2].value").detail.contains("whole number >= 1"));
    assert!(only(&errs, "spec.constraints[3].value").detail.contains("LIKE needs a valid regular expression"));
    assert_eq!(only(&errs, "spec.constraints[5].value").kind, FieldErrorKind::Forbidden);
}

#[test]
fn unknown_constraint_operator_lists_the_allowed_ones() {
    let info = by_plural("jobs").unwrap();
    let spec = json!({"template": template(), "constraints": [{"attribute": "rack", "operator": "NEAR"}]});
    let errs = (info.check)(&object("Job", true, spec)).errors;
    let e = only(&errs, "spec.constraints[0].operator");
    assert!(e.detail.contains("`MAX_PER`") && e.detail.contains("`UNIQUE`"), "{}", e.detail);
}

#[test]
fn quota_guarantee_may_not_exceed_limit() {
    let errs =
        errors("quotas", json!({"guarantee": {"cpus": 8, "mem": 4096, "disk": 1}, "limit": {"cpus": 4, "mem": 4096}}));
    assert_eq!(fields(&errs), ["spec.guarantee.cpus", "spec.guarantee.disk"]);
    assert_eq!(
        only(&errs, "spec.guarantee.cpus").to_string(),
        "spec.guarantee.cpus: Invalid value: 8: must not exceed spec.limit.cpus (4); raise the limit or lower the guarantee"
    );
    assert!(errors("quotas", json!({"guarantee": {"cpus": 8}})).is_empty(), "no limit, no bound");
    let neg = errors("quotas", json!({"guarantee": {"cpus": -1}, "limit": {"mem": -1}}));
    assert_eq!(fields(&neg), ["spec.guarantee.cpus", "spec.limit.mem"]);
}

#[test]
fn reservation_rules() {
    let errs = errors("reservations", json!({"agent": "", "resources": {}}));
    assert_eq!(fields(&errs), ["spec.agent", "spec.resources"]);
    assert!(errs.iter().all(|e| e.kind == FieldErrorKind::Required));
    assert!(only(&errs, "spec.resources").detail.contains("cpus: 1"));
    let errs = errors("reservations", json!({"agent": "a", "resources": {"cpus": -1}}));
    assert_eq!(fields(&errs), ["spec.resources", "spec.resources.cpus"], "negative reserves nothing");
}

#[test]
fn role_rules() {
    for w in [0.0, -1.0] {
        let errs = errors("roles", json!({"weight": w}));
        assert!(only(&errs, "spec.weight").detail.contains("> 0"));
    }
    let info = by_plural("roles").unwrap();
    let dotted = json!({"apiVersion": "meseta.io/v1", "kind": "Role", "metadata": {"name": "web.prod"}, "spec": {}});
    let errs = (info.check)(&dotted).errors;
    assert!(only(&errs, "metadata.name").detail.contains("namespace name"), "a role name is a namespace: no dots");
}

#[test]
fn agent_rules() {
    let errs = errors(
        "agents",
        json!({
            "resources": {"cpus": 2, "mem": -1},
            "reservations": {"Web": {"cpus": 1}, "batch": {"cpus": 2, "gpus": -1}},
            "attributes": {"": "x", "rack": "a"},
        }),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.attributes",
            "spec.reservations",
            "spec.reservations[Web]",
            "spec.reservations[batch].gpus",
            "spec.resources.mem"
        ]
    );
    assert!(only(&errs, "spec.reservations").detail.contains("exceed spec.resources"));
    assert!(only(&errs, "spec.reservations[Web]").detail.contains("role name"));
}

#[test]
fn lease_framework_offer_event_rules() {
    assert_eq!(fields(&errors("leases", json!({"leaseDurationSeconds": 0}))), ["spec.leaseDurationSeconds"]);
    let errs = errors(
        "frameworks",
        json!({"failoverTimeoutSeconds": -5, "defaultRefuseSeconds": -1, "capabilities": ["Gpu", "Gpu"]}),
    );
    assert_eq!(fields(&errs), ["spec.capabilities[1]", "spec.defaultRefuseSeconds", "spec.failoverTimeoutSeconds"]);
    assert_eq!(only(&errs, "spec.capabilities[1]").kind, FieldErrorKind::Duplicate);
    let errs =
        errors("offers", json!({"framework": "", "agent": "", "reserved": {"cpus": -1}, "revocable": {"mem": -1}}));
    assert_eq!(fields(&errs), ["spec.agent", "spec.framework", "spec.reserved.cpus", "spec.revocable.mem"]);
    let info = by_plural("events").unwrap();
    let ev = json!({"apiVersion": "meseta.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "web"}});
    assert_eq!(fields(&(info.check)(&ev).errors), ["involvedObject.name"]);
}

#[test]
fn cluster_kinds_ignore_namespace_but_namespaced_kinds_check_it() {
    let agents = by_plural("agents").unwrap();
    let mut v = object("Agent", false, good("agents"));
    v["metadata"]["namespace"] = json!("NOT_A_LABEL");
    assert!((agents.check)(&v).errors.is_empty());
    let reservations = by_plural("reservations").unwrap();
    let mut v = object("Reservation", true, good("reservations"));
    v["metadata"]["namespace"] = json!("NOT_A_LABEL");
    assert_eq!(fields(&(reservations.check)(&v).errors), ["metadata.namespace"]);
}
