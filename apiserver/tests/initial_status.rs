//! The status a new object starts with: a Task is PENDING from its create,
//! with one `created` event stamped finer than the second, however it was
//! created (POST, dry run, server-side apply); other kinds keep Kubernetes'
//! rule that a create drops `status`.

mod common;

use chrono::{DateTime, Timelike, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Checks `t` carries exactly the initial Task status and returns its event time.
fn assert_initial(t: &Value) -> DateTime<Utc> {
    assert_eq!(t["status"]["state"], "PENDING", "{t}");
    let events = t["status"]["taskEvents"].as_array().unwrap_or_else(|| panic!("no taskEvents: {t}"));
    assert_eq!(events.len(), 1, "{t}");
    assert_eq!(events[0]["state"], "PENDING");
    assert_eq!(events[0]["message"], "created");
    let stamp = events[0]["timestamp"].as_str().unwrap();
    let fraction = stamp.split_once('.').map(|(_, f)| f.trim_end_matches('Z')).unwrap_or_default();
    assert!(fraction.len() >= 6 && fraction.bytes().all(|b| b.is_ascii_digit()), "sub-second stamp: {stamp}");
    let at: DateTime<Utc> = stamp.parse().unwrap();
    let created: DateTime<Utc> = t["metadata"]["creationTimestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.nanosecond(), 0, "creationTimestamp keeps whole seconds");
    assert!(at >= created && (at - created).num_milliseconds() < 1000, "event {at} within creation second {created}");
    at
}

#[tokio::test]
async fn a_created_task_reads_back_pending_with_a_precise_event() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let before = Utc::now();
    let mut body = task("web", "t1");
    body["status"] =
        json!({"state": "RUNNING", "taskEvents": [{"timestamp": "2024-01-01T00:00:00Z", "state": "RUNNING"}]});
    let created = api.post(&tasks("web"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let at = assert_initial(&created.body);
    assert!(at >= before && at <= Utc::now(), "{at} is the moment of the create");

    let got = api.get(&task_path("web", "t1")).await;
    assert_eq!(got.body, created.body, "stored as returned");
    let status = api.get(&format!("{}/status", task_path("web", "t1"))).await;
    assert_eq!(status.body["status"], created.body["status"]);

    // A later write appends to the history the create started.
    let mut assign = got.body.clone();
    let mut events = got.body["status"]["taskEvents"].as_array().unwrap().clone();
    events.push(json!({"timestamp": Utc::now().to_rfc3339(), "state": "ASSIGNED"}));
    assign["status"] = json!({"state": "ASSIGNED", "agent": "a1", "taskEvents": events});
    let r = api.put(&format!("{}/status", task_path("web", "t1")), &assign).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let states: Vec<_> = r.body["status"]["taskEvents"].as_array().unwrap().iter().map(|e| &e["state"]).collect();
    assert_eq!(states, ["PENDING", "ASSIGNED"]);
}

#[tokio::test]
async fn dry_run_and_apply_creates_start_pending_too() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let dry = api.post(&format!("{}?dryRun=All", tasks("web")), &task("web", "t1")).await;
    assert_eq!(dry.status, StatusCode::CREATED, "{}", dry.text);
    assert_initial(&dry.body);
    assert!(api.names(&tasks("web")).await.is_empty(), "a dry run stores nothing");

    let applied = api.apply(&task_path("web", "t2"), &task("web", "t2")).await;
    assert_eq!(applied.status, StatusCode::CREATED, "{}", applied.text);
    assert_initial(&applied.body);
}

#[tokio::test]
async fn other_kinds_still_drop_status_on_create() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let roles = format!("{API}/roles");
    let mut body = role("analytics");
    body["status"] = json!({"dominantShare": 0.5});
    let created = api.post(&roles, &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.body.get("status").is_none(), "{}", created.body);
    let dry = api.post(&format!("{roles}?dryRun=All"), &role("dry")).await;
    assert_eq!(dry.status, StatusCode::CREATED, "{}", dry.text);
    assert!(dry.body.get("status").is_none(), "{}", dry.body);
    let got = api.get(&format!("{roles}/analytics")).await;
    assert!(got.body.get("status").is_none(), "{}", got.body);
}
