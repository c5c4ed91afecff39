//! Bad requests: each answers a Status naming the problem, and the store is
//! left exactly as it was (same objects, same revision).

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A server with one task already stored, and a check that nothing changed.
struct Fixture {
    server: TestServer,
    api: Api,
    before: Vec<Value>,
    revision: u64,
}

impl Fixture {
    async fn new() -> Fixture {
        let server = TestServer::start().await;
        let api = Api::new(&server);
        let r = api.post(&tasks("b"), &task("b", "existing")).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let before = api.snapshot().await;
        let revision = server.store().revision();
        Fixture { server, api, before, revision }
    }

    /// Asserts the response is a Status with `code`/`reason` whose message
    /// contains `needle`, and that the store is unchanged.
    async fn rejected(&self, r: &Resp, code: StatusCode, reason: &str, needle: &str) {
        assert_eq!(r.status, code, "{}", r.text);
        assert_eq!(r.body["kind"], "Status", "{}", r.text);
        assert_eq!(r.body["apiVersion"], "v1");
        assert_eq!(r.body["status"], "Failure");
        assert_eq!(r.body["code"], code.as_u16());
        assert_eq!(r.body["reason"], reason, "{}", r.text);
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains(needle), "message {message:?} should mention {needle:?}");
        assert_eq!(self.api.snapshot().await, self.before, "a rejected request changed the store");
        assert_eq!(self.server.store().revision(), self.revision, "a rejected request spent a revision");
    }
}

#[tokio::test]
async fn malformed_json_and_yaml_name_line_and_column() {
    let f = Fixture::new().await;
    let r = f
        .api
        .raw(Method::POST, &tasks("b"), "application/json", "{\n  \"kind\": \"Task\",\n  \"metadata\": {,\n}")
        .await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "line 3 column").await;
    let r = f.api.raw(Method::POST, &tasks("b"), "application/yaml", "kind: Task\nmetadata: [a,\n  b: }\n").await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "line").await;
    let r = f.api.raw(Method::POST, &tasks("b"), "application/json", "[1, 2]").await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "object").await;
    let r = f.api.raw(Method::POST, &tasks("b"), "application/json", "").await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "empty").await;
}

#[tokio::test]
async fn yaml_bodies_are_accepted() {
    let f = Fixture::new().await;
    let yaml = "apiVersion: meseta.io/v1\nkind: Task\nmetadata:\n  name: from-yaml\nspec:\n  command: echo hi\n";
    let r = f.api.raw(Method::POST, &tasks("b"), "application/yaml", yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["metadata"]["namespace"], "b");
}

#[tokio::test]
async fn wrong_api_version_or_kind_is_rejected() {
    let f = Fixture::new().await;
    let mut t = task("b", "t");
    t["apiVersion"] = json!("v1");
    let r = f.api.post(&tasks("b"), &t).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "apiVersion").await;
    let r = f.api.post(&tasks("b"), &json!({"apiVersion": "meseta.io/v1", "kind": "Role", "metadata": {"name": "x"}, "spec": {"command": "true"}})).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "kind").await;
}

#[tokio::test]
async fn invalid_names_and_namespaces() {
    let f = Fixture::new().await;
    let r = f.api.post(&tasks("b"), &task("b", "Bad_Name")).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name").await;
    let mut t = task("b", "x");
    t["metadata"] = json!({});
    let r = f.api.post(&tasks("b"), &t).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name").await;
    let r = f.api.post(&tasks("b"), &task("other", "x")).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "does not match the namespace").await;
    let mut renamed = f.api.get(&task_path("b", "existing")).await.body;
    renamed["metadata"]["name"] = json!("other");
    let r = f.api.put(&task_path("b", "existing"), &renamed).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "does not match the name").await;
}

