//! Finalizers, deletionTimestamp and cascading deletion through
//! ownerReferences (Background, Orphan, Foreground), including after a restart.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn job(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "meseta.io/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "service", "instances": 1, "template": {"command": "sleep 100", "resources": {"cpus": 0.1, "mem": 16}}}
    })
}

fn owned_task(ns: &str, name: &str, owner: &Value) -> Value {
    let mut t = task(ns, name);
    t["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "meseta.io/v1", "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
    }]);
    t
}

fn jobs(ns: &str) -> String {
    format!("{API}/namespaces/{ns}/jobs")
}

async fn create_family(api: &Api, ns: &str, children: usize) -> Value {
    let j = api.post(&jobs(ns), &job(ns, "j")).await;
    assert_eq!(j.status, StatusCode::CREATED, "{}", j.text);
    for i in 0..children {
        let r = api.post(&tasks(ns), &owned_task(ns, &format!("j-{i}"), &j.body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    j.body
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let mut t = task("f", "t1");
    t["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    api.post(&tasks("f"), &t).await;

    let d = api.delete(&task_path("f", "t1")).await;
    assert_eq!(d.status, StatusCode::OK);
    let stamp = d.body["metadata"]["deletionTimestamp"].clone();
    assert!(stamp.is_string(), "{}", d.text);
    let still = api.get(&task_path("f", "t1")).await;
    assert_eq!(still.status, StatusCode::OK, "the object stays while finalizers remain");
    assert_eq!(still.body["metadata"]["deletionTimestamp"], stamp);

    let again = api.delete(&task_path("f", "t1")).await;
    assert_eq!(again.body["metadata"]["deletionTimestamp"], stamp, "deletionTimestamp is set once");

    let add = api
        .patch(
            &task_path("f", "t1"),
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": ["example.com/cleanup", "new"]}}),
        )
        .await;
    assert_eq!(add.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", add.text);
    assert!(add.body["message"].as_str().unwrap().contains("metadata.finalizers"));

    let mut cleared = still.body.clone();
    cleared["metadata"]["finalizers"] = json!([]);
    let r = api.put(&task_path("f", "t1"), &cleared).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        api.get(&task_path("f", "t1")).await.status,
        StatusCode::NOT_FOUND,
        "removing the last finalizer deletes it"
    );
}

#[tokio::test]
async fn background_cascade_deletes_dependents() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    create_family(&api, "bg", 5).await;
    let mut unrelated = task("bg", "keep");
    unrelated["metadata"]["labels"] = json!({"x": "y"});
    api.post(&tasks("bg"), &unrelated).await;
    assert_eq!(api.delete(&format!("{}/j", jobs("bg"))).await.status, StatusCode::OK);
    assert_eq!(api.get(&format!("{}/j", jobs("bg"))).await.status, StatusCode::NOT_FOUND, "the owner goes first");
    eventually("dependents collected", || async { api.names(&tasks("bg")).await == vec!["keep"] }).await;
}

#[tokio::test]
async fn orphan_keeps_dependents_without_the_reference() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    create_family(&api, "or", 3).await;
    let d = api.delete(&format!("{}/j?propagationPolicy=Orphan", jobs("or"))).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    eventually("owner gone", || async { api.get(&format!("{}/j", jobs("or"))).await.status == StatusCode::NOT_FOUND })
        .await;
    let list = api.get(&tasks("or")).await.body;
    assert_eq!(items_names(&list), vec!["j-0", "j-1", "j-2"]);
    for item in list["items"].as_array().unwrap() {
        assert!(item["metadata"].get("ownerReferences").is_none(), "{item}");
    }
}

#[tokio::test]
async fn foreground_deletes_dependents_before_the_owner() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    create_family(&api, "fg", 3).await;
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"});
    let d = api.send(reqwest::Method::DELETE, &format!("{}/j", jobs("fg")), Some(&body)).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert!(d.body["metadata"]["finalizers"].as_array().unwrap().contains(&json!("foregroundDeletion")));
    assert!(d.body["metadata"]["deletionTimestamp"].is_string());
    eventually("owner gone after dependents", || async {
        api.get(&format!("{}/j", jobs("fg"))).await.status == StatusCode::NOT_FOUND
    })
    .await;
    assert!(api.names(&tasks("fg")).await.is_empty());
}

#[tokio::test]
async fn dependents_of_an_owner_deleted_while_down_are_collected_after_restart() {
    let mut server = TestServer::start().await;
    let api = Api::new(&server);
    let j = create_family(&api, "rs", 3).await;
    server.stop().await;
    // Delete the owner behind the server's back, as a crash mid-cascade would leave it.
    {
        let store = meseta_apiserver::open_sled(server.data_dir()).expect("open store");
        let key = "/registry/jobs/rs/j".to_string();
        let outcome = store
            .txn(meseta_apiserver::store::Txn {
                compares: vec![],
                ops: vec![meseta_apiserver::store::Op::Delete { key }],
            })
            .await
            .unwrap();
        assert!(matches!(outcome, meseta_apiserver::store::TxnOutcome::Committed { .. }));
    }
    server.restart().await;
    let _ = j;
    eventually("orphans swept at start-up", || async { api.names(&tasks("rs")).await.is_empty() }).await;
}
