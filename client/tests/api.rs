//! The typed Api against a real apiserver: CRUD, patches, status, delete
//! outcomes, pagination, and the mapping of error Statuses.

mod common;

use common::*;
use meseta_client::{DeleteOutcome, DeleteParams, Error, ListParams};
use meseta_schemas::{Resource, Role, RoleSpec, Task, TaskState};
use serde_json::json;

#[tokio::test]
async fn create_get_replace_delete_round_trip() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");

    let created = tasks.create(&task("web", "t1")).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.revision() > 0);
    assert!(tasks.create(&task("web", "t1")).await.unwrap_err().is_already_exists());
    // Created without reading the answer: there all the same, errors the same.
    tasks.create_unread(&task("web", "t2")).await.unwrap();
    assert!(tasks.get("t2").await.unwrap().metadata.uid.is_some());
    assert!(tasks.create_unread(&task("web", "t2")).await.unwrap_err().is_already_exists());
    let unnamed_ns: Api<Task> = Api::all(tasks.client().clone());
    let err = unnamed_ns.create_unread(&Task::new("t3", Default::default())).await.unwrap_err();
    assert!(err.to_string().contains("namespaced"), "{err}");

    let mut fetched = tasks.get("t1").await.unwrap();
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    fetched.metadata.labels.insert("tier".into(), "front".into());
    let replaced = tasks.replace(&fetched).await.unwrap();
    assert!(replaced.revision() > created.revision());

    // A replace carrying the old resourceVersion is a conflict.
    let mut stale = created.clone();
    stale.metadata.labels.insert("tier".into(), "back".into());
    let err = tasks.replace(&stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.code(), Some(409));

    assert!(tasks.delete("t1", &DeleteParams::default()).await.unwrap().is_deleted());
    assert!(tasks.get_opt("t1").await.unwrap().is_none());
    let err = tasks.get("t1").await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("t1"), "{err}");
}

#[tokio::test]
async fn patches_and_status_writes() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    tasks.create(&task("web", "t1")).await.unwrap();

    let merged = tasks.patch_merge("t1", &json!({"metadata": {"labels": {"app": "api"}}})).await.unwrap();
    assert_eq!(merged.metadata.labels.get("app").map(String::as_str), Some("api"));
    let patched =
        tasks.patch_json("t1", &json!([{"op": "add", "path": "/metadata/labels/zone", "value": "z1"}])).await.unwrap();
    assert_eq!(patched.metadata.labels.get("zone").map(String::as_str), Some("z1"));
    assert_eq!(patched.metadata.labels.get("app").map(String::as_str), Some("api"));

    // Status writes follow the task state machine: PENDING → ASSIGNED → RUNNING.
    let with_status = tasks.patch_status_merge("t1", &json!({"status": {"state": "ASSIGNED"}})).await.unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().state, TaskState::Assigned);

    let mut next = with_status.clone();
    next.status.as_mut().unwrap().state = TaskState::Running;
    let replaced = tasks.replace_status(&next).await.unwrap();
    assert_eq!(replaced.status.unwrap().state, TaskState::Running);
    assert_eq!(tasks.get("t1").await.unwrap().status.unwrap().state, TaskState::Running);

    // Stripped: the answer has no managedFields, the stored object keeps
    // them, and writing the stripped copy again loses none.
    assert!(tasks.get("t1").await.unwrap().metadata.managed_fields.is_some_and(|m| !m.is_empty()));
    let mut healthy = tasks.get("t1").await.unwrap();
    healthy.status.as_mut().unwrap().message = "healthy".into();
    let stripped = tasks.replace_status_stripped(&healthy).await.unwrap();
    assert!(stripped.metadata.managed_fields.is_none());
    assert_eq!(stripped.status.as_ref().unwrap().message, "healthy");
    let before = tasks.get("t1").await.unwrap().metadata.managed_fields;
    let mut again = stripped.clone();
    again.status.as_mut().unwrap().message = "still healthy".into();
    let written = tasks.replace_status_stripped(&again).await.unwrap();
    assert!(written.revision() > stripped.revision());
    let after = tasks.get("t1").await.unwrap();
    assert_eq!(after.status.unwrap().message, "still healthy");
    let managers = |m: Option<Vec<serde_json::Value>>| {
        m.unwrap_or_default().iter().map(|e| e["manager"].to_string()).collect::<Vec<_>>()
    };
    let kept = managers(after.metadata.managed_fields);
    assert!(!kept.is_empty());
    assert_eq!(kept, managers(before), "no entry lost");

    // In place: the copy takes the new revision and is then the stored
    // object (but for managedFields), so it can be written again as it is.
    let mut copy = tasks.get("t1").await.unwrap();
    let stale = copy.clone();
    copy.status.as_mut().unwrap().message = "in place".into();
    tasks.replace_status_in_place(&mut copy).await.unwrap();
    assert!(copy.revision() > stale.revision());
    assert!(copy.metadata.managed_fields.is_none());
    let mut stored = tasks.get("t1").await.unwrap();
    assert!(stored.metadata.managed_fields.take().is_some_and(|m| !m.is_empty()), "the stored ones are kept");
    assert_eq!(copy, stored);
    copy.status.as_mut().unwrap().message = "in place again".into();
    tasks.replace_status_in_place(&mut copy).await.unwrap();
    assert_eq!(tasks.get("t1").await.unwrap().status.unwrap().message, "in place again");
    // A stale copy is a conflict and stays as it was.
    let mut old = stale.clone();
    old.status.as_mut().unwrap().message = "too late".into();
    let err = tasks.replace_status_in_place(&mut old).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(old.metadata.resource_version, stale.metadata.resource_version);
    // Without a resourceVersion the copy becomes the whole answer.
    let mut unconditional = tasks.get("t1").await.unwrap();
    unconditional.metadata.resource_version = None;
    unconditional.status.as_mut().unwrap().message = "unconditional".into();
    tasks.replace_status_in_place(&mut unconditional).await.unwrap();
    let mut stored = tasks.get("t1").await.unwrap();
    stored.metadata.managed_fields = None;
    assert_eq!(unconditional, stored);

    // An illegal transition comes back as the server's 422 naming the field.
    let mut illegal = tasks.get("t1").await.unwrap();
    illegal.status.as_mut().unwrap().state = TaskState::Pending;
    let err = tasks.replace_status(&illegal).await.unwrap_err();
    assert_eq!(err.code(), Some(422), "{err}");
    assert!(err.to_string().contains("status.state"), "{err}");
}

