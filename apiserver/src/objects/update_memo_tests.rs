//! An update's first try takes the memo's entry of the key without reading
//! the store. These tests move the stored object on behind the memo's back
//! (a raw store write, which leaves the memo alone) and check that the
//! update still answers as if it had read the store: the entry is only a
//! guess, never the answer.

use std::sync::Arc;

use meseta_schemas::registry::{self, KindInfo};
use serde_json::{json, Value};

use super::*;
use crate::objects::create::create;
use crate::store::sled::{SledOptions, SledStore};

fn task() -> &'static KindInfo {
    registry::by_kind("Task").unwrap()
}

const KEY_NS: &str = "ns";

/// A store holding Task `t`, created through the apiserver's path (so the
/// memo holds it), then rewritten by a raw store write that leaves the memo
/// alone: the memo's entry is one revision behind. Returns the store, the
/// memoised revision and the stored one.
async fn store_the_memo_is_behind() -> (tempfile::TempDir, Arc<SledStore>, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let body = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t"},
        "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}});
    let created = create(&*store, task(), Some(KEY_NS), body, WriteOptions::default()).await.unwrap();
    let memoised = revision_of(&created);
    // The memo keeps what the create stored: put it back at its revision
    // (a create only offers it) so the first try is sure to find it.
    let mut obj = decoded(&*store).await;
    store.memo().unwrap().put(&key(), memoised, obj.clone(), 1);
    meta_mut(&mut obj).insert("annotations".into(), json!({"moved": "behind the memo"}));
    meta_mut(&mut obj).remove("resourceVersion");
    let (bytes, _) = object::encode_stored(&obj, 1024);
    let txn = Txn { compares: vec![], ops: vec![Op::Put { key: key(), value: bytes }] };
    let TxnOutcome::Committed { revision: stored } = store.txn(txn).await.unwrap() else { panic!("raw write") };
    assert!(stored > memoised);
    (dir, store, memoised, stored)
}

fn key() -> String {
    crate::path::object_key(task(), Some(KEY_NS), "t")
}

async fn decoded(store: &dyn Store) -> Value {
    object::from_kv(&store.get(&key()).await.unwrap().unwrap()).unwrap()
}

fn revision_of(written: &Written) -> u64 {
    match &written.object {
        WrittenObject::Stored { revision, .. } => *revision,
        WrittenObject::Value(v) => object::resource_version(v).unwrap().unwrap(),
    }
}

/// Puts label `edited` on the object it is given, keeping its revision
/// unless `precondition` names one.
fn label(precondition: Option<u64>) -> impl FnMut(&Value) -> Result<Value, ApiError> {
    move |current: &Value| {
        let mut wanted = current.clone();
        meta_mut(&mut wanted).insert("labels".into(), json!({"edited": "yes"}));
        match precondition {
            Some(rv) => object::set_resource_version(&mut wanted, rv),
            None => {
                meta_mut(&mut wanted).remove("resourceVersion");
            }
        }
        Ok(wanted)
    }
}

async fn update_t(
    store: &dyn Store,
    desired: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> Result<Written, ApiError> {
    update(store, task(), &key(), "t", UpdateMode::Main, WriteOptions::default(), desired).await
}

#[tokio::test]
async fn an_update_applies_to_the_stored_object_not_the_memos_older_one() {
    for precondition in [false, true] {
        let (_dir, store, _, stored) = store_the_memo_is_behind().await;
        let written = update_t(&*store, label(precondition.then_some(stored))).await.unwrap();
        assert!(revision_of(&written) > stored);
        let now = decoded(&*store).await;
        assert_eq!(now["metadata"]["annotations"]["moved"], "behind the memo", "precondition {precondition}");
        assert_eq!(now["metadata"]["labels"]["edited"], "yes");
    }
}

#[tokio::test]
async fn a_precondition_is_judged_against_the_stored_revision() {
    let (_dir, store, memoised, stored) = store_the_memo_is_behind().await;
    let err = update_t(&*store, label(Some(memoised))).await.unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "the memo's revision is stale: {err:?}");
    assert_eq!(decoded(&*store).await["metadata"]["resourceVersion"], stored.to_string(), "nothing written");
}

#[tokio::test]
async fn an_error_computed_from_the_memos_object_is_not_the_answer() {
    let (_dir, store, _, _) = store_the_memo_is_behind().await;
    // Refuses any object without the annotation the raw write added.
    let mut calls = 0;
    let written = update_t(&*store, |current: &Value| {
        calls += 1;
        if current["metadata"]["annotations"]["moved"].is_null() {
            return Err(ApiError::BadRequest("not moved".into()));
        }
        label(None)(current)
    })
    .await
    .unwrap();
    assert_eq!(calls, 2, "first the memo's object, then the stored one");
    assert_eq!(decoded(&*store).await["metadata"]["resourceVersion"], revision_of(&written).to_string());
}

#[tokio::test]
async fn an_unchanged_update_answers_with_the_stored_bytes() {
    let (_dir, store, _, stored) = store_the_memo_is_behind().await;
    let written = update_t(&*store, |current: &Value| Ok(current.clone())).await.unwrap();
    let kv = store.get(&key()).await.unwrap().unwrap();
    assert_eq!(kv.mod_revision, stored, "nothing written");
    match written.object {
        WrittenObject::Stored { bytes, revision, .. } => {
            assert_eq!(revision, stored);
            assert_eq!(bytes, kv.value, "the stored object's bytes, not the memo's");
        }
        other => panic!("an unchanged update answers with stored bytes: {other:?}"),
    }
}

