//! A Task's status written the typed way gives what the general way gives,
//! follows the same rules, and leaves a typed Task in the memo that either
//! way takes up next.

use std::sync::Arc;

use chrono::Utc;
use meseta_schemas::kinds::{Task, TaskState, TaskStatus};
use meseta_schemas::registry::{self, KindInfo};
use meseta_schemas::state_machine;
use serde_json::{json, Value};

use super::*;
use crate::object;
use crate::objects::create::create;
use crate::objects::update;
use crate::objects::WrittenObject;
use crate::store::sled::{SledOptions, SledStore};
use crate::store::{Store, Txn, TxnOutcome};

fn kind() -> &'static KindInfo {
    registry::by_kind("Task").unwrap()
}

fn key(name: &str) -> String {
    crate::path::object_key(kind(), Some("ns"), name)
}

/// A store with PENDING tasks `names`, created the apiserver's way.
async fn store_with(names: &[&str]) -> (tempfile::TempDir, Arc<SledStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    for name in names {
        let body = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": name},
            "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}});
        create(&*store, kind(), Some("ns"), body, WriteOptions::default()).await.unwrap();
    }
    (dir, store)
}

async fn stored(store: &dyn Store, name: &str) -> (Value, u64) {
    let kv = store.get(&key(name)).await.unwrap().unwrap();
    (object::from_kv(&kv).unwrap(), kv.mod_revision)
}

async fn stored_task(store: &dyn Store, name: &str) -> Task {
    serde_json::from_value(stored(store, name).await.0).unwrap()
}

/// The task `name` as stored, with `status` in place of its own: what an
/// agent sends.
async fn body_with(store: &dyn Store, name: &str, status: TaskStatus) -> Task {
    let mut task = stored_task(store, name).await;
    task.status = Some(status);
    task
}

fn assigned(from: &Task) -> TaskStatus {
    let mut status =
        state_machine::transition(from.status.as_ref().unwrap(), TaskState::Assigned, "bound", Utc::now()).unwrap();
    status.agent = Some("a1".into());
    status
}

async fn write(store: &dyn Store, name: &str, precondition: Option<u64>, body: Task) -> Result<Written, ApiError> {
    let opts = WriteOptions { precondition, prechecked: true, ..WriteOptions::default() };
    update_task_status(store, kind(), &key(name), name, opts, body).await
}

fn revision_of(written: &Written) -> u64 {
    match &written.object {
        WrittenObject::Stored { revision, .. } => *revision,
        WrittenObject::Value(v) => object::resource_version(v).unwrap().unwrap(),
    }
}

/// The object without what differs between two tasks of one spec.
fn identity_free(mut v: Value) -> Value {
    let m = object::meta_mut(&mut v);
    for field in ["name", "uid", "creationTimestamp", "resourceVersion"] {
        m.remove(field);
    }
    v
}

#[tokio::test]
async fn the_typed_way_stores_what_the_general_way_stores() {
    let (_dir, store) = store_with(&["typed", "general"]).await;
    let status = assigned(&stored_task(&*store, "typed").await);
    let typed = body_with(&*store, "typed", status.clone()).await;
    write(&*store, "typed", None, typed).await.unwrap();

    let general_body = serde_json::to_value(body_with(&*store, "general", status.clone()).await).unwrap();
    let desired = move |_: &Value| Ok(general_body.clone());
    update(&*store, kind(), &key("general"), "general", UpdateMode::Status, WriteOptions::default(), desired)
        .await
        .unwrap();

    let (typed, _) = stored(&*store, "typed").await;
    let (general, _) = stored(&*store, "general").await;
    assert_eq!(typed["status"], serde_json::to_value(&status).unwrap());
    assert_eq!(identity_free(typed), identity_free(general));
}

#[tokio::test]
async fn only_the_status_changes() {
    let (_dir, store) = store_with(&["t"]).await;
    let (before, _) = stored(&*store, "t").await;
    let mut body = body_with(&*store, "t", assigned(&stored_task(&*store, "t").await)).await;
    body.spec.command = Some("something else".into());
    body.metadata.labels.insert("sent".into(), "along".into());
    write(&*store, "t", None, body).await.unwrap();
    let (after, _) = stored(&*store, "t").await;
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    assert_eq!(after["metadata"]["generation"], before["metadata"]["generation"]);
    assert_eq!(after["status"]["state"], "ASSIGNED");
}

#[tokio::test]
async fn an_illegal_transition_is_refused_naming_the_field_and_nothing_is_written() {
    let (_dir, store) = store_with(&["t"]).await;
    let (before, revision) = stored(&*store, "t").await;
    let mut status = stored_task(&*store, "t").await.status.unwrap();
    status.state = TaskState::Running;
    let err = write(&*store, "t", None, body_with(&*store, "t", status).await).await.unwrap_err();
    let ApiError::Invalid { causes, .. } = &err else { panic!("a 422, got {err:?}") };
    assert!(causes.iter().any(|c| c.field.starts_with("status")), "{causes:?}");
    assert_eq!(stored(&*store, "t").await, (before, revision));
}

