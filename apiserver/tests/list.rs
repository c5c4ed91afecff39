//! Lists through HTTP: label and field selectors, and limit/continue pages.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn seed(api: &Api) {
    // (name, labels, agent, state)
    let rows = [
        ("a", json!({"app": "web", "tier": "front"}), Some("agent-1"), Some("RUNNING")),
        ("b", json!({"app": "web"}), Some("agent-2"), Some("PENDING")),
        ("c", json!({"app": "db", "tier": "back"}), Some("agent-1"), None),
        ("d", json!({}), None, Some("RUNNING")),
    ];
    for (name, labels, agent, state) in rows {
        let mut t = task("ns1", name);
        t["metadata"]["labels"] = labels;
        if let Some(a) = agent {
            t["spec"]["agent"] = json!(a);
        }
        let created = api.post(&tasks("ns1"), &t).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        if let Some(s) = state {
            let mut st = created.body.clone();
            // The status subresource only takes legal Aurora paths: PENDING → ASSIGNED → RUNNING,
            // appended after the history the create started.
            let mut events = created.body["status"]["taskEvents"].as_array().cloned().unwrap_or_default();
            events.extend(
                ["ASSIGNED", s]
                    .iter()
                    .filter(|e| s != "PENDING" && (**e != s || s != "ASSIGNED"))
                    .map(|e| json!({"timestamp": "2099-01-01T00:00:00Z", "state": e})),
            );
            st["status"] = json!({"state": s, "taskEvents": events});
            let r = api.put(&format!("{}/status", task_path("ns1", name)), &st).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
    }
}

#[tokio::test]
async fn label_selectors() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    seed(&api).await;
    let q = |sel: &str| format!("{}?labelSelector={}", tasks("ns1"), urlencode(sel));
    assert_eq!(api.names(&q("app=web")).await, vec!["a", "b"]);
    assert_eq!(api.names(&q("app==db")).await, vec!["c"]);
    assert_eq!(api.names(&q("app!=web")).await, vec!["c", "d"]);
    assert_eq!(api.names(&q("app in (db,web)")).await, vec!["a", "b", "c"]);
    assert_eq!(api.names(&q("app notin (web)")).await, vec!["c", "d"]);
    assert_eq!(api.names(&q("tier")).await, vec!["a", "c"]);
    assert_eq!(api.names(&q("!tier")).await, vec!["b", "d"]);
    assert_eq!(api.names(&q("app=web,tier=front")).await, vec!["a"]);
    let bad = api.get(&q("app in web")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["message"].as_str().unwrap().contains("labelSelector"), "{}", bad.text);
}

#[tokio::test]
async fn field_selectors() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    seed(&api).await;
    let q = |sel: &str| format!("{}?fieldSelector={}", tasks("ns1"), urlencode(sel));
    assert_eq!(api.names(&q("metadata.name=b")).await, vec!["b"]);
    assert_eq!(api.names(&q("spec.agent=agent-1")).await, vec!["a", "c"]);
    assert_eq!(api.names(&q("spec.agent=")).await, vec!["d"], "a missing field matches as empty");
    assert_eq!(api.names(&q("status.state=RUNNING")).await, vec!["a", "d"]);
    assert_eq!(api.names(&q("status.state!=RUNNING")).await, vec!["b", "c"]);
    assert_eq!(api.names(&q("spec.agent=agent-1,status.state=RUNNING")).await, vec!["a"]);
    assert_eq!(api.names(&q("metadata.namespace=ns1")).await.len(), 4);
    let both = format!("{}&labelSelector=app%3Dweb", q("status.state=RUNNING"));
    assert_eq!(api.names(&both).await, vec!["a"]);
}

#[tokio::test]
async fn pages_return_every_object_exactly_once() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    for i in 0..25 {
        let mut t = task("ns1", &format!("t{i:02}"));
        t["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        assert_eq!(api.post(&tasks("ns1"), &t).await.status, StatusCode::CREATED);
    }
    let first_rv = server.store().revision();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{}?limit=10", tasks("ns1"));
        if let Some(t) = &token {
            path.push_str(&format!("&continue={t}"));
        }
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        pages += 1;
        let names = items_names(&page.body);
        assert!(names.len() <= 10);
        seen.extend(names);
        assert_eq!(
            page.body["metadata"]["resourceVersion"],
            first_rv.to_string(),
            "every page reports the first page's revision"
        );
        match page.body["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 25);
    assert_eq!(unique.len(), 25);

    // With a selector, pages still fill up to the limit with matches only.
    let mut odd = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("{}?limit=5&labelSelector=parity%3Dodd", tasks("ns1"));
        if let Some(t) = &token {
            path.push_str(&format!("&continue={t}"));
        }
        let page = api.get(&path).await;
        odd.extend(items_names(&page.body));
        match page.body["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(odd.len(), 12);
    assert!(odd.iter().all(|n| n[1..].parse::<u32>().unwrap() % 2 == 1));

    let bad = api.get(&format!("{}?limit=10&continue=garbage!", tasks("ns1"))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["message"].as_str().unwrap().contains("continue"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
