//! Watches through HTTP: resume from a resourceVersion, replay from 0,
//! selectors with transitions, 410 on compaction, bookmarks, timeouts.

mod common;

use common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

/// Next event as (type, name).
async fn next_named(ev: &mut Events) -> (String, String) {
    let ev = ev.next().await.expect("an event");
    (ev["type"].as_str().unwrap().to_string(), ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_string())
}

fn pair(t: &str, n: &str) -> (String, String) {
    (t.to_string(), n.to_string())
}

#[tokio::test]
async fn watch_from_a_resource_version_gets_exactly_the_later_events() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    api.post(&tasks("w"), &task("w", "t1")).await;
    let t2 = api.post(&tasks("w"), &task("w", "t2")).await.body;
    let from = rv(&t2);
    let patched =
        api.patch(&task_path("w", "t1"), "application/merge-patch+json", &json!({"spec": {"command": "x"}})).await.body;
    let deleted = api.delete(&task_path("w", "t2")).await.body;

    let mut ev = Events::open(&api, &format!("{}?watch=true&resourceVersion={from}", tasks("w"))).await;
    let e1 = ev.next().await.unwrap();
    assert_eq!(e1["type"], "MODIFIED");
    assert_eq!(e1["object"]["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"]);
    let e2 = ev.next().await.unwrap();
    assert_eq!(e2["type"], "DELETED");
    assert_eq!(e2["object"]["metadata"]["name"], "t2");
    assert_eq!(e2["object"]["metadata"]["resourceVersion"], deleted["metadata"]["resourceVersion"]);
    assert!(rv(&e2["object"]) > rv(&e1["object"]));
    api.post(&tasks("w"), &task("w", "t3")).await;
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "t3"), "then live events, nothing replayed twice");
}

#[tokio::test]
async fn watch_from_zero_replays_current_objects_then_goes_live() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    api.post(&tasks("w"), &task("w", "a")).await;
    api.post(&tasks("w"), &task("w", "b")).await;
    api.post(&tasks("other"), &task("other", "c")).await;
    let mut ev = Events::open(&api, &format!("{}?watch=1", tasks("w"))).await;
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "a"));
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "b"));
    api.post(&tasks("other"), &task("other", "d")).await;
    api.patch(&task_path("w", "a"), "application/merge-patch+json", &json!({"metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(next_named(&mut ev).await, pair("MODIFIED", "a"), "other namespaces are not seen");

    let mut all = Events::open(&api, &format!("{API}/tasks?watch=true&resourceVersion=0")).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(next_named(&mut all).await.1);
    }
    names.sort();
    assert_eq!(names, vec!["a", "b", "c", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_now_opened_during_writes_sends_each_object_once() {
    // The list behind a watch from now is no snapshot: objects created
    // during its scan show up in it and again as live events unless the
    // watch leaves those replays out.
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..200)
                .for_each_concurrent(8, |i| {
                    let api = api.clone();
                    async move {
                        api.post(&tasks("w"), &task("w", &format!("t{i}"))).await;
                    }
                })
                .await;
        })
    };
    let mut watches = Vec::new();
    while !writer.is_finished() && watches.len() < 12 {
        watches.push(Events::open(&api, &format!("{}?watch=1", tasks("w"))).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    assert!(!watches.is_empty());
    api.post(&tasks("w"), &task("w", "last")).await;
    for (n, ev) in watches.iter_mut().enumerate() {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        loop {
            let (kind, name) = next_named(ev).await;
            assert_eq!(kind, "ADDED", "watch {n}: {name}");
            *seen.entry(name.clone()).or_default() += 1;
            if name == "last" {
                break;
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).map(|(k, _)| k.clone()).collect();
        assert!(twice.is_empty(), "watch {n} sent these more than once: {twice:?}");
        assert_eq!(seen.len(), 201, "watch {n} sent every object");
    }
}

#[tokio::test]
async fn watch_with_selectors_sends_transitions() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let start = server.store().revision();
    let mut ev =
        Events::open(&api, &format!("{}?watch=true&resourceVersion={start}&labelSelector=app%3Dweb", tasks("w"))).await;
    let labelled = |name: &str, app: &str| {
        let mut t = task("w", name);
        t["metadata"]["labels"] = json!({"app": app});
        t
    };
    api.post(&tasks("w"), &labelled("web1", "web")).await;
    api.post(&tasks("w"), &labelled("db1", "db")).await;
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    api.patch(&task_path("w", "web1"), "application/merge-patch+json", &relabel("db")).await;
    api.patch(&task_path("w", "db1"), "application/merge-patch+json", &relabel("web")).await;
    api.patch(&task_path("w", "db1"), "application/merge-patch+json", &json!({"spec": {"command": "z"}})).await;
    api.delete(&task_path("w", "db1")).await;
    api.delete(&task_path("w", "web1")).await;
    api.post(&tasks("w"), &labelled("web2", "web")).await;

    assert_eq!(next_named(&mut ev).await, pair("ADDED", "web1"));
    let stopped = ev.next().await.unwrap();
    assert_eq!(stopped["type"], "DELETED", "stopped matching");
    assert_eq!(stopped["object"]["metadata"]["name"], "web1");
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "db1"), "started matching");
    assert_eq!(next_named(&mut ev).await, pair("MODIFIED", "db1"));
    assert_eq!(next_named(&mut ev).await, pair("DELETED", "db1"));
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "web2"), "web1's deletion did not match any more");

    let agent = server.store().revision();
    let mut by_field =
        Events::open(&api, &format!("{}?watch=true&resourceVersion={agent}&fieldSelector=spec.agent%3Dn1", tasks("w")))
            .await;
    let mut t = task("w", "bound");
    t["spec"]["agent"] = json!("n1");
    api.post(&tasks("w"), &task("w", "unbound")).await;
    api.post(&tasks("w"), &t).await;
    assert_eq!(next_named(&mut by_field).await, pair("ADDED", "bound"));
}