#[tokio::test]
async fn validation_errors_are_422_with_every_cause() {
    let f = Fixture::new().await;
    let mut t = task("b", "bad");
    t["spec"]["resources"]["cpus"] = json!(-1);
    let r = f.api.post(&tasks("b"), &t).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "").await;
    let m = r.body["message"].as_str().unwrap();
    assert!(
        m.starts_with("Task.meseta.io \"bad\" is invalid: spec.resources.cpus: Invalid value: -1: must be >= 0"),
        "{m}"
    );
    assert_eq!(r.body["details"]["name"], "bad");
    assert_eq!(r.body["details"]["group"], "meseta.io");
    assert_eq!(r.body["details"]["kind"], "Task");
    assert_eq!(r.body["details"]["causes"][0]["field"], "spec.resources.cpus");
    assert_eq!(r.body["details"]["causes"][0]["reason"], "FieldValueInvalid");

    t["spec"]["resources"]["mem"] = json!(-5);
    let r = f.api.post(&tasks("b"), &t).await;
    let m = r.body["message"].as_str().unwrap();
    assert!(m.starts_with("Task.meseta.io \"bad\" is invalid: [spec.resources.cpus: "), "{m}");
    assert!(m.contains(", spec.resources.mem: Invalid value: -5: must be >= 0") && m.ends_with(']'), "{m}");
    assert_eq!(r.body["details"]["causes"].as_array().unwrap().len(), 2);

    let mut existing = f.api.get(&task_path("b", "existing")).await.body;
    existing["spec"]["resources"]["cpus"] = json!(-1);
    let r = f.api.put(&task_path("b", "existing"), &existing).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "spec.resources.cpus").await;
    let r = f
        .api
        .patch(
            &task_path("b", "existing"),
            "application/merge-patch+json",
            &json!({"spec": {"resources": {"mem": -3}}}),
        )
        .await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "spec.resources.mem").await;
    let r = f.api.post(&tasks("b"), &json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "typed"}, "spec": {"resources": {"cpus": "lots"}}})).await;
    f.rejected(&r, StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "spec.resources.cpus").await;
}

#[tokio::test]
async fn unknown_fields_strict_warn_and_ignore() {
    let f = Fixture::new().await;
    let mut t = task("b", "u");
    t["spec"]["spex"] = json!(1);
    t["extra"] = json!(true);
    let r = f.api.post(&tasks("b"), &t).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "strict decoding error: ").await;
    let m = r.body["message"].as_str().unwrap();
    assert!(m.contains("unknown field \"spec.spex\""), "{m}");
    assert!(m.contains("unknown field \"extra\""), "{m}");

    let r = f.api.post(&format!("{}?fieldValidation=Warn", tasks("b")), &t).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let warnings: Vec<&str> = r.headers.get_all("warning").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(warnings.contains(&"299 - \"unknown field \\\"spec.spex\\\"\""), "{warnings:?}");
    assert!(r.body["spec"].get("spex").is_none(), "unknown fields are dropped");

    t["metadata"]["name"] = json!("u2");
    let r = f.api.post(&format!("{}?fieldValidation=Ignore", tasks("b")), &t).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("warning").is_none());
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let f = Fixture::new().await;
    let mut t = task("b", "huge");
    t["metadata"]["annotations"] = json!({"blob": "x".repeat(4 * 1024 * 1024)});
    let r = f.api.post(&tasks("b"), &t).await;
    f.rejected(&r, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", "limit").await;
}

#[tokio::test]
async fn unsupported_media_types_are_415() {
    let f = Fixture::new().await;
    let r = f.api.raw(Method::PATCH, &task_path("b", "existing"), "application/strategic-merge-patch+json", "{}").await;
    f.rejected(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", "application/merge-patch+json").await;
    let r = f.api.raw(Method::POST, &tasks("b"), "text/plain", task("b", "p").to_string()).await;
    f.rejected(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", "text/plain").await;
    let r = f.api.patch(&task_path("b", "existing"), "application/json-patch+json", &json!({"op": "add"})).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "array").await;
}

#[tokio::test]
async fn bad_paths_methods_and_parameters() {
    let f = Fixture::new().await;
    let r = f.api.get(&format!("{API}/widgets")).await;
    f.rejected(&r, StatusCode::NOT_FOUND, "NotFound", "widgets").await;
    let r = f.api.send(Method::PUT, &tasks("b"), Some(&task("b", "x"))).await;
    f.rejected(&r, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "PUT").await;
    let r = f.api.post(&format!("{}?dryRun=Maybe", tasks("b")), &task("b", "x")).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "dryRun").await;
    let r = f.api.get(&format!("{}?fieldSelector=spec.agent%3D%3D%3Dx", tasks("b"))).await;
    f.rejected(&r, StatusCode::BAD_REQUEST, "BadRequest", "fieldSelector").await;
    let r = f.api.get(&format!("{}/existing/logs", tasks("b"))).await;
    f.rejected(&r, StatusCode::NOT_FOUND, "NotFound", "logs").await;
}