#[tokio::test]
async fn invalid_objects_and_dry_runs() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    let mut bad = task("web", "bad");
    bad.spec.resources.cpus = -1.0;
    let err = tasks.create(&bad).await.unwrap_err();
    assert_eq!(err.code(), Some(422), "{err}");
    assert!(err.to_string().contains("cpus"), "{err}");

    let dry = tasks.clone().dry_run();
    dry.create(&task("web", "ghost")).await.unwrap();
    assert!(tasks.get_opt("ghost").await.unwrap().is_none());
}

#[tokio::test]
async fn finalizers_make_a_delete_pending() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client, "web");
    let mut t = task("web", "held");
    t.metadata.finalizers.push("example.com/cleanup".into());
    tasks.create(&t).await.unwrap();

    match tasks.delete("held", &DeleteParams::default()).await.unwrap() {
        DeleteOutcome::Pending(obj) => assert!(obj.metadata.deletion_timestamp.is_some()),
        DeleteOutcome::Deleted => panic!("a finalizer should hold the object"),
    }
    tasks.patch_merge("held", &json!({"metadata": {"finalizers": null}})).await.unwrap();
    assert!(tasks.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn list_pages_follow_continue_and_selectors_filter() {
    let (_server, client) = start().await;
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    for i in 0..7 {
        let mut t = task("web", &format!("t{i}"));
        t.metadata.labels.insert("parity".into(), if i % 2 == 0 { "even" } else { "odd" }.into());
        tasks.create(&t).await.unwrap();
    }
    Api::<Task>::namespaced(client.clone(), "db").create(&task("db", "other")).await.unwrap();

    let page = tasks.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.metadata.r#continue.is_some());
    let all = tasks.list_all(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert!(all.metadata.resource_version.is_some());

    let even = tasks.list_all(&ListParams::default().labels("parity=even")).await.unwrap();
    assert_eq!(even.items.len(), 4);

    let everywhere: Api<Task> = Api::all(client);
    assert_eq!(everywhere.list_all(&ListParams::default()).await.unwrap().items.len(), 8);
}

#[tokio::test]
async fn cluster_kinds_use_api_all() {
    let (_server, client) = start().await;
    let roles: Api<Role> = Api::all(client.clone());
    roles.create(&Role::new("web", RoleSpec { weight: 3.0 })).await.unwrap();
    assert_eq!(roles.get("web").await.unwrap().spec.weight, 3.0);

    let wrong: Api<Role> = Api::namespaced(client, "web");
    assert!(matches!(wrong.get("web").await, Err(Error::InvalidRequest(_))));
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let (mut server, client) = start().await;
    server.stop().await;
    let err = Api::<Role>::all(client).get("web").await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_subresource_posted_for_a_minimal_answer_succeeds_or_fails_as_the_full_one() {
    use meseta_schemas::kinds::{Offer, OfferSpec};
    use meseta_schemas::resources::Resources;
    let (_server, client) = start().await;
    let offers: Api<Offer> = Api::namespaced(client.clone(), "web");
    let spec = OfferSpec {
        framework: "meseta".into(),
        agent: "a1".into(),
        resources: Resources::scalars(2.0, 1024.0, 0.0, 0.0),
        ..Default::default()
    };
    offers.create(&Offer::new("o1", spec).in_namespace("web")).await.unwrap();
    let launch = json!({"operations": [{"type": "Launch", "tasks": [{"metadata": {"name": "t1"},
        "spec": {"command": "true", "resources": {"cpus": 1, "mem": 64}}}]}]});
    offers.post_subresource_minimal("o1", "accept", &launch).await.unwrap();
    let tasks: Api<Task> = Api::namespaced(client, "web");
    assert_eq!(tasks.get("t1").await.unwrap().status.unwrap().state, TaskState::Assigned);
    let err = offers.post_subresource_minimal("o1", "accept", &launch).await.unwrap_err();
    assert!(err.is_not_found(), "the offer was consumed: {err}");
}
