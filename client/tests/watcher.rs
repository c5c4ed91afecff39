//! Watch, watcher and reflector against a real apiserver: ordering,
//! bookmarks, re-list after compaction, convergence across a restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use meseta_client::backoff::StreamBackoffExt;
use meseta_client::watcher::Event;
use meseta_client::{reflector, watcher, DeleteParams, ListParams, WatchEvent, WatchParams};
use meseta_schemas::{Resource, Task};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

async fn next<S: futures::Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(LIMIT, s.next()).await.expect("no event in time").expect("the stream ended")
}

#[tokio::test]
async fn the_watcher_reports_create_update_delete_in_order() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    tasks.create(&task("web", "before")).await.unwrap();
    let mut w = watcher(tasks.clone(), WatchParams::default()).default_backoff().boxed();

    match next(&mut w).await.unwrap() {
        Event::Restarted(objs) => assert_eq!(objs.len(), 1),
        other => panic!("expected the initial list, got {other:?}"),
    }
    let created = tasks.create(&task("web", "t1")).await.unwrap();
    let patched = tasks.patch_merge("t1", &json!({"metadata": {"labels": {"v": "2"}}})).await.unwrap();
    tasks.delete("t1", &DeleteParams::default()).await.unwrap();

    match next(&mut w).await.unwrap() {
        Event::Applied(t) => assert_eq!(t.revision(), created.revision()),
        other => panic!("expected the create, got {other:?}"),
    }
    match next(&mut w).await.unwrap() {
        Event::Applied(t) => {
            assert_eq!(t.revision(), patched.revision());
            assert_eq!(t.metadata.labels.get("v").map(String::as_str), Some("2"));
        }
        other => panic!("expected the update, got {other:?}"),
    }
    match next(&mut w).await.unwrap() {
        Event::Deleted(t) => assert_eq!(t.metadata.name, "t1"),
        other => panic!("expected the delete, got {other:?}"),
    }
}

#[tokio::test]
async fn raw_watches_bring_bookmarks_and_410_after_compaction() {
    let (server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    let first = tasks.create(&task("web", "a")).await.unwrap();
    let list = tasks.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let mut stream = tasks.watch(&WatchParams::default(), &rv).await.unwrap();
    let bookmark = match next(&mut stream).await.unwrap() {
        WatchEvent::Bookmark { resource_version } => resource_version,
        other => panic!("an idle watch should only bring bookmarks, got {other:?}"),
    };
    assert!(bookmark.parse::<u64>().unwrap() >= first.revision());

    for i in 0..3 {
        tasks.patch_merge("a", &json!({"metadata": {"labels": {"i": i.to_string()}}})).await.unwrap();
    }
    let store = server.store();
    store.compact(store.revision()).await.unwrap();
    let err = match tasks.watch(&WatchParams::default(), &rv).await {
        Ok(mut s) => match next(&mut s).await {
            Ok(WatchEvent::Error(status)) => meseta_client::Error::Api { code: status.code, status },
            other => panic!("expected an expired watch, got {other:?}"),
        },
        Err(e) => e,
    };
    assert!(err.is_gone(), "{err}");
}

#[tokio::test]
async fn the_watcher_relists_after_compaction_and_keeps_the_final_state() {
    let (server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    for name in ["a", "b"] {
        tasks.create(&task("web", name)).await.unwrap();
    }
    let mut w = watcher(tasks.clone(), WatchParams::default()).boxed();
    assert!(matches!(next(&mut w).await.unwrap(), Event::Restarted(v) if v.len() == 2));

    // While the watcher is not polled, change everything and compact the history.
    let a = tasks.patch_merge("a", &json!({"metadata": {"labels": {"final": "yes"}}})).await.unwrap();
    tasks.delete("b", &DeleteParams::default()).await.unwrap();
    tasks.create(&task("web", "c")).await.unwrap();
    let store = server.store();
    store.compact(store.revision()).await.unwrap();

    // Its watch from the old version is refused; it re-lists without an error.
    match next(&mut w).await.unwrap() {
        Event::Restarted(objs) => {
            let mut names: Vec<_> = objs.iter().map(|t| t.metadata.name.clone()).collect();
            names.sort();
            assert_eq!(names, vec!["a", "c"]);
            let new_a = objs.iter().find(|t| t.metadata.name == "a").unwrap();
            assert_eq!(new_a.revision(), a.revision());
        }
        other => panic!("expected a re-list, got {other:?}"),
    }
    tasks.create(&task("web", "d")).await.unwrap();
    assert!(matches!(next(&mut w).await.unwrap(), Event::Applied(t) if t.metadata.name == "d"));
}

fn versions<'a>(items: impl Iterator<Item = &'a Task>) -> BTreeMap<String, u64> {
    items.map(|t| (t.metadata.name.clone(), t.revision())).collect()
}

#[tokio::test]
async fn the_reflector_converges_across_a_server_restart() {
    let (mut server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    let params = WatchParams::default().timeout(Some(Duration::from_secs(1)));
    let (store, writer) = reflector::store::<Task>();
    let drain =
        tokio::spawn(reflector(writer, watcher(tasks.clone(), params).default_backoff()).for_each(|_| async {}));

    tokio::time::timeout(LIMIT, store.wait_until_ready()).await.unwrap().unwrap();
    for i in 0..20 {
        tasks.create(&task("web", &format!("t{i}"))).await.unwrap();
    }
    for i in 0..5 {
        tasks.delete(&format!("t{i}"), &DeleteParams::default()).await.unwrap();
    }
    server.restart().await;
    for i in 5..10 {
        tasks.patch_merge(&format!("t{i}"), &json!({"metadata": {"labels": {"after": "restart"}}})).await.unwrap();
    }
    tasks.create(&task("web", "late")).await.unwrap();

    let want = versions(tasks.list_all(&ListParams::default()).await.unwrap().items.iter());
    assert_eq!(want.len(), 16);
    eventually(LIMIT, "the reflector to match the server", || {
        let got = versions(store.list().iter().map(|t| t.as_ref()));
        let want = want.clone();
        async move { (got == want).then_some(()) }
    })
    .await;
    drain.abort();
}
