//! The `accept` and `decline` subresources of offers against a real server:
//! binding, ports, fit errors that change nothing, concurrent accepts,
//! filters, PENDING tasks, reservations.

use meseta_apiserver::testing::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NS: &str = "web";

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(server: &TestServer) -> Http {
        Http { base: format!("{}/apis/meseta.io/v1/namespaces/{NS}", server.url()), client: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.client.post(format!("{}/{path}", self.base)).json(body).send().await.unwrap();
        let code = r.status();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(format!("{}/{path}", self.base)).send().await.unwrap();
        let code = r.status();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn framework(&self, name: &str) {
        let fw = json!({"apiVersion": "meseta.io/v1", "kind": "Framework", "metadata": {"name": name}, "spec": {}});
        assert_eq!(self.post("frameworks", &fw).await.0, StatusCode::CREATED);
    }

    /// Creates the PENDING task `name` (0.5 cpu, 32 MiB) of `framework`.
    async fn pending_task(&self, name: &str, framework: &str) {
        let task = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": name},
            "spec": {"framework": framework, "command": "true", "resources": {"cpus": 0.5, "mem": 32}}});
        assert_eq!(self.post("tasks", &task).await.0, StatusCode::CREATED);
    }

    async fn offer(&self, name: &str, framework: &str, spec: Value) {
        let mut spec = spec;
        spec["framework"] = json!(framework);
        spec["agent"] = json!("a1");
        let offer = json!({"apiVersion": "meseta.io/v1", "kind": "Offer", "metadata": {"name": name}, "spec": spec});
        let (code, body) = self.post("offers", &offer).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
    }
}

fn launch(name: &str, cpus: f64, ports: Value) -> Value {
    json!({"type": "Launch", "tasks": [{"metadata": {"name": name},
        "spec": {"command": "sleep 1", "resources": {"cpus": cpus, "mem": 64}, "ports": ports}}]})
}

fn offer_spec() -> Value {
    json!({"resources": {"cpus": 2, "mem": 1024, "ports": [{"begin": 31000, "end": 31009}]}})
}

