//! Opening stores written in the older layout (one tree per key space),
//! including ones a crash left half-migrated.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;

use super::super::codec::{self, encode_event, encode_object};
use super::super::{SledOptions, SledStore};
use super::OLD_TREES;
use crate::store::{EventKind, Revision, Store, WatchEvent};

/// One object as the older layout held it.
#[derive(Debug, Clone, PartialEq)]
struct Object {
    create_revision: Revision,
    mod_revision: Revision,
    value: Vec<u8>,
}

/// One change-log event: revision, kind, key, value, previous value.
type Event = (Revision, EventKind, String, Vec<u8>, Vec<u8>);

/// What a store written in the older layout must show after opening.
#[derive(Debug, Default)]
struct Expected {
    objects: BTreeMap<String, Object>,
    /// Every event above `compacted`.
    log: Vec<Event>,
    revision: Revision,
    compacted: Revision,
}

/// Writes a store the way the older layout did: one write per revision
/// (`None` deletes), then the change log compacted through `compacted`.
fn write_old_layout(dir: &Path, writes: &[(String, Option<String>)], compacted: Revision) -> Expected {
    let db = open_raw(dir);
    let (objects, log, meta) =
        (db.open_tree("objects").unwrap(), db.open_tree("log").unwrap(), db.open_tree("meta").unwrap());
    let mut expected = Expected { compacted, ..Expected::default() };
    for (i, (key, value)) in writes.iter().enumerate() {
        let revision = i as Revision + 1;
        let before = expected.objects.get(key).cloned();
        let prev = before.as_ref().map(|o| o.value.clone()).unwrap_or_default();
        let (kind, new) = match (value, &before) {
            (Some(v), Some(_)) => (EventKind::Updated, v.as_bytes().to_vec()),
            (Some(v), None) => (EventKind::Created, v.as_bytes().to_vec()),
            (None, Some(_)) => (EventKind::Deleted, Vec::new()),
            (None, None) => panic!("the history deletes {key} while it is absent"),
        };
        if value.is_some() {
            let create_revision = before.map_or(revision, |b| b.create_revision);
            let object = Object { create_revision, mod_revision: revision, value: new.clone() };
            expected.objects.insert(key.to_string(), object);
        } else {
            expected.objects.remove(key);
        }
        match expected.objects.get(key) {
            Some(o) => objects.insert(key.as_bytes(), encode_object(o.create_revision, o.mod_revision, &o.value)),
            None => objects.remove(key.as_bytes()),
        }
        .unwrap();
        let mut old_log_key = revision.to_be_bytes().to_vec();
        old_log_key.extend_from_slice(&0u32.to_be_bytes());
        if revision > compacted {
            log.insert(old_log_key, encode_event(&kind, key, &new, &prev)).unwrap();
            expected.log.push((revision, kind, key.clone(), new, prev));
        }
        meta.insert("revision", &revision.to_be_bytes()).unwrap();
        expected.revision = revision;
    }
    meta.insert("compacted", &compacted.to_be_bytes()).unwrap();
    db.flush().unwrap();
    expected
}

fn history() -> Vec<(String, Option<String>)> {
    let put = |key: &str, value: String| (key.to_string(), Some(value));
    let mut writes = Vec::new();
    for i in 0..300 {
        writes.push(put(["/tasks/ns/a", "/tasks/ns/b", "/agents/x", "/tasks/other/c"][i % 4], format!("v{i}")));
    }
    for i in 0..200 {
        writes.push(put(&format!("/tasks/ns/t{i:04}"), format!("{{\"n\":{i}}}")));
    }
    writes.push(("/tasks/ns/b".to_string(), None));
    writes.push(put("/tasks/ns/t0007", "updated".to_string()));
    writes.push(("/tasks/ns/t0008".to_string(), None));
    writes
}

