//! Handler tests without a socket (`router(state).oneshot(request)`) over the
//! real sled store: health, metrics, discovery and a create/get round trip.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use meseta_apiserver::{open_sled, router, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(state: &AppState, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = router(state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path()).expect("open the store");
    (dir, AppState::new(store))
}

#[tokio::test]
async fn health_and_readiness() {
    let (_dir, state) = state();
    assert_eq!(call(&state, "GET", "/healthz", None).await, (StatusCode::OK, "ok".into()));
    assert_eq!(call(&state, "GET", "/readyz", None).await, (StatusCode::OK, "ok".into()));
    state.begin_shutdown();
    assert_eq!(call(&state, "GET", "/readyz", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_count_requests_by_verb_resource_and_code() {
    let (_dir, state) = state();
    let task =
        json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t"}, "spec": {"command": "true"}});
    let (code, text) = call(&state, "POST", "/apis/meseta.io/v1/namespaces/m/tasks", Some(task)).await;
    assert_eq!(code, StatusCode::CREATED, "{text}");
    let (code, _) = call(&state, "GET", "/apis/meseta.io/v1/namespaces/m/tasks/t", None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = call(&state, "GET", "/apis/meseta.io/v1/namespaces/m/tasks/missing", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, metrics) = call(&state, "GET", "/metrics", None).await;
    assert!(metrics.contains(r#"apiserver_request_total{code="201",resource="tasks",verb="create"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"apiserver_request_total{code="404",resource="tasks",verb="get"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"apiserver_request_duration_seconds_count{resource="tasks",verb="get"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"apiserver_storage_duration_seconds_count{op="txn"} 1"#), "{metrics}");
}

#[tokio::test]
async fn metrics_count_store_transactions_by_resource_and_outcome() {
    let (_dir, state) = state();
    let task =
        json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t"}, "spec": {"command": "true"}});
    let (code, text) = call(&state, "POST", "/apis/meseta.io/v1/namespaces/m/tasks", Some(task.clone())).await;
    assert_eq!(code, StatusCode::CREATED, "{text}");
    // The same name again: the store's "absent" compare fails.
    let (code, text) = call(&state, "POST", "/apis/meseta.io/v1/namespaces/m/tasks", Some(task)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{text}");
    let (_, metrics) = call(&state, "GET", "/metrics", None).await;
    assert!(metrics.contains(r#"apiserver_storage_txn_total{outcome="committed",resource="tasks"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"apiserver_storage_txn_total{outcome="failed",resource="tasks"} 1"#), "{metrics}");
}

#[tokio::test]
async fn discovery_documents() {
    let (_dir, state) = state();
    let (code, text) = call(&state, "GET", "/apis/meseta.io/v1", None).await;
    assert_eq!(code, StatusCode::OK);
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "meseta.io/v1");
    let tasks = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "tasks").unwrap();
    assert_eq!(tasks["namespaced"], true);
    assert_eq!(tasks["kind"], "Task");
    let (_, text) = call(&state, "GET", "/apis", None).await;
    let groups: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(groups["groups"][0]["name"], "meseta.io");
    let (_, text) = call(&state, "GET", "/api", None).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["kind"], "APIVersions");
    let (_, text) = call(&state, "GET", "/version", None).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["major"], "1");
    let (code, text) = call(&state, "GET", "/nowhere", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["kind"], "Status");
}