#[tokio::test]
async fn accept_binds_tasks_assigns_ports_and_consumes_the_offer() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let req = json!({"framework": "fw", "operations": [launch("t1", 1.0, json!([{"name": "http"}, {"port": 31005}]))],
        "filters": {"refuseSeconds": 60}});
    let (code, body) = h.post("offers/o1/accept", &req).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let task = &body["tasks"][0];
    assert_eq!(task["status"]["state"], "ASSIGNED");
    assert_eq!(task["status"]["agent"], "a1");
    assert_eq!(task["spec"]["agent"], "a1");
    assert_eq!(task["spec"]["framework"], "fw");
    assert_eq!(task["status"]["ports"], json!([31000, 31005]));
    let events: Vec<_> = task["status"]["taskEvents"].as_array().unwrap().iter().map(|e| &e["state"]).collect();
    assert_eq!(events, ["PENDING", "ASSIGNED"], "created PENDING, then bound: {task}");
    assert_eq!(
        task["status"]["taskEvents"][0]["timestamp"], task["status"]["taskEvents"][1]["timestamp"],
        "created and bound in the same accept"
    );
    assert!(task["metadata"]["uid"].is_string() && task["metadata"]["creationTimestamp"].is_string());
    assert_eq!(body["remaining"]["cpus"], 1.0);

    let (code, stored) = h.get("tasks/t1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(stored["status"]["state"], "ASSIGNED");
    assert_eq!(
        stored["spec"]["resources"]["ports"],
        json!([{"begin": 31000, "end": 31000}, {"begin": 31005, "end": 31005}])
    );
    assert_eq!(h.get("offers/o1").await.0, StatusCode::NOT_FOUND);
    // The unused rest is declined implicitly: a filter on a1 for about 60 s.
    let (_, fw) = h.get("frameworks/fw").await;
    assert_eq!(fw["status"]["filters"][0]["agent"], "a1", "{fw}");
    let until: chrono::DateTime<chrono::Utc> = fw["status"]["filters"][0]["until"].as_str().unwrap().parse().unwrap();
    assert!(until > chrono::Utc::now() + chrono::Duration::seconds(30));
    // A second accept of the same offer finds it gone.
    let (code, _) = h.post("offers/o1/accept", &json!({"operations": [launch("t2", 0.1, json!([]))]})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(h.get("tasks/t2").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_accept_that_prefers_a_minimal_answer_gets_each_task_by_name_and_version() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    h.pending_task("p1", "fw").await;
    let req = json!({"framework": "fw", "operations": [launch("t1", 0.5, json!([{"name": "http"}])),
        {"type": "Launch", "taskNames": ["p1"]}]});
    let r = h
        .client
        .post(format!("{}/offers/o1/accept", h.base))
        .header("Prefer", "return=minimal")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("preference-applied").and_then(|v| v.to_str().ok()), Some("return=minimal"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["remaining"]["cpus"], 1.0, "{body}");
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{body}");
    for (task, name) in tasks.iter().zip(["t1", "p1"]) {
        assert_eq!(task.as_object().unwrap().keys().collect::<Vec<_>>(), ["apiVersion", "kind", "metadata"]);
        let (code, stored) = h.get(&format!("tasks/{name}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(stored["status"]["state"], "ASSIGNED", "bound as without the preference");
        let meta = &stored["metadata"];
        let want =
            json!({"name": name, "namespace": NS, "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]});
        assert_eq!(task["metadata"], want);
        assert_eq!((task["apiVersion"].as_str(), task["kind"].as_str()), (Some("meseta.io/v1"), Some("Task")));
    }
}

#[tokio::test]
async fn an_accept_that_does_not_fit_is_422_and_changes_nothing() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let before = server.store().revision();
    let req = json!({"operations": [launch("small", 1.0, json!([])), launch("big", 1.5, json!([]))]});
    let (code, body) = h.post("offers/o1/accept", &req).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("operations[1].tasks[0].spec.resources.cpus"), "{message}");
    assert!(message.contains("1.5") && message.contains("1 left"), "{message}");
    let (code, body) =
        h.post("offers/o1/accept", &json!({"operations": [launch("p", 0.1, json!([{"port": 80}]))]})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["message"].as_str().unwrap().contains("spec.ports[0].port"), "{body}");
    // Invalid tasks are rejected like a create.
    let bad = json!({"operations": [{"type": "Launch", "tasks": [{"metadata": {"name": "Bad_Name"}, "spec": {}}]}]});
    assert_eq!(h.post("offers/o1/accept", &bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    // A task of another namespace, or an entry that is no object, is named
    // by its place in the request.
    let mut elsewhere = launch("small", 0.1, json!([]));
    elsewhere["tasks"][0]["metadata"]["namespace"] = json!("other");
    let (code, body) =
        h.post("offers/o1/accept", &json!({"operations": [launch("fine", 0.1, json!([])), elsewhere]})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("operations[1].tasks[0].metadata.namespace"), "{message}");
    assert!(message.contains("namespace web"), "{message}");
    let (code, body) =
        h.post("offers/o1/accept", &json!({"operations": [{"type": "Launch", "tasks": ["small"]}]})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("operations[0].tasks[0]"), "{body}");
    assert_eq!(h.get("tasks/fine").await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.store().revision(), before, "a rejected accept wrote something");
    assert_eq!(h.get("offers/o1").await.0, StatusCode::OK);
    assert_eq!(h.get("tasks/small").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_accepts_of_one_offer_have_exactly_one_winner() {
    let server = TestServer::start().await;
    let h = std::sync::Arc::new(Http::new(&server));
    h.framework("fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                h.post("offers/o1/accept", &json!({"operations": [launch(&format!("t{i}"), 1.0, json!([]))]})).await.0
            })
        })
        .collect();
    let mut codes = Vec::new();
    for a in attempts {
        codes.push(a.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == StatusCode::OK).count(), 1, "{codes:?}");
    for c in &codes {
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::GONE, StatusCode::CONFLICT].contains(c),
            "{codes:?}"
        );
    }
    let (_, list) = h.get("tasks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn wrong_framework_expired_and_decline() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let (code, _) = h.post("offers/o1/accept", &json!({"framework": "other", "operations": []})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let mut old = offer_spec();
    old["expiresAt"] = json!("2020-01-01T00:00:00Z");
    h.offer("o2", "fw", old).await;
    let (code, body) = h.post("offers/o2/accept", &json!({"operations": []})).await;
    assert_eq!(code, StatusCode::GONE, "{body}");
    assert_eq!(body["reason"], "Gone");

    let (code, body) = h.post("offers/o1/decline", &json!({"framework": "fw", "filters": {"refuseSeconds": 30}})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(h.get("offers/o1").await.0, StatusCode::NOT_FOUND);
    let (_, fw) = h.get("frameworks/fw").await;
    assert_eq!(fw["status"]["filters"].as_array().unwrap().len(), 1, "{fw}");
    assert_eq!(h.post("offers/o1/decline", &json!({})).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pending_tasks_by_name_and_reservations() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.pending_task("p1", "fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let req = json!({"operations": [
        {"type": "Reserve", "resources": {"cpus": 1}},
        {"type": "Launch", "taskNames": ["p1"]},
    ]});
    let (code, body) = h.post("offers/o1/accept", &req).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, p1) = h.get("tasks/p1").await;
    assert_eq!(p1["status"]["state"], "ASSIGNED");
    assert_eq!(p1["metadata"]["generation"], 2);
    let (_, rsvs) = h.get("reservations").await;
    let items = rsvs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"]["state"], "Ready");
    assert_eq!(items[0]["spec"]["agent"], "a1");

    // A task that is no longer PENDING cannot be launched again.
    h.offer("o2", "fw", json!({"resources": {"cpus": 1, "mem": 64}, "reserved": {"cpus": 1}})).await;
    let (code, _) = h.post("offers/o2/accept", &json!({"operations": [{"type": "Launch", "taskNames": ["p1"]}]})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    // Unreserve gives the whole reservation back; more than the offer holds is a 422.
    let (code, _) =
        h.post("offers/o2/accept", &json!({"operations": [{"type": "Unreserve", "resources": {"cpus": 2}}]})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, body) =
        h.post("offers/o2/accept", &json!({"operations": [{"type": "Unreserve", "resources": {"cpus": 1}}]})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, rsvs) = h.get("reservations").await;
    assert!(rsvs["items"].as_array().unwrap().is_empty(), "{rsvs}");
}

#[tokio::test]
async fn concurrent_answers_of_one_framework_all_commit_their_filters() {
    let server = TestServer::start().await;
    let h = std::sync::Arc::new(Http::new(&server));
    h.framework("fw").await;
    let n = 12;
    for i in 0..n {
        let offer = json!({"apiVersion": "meseta.io/v1", "kind": "Offer", "metadata": {"name": format!("o{i}")},
            "spec": {"framework": "fw", "agent": format!("a{i}"), "resources": offer_spec()["resources"]}});
        assert_eq!(h.post("offers", &offer).await.0, StatusCode::CREATED);
    }
    // Every answer writes the one Framework: they race on it.
    let answers: Vec<_> = (0..n)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let filters = json!({"refuseSeconds": 30 + i});
                let body = match i % 2 {
                    0 => json!({"operations": [launch(&format!("t{i}"), 1.0, json!([]))], "filters": filters}),
                    _ => json!({"framework": "fw", "filters": filters}),
                };
                let verb = if i % 2 == 0 { "accept" } else { "decline" };
                h.post(&format!("offers/o{i}/{verb}"), &body).await
            })
        })
        .collect();
    for a in answers {
        let (code, body) = a.await.unwrap();
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let (_, fw) = h.get("frameworks/fw").await;
    let mut agents: Vec<&str> =
        fw["status"]["filters"].as_array().unwrap().iter().map(|f| f["agent"].as_str().unwrap()).collect();
    agents.sort_unstable();
    let mut want: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    want.sort_unstable();
    assert_eq!(agents, want, "one filter per answered agent: {fw}");
    let (_, tasks) = h.get("tasks").await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), n / 2, "{tasks}");

    // Another decline for an agent already filtered extends its one entry.
    let until = |fw: &Value, agent: &str| {
        let f = fw["status"]["filters"].as_array().unwrap().iter().find(|f| f["agent"] == agent).unwrap().clone();
        f["until"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    };
    let before = until(&fw, "a1");
    let offer = json!({"apiVersion": "meseta.io/v1", "kind": "Offer", "metadata": {"name": "again"},
        "spec": {"framework": "fw", "agent": "a1", "resources": offer_spec()["resources"]}});
    assert_eq!(h.post("offers", &offer).await.0, StatusCode::CREATED);
    let (code, _) = h.post("offers/again/decline", &json!({"filters": {"refuseSeconds": 3600}})).await;
    assert_eq!(code, StatusCode::OK);
    let (_, fw) = h.get("frameworks/fw").await;
    assert_eq!(fw["status"]["filters"].as_array().unwrap().len(), n, "{fw}");
    assert!(until(&fw, "a1") > before, "{fw}");
}