/// Checks every object, the revisions and the whole change log through the
/// store's contract.
async fn check(store: &SledStore, expected: &Expected) {
    for (key, object) in &expected.objects {
        let kv = store.get(key).await.unwrap().unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!((kv.create_revision, kv.mod_revision), (object.create_revision, object.mod_revision), "{key}");
        assert_eq!(kv.value.as_ref(), object.value.as_slice(), "{key}");
    }
    let listed = store.list("/", None, None).await.unwrap();
    let keys: Vec<&str> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, expected.objects.keys().map(String::as_str).collect::<Vec<_>>());
    assert!(store.get("/tasks/ns/b").await.unwrap().is_none(), "a deleted key came back");
    assert_eq!(store.revision(), expected.revision);
    assert_eq!(store.compacted_revision(), expected.compacted);

    let mut stream = store.watch("/", expected.compacted).unwrap();
    let mut seen: Vec<WatchEvent> = Vec::new();
    while seen.last().map(|e| e.revision) != Some(expected.revision) {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("replay in time");
        seen.push(next.expect("stream open").expect("event"));
    }
    let seen: Vec<_> =
        seen.into_iter().map(|e| (e.revision, e.kind, e.key, e.value.to_vec(), e.prev_value.to_vec())).collect();
    assert_eq!(seen, expected.log);
}

/// Opens the directory's sled database the way the store does: a database
/// just dropped (a store's or a raw one's) may take a moment to let go of
/// the directory's lock, as sled's io threads hold the file until their
/// last job ends.
fn open_raw(dir: &Path) -> ::sled::Db {
    super::super::open_db(&::sled::Config::new().path(dir), dir).expect("open sled")
}

/// The trees in the directory.
fn tree_names(dir: &Path) -> Vec<String> {
    let db = open_raw(dir);
    db.tree_names().iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect()
}

#[tokio::test]
async fn an_old_layout_store_opens_with_every_object_revision_and_log_entry() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_old_layout(dir.path(), &history(), 250);
    assert!(expected.log.len() > 200 && expected.objects.len() > 200);
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    check(&store, &expected).await;
    drop(store);
    let names = tree_names(dir.path());
    for (old, _) in OLD_TREES {
        assert!(!names.iter().any(|n| n == old), "old tree {old} left behind: {names:?}");
    }
    // Opening again (already migrated) changes nothing, and writes go on.
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    check(&store, &expected).await;
    let put = crate::store::Txn {
        compares: vec![],
        ops: vec![crate::store::Op::Put { key: "/tasks/ns/new".into(), value: "n".into() }],
    };
    assert!(
        matches!(store.txn(put).await.unwrap(), crate::store::TxnOutcome::Committed { revision } if revision == expected.revision + 1)
    );
    // The log goes on in runs after the single events it was given: a
    // replay reads both, in order.
    let mut expected = expected;
    expected.log.push((expected.revision + 1, EventKind::Created, "/tasks/ns/new".into(), b"n".to_vec(), Vec::new()));
    expected.revision += 1;
    expected.objects.insert(
        "/tasks/ns/new".into(),
        Object { create_revision: expected.revision, mod_revision: expected.revision, value: b"n".to_vec() },
    );
    check(&store, &expected).await;
}

#[tokio::test]
async fn a_migration_cut_short_before_its_mark_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_old_layout(dir.path(), &history(), 100);
    {
        // A crash half-way through the copy: some records in the new tree,
        // one of them not yet its final bytes, no layout mark.
        let db = open_raw(dir.path());
        let tree = db.open_tree(codec::TREE).unwrap();
        tree.insert(codec::object_key("/tasks/ns/t0001"), encode_object(1, 1, b"stale")).unwrap();
        tree.insert(codec::META_REVISION, &3u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    check(&store, &expected).await;
}

#[tokio::test]
async fn leftover_old_trees_after_the_mark_are_dropped_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_old_layout(dir.path(), &history(), 0);
    drop(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    {
        // A crash after the mark, before the old trees were dropped: what
        // they hold is older than the store's tree and must not come back.
        let db = open_raw(dir.path());
        let stale = db.open_tree("objects").unwrap();
        stale.insert("/tasks/ns/b", encode_object(1, 1, b"resurrected")).unwrap();
        db.open_tree("meta").unwrap().insert("revision", &1u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    check(&store, &expected).await;
    drop(store);
    assert!(!tree_names(dir.path()).iter().any(|n| n == "objects" || n == "meta"));
}