#[tokio::test]
async fn watch_of_a_compacted_revision_is_an_error_event_410() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    for i in 0..5 {
        api.post(&tasks("w"), &task("w", &format!("t{i}"))).await;
    }
    let store = server.store();
    let head = store.revision();
    store.compact(head).await.expect("compact");
    drop(store);
    let mut ev = Events::open(&api, &format!("{}?watch=true&resourceVersion=1", tasks("w"))).await;
    let err = ev.next().await.expect("an ERROR event");
    assert_eq!(err["type"], "ERROR");
    let status = &err["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"].as_str().unwrap().starts_with("too old resource version: 1 ("), "{status}");
    assert!(ev.next().await.is_none(), "the stream ends after the error");

    // A list then a watch from its revision still works.
    let list = api.get(&tasks("w")).await.body;
    let list_rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut ev = Events::open(&api, &format!("{}?watch=true&resourceVersion={list_rv}", tasks("w"))).await;
    api.post(&tasks("w"), &task("w", "after")).await;
    assert_eq!(next_named(&mut ev).await, pair("ADDED", "after"));
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let server = TestServer::start().await;
    let api = Api::new(&server);
    let t = api.post(&tasks("w"), &task("w", "a")).await.body;
    let from = rv(&t);
    let mut ev =
        Events::open(&api, &format!("{}?watch=true&resourceVersion={from}&allowWatchBookmarks=true", tasks("w"))).await;
    let b = ev.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["kind"], "Task");
    assert_eq!(b["object"]["apiVersion"], "meseta.io/v1");
    assert_eq!(b["object"]["metadata"]["resourceVersion"], from.to_string());

    let mut ev =
        Events::open(&api, &format!("{}?watch=true&resourceVersion={from}&timeoutSeconds=1", tasks("w"))).await;
    assert!(ev.next().await.is_none(), "the stream ends after timeoutSeconds");
}

#[tokio::test]
async fn graceful_stop_ends_open_watches() {
    let mut server = TestServer::start().await;
    let api = Api::new(&server);
    let mut ev = Events::open(&api, &format!("{}?watch=true", tasks("w"))).await;
    let metrics = api.get("/metrics").await.text;
    assert!(metrics.contains("apiserver_registered_watchers{resource=\"tasks\"} 1"), "{metrics}");
    server.stop().await;
    assert!(ev.next().await.is_none());
    server.restart().await;
    assert_eq!(api.get(&tasks("w")).await.status, StatusCode::OK);
}
