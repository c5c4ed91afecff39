//! Updates through HTTP as clients make them (read, edit, send back): what
//! is stored for the main resource and the `status` subresource, field
//! ownership included, and what a stale `resourceVersion` gets.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn managed(obj: &Value) -> &Value {
    &obj["metadata"]["managedFields"]
}

/// The `FieldsV1` of `manager`'s entry.
fn owned_by<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    let entries = managed(obj).as_array().expect("managedFields");
    let entry = entries.iter().find(|e| e["manager"] == manager).unwrap_or_else(|| panic!("no entry for {manager}"));
    &entry["fieldsV1"]
}

#[tokio::test]
async fn spec_and_status_puts_store_what_the_rules_say() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let created = api.post(&format!("{}?fieldManager=maker", tasks("web")), &task("web", "t1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let t = created.body;

    // The main resource: an annotation added by the creator goes to its own
    // entry, the generation stays; the body's status is ignored.
    let mut edit = t.clone();
    edit["metadata"]["annotations"] = json!({"note": "1"});
    edit["status"] = json!({"state": "FAILED"});
    let r = api.put(&format!("{}?fieldManager=maker", task_path("web", "t1")), &edit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = api.get(&task_path("web", "t1")).await.body;
    assert_eq!(stored, r.body, "the answer is the stored object");
    assert_eq!(stored["metadata"]["generation"], 1);
    assert_eq!(stored["status"], t["status"]);
    assert_eq!(managed(&stored).as_array().unwrap().len(), 1);
    assert_eq!(owned_by(&stored, "maker")["f:metadata"]["f:annotations"], json!({"f:note": {}}));
    assert_eq!(owned_by(&stored, "maker")["f:spec"], owned_by(&t, "maker")["f:spec"]);

    // A spec change by another manager moves the field to it and bumps the generation.
    let mut edit = stored.clone();
    edit["spec"]["command"] = json!("sleep 2");
    let r = api.put(&format!("{}?fieldManager=other", task_path("web", "t1")), &edit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = r.body;
    assert_eq!(stored["metadata"]["generation"], 2);
    assert_eq!(owned_by(&stored, "other")["f:spec"], json!({"f:command": {}}));
    assert!(owned_by(&stored, "maker")["f:spec"].get("f:command").is_none());

    // The status subresource: only the status moves; metadata, its
    // managedFields included, stays as stored.
    let mut st = stored.clone();
    st["status"]["message"] = json!("hello");
    st["spec"]["command"] = json!("ignored");
    st["metadata"]["annotations"] = json!({"note": "ignored"});
    let r = api.put(&format!("{}/status?fieldManager=agent", task_path("web", "t1")), &st).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = r.body;
    assert_eq!(after["status"]["message"], "hello");
    assert_eq!(after["spec"], stored["spec"]);
    assert_eq!(after["metadata"]["generation"], 2);
    assert_eq!(after["metadata"]["annotations"], stored["metadata"]["annotations"]);
    assert_eq!(managed(&after), managed(&stored));
    assert!(rv(&after) > rv(&stored));

    // Sending the same status again writes nothing.
    let same = api.put(&format!("{}/status", task_path("web", "t1")), &after).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(rv(&same.body), rv(&after));

    // A stale resourceVersion is a conflict on either path.
    for path in [task_path("web", "t1"), format!("{}/status", task_path("web", "t1"))] {
        let r = api.put(&path, &stored).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.text);
    }
}

/// The object a write leaves in the store's memo for the key's next update
/// (a `Value`, or a typed Task after a status write), taken out and put
/// back as it was: it must be the object a read decodes.
async fn memoised(server: &TestServer, api: &Api, name: &str) -> Value {
    let store = server.store();
    let memo = store.memo().expect("the sled store keeps a memo");
    let read = api.get(&task_path("web", name)).await.body;
    let key = meseta_apiserver::path::object_key(meseta_schemas::registry::by_kind("Task").unwrap(), Some("web"), name);
    let (revision, entry, _) = memo.take_latest_any(&key).expect("the last write left its object");
    assert_eq!(revision, rv(&read));
    let held = match entry.downcast::<Value>() {
        Ok(value) => {
            memo.put(&key, revision, (*value).clone(), 1);
            *value
        }
        Err(entry) => {
            let task = entry.downcast::<meseta_schemas::kinds::Task>().expect("a Value or a Task");
            let value = serde_json::to_value(&*task).unwrap();
            memo.put(&key, revision, *task, 1);
            value
        }
    };
    assert_eq!(held, read, "the memoised object is the one the stored bytes decode to");
    held
}

#[tokio::test]
async fn updates_from_the_memo_store_what_updates_from_the_stored_bytes_would() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let mut t = task("web", "m1");
    t["spec"]["resources"]["cpus"] = json!(0.1 + 0.2);
    let created = api.post(&format!("{}?fieldManager=maker", tasks("web")), &t).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut current = memoised(&server, &api, "m1").await;

    // Each write starts from the memoised object; after each, what the memo
    // holds must still be what a read gives.
    for round in 0..5 {
        let mut edit = current.clone();
        edit["metadata"]["annotations"] = json!({"round": round.to_string()});
        edit["spec"]["resources"]["cpus"] = json!(0.1 * f64::from(round + 1));
        let r = api.put(&format!("{}?fieldManager=editor", task_path("web", "m1")), &edit).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let after_spec = memoised(&server, &api, "m1").await;
        assert_eq!(after_spec["metadata"]["generation"], json!(round + 2));

        let mut st = after_spec.clone();
        st["status"]["message"] = json!(format!("round {round}"));
        let r = api.put(&format!("{}/status", task_path("web", "m1")), &st).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        current = memoised(&server, &api, "m1").await;
        assert_eq!(current["status"]["message"], json!(format!("round {round}")));
        assert_eq!(current["spec"], after_spec["spec"]);
    }
    let fresh = api.get(&task_path("web", "m1")).await.body;
    assert_eq!(fresh["spec"]["resources"]["cpus"], json!(0.1 * 5.0));

    // A PUT that changes nothing answers the stored object and leaves it
    // memoised (the helper takes it out and puts it back).
    let same = api.put(&format!("{}/status", task_path("web", "m1")), &fresh).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(same.body, fresh);
    assert_eq!(memoised(&server, &api, "m1").await, fresh);
}

#[tokio::test]
async fn puts_refused_while_the_memo_holds_a_newer_object_get_their_own_answer() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let created = api.post(&tasks("web"), &task("web", "s1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let old = created.body;
    let mut edit = old.clone();
    edit["metadata"]["annotations"] = json!({"n": "1"});
    let r = api.put(&task_path("web", "s1"), &edit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let newer = r.body;

    // The memo now holds the newer object; bodies naming the older revision
    // are conflicts, on the main resource and on the status subresource.
    for path in [task_path("web", "s1"), format!("{}/status", task_path("web", "s1"))] {
        let r = api.put(&path, &old).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.text);
        assert_eq!(r.body["reason"], "Conflict");
    }
    // An illegal transition named at the current revision is refused as such.
    let mut illegal = newer.clone();
    illegal["status"]["state"] = json!("FINISHED");
    let r = api.put(&format!("{}/status", task_path("web", "s1")), &illegal).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(api.get(&task_path("web", "s1")).await.body, newer, "nothing was written");
}

/// A write asked for a minimal answer (`Prefer: return=minimal`) answers the
/// object's identity and revision alone, and writes what it would have
/// written without the preference; a dry run's answer too.
#[tokio::test]
async fn writes_that_prefer_a_minimal_answer_get_the_identity_and_revision_alone() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let minimal = |method: reqwest::Method, path: String, body: &Value| {
        let req = api.http.request(method, format!("{}{path}", api.base)).header("Prefer", "return=minimal");
        let body = serde_json::to_vec(body).unwrap();
        async move {
            let r = req.header("content-type", "application/json").body(body).send().await.unwrap();
            let (status, applied) = (r.status(), r.headers().get("preference-applied").cloned());
            let body: Value = r.json().await.unwrap();
            (status, applied.and_then(|v| v.to_str().ok().map(str::to_string)), body)
        }
    };
    let expect = |answer: &Value, stored: &Value| {
        let meta = &stored["metadata"];
        let want = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": meta["name"],
            "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}});
        assert_eq!(answer, &want);
    };

    let (status, applied, answer) = minimal(reqwest::Method::POST, tasks("web"), &task("web", "m")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(applied.as_deref(), Some("return=minimal"));
    let stored = api.get(&task_path("web", "m")).await.body;
    expect(&answer, &stored);

    // A status write: the status is written, the answer is minimal.
    let mut st = stored.clone();
    st["status"]["message"] = json!("minimal");
    let path = format!("{}/status", task_path("web", "m"));
    let (status, applied, answer) = minimal(reqwest::Method::PUT, path.clone(), &st).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(applied.as_deref(), Some("return=minimal"));
    let after = api.get(&task_path("web", "m")).await.body;
    assert_eq!(after["status"]["message"], "minimal");
    assert!(rv(&after) > rv(&stored));
    expect(&answer, &after);

    // A dry run answers minimally too, at the stored revision, writing nothing.
    let mut edit = after.clone();
    edit["metadata"]["labels"] = json!({"dry": "run"});
    let (status, _, answer) =
        minimal(reqwest::Method::PUT, format!("{}?dryRun=All", task_path("web", "m")), &edit).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    expect(&answer, &after);
    assert_eq!(api.get(&task_path("web", "m")).await.body, after);

    // Without the preference, the whole object as before.
    let r = api.put(&path, &after).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.headers.get("preference-applied").is_none());
    assert_eq!(r.body, after);
}