#[tokio::test]
async fn an_object_deleted_behind_the_memo_is_not_found() {
    let (_dir, store, _, _) = store_the_memo_is_behind().await;
    let txn = Txn { compares: vec![], ops: vec![Op::Delete { key: key() }] };
    assert!(matches!(store.txn(txn).await.unwrap(), TxnOutcome::Committed { .. }));
    let err = update_t(&*store, label(None)).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(store.get(&key()).await.unwrap().is_none(), "nothing written");
}

/// Options of a write whose desired object names `revision` and that can
/// compute it only once (a PUT's body, moved into the result).
fn once_at(revision: u64) -> WriteOptions {
    WriteOptions { precondition: Some(revision), ..WriteOptions::default() }
}

/// A desired object computed at most once: a second call fails the test.
fn only_once(
    mut desired: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> impl FnMut(&Value) -> Result<Value, ApiError> {
    let mut calls = 0;
    move |current: &Value| {
        calls += 1;
        assert_eq!(calls, 1, "a desired object with a known precondition is computed once");
        desired(current)
    }
}

async fn update_once(
    store: &dyn Store,
    revision: u64,
    desired: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> Result<Written, ApiError> {
    update(store, task(), &key(), "t", UpdateMode::Main, once_at(revision), only_once(desired)).await
}

#[tokio::test]
async fn a_known_precondition_the_memo_is_behind_of_reads_the_store_and_computes_once() {
    let (_dir, store, _, stored) = store_the_memo_is_behind().await;
    let written = update_once(&*store, stored, label(Some(stored))).await.unwrap();
    assert!(revision_of(&written) > stored);
    assert_eq!(decoded(&*store).await["metadata"]["annotations"]["moved"], "behind the memo");
}

#[tokio::test]
async fn a_known_precondition_the_store_moved_past_is_a_conflict_whatever_the_guess_answered() {
    let refuse = |_: &Value| -> Result<Value, ApiError> { Err(ApiError::BadRequest("refused".into())) };
    let same = |current: &Value| Ok(current.clone());
    for answer in ["write", "error", "unchanged"] {
        let (_dir, store, memoised, stored) = store_the_memo_is_behind().await;
        // The memo's revision is the one the caller names: the guess is
        // taken, and the store no longer holds it.
        let result = match answer {
            "write" => update_once(&*store, memoised, label(Some(memoised))).await,
            "error" => update_once(&*store, memoised, refuse).await,
            _ => update_once(&*store, memoised, same).await,
        };
        let err = result.unwrap_err();
        assert!(matches!(err, ApiError::Conflict { .. }), "{answer}: {err:?}");
        assert_eq!(store.get(&key()).await.unwrap().unwrap().mod_revision, stored, "{answer}: nothing written");
    }
}

#[tokio::test]
async fn a_guess_the_store_confirms_keeps_its_answer_with_a_known_precondition() {
    let (_dir, store, _, stored) = store_the_memo_is_behind().await;
    // The memo is brought up to the stored revision: the guess is right.
    let obj = decoded(&*store).await;
    store.memo().unwrap().put(&key(), stored, obj, 1);
    let err = update_once(&*store, stored, |_: &Value| Err(ApiError::BadRequest("refused".into()))).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest(ref m) if m == "refused"), "{err:?}");
    let obj = decoded(&*store).await;
    store.memo().unwrap().put(&key(), stored, obj, 1);
    let written = update_once(&*store, stored, |current: &Value| Ok(current.clone())).await.unwrap();
    assert!(
        matches!(written.object, WrittenObject::Stored { revision, .. } if revision == stored),
        "unchanged, answered with the stored object"
    );
}

#[tokio::test]
async fn a_new_status_only_takes_free_room_in_the_memo_while_an_update_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SledOptions { memo_capacity: 64 << 10, ..SledOptions::default() };
    let store = SledStore::open(dir.path(), opts).unwrap();
    let body = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t"},
        "spec": {"command": "sleep 1", "resources": {"cpus": 0.5, "mem": 64}}});
    create(&*store, task(), Some(KEY_NS), body, WriteOptions::default()).await.unwrap();
    let memo = store.memo().unwrap();
    memo.take_latest::<Value>(&key());
    let mut message = 0;
    let mut new_status = || {
        message += 1;
        let note = format!("note {message}");
        move |current: &Value| {
            let mut wanted = current.clone();
            wanted["status"]["message"] = json!(note);
            meta_mut(&mut wanted).remove("resourceVersion");
            Ok(wanted)
        }
    };
    let t_key = key();
    let write_status =
        |desired| update(&*store, task(), &t_key, "t", UpdateMode::Status, WriteOptions::default(), desired);

    // With room, a new status is kept for the next write like any other.
    let written = write_status(new_status()).await.unwrap();
    assert!(memo.take::<Value>(&key(), revision_of(&written)).is_some(), "kept while there is room");

    // The memo full of other keys' entries: a new status pushes none out.
    let mut others = 0;
    while memo.weight() < memo.capacity() {
        let weight = (memo.capacity() - memo.weight()).min(1 << 10);
        memo.put(&format!("/other/{others}"), 1, others, weight);
        others += 1;
    }
    let written = write_status(new_status()).await.unwrap();
    assert_eq!(decoded(&*store).await["status"]["message"], "note 2");
    assert!(memo.take::<Value>(&key(), revision_of(&written)).is_none(), "no room taken from others");
    assert_eq!(memo.len(), others, "every other entry is still there");

    // An update of the object makes room: the oldest entry goes.
    let written = update_t(&*store, label(None)).await.unwrap();
    assert!(memo.take::<Value>(&key(), revision_of(&written)).is_some());
    assert_eq!(memo.take::<usize>("/other/0", 1), None, "the oldest made room");
    assert_eq!(memo.take::<usize>(&format!("/other/{}", others - 1), 1), Some(others - 1));
}
