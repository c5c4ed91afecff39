//! Validation through the generic path the apiserver uses
//! (`registry::by_plural(..).check`): unknown fields, type errors,
//! apiVersion / kind, names, and every rule of Task. Jobs and the other
//! kinds are in `validation_kinds.rs`.

use meseta_schemas::registry::{by_plural, Checked};
use meseta_schemas::{FieldError, FieldErrorKind, Resources, Task, TaskSpec, Validate};
use serde_json::{json, Value};

fn check(plural: &str, v: &Value) -> Checked {
    (by_plural(plural).unwrap_or_else(|| panic!("no kind {plural}")).check)(v)
}

fn task(spec: Value) -> Value {
    json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t", "namespace": "default"}, "spec": spec})
}

fn errors(plural: &str, v: &Value) -> Vec<FieldError> {
    check(plural, v).errors
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

const OK_SPEC: &str = r#"{"command": "echo hi", "resources": {"cpus": 0.1, "mem": 32}}"#;

fn ok_spec() -> Value {
    serde_json::from_str(OK_SPEC).unwrap()
}

#[test]
fn a_good_task_passes_and_is_normalized() {
    let c = check("tasks", &task(ok_spec()));
    assert!(c.errors.is_empty(), "{:#?}", c.errors);
    assert!(c.unknown_fields.is_empty());
    assert_eq!(c.object["spec"]["resources"]["cpus"], 0.1);
    assert_eq!(c.object["kind"], "Task");
}

#[test]
fn unknown_fields_are_reported_with_dotted_paths() {
    let v = task(json!({
        "command": "x",
        "spex": 1,
        "resources": {"cpuz": 1, "ports": [{"begin": 1, "end": 2, "x": 1}]},
        "healthCheck": {"command": "true", "bogus": 2},
    }));
    let c = check("tasks", &v);
    let mut unknown = c.unknown_fields.clone();
    unknown.sort();
    assert_eq!(unknown, ["spec.healthCheck.bogus", "spec.resources.cpuz", "spec.resources.ports[0].x", "spec.spex"]);
    assert!(c.errors.is_empty(), "unknown fields are not errors by themselves: {:#?}", c.errors);
}

#[test]
fn wrong_or_missing_api_version_and_kind() {
    let mut v = task(ok_spec());
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Job");
    let errs = errors("tasks", &v);
    assert_eq!(fields(&errs), ["apiVersion", "kind"]);
    assert_eq!(only(&errs, "apiVersion").to_string(), "apiVersion: Invalid value: \"v1\": must be \"meseta.io/v1\"");
    assert!(only(&errs, "kind").detail.contains("\"Task\""));
    let bare = json!({"metadata": {"name": "t"}, "spec": ok_spec()});
    let errs = errors("tasks", &bare);
    assert_eq!(fields(&errs), ["apiVersion", "kind"]);
    assert!(errs.iter().all(|e| e.kind == FieldErrorKind::Required));
}

#[test]
fn type_errors_name_the_field_in_words() {
    let errs = errors("tasks", &task(json!({"command": "x", "resources": {"cpus": "lots"}})));
    let e = only(&errs, "spec.resources.cpus");
    assert_eq!(e.kind, FieldErrorKind::TypeInvalid);
    assert!(e.detail.contains("expected a number"), "{}", e.detail);
    let errs = errors("tasks", &task(json!({"command": "x", "ports": [{"name": "a"}, {"port": 70000}]})));
    let e = only(&errs, "spec.ports[1].port");
    assert!(e.detail.contains("70000") && e.detail.contains("from 0 to 65535"), "{}", e.detail);
    // JSON has no NaN or infinity; serde_json turns them into null.
    let errs = errors("tasks", &task(json!({"command": "x", "resources": {"cpus": f64::INFINITY}})));
    assert!(only(&errs, "spec.resources.cpus").detail.contains("null"));
}

#[test]
fn unknown_task_state_lists_the_allowed_ones() {
    let mut v = task(ok_spec());
    v["status"] = json!({"state": "RUNNIN"});
    let errs = errors("tasks", &v);
    let e = only(&errs, "status.state");
    assert_eq!(e.kind, FieldErrorKind::TypeInvalid);
    assert!(e.detail.contains("RUNNIN"), "{}", e.detail);
    for allowed in ["`PENDING`", "`RUNNING`", "`FINISHED`", "`PARTITIONED`"] {
        assert!(e.detail.contains(allowed), "{allowed} missing from {}", e.detail);
    }
    assert!(e.to_string().starts_with("status.state: "));
}

#[test]
fn names_must_be_dns_1123() {
    let named = |name: &str| {
        let mut v = task(ok_spec());
        v["metadata"]["name"] = json!(name);
        errors("tasks", &v)
    };
    for bad in ["Hello", "-web", "web-", "a_b", "ünï"] {
        let errs = named(bad);
        let e = only(&errs, "metadata.name");
        assert_eq!(e.kind, FieldErrorKind::Invalid);
        assert!(e.detail.contains("lower case alphanumeric"), "{bad}: {}", e.detail);
    }
    let long = "a".repeat(254);
    assert!(only(&named(&long), "metadata.name").detail.contains("no more than 253 characters (it has 254)"));
    assert!(named(&"a".repeat(253)).is_empty());
    assert!(named("web-1.blue").is_empty());
    assert_eq!(only(&named(""), "metadata.name").kind, FieldErrorKind::Required);
    let mut v = task(ok_spec());
    v["metadata"]["namespace"] = json!("Prod.Web");
    assert!(only(&errors("tasks", &v), "metadata.namespace").detail.contains("RFC 1123 label"));
    v["metadata"]["namespace"] = json!("default");
    v["metadata"]["finalizers"] = json!(["meseta.io/cleanup", ""]);
    assert_eq!(only(&errors("tasks", &v), "metadata.finalizers[1]").kind, FieldErrorKind::Required);
}

#[test]
fn resources_must_be_non_negative_whole_gpus_and_proper_port_ranges() {
    let errs = errors(
        "tasks",
        &task(json!({"command": "x", "resources": {
            "cpus": -1, "mem": -0.5, "disk": 0, "gpus": 1.5,
            "ports": [{"begin": 0, "end": 10}, {"begin": 9000, "end": 8000}],
        }})),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.resources.cpus",
            "spec.resources.gpus",
            "spec.resources.mem",
            "spec.resources.ports[0].begin",
            "spec.resources.ports[1].end"
        ]
    );
    assert_eq!(
        only(&errs, "spec.resources.cpus").to_string(),
        "spec.resources.cpus: Invalid value: -1: must be >= 0; an amount cannot be negative"
    );
    assert!(only(&errs, "spec.resources.gpus").detail.contains("whole number"));
    assert!(only(&errs, "spec.resources.ports[1].end").detail.contains(">= begin (9000)"));
}