/// An accept leaves each task it bound in the store's memo for the status
/// write its agent sends next, as a typed Task: exactly what decoding the stored task gives,
/// at its stored revision, for a new task and for a PENDING one alike.
#[tokio::test]
async fn the_bound_tasks_are_left_in_the_memo_as_stored() {
    let server = TestServer::start().await;
    let h = Http::new(&server);
    h.framework("fw").await;
    h.pending_task("p1", "fw").await;
    h.offer("o1", "fw", offer_spec()).await;
    let mut req = json!({"operations": [launch("t1", 1.0, json!([{"port": 0}])),
        {"type": "Launch", "taskNames": ["p1"]}]});
    req["operations"][0]["tasks"][0]["metadata"]["labels"] = json!({"app": "web"});
    let (code, body) = h.post("offers/o1/accept", &req).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    let store = server.store();
    let memo = store.memo().expect("the sled store has a memo");
    let tasks = meseta_schemas::registry::by_plural("tasks").unwrap();
    for name in ["t1", "p1"] {
        let key = meseta_apiserver::path::object_key(tasks, Some(NS), name);
        let kv = store.get(&key).await.unwrap().expect("stored");
        let (revision, memoised, _) =
            memo.take_latest::<meseta_schemas::kinds::Task>(&key).expect("left in the memo as a Task");
        let memoised = serde_json::to_value(memoised).unwrap();
        assert_eq!(revision, kv.mod_revision, "{name}");
        assert_eq!(memoised, meseta_apiserver::object::from_kv(&kv).unwrap(), "{name}");
        assert_eq!(memoised["status"]["state"], "ASSIGNED");
    }
}