#[tokio::test]
async fn a_stale_precondition_is_a_conflict_and_a_current_one_is_honoured() {
    let (_dir, store) = store_with(&["t"]).await;
    let (_, revision) = stored(&*store, "t").await;
    let status = assigned(&stored_task(&*store, "t").await);
    let err = write(&*store, "t", Some(revision - 1), body_with(&*store, "t", status.clone()).await).await;
    assert!(matches!(err, Err(ApiError::Conflict { .. })), "{err:?}");
    assert_eq!(stored(&*store, "t").await.1, revision, "nothing written");
    let written = write(&*store, "t", Some(revision), body_with(&*store, "t", status).await).await.unwrap();
    assert!(revision_of(&written) > revision);
}

#[tokio::test]
async fn the_same_status_again_writes_nothing() {
    let (_dir, store) = store_with(&["t"]).await;
    let status = assigned(&stored_task(&*store, "t").await);
    let first = write(&*store, "t", None, body_with(&*store, "t", status.clone()).await).await.unwrap();
    let again = write(&*store, "t", None, body_with(&*store, "t", status).await).await.unwrap();
    assert_eq!(revision_of(&again), revision_of(&first));
    assert_eq!(stored(&*store, "t").await.1, revision_of(&first));
}

/// An unconditional main-resource edit: label `edited` set to `value`.
fn labelled(value: &'static str) -> impl FnMut(&Value) -> Result<Value, ApiError> {
    move |current: &Value| {
        let mut wanted = current.clone();
        object::meta_mut(&mut wanted).insert("labels".into(), json!({ "edited": value }));
        object::meta_mut(&mut wanted).remove("resourceVersion");
        Ok(wanted)
    }
}

#[tokio::test]
async fn the_memo_holds_a_typed_task_that_the_general_way_takes_up() {
    let (_dir, store) = store_with(&["t"]).await;
    let memo = store.memo().unwrap();
    let status = assigned(&stored_task(&*store, "t").await);
    // The memo emptied: the status write reads, and has the room to stay.
    memo.take_latest_any(&key("t"));
    let written = write(&*store, "t", None, body_with(&*store, "t", status).await).await.unwrap();
    let revision = revision_of(&written);
    let (held, entry, _) = memo.take_latest_any(&key("t")).expect("the write left its task");
    assert_eq!(held, revision);
    let task = entry.downcast::<Task>().expect("a typed Task");
    assert_eq!(task.metadata.resource_version.as_deref(), Some(revision.to_string().as_str()));
    assert_eq!(serde_json::to_value(&*task).unwrap(), stored(&*store, "t").await.0);

    // A general update starts from that entry without a read: with the
    // stored object moved on behind the memo's back, its guess fails the
    // write's compare and it reads again, so the raw write is kept.
    memo.put(&key("t"), revision, *task, 1);
    let (mut moved, _) = stored(&*store, "t").await;
    object::meta_mut(&mut moved).insert("annotations".into(), json!({"moved": "behind the memo"}));
    object::meta_mut(&mut moved).remove("resourceVersion");
    let (bytes, _) = object::encode_stored(&moved, 1024);
    let txn = Txn { compares: vec![], ops: vec![crate::store::Op::Put { key: key("t"), value: bytes }] };
    assert!(matches!(store.txn(txn).await.unwrap(), TxnOutcome::Committed { .. }));
    update(&*store, kind(), &key("t"), "t", UpdateMode::Main, WriteOptions::default(), labelled("yes")).await.unwrap();
    let (after, _) = stored(&*store, "t").await;
    assert_eq!(after["metadata"]["labels"]["edited"], "yes");
    assert_eq!(after["metadata"]["annotations"]["moved"], "behind the memo");
    assert_eq!(after["status"]["state"], "ASSIGNED");

    // And one whose guess holds takes the typed entry as the object.
    let (_, revision) = stored(&*store, "t").await;
    memo.put(&key("t"), revision, stored_task(&*store, "t").await, 1);
    update(&*store, kind(), &key("t"), "t", UpdateMode::Main, WriteOptions::default(), labelled("twice"))
        .await
        .unwrap();
    assert_eq!(stored(&*store, "t").await.0["metadata"]["labels"]["edited"], "twice");
}

#[tokio::test]
async fn a_dry_run_answers_the_object_and_writes_nothing() {
    let (_dir, store) = store_with(&["t"]).await;
    let (_, revision) = stored(&*store, "t").await;
    let status = assigned(&stored_task(&*store, "t").await);
    let opts = WriteOptions { dry_run: true, prechecked: true, ..WriteOptions::default() };
    let body = body_with(&*store, "t", status).await;
    let written = update_task_status(&*store, kind(), &key("t"), "t", opts, body).await.unwrap();
    let WrittenObject::Value(answer) = written.object else { panic!("a dry run answers a value") };
    assert_eq!(answer["status"]["state"], "ASSIGNED");
    assert_eq!(object::resource_version(&answer).unwrap(), Some(revision));
    assert_eq!(stored(&*store, "t").await.1, revision);
}