#[test]
fn nan_and_infinite_resources_are_refused_through_the_typed_api() {
    let mut t = Task::new("t", TaskSpec { command: Some("x".into()), ..Default::default() }).in_namespace("default");
    t.spec.resources = Resources { cpus: f64::NAN, mem: f64::INFINITY, disk: f64::NEG_INFINITY, ..Default::default() };
    let errs = t.validate();
    assert_eq!(fields(&errs), ["spec.resources.cpus", "spec.resources.disk", "spec.resources.mem"]);
    assert!(errs.iter().all(|e| e.detail.starts_with("must be a finite number")), "{errs:#?}");
    let mut r = Resources::scalars(0.0, 0.0, 0.0, f64::NAN);
    r.ports.clear();
    assert_eq!(fields(&r.validate()), ["gpus"], "NaN gpus is one error, not also 'not whole'");
}

#[test]
fn command_and_args_rules() {
    let missing = errors("tasks", &task(json!({})));
    let e = only(&missing, "spec.command");
    assert_eq!(e.kind, FieldErrorKind::Required);
    assert!(e.detail.contains("/bin/sh -c") && e.detail.contains("args"));
    for empty in ["", "   "] {
        let errs = errors("tasks", &task(json!({"command": empty})));
        assert!(only(&errs, "spec.command").detail.contains("must not be empty"));
    }
    let both = errors("tasks", &task(json!({"command": "echo", "args": ["/bin/echo", "hi"]})));
    let e = only(&both, "spec.args");
    assert_eq!(e.kind, FieldErrorKind::Forbidden);
    assert!(e.detail.contains("not both"));
    let empty_prog = errors("tasks", &task(json!({"args": ["", "hi"]})));
    assert!(only(&empty_prog, "spec.args[0]").detail.contains("program"));
    assert!(errors("tasks", &task(json!({"args": ["/bin/echo", "hi"]}))).is_empty());
}

