//! CRUD through HTTP on a real server: namespaced and cluster kinds,
//! conflicts, generation, the status subresource, patches and dryRun.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn namespaced_crud_round_trip() {
    let server = TestServer::start().await;
    let api = Api::new(&server);

    let created = api.post(&tasks("web"), &task("web", "t1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let obj = &created.body;
    assert_eq!(obj["metadata"]["namespace"], "web");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(obj["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(obj["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    let rv1 = rv(obj);
    assert!(rv1 > 0);

    let got = api.get(&task_path("web", "t1")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, created.body, "a read returns what the create returned");

    let mut changed = got.body.clone();
    changed["spec"]["command"] = json!("sleep 2");
    let updated = api.put(&task_path("web", "t1"), &changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert!(rv(&updated.body) > rv1);
    assert_eq!(updated.body["spec"]["command"], "sleep 2");
    let reread = api.get(&task_path("web", "t1")).await;
    assert_eq!(reread.body, updated.body, "a read returns what the update returned");
    assert_eq!(updated.headers["content-type"], "application/json");

    assert_eq!(api.names(&tasks("web")).await, vec!["t1"]);
    assert_eq!(api.names(&format!("{API}/tasks")).await, vec!["t1"], "all-namespace list");
    assert!(api.names(&tasks("other")).await.is_empty());

    let deleted = api.delete(&task_path("web", "t1")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["metadata"]["name"], "t1");
    let gone = api.get(&task_path("web", "t1")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["kind"], "Status");
    assert_eq!(gone.body["reason"], "NotFound");
    assert_eq!(gone.body["message"], "tasks.meseta.io \"t1\" not found");
    assert_eq!(gone.body["details"]["kind"], "tasks");
}

#[tokio::test]
async fn cluster_kind_crud_and_list_revision() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let roles = format!("{API}/roles");
    let r = api.post(&roles, &role("analytics")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body["metadata"].get("namespace").is_none());

    let list = api.get(&roles).await;
    assert_eq!(list.body["kind"], "RoleList");
    assert_eq!(list.body["apiVersion"], "meseta.io/v1");
    let list_rv: u64 = list.body["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(list_rv >= rv(&r.body), "the list revision covers the create");

    let mut changed = r.body.clone();
    changed["spec"]["weight"] = json!(5.0);
    let updated = api.put(&format!("{roles}/analytics"), &changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["spec"]["weight"], 5.0);

    assert_eq!(api.delete(&format!("{roles}/analytics")).await.status, StatusCode::OK);
    assert_eq!(api.get(&format!("{roles}/analytics")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.delete(&format!("{roles}/analytics")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn create_of_an_existing_name_is_409_already_exists() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    assert_eq!(api.post(&tasks("web"), &task("web", "t1")).await.status, StatusCode::CREATED);
    let again = api.post(&tasks("web"), &task("web", "t1")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.body["message"], "tasks.meseta.io \"t1\" already exists");
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let mut t = task("web", "");
    t["metadata"] = json!({"generateName": "batch-"});
    let a = api.post(&tasks("web"), &t).await;
    let b = api.post(&tasks("web"), &t).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let (na, nb) = (a.body["metadata"]["name"].as_str().unwrap(), b.body["metadata"]["name"].as_str().unwrap());
    assert!(na.starts_with("batch-") && na.len() == "batch-".len() + 5, "{na}");
    assert_ne!(na, nb);
}

#[tokio::test]
async fn stale_update_is_409_conflict_and_unconditional_update_wins() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let first = api.post(&tasks("web"), &task("web", "t1")).await.body;
    let mut a = first.clone();
    a["spec"]["command"] = json!("echo a");
    assert_eq!(api.put(&task_path("web", "t1"), &a).await.status, StatusCode::OK);

    let mut stale = first.clone();
    stale["spec"]["command"] = json!("echo stale");
    let r = api.put(&task_path("web", "t1"), &stale).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["reason"], "Conflict");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("please apply your changes to the latest version and try again"));
    assert_eq!(api.get(&task_path("web", "t1")).await.body["spec"]["command"], "echo a");

    let mut unconditional = first.clone();
    unconditional["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    unconditional["spec"]["command"] = json!("echo b");
    assert_eq!(api.put(&task_path("web", "t1"), &unconditional).await.status, StatusCode::OK);
    assert_eq!(api.get(&task_path("web", "t1")).await.body["spec"]["command"], "echo b");
}

#[tokio::test]
async fn generation_moves_on_spec_changes_only_and_server_metadata_is_kept() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let t = api.post(&tasks("web"), &task("web", "t1")).await.body;
    let uid = t["metadata"]["uid"].clone();

    let mut labelled = t.clone();
    labelled["metadata"]["labels"] = json!({"app": "web"});
    labelled["metadata"]["uid"] = json!("forged");
    labelled["metadata"]["generation"] = json!(42);
    let r = api.put(&task_path("web", "t1"), &labelled).await.body;
    assert_eq!(r["metadata"]["generation"], 1, "metadata changes do not bump generation");
    assert_eq!(r["metadata"]["uid"], uid, "uid cannot be changed");
    assert_eq!(r["metadata"]["labels"]["app"], "web");

    let mut spec = r.clone();
    spec["spec"]["resources"]["cpus"] = json!(2.0);
    let r = api.put(&task_path("web", "t1"), &spec).await.body;
    assert_eq!(r["metadata"]["generation"], 2);

    let same = api.put(&task_path("web", "t1"), &r).await.body;
    assert_eq!(same["metadata"]["generation"], 2);
    assert_eq!(rv(&same), rv(&r), "a no-op update writes nothing");
}

#[tokio::test]
async fn status_subresource_writes_only_status() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let mut body = task("web", "t1");
    body["status"] = json!({"state": "RUNNING"});
    let t = api.post(&tasks("web"), &body).await.body;
    assert_eq!(t["status"]["state"], "PENDING", "the status sent on create is replaced by the initial one");

    let mut st = t.clone();
    // A legal path from PENDING, told as the events of one write appended
    // after the stored history.
    let created = t["status"]["taskEvents"][0].clone();
    st["status"] = json!({"state": "RUNNING", "message": "up", "taskEvents": [created,
        {"timestamp": "2099-01-01T00:00:00Z", "state": "ASSIGNED"},
        {"timestamp": "2099-01-01T00:00:01Z", "state": "RUNNING"}]});
    st["spec"]["command"] = json!("ignored");
    let r = api.put(&format!("{}/status", task_path("web", "t1")), &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"]["state"], "RUNNING");
    assert_eq!(r.body["spec"]["command"], "sleep 1", "status writes leave spec alone");
    assert_eq!(r.body["metadata"]["generation"], 1);

    let mut main = r.body.clone();
    main["status"] = json!({"state": "FAILED"});
    main["spec"]["command"] = json!("sleep 3");
    let r = api.put(&task_path("web", "t1"), &main).await.body;
    assert_eq!(r["status"]["state"], "RUNNING", "main-resource writes leave status alone");
    assert_eq!(r["spec"]["command"], "sleep 3");
    assert_eq!(r["metadata"]["generation"], 2);

    let p = api
        .patch(
            &format!("{}/status", task_path("web", "t1")),
            "application/merge-patch+json",
            &json!({"status": {"state": "FINISHED"}, "spec": {"command": "no"}}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["status"]["state"], "FINISHED");
    assert_eq!(p.body["spec"]["command"], "sleep 3");
    assert_eq!(p.body["metadata"]["generation"], 2);
    let got = api.get(&format!("{}/status", task_path("web", "t1"))).await;
    assert_eq!(got.body["status"]["state"], "FINISHED");

    // An illegal change (a finished task never changes again) is a 422 naming status.state.
    let bad = api
        .patch(
            &format!("{}/status", task_path("web", "t1")),
            "application/merge-patch+json",
            &json!({"status": {"state": "RUNNING"}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("status.state"), "{}", bad.text);
}

#[tokio::test]
async fn merge_and_json_patches() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    api.post(&tasks("web"), &task("web", "t1")).await;
    let r = api
        .patch(
            &task_path("web", "t1"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"resources": {"cpus": 3}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["metadata"]["labels"]["a"], "1");
    assert_eq!(r.body["spec"]["resources"]["cpus"], 3.0);
    assert_eq!(r.body["spec"]["resources"]["mem"], 64.0);

    let r = api
        .patch(&task_path("web", "t1"), "application/json-patch+json", &json!([{"op": "replace", "path": "/spec/command", "value": "true"}, {"op": "remove", "path": "/metadata/labels/a"}]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["spec"]["command"], "true");
    assert!(r.body["metadata"].get("labels").is_none());

    let stale = api
        .patch(
            &task_path("web", "t1"),
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": "1"}, "spec": {"command": "x"}}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "a resourceVersion in a patch is a precondition");

    let failing = api
        .patch(
            &task_path("web", "t1"),
            "application/json-patch+json",
            &json!([{"op": "test", "path": "/spec/command", "value": "nope"}]),
        )
        .await;
    assert_eq!(failing.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", failing.text);

    let apply = api.apply(&task_path("web", "t2"), &task("web", "t2")).await;
    assert_eq!(apply.status, StatusCode::CREATED, "server-side apply creates: {}", apply.text);
    assert_eq!(api.names(&tasks("web")).await, vec!["t1", "t2"]);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let r = api.post(&format!("{}?dryRun=All", tasks("web")), &task("web", "t1")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["metadata"]["name"], "t1");
    assert!(api.names(&tasks("web")).await.is_empty());

    let t = api.post(&tasks("web"), &task("web", "t1")).await.body;
    let before = api.snapshot().await;
    let mut changed = t.clone();
    changed["spec"]["command"] = json!("dry");
    let r = api.put(&format!("{}?dryRun=All", task_path("web", "t1")), &changed).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["spec"]["command"], "dry");
    let r = api
        .patch(
            &format!("{}?dryRun=All", task_path("web", "t1")),
            "application/merge-patch+json",
            &json!({"spec": {"command": "dry"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.delete(&format!("{}?dryRun=All", task_path("web", "t1"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.snapshot().await, before, "dry runs changed the store");
    assert_eq!(server.store().revision(), rv(&t), "no revision was spent");
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    for (name, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let mut t = task("ns1", name);
        t["metadata"]["labels"] = json!({"app": app});
        api.post(&tasks("ns1"), &t).await;
    }
    let r = api.delete(&format!("{}?labelSelector=app%3Dweb", tasks("ns1"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(items_names(&r.body), vec!["a", "c"]);
    assert_eq!(api.names(&tasks("ns1")).await, vec!["b"]);
}
