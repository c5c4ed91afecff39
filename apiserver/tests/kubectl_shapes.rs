//! The shapes kubectl depends on, checked without a socket
//! (`router(state).oneshot(request)`): `/version`, aggregated discovery and
//! its media type, the OpenAPI v3 index and document, Table answers for
//! lists and single objects, the core v1 events list, and server-side apply
//! conflicts.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use meseta_apiserver::{open_sled, router, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

const TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = router(state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sled(dir.path()).expect("open the store");
    (dir, AppState::new(store))
}

fn task(name: &str, cpus: f64) -> Value {
    json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": name},
        "spec": {"command": "true", "resources": {"cpus": cpus, "mem": 32}}})
}

const TASKS: &str = "/apis/meseta.io/v1/namespaces/default/tasks";
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn version_and_aggregated_discovery() {
    let (_dir, state) = state();
    let (_, _, v) = call(&state, "GET", "/version", &[], None).await;
    assert_eq!((v["major"].as_str(), v["minor"].as_str()), (Some("1"), Some("32")));
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32.0-meseta."));
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (code, headers, v) = call(&state, "GET", "/apis", &[("accept", accept)], None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    assert_eq!(v["items"][0]["metadata"]["name"], "meseta.io");
    let (_, headers, v) = call(&state, "GET", "/apis", &[("accept", "application/json")], None).await;
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(v["kind"], "APIGroupList");
}

#[tokio::test]
async fn openapi_v3_index_and_document() {
    let (_dir, state) = state();
    let (_, _, index) = call(&state, "GET", "/openapi/v3", &[], None).await;
    let url = index["paths"]["apis/meseta.io/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    assert!(url.contains("?hash="), "{url}");
    let (code, _, doc) = call(&state, "GET", &url, &[], None).await;
    assert_eq!(code, StatusCode::OK);
    let patch = &doc["paths"]["/apis/meseta.io/v1/namespaces/{namespace}/tasks/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "meseta.io", "version": "v1", "kind": "Task"})
    );
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
    assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_none());
    assert!(doc["components"]["schemas"]["Task"]["x-kubernetes-group-version-kind"].is_array());
    assert_eq!(call(&state, "GET", "/openapi/v2", &[], None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&state, "GET", "/openapi/v3/apis/other/v1", &[], None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tables_for_lists_and_objects() {
    let (_dir, state) = state();
    assert_eq!(call(&state, "POST", TASKS, &[JSON], Some(task("t1", 0.5))).await.0, StatusCode::CREATED);
    let (code, _, list) = call(&state, "GET", &format!("{TASKS}?limit=500"), &[("accept", TABLE)], None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
    let names: Vec<&str> =
        list["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(&names[..6], ["Name", "State", "Agent", "CPUs", "Mem", "Age"]);
    assert_eq!(list["columnDefinitions"][0]["format"], "name");
    assert_eq!(list["rows"][0]["cells"][0], "t1");
    assert_eq!(list["rows"][0]["cells"][3], "0.5");
    assert_eq!(list["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(list["rows"][0]["object"]["metadata"]["namespace"], "default");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let (_, _, one) = call(&state, "GET", &format!("{TASKS}/t1"), &[("accept", TABLE)], None).await;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    let (_, _, plain) = call(&state, "GET", &format!("{TASKS}/t1"), &[("accept", "application/json")], None).await;
    assert_eq!(plain["kind"], "Task");
    let (_, _, agents) = call(&state, "GET", "/apis/meseta.io/v1/agents", &[("accept", TABLE)], None).await;
    assert_eq!(agents["columnDefinitions"][1]["name"], "Status");
    assert_eq!(agents["rows"], json!([]));
}

#[tokio::test]
async fn core_events_list_for_describe() {
    let (_dir, state) = state();
    let event = |name: &str, about: &str| {
        json!({"apiVersion": "meseta.io/v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Task", "name": about, "namespace": "default"}, "reason": "Scheduled",
            "message": "placed", "type": "Normal", "count": 1})
    };
    let events = "/apis/meseta.io/v1/namespaces/default/events";
    assert_eq!(call(&state, "POST", events, &[JSON], Some(event("e1", "t1"))).await.0, StatusCode::CREATED);
    assert_eq!(call(&state, "POST", events, &[JSON], Some(event("e2", "t2"))).await.0, StatusCode::CREATED);
    let uri = "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dt1,involvedObject.namespace%3Ddefault,involvedObject.kind%3DTask,involvedObject.uid%3Dabc";
    let (code, _, list) = call(&state, "GET", uri, &[], None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("EventList"), Some("v1")));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!((items[0]["metadata"]["name"].as_str(), items[0]["apiVersion"].as_str()), (Some("e1"), Some("v1")));
    assert_eq!(call(&state, "GET", "/api/v1/namespaces/default", &[], None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let (_dir, state) = state();
    let apply = ("content-type", "application/apply-patch+yaml");
    let url = |q: &str| format!("{TASKS}/t1?{q}");
    let (code, _, created) = call(&state, "PATCH", &url("fieldManager=a"), &[apply], Some(task("t1", 1.0))).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "a");
    assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Apply");
    let (code, _, status) = call(&state, "PATCH", &url("fieldManager=b"), &[apply], Some(task("t1", 2.0))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"a\" using meseta.io/v1: .spec.resources.cpus"
    );
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.resources.cpus");
    let (code, _, forced) =
        call(&state, "PATCH", &url("fieldManager=b&force=true"), &[apply], Some(task("t1", 2.0))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(forced["spec"]["resources"]["cpus"], 2.0);
    let (code, _, missing) = call(&state, "PATCH", &url(""), &[apply], Some(task("t1", 2.0))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{missing}");
}