#[test]
fn env_ports_container_user_and_tiers() {
    let errs = errors(
        "tasks",
        &task(json!({
            "command": "x",
            "env": {"A=B": "1", "OK": "2"},
            "ports": [{"name": "http"}, {"name": "http"}, {"name": "my port", "port": 80}, {"port": 80}],
            "container": {"image": "busy box"},
            "user": "",
            "production": true,
            "revocable": true,
        })),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.container.image",
            "spec.env[\"A=B\"]",
            "spec.ports[1].name",
            "spec.ports[2].name",
            "spec.ports[3].port",
            "spec.revocable",
            "spec.user"
        ]
    );
    assert_eq!(only(&errs, "spec.ports[1].name").kind, FieldErrorKind::Duplicate);
    assert_eq!(only(&errs, "spec.ports[3].port").kind, FieldErrorKind::Duplicate);
    assert!(only(&errs, "spec.container.image").detail.contains("busybox:1.36"));
    assert_eq!(only(&errs, "spec.revocable").kind, FieldErrorKind::Forbidden);
}

#[test]
fn health_check_rules() {
    let errs = errors(
        "tasks",
        &task(json!({
            "command": "x",
            "healthCheck": {
                "http": {"port": 0, "path": "healthz"},
                "tcp": {"port": 0},
                "intervalSeconds": 0, "timeoutSeconds": 0, "consecutiveFailures": 0,
            },
        })),
    );
    assert_eq!(
        fields(&errs),
        [
            "spec.healthCheck",
            "spec.healthCheck.consecutiveFailures",
            "spec.healthCheck.http.path",
            "spec.healthCheck.http.port",
            "spec.healthCheck.intervalSeconds",
            "spec.healthCheck.tcp.port",
            "spec.healthCheck.timeoutSeconds"
        ]
    );
    assert!(only(&errs, "spec.healthCheck").detail.contains("exactly one of command, http, tcp"));
    assert!(only(&errs, "spec.healthCheck.http.port").detail.contains("add an entry to spec.ports"));
    // Port 0 is fine once the task asks for a port: it means the first one.
    let ok = task(json!({"command": "x", "ports": [{"name": "http"}], "healthCheck": {"http": {"port": 0}}}));
    assert!(errors("tasks", &ok).is_empty());
    let empty_cmd = task(json!({"command": "x", "healthCheck": {"command": " "}}));
    assert!(only(&errors("tasks", &empty_cmd), "spec.healthCheck.command").detail.contains("exits 0"));
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let mut v = task(json!({
        "command": "",
        "args": [""],
        "resources": {"cpus": -2, "mem": -1},
        "healthCheck": {},
    }));
    v["metadata"]["name"] = json!("Bad_Name");
    v["apiVersion"] = json!("meseta.io/v2");
    let errs = errors("tasks", &v);
    assert_eq!(
        fields(&errs),
        [
            "apiVersion",
            "metadata.name",
            "spec.args",
            "spec.args[0]",
            "spec.command",
            "spec.healthCheck",
            "spec.resources.cpus",
            "spec.resources.mem"
        ]
    );
    for e in &errs {
        assert!(!e.detail.is_empty(), "every error says why: {e}");
    }
}
