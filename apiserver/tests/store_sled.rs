//! The sled store against the storage contract: transactions, listing,
//! revisions, watches, compaction, restart and group commit.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use meseta_apiserver::store::sled::{SledOptions, SledStore};
use meseta_apiserver::store::{
    Compare, EventKind, Op, Revision, Store, StoreError, Txn, TxnOutcome, WatchEvent, WatchStream,
};

/// Guard against a hung stream; never reached when the store works.
const HANG: Duration = Duration::from_secs(20);

fn open(dir: &tempfile::TempDir) -> Arc<SledStore> {
    open_with(dir, SledOptions::default())
}

fn open_with(dir: &tempfile::TempDir, opts: SledOptions) -> Arc<SledStore> {
    SledStore::open(dir.path(), opts).expect("open store")
}

fn put_op(key: &str, value: &str) -> Op {
    Op::Put { key: key.into(), value: Bytes::copy_from_slice(value.as_bytes()) }
}

/// Unconditional put; returns the revision.
async fn put(store: &SledStore, key: &str, value: &str) -> Revision {
    committed(store.txn(Txn { compares: vec![], ops: vec![put_op(key, value)] }).await.unwrap())
}

fn committed(outcome: TxnOutcome) -> Revision {
    match outcome {
        TxnOutcome::Committed { revision } => revision,
        other => panic!("expected Committed, got {other:?}"),
    }
}

fn mod_rev(key: &str, revision: Revision) -> Compare {
    Compare::ModRevision { key: key.into(), revision }
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(HANG, stream.next()).await.expect("watch event in time") {
        Some(Ok(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Takes the next events of `stream` and checks they are one per revision
/// of `revisions`, in order.
async fn expect_revisions(stream: &mut WatchStream, revisions: std::ops::RangeInclusive<Revision>) {
    for rev in revisions {
        assert_eq!(next_event(stream).await.revision, rev);
    }
}

async fn value_of(store: &SledStore, key: &str) -> Option<String> {
    store.get(key).await.unwrap().map(|kv| String::from_utf8(kv.value.to_vec()).unwrap())
}

#[tokio::test]
async fn create_if_absent_twice_fails_the_second_time_with_the_current_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let create = |v: &str| Txn { compares: vec![mod_rev("/a", 0)], ops: vec![put_op("/a", v)] };
    let first = committed(store.txn(create("one")).await.unwrap());
    match store.txn(create("two")).await.unwrap() {
        TxnOutcome::Failed { compare: 0, current: Some(kv) } => {
            assert_eq!(kv.value, Bytes::from_static(b"one"));
            assert_eq!((kv.create_revision, kv.mod_revision), (first, first));
        }
        other => panic!("expected Failed with the current value, got {other:?}"),
    }
    assert_eq!(value_of(&store, "/a").await.as_deref(), Some("one"));
    assert_eq!(store.revision(), first, "a failed txn takes no revision");
}

#[tokio::test]
async fn cas_update_with_a_stale_revision_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = put(&store, "/a", "v1").await;
    let r2 =
        committed(store.txn(Txn { compares: vec![mod_rev("/a", r1)], ops: vec![put_op("/a", "v2")] }).await.unwrap());
    assert!(r2 > r1);
    let stale = store.txn(Txn { compares: vec![mod_rev("/a", r1)], ops: vec![put_op("/a", "v3")] }).await.unwrap();
    assert!(matches!(stale, TxnOutcome::Failed { compare: 0, current: Some(ref kv) } if kv.mod_revision == r2));
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.value, kv.create_revision, kv.mod_revision), (Bytes::from_static(b"v2"), r1, r2));
    assert_eq!(store.revision(), r2);
}

#[tokio::test]
async fn multi_key_txn_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ra = put(&store, "/a", "a0").await;
    // The second compare fails ("/b" exists check on an absent key): nothing is written.
    let failing = Txn {
        compares: vec![mod_rev("/a", ra), Compare::Exists { key: "/b".into() }],
        ops: vec![put_op("/a", "a1"), put_op("/b", "b1"), Op::Delete { key: "/a".into() }],
    };
    assert!(matches!(store.txn(failing).await.unwrap(), TxnOutcome::Failed { compare: 1, current: None }));
    assert_eq!(value_of(&store, "/a").await.as_deref(), Some("a0"));
    assert_eq!(value_of(&store, "/b").await, None);
    assert_eq!(store.revision(), ra);

    let ok = Txn { compares: vec![mod_rev("/a", ra)], ops: vec![put_op("/a", "a1"), put_op("/b", "b1")] };
    let rev = committed(store.txn(ok).await.unwrap());
    assert_eq!(rev, ra + 1);
    for key in ["/a", "/b"] {
        assert_eq!(store.get(key).await.unwrap().unwrap().mod_revision, rev, "{key} written at the txn revision");
    }
}

#[tokio::test]
async fn delete_with_cas() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = put(&store, "/a", "v1").await;
    let r2 = put(&store, "/a", "v2").await;
    let delete = |rev| Txn { compares: vec![mod_rev("/a", rev)], ops: vec![Op::Delete { key: "/a".into() }] };
    assert!(matches!(store.txn(delete(r1)).await.unwrap(), TxnOutcome::Failed { .. }));
    assert_eq!(value_of(&store, "/a").await.as_deref(), Some("v2"));
    let r3 = committed(store.txn(delete(r2)).await.unwrap());
    assert!(r3 > r2);
    assert_eq!(store.get("/a").await.unwrap(), None);
    // Deleted keys compare as absent.
    assert!(matches!(store.txn(delete(0)).await.unwrap(), TxnOutcome::Committed { .. }));
}

#[tokio::test]
async fn list_honours_prefix_start_after_limit_and_more() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for key in ["/t/a", "/t/b", "/t/c", "/t/d", "/u/a", "/s/z"] {
        put(&store, key, key).await;
    }
    let keys = |items: &[meseta_apiserver::store::KeyValue]| items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();

    let all = store.list("/t/", None, None).await.unwrap();
    assert_eq!(keys(&all.items), ["/t/a", "/t/b", "/t/c", "/t/d"]);
    assert!(!all.more);
    assert_eq!(all.revision, store.revision());
    assert_eq!(all.items[2].value, Bytes::from_static(b"/t/c"));

    let page1 = store.list("/t/", None, Some(2)).await.unwrap();
    assert_eq!((keys(&page1.items), page1.more), (vec!["/t/a".to_string(), "/t/b".to_string()], true));
    let page2 = store.list("/t/", Some("/t/b"), Some(2)).await.unwrap();
    assert_eq!((keys(&page2.items), page2.more), (vec!["/t/c".to_string(), "/t/d".to_string()], false));
    let after_last = store.list("/t/", Some("/t/d"), Some(2)).await.unwrap();
    assert!(after_last.items.is_empty() && !after_last.more);
    // A start_after before the prefix starts at the prefix.
    assert_eq!(keys(&store.list("/t/", Some("/a"), None).await.unwrap().items).len(), 4);
    assert!(store.list("/v/", None, None).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn revisions_strictly_increase_and_create_revision_sticks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut last = store.revision();
    let mut first = None;
    for i in 0..20 {
        let rev = put(&store, "/a", &i.to_string()).await;
        assert!(rev > last, "revision {rev} after {last}");
        assert_eq!(store.revision(), rev, "revision() is durable once txn returns");
        first.get_or_insert(rev);
        last = rev;
    }
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (first.unwrap(), last));
}

#[tokio::test]
async fn watch_from_zero_replays_everything_then_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = put(&store, "/t/a", "1").await;
    let r2 = put(&store, "/t/a", "2").await;
    put(&store, "/other", "x").await;
    let r3 =
        committed(store.txn(Txn { compares: vec![], ops: vec![Op::Delete { key: "/t/a".into() }] }).await.unwrap());

    let mut watch = store.watch("/t/", 0).unwrap();
    let e1 = next_event(&mut watch).await;
    assert_eq!((e1.revision, e1.kind, e1.key.as_str(), &e1.value[..]), (r1, EventKind::Created, "/t/a", &b"1"[..]));
    let e2 = next_event(&mut watch).await;
    assert_eq!(
        (e2.revision, e2.kind, &e2.value[..], &e2.prev_value[..]),
        (r2, EventKind::Updated, &b"2"[..], &b"1"[..])
    );
    let e3 = next_event(&mut watch).await;
    assert_eq!(
        (e3.revision, e3.kind, &e3.value[..], &e3.prev_value[..]),
        (r3, EventKind::Deleted, &b""[..], &b"2"[..])
    );

    // Live: a multi-op txn yields its events in op order at one revision.
    let live = Txn { compares: vec![], ops: vec![put_op("/t/b", "b"), put_op("/x", "x"), put_op("/t/c", "c")] };
    let r4 = committed(store.txn(live).await.unwrap());
    let (e4, e5) = (next_event(&mut watch).await, next_event(&mut watch).await);
    assert_eq!((e4.revision, e4.key.as_str()), (r4, "/t/b"));
    assert_eq!((e5.revision, e5.key.as_str()), (r4, "/t/c"));
}

#[tokio::test]
async fn watch_from_n_resumes_exactly_after_n() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(put(&store, &format!("/k/{i}"), "v").await);
    }
    let mut watch = store.watch("/k/", revs[4]).unwrap();
    for expected in &revs[5..] {
        assert_eq!(next_event(&mut watch).await.revision, *expected);
    }
    // Nothing else is pending: the next event is the next write.
    let next = put(&store, "/k/new", "v").await;
    assert_eq!(next_event(&mut watch).await.revision, next);
}

#[tokio::test]
async fn watch_from_a_future_revision_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = put(&store, "/a", "1").await;
    let mut watch = store.watch("/", now + 2).unwrap();
    put(&store, "/a", "2").await;
    put(&store, "/a", "3").await;
    let r = put(&store, "/a", "4").await;
    let event = next_event(&mut watch).await;
    assert_eq!((event.revision, &event.value[..]), (r, &b"4"[..]));
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..5 {
        put(&store, "/a", &i.to_string()).await;
    }
    store.compact(3).await.unwrap();
    assert_eq!(store.compacted_revision(), 3);
    match store.watch("/", 2) {
        Err(StoreError::Compacted { requested: 2, oldest: 3 }) => {}
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(_) => panic!("expected Compacted, got a stream"),
    }
    let mut watch = store.watch("/", 3).unwrap();
    assert_eq!(next_event(&mut watch).await.revision, 4);
    assert_eq!(next_event(&mut watch).await.revision, 5);
    // Compacting beyond the durable revision is clamped to it.
    store.compact(1_000).await.unwrap();
    assert_eq!(store.compacted_revision(), store.revision());
}

#[tokio::test]
async fn a_directory_in_use_is_refused_with_a_hint_and_free_again_once_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir);
    // Refused after waiting a few seconds for the holder to let go.
    let err = SledStore::open(dir.path(), SledOptions::default()).err().expect("a second open is refused");
    assert!(err.to_string().contains("is another meseta-apiserver using this data directory?"), "{err}");
    drop(first);
    let again = open(&dir);
    assert_eq!(again.revision(), 0);
}

#[tokio::test]
async fn reopen_keeps_objects_revision_compaction_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (last, compacted) = {
        let store = open(&dir);
        for i in 0..6 {
            put(&store, &format!("/k/{i}"), &i.to_string()).await;
        }
        store.compact(2).await.unwrap();
        (store.revision(), store.compacted_revision())
    };
    let store = open(&dir);
    assert_eq!(store.revision(), last);
    assert_eq!(store.compacted_revision(), compacted);
    assert_eq!(value_of(&store, "/k/5").await.as_deref(), Some("5"));
    assert!(matches!(store.watch("/", 1), Err(StoreError::Compacted { .. })));
    let mut watch = store.watch("/k/", compacted).unwrap();
    expect_revisions(&mut watch, compacted + 1..=last).await;
    let next = put(&store, "/k/6", "6").await;
    assert_eq!(next, last + 1, "the revision counter continues");
    assert_eq!(next_event(&mut watch).await.revision, next);
}

/// Copies the store directory `from` as it is on disk at this instant: what
/// a crash of the process would leave (sled keeps unflushed writes in memory).
fn copy_as_crashed(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_as_crashed(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The log's segment files in a store directory.
fn log_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal")).unwrap().count()
}

/// Opens the sled database of a dropped store, waiting while sled's I/O
/// threads still hold its lock.
fn open_released(dir: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(err) if started.elapsed() < HANG && err.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => panic!("opening the dropped store's sled database: {err}"),
        }
    }
}

/// Every key under `prefix` with its value, in key order.
async fn keys_and_values(store: &SledStore, prefix: &str) -> Vec<(String, Bytes)> {
    store.list(prefix, None, None).await.unwrap().items.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// `writers` concurrent writers, each creating `each` keys
/// `{prefix}/{writer}/{i}` (value `v{i}`), then updating its key 0 to
/// `updated` and deleting its key 1: updates and deletes batched with other
/// writers' creates.
async fn write_concurrently(store: &Arc<SledStore>, prefix: &str, writers: usize, each: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, prefix) = (Arc::clone(store), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                put(&store, &format!("{prefix}/{w}/{i}"), &format!("v{i}")).await;
            }
            put(&store, &format!("{prefix}/{w}/0"), "updated").await;
            let delete = Txn { compares: vec![], ops: vec![Op::Delete { key: format!("{prefix}/{w}/1") }] };
            committed(store.txn(delete).await.unwrap());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_crash_took_from_sled_come_back_from_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write_concurrently(&store, "/c", 8, 25).await;
    let revision = store.revision();
    let crashed = tempfile::tempdir().unwrap();
    copy_as_crashed(dir.path(), crashed.path());

    let recovered = open(&crashed);
    assert!(recovered.recovered_batches() > 0, "sled had flushed everything: the log was not needed");
    assert_eq!(recovered.revision(), revision);
    assert_eq!(recovered.list("/c/", None, None).await.unwrap().items.len(), 8 * 24);
    for w in 0..8 {
        assert_eq!(value_of(&recovered, &format!("/c/{w}/0")).await.as_deref(), Some("updated"));
        assert_eq!(value_of(&recovered, &format!("/c/{w}/1")).await, None);
        assert_eq!(value_of(&recovered, &format!("/c/{w}/24")).await.as_deref(), Some("v24"));
    }
    // The change log came back too: a watch replays every revision.
    let mut watch = recovered.watch("/c/", 0).unwrap();
    expect_revisions(&mut watch, 1..=revision).await;
    assert_eq!(put(&recovered, "/c/next", "v").await, revision + 1, "the revision counter continues");
    // Recovered writes are in sled now: a second crash needs no log.
    let again = tempfile::tempdir().unwrap();
    copy_as_crashed(crashed.path(), again.path());
    let reopened = open(&again);
    assert_eq!(reopened.recovered_batches(), 1, "only the write made after the recovery");
    assert_eq!(reopened.revision(), revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_sled_kept_only_part_of_come_back_whole_from_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write_concurrently(&store, "/h", 6, 20).await;
    let revision = store.revision();
    let before = keys_and_values(&store, "/h/").await;
    drop(store);

    // sled is given a batch key by key: after a crash it may hold any part
    // of what it got since its last flush. Take every other key of it.
    {
        let db = open_released(dir.path());
        // Taken per first byte of the key: objects `o`; the change log is
        // in the write-ahead log, not in sled.
        let mut taken: BTreeMap<u8, usize> = BTreeMap::new();
        for name in db.tree_names() {
            let tree = db.open_tree(&name).unwrap();
            let keys: Vec<_> = tree.iter().keys().map(Result::unwrap).collect();
            for key in keys.into_iter().step_by(2) {
                *taken.entry(key.first().copied().unwrap_or(0)).or_default() += 1;
                tree.remove(key).unwrap();
            }
        }
        let (objects, log) = (taken.get(&b'o').copied().unwrap_or(0), taken.get(&b'l').copied().unwrap_or(0));
        assert!(objects > 50, "only {objects} objects to take");
        assert_eq!(log, 0, "sled holds change-log entries");
        db.flush().unwrap();
    }

    let reopened = open(&dir);
    assert_eq!(reopened.revision(), revision);
    let after = keys_and_values(&reopened, "/h/").await;
    assert_eq!(after, before);
    assert_eq!(after.len(), 6 * 19);
    let mut watch = reopened.watch("/h/", 0).unwrap();
    for rev in 1..=revision {
        assert_eq!(next_event(&mut watch).await.revision, rev, "the change log came back too");
    }
    assert_eq!(put(&reopened, "/h/next", "v").await, revision + 1, "the revision counter continues");
}

#[tokio::test]
async fn checkpoints_flush_sled_and_the_log_keeps_only_the_watch_window() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SledOptions { wal_segment_bytes: 16 << 10, watch_window: 40, ..SledOptions::default() };
    let store = open_with(&dir, opts);
    let value = "x".repeat(200);
    const WRITES: u64 = 400;
    for i in 0..WRITES {
        put(&store, &format!("/p/{i}"), &value).await;
    }
    let waited = std::time::Instant::now();
    while store.checkpoint_count() < 2 || log_segments(dir.path()) >= 6 {
        assert!(
            waited.elapsed() < HANG,
            "{} checkpoints and {} files in the log after {WRITES} writes of {} bytes",
            store.checkpoint_count(),
            log_segments(dir.path()),
            value.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each write logs its object and its change-log run (over 400 bytes):
    // about 40 per 16 KiB segment, so about ten segments were started; the
    // ones holding only compacted revisions went (the checkpoint mark is a
    // file of its own).

    let crashed = tempfile::tempdir().unwrap();
    copy_as_crashed(dir.path(), crashed.path());
    let recovered = open(&crashed);
    assert!(recovered.recovered_batches() < WRITES, "checkpoints left everything to the log");
    assert_eq!(recovered.revision(), WRITES);
    let listed = recovered.list("/p/", None, None).await.unwrap().items;
    assert_eq!(listed.len() as u64, WRITES);
    assert!(listed.iter().all(|kv| kv.value == value.as_bytes()));
    let compacted = recovered.compacted_revision();
    assert!(compacted >= WRITES - 40 - 40, "history kept from {compacted}");
    let mut watch = recovered.watch("/p/", compacted).unwrap();
    expect_revisions(&mut watch, compacted + 1..=WRITES).await;
}

#[tokio::test]
async fn the_change_log_outlives_checkpoints_and_reopens_and_compaction_removes_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || SledOptions { wal_segment_bytes: 16 << 10, ..SledOptions::default() };
    const WRITES: u64 = 400;
    {
        let store = open_with(&dir, opts());
        for i in 0..WRITES {
            put(&store, &format!("/p/{}", i % 7), &format!("{i}-{}", "y".repeat(200))).await;
        }
        let waited = std::time::Instant::now();
        while store.checkpoint_count() < 3 {
            assert!(waited.elapsed() < HANG, "no checkpoints after {WRITES} writes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let segments = log_segments(dir.path());
    assert!(segments > 5, "only {segments} files in the log: the window keeps every segment");

    // Reopened: every revision replays, across every segment, with the
    // previous value of each update.
    let store = open_with(&dir, opts());
    assert_eq!(store.compacted_revision(), 0);
    let mut watch = store.watch("/p/", 0).unwrap();
    for rev in 1..=WRITES {
        let event = next_event(&mut watch).await;
        let i = rev - 1;
        assert_eq!((event.revision, event.key.as_str()), (rev, format!("/p/{}", i % 7).as_str()));
        assert!(event.value.starts_with(format!("{i}-").as_bytes()));
        if i >= 7 {
            assert!(event.prev_value.starts_with(format!("{}-", i - 7).as_bytes()), "revision {rev}");
        }
    }
    let next = put(&store, "/p/next", "v").await;
    assert_eq!(next_event(&mut watch).await.revision, next);

    // Compaction removes the segments it passed, not the ones after it.
    store.compact(WRITES / 2).await.unwrap();
    let left = log_segments(dir.path());
    assert!(left < segments - 2, "{left} of {segments} files left after compacting half the history");
    assert!(matches!(store.watch("/", WRITES / 2 - 1), Err(StoreError::Compacted { .. })));
    let mut watch = store.watch("/p/", WRITES / 2).unwrap();
    assert_eq!(next_event(&mut watch).await.revision, WRITES / 2 + 1);
    drop(watch);
    drop(store);

    let store = open_with(&dir, opts());
    let compacted = store.compacted_revision();
    assert!((WRITES / 2..WRITES).contains(&compacted), "compacted at {compacted}");
    let mut watch = store.watch("/p/", compacted).unwrap();
    expect_revisions(&mut watch, compacted + 1..=next).await;
}

#[tokio::test]
async fn dropping_the_store_ends_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut watch = store.watch("/", 0).unwrap();
    drop(store);
    let end = tokio::time::timeout(HANG, watch.next()).await.expect("stream ends in time");
    assert!(matches!(end, Some(Err(StoreError::Closed))), "got {end:?}");
    assert!(watch.next().await.is_none());
    // The directory is free again.
    let reopened = open(&dir);
    assert_eq!(reopened.revision(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_distinct_revisions_and_share_flushes() {
    const WRITERS: usize = 64;
    const WRITES: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let flushes_before = store.flush_count();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::with_capacity(WRITES);
            for i in 0..WRITES {
                revs.push(put(&store, &format!("/w/{w}/{i}"), "v").await);
            }
            revs
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        for rev in task.await.unwrap() {
            assert!(all.insert(rev), "revision {rev} handed out twice");
        }
    }
    let total = (WRITERS * WRITES) as u64;
    assert_eq!(all.len() as u64, total);
    assert_eq!(store.revision(), total);
    assert_eq!(store.list("/w/", None, None).await.unwrap().items.len() as u64, total);
    let flushes = store.flush_count() - flushes_before;
    assert!(flushes > 0);
    // Sharing means some flush made several writes durable: with one fsync per
    // write there would be exactly `total`. How many writes a flush covers
    // depends on the disk's fsync time, which bench/apiserver measures.
    assert!(flushes < total, "{flushes} flushes for {total} writes: writers do not share flushes");
    eprintln!("{:.1} writes per flush", total as f64 / flushes as f64);
}

/// Every write of the test below: per key, (revision, deleted?) in order.
type History = BTreeMap<String, Vec<(Revision, bool)>>;

/// A listing at revision D must show, for every key, its state at D or later.
fn assert_listing_covers_its_revision(history: &History, listing: &meseta_apiserver::store::ListResult) {
    let d = listing.revision;
    for (key, writes) in history {
        let latest = writes.iter().rev().find(|(rev, _)| *rev <= d);
        match listing.items.iter().find(|kv| &kv.key == key) {
            Some(kv) => {
                if let Some((rev, _)) = latest {
                    assert!(
                        kv.mod_revision >= *rev,
                        "{key}: listed at {} but written at {rev} <= {d}",
                        kv.mod_revision
                    );
                }
            }
            None => {
                let absent_at_d = matches!(latest, None | Some((_, true)));
                let deleted_later = writes.iter().any(|(rev, deleted)| *rev > d && *deleted);
                assert!(absent_at_d || deleted_later, "{key}: missing from a listing at {d}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_then_watch_from_the_list_revision_misses_nothing() {
    const WRITERS: usize = 16;
    const WRITES: usize = 40;
    const FINAL: Revision = (WRITERS * WRITES) as Revision;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..WRITES {
                let key = format!("/c/{w}");
                // Every txn writes exactly one event: creates, updates, and
                // every fourth write deletes the (then present) key.
                if i % 4 == 2 {
                    store.txn(Txn { compares: vec![], ops: vec![Op::Delete { key }] }).await.unwrap();
                } else {
                    put(&store, &key, &format!("{w}-{i}")).await;
                }
            }
        }));
    }
    // Observers list repeatedly at different points of the stream, then
    // follow a watch from their first listing.
    let mut observers = Vec::new();
    for j in 0..4u64 {
        let store = Arc::clone(&store);
        observers.push(tokio::spawn(async move {
            while store.applied_revision() < j * 150 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let mut listings = Vec::new();
            for _ in 0..20 {
                listings.push(store.list("/c/", None, None).await.unwrap());
                tokio::task::yield_now().await;
            }
            let first = &listings[0];
            let mut state: BTreeMap<String, Bytes> =
                first.items.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
            let mut watch = store.watch("/c/", first.revision).unwrap();
            for expected in first.revision + 1..=FINAL {
                let ev = next_event(&mut watch).await;
                assert_eq!(ev.revision, expected, "every revision after the listing, once, in order");
                match ev.kind {
                    EventKind::Deleted => state.remove(&ev.key),
                    _ => state.insert(ev.key, ev.value),
                };
            }
            (state, listings)
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut history = History::new();
    let mut all = store.watch("/c/", 0).unwrap();
    for _ in 0..FINAL {
        let ev = next_event(&mut all).await;
        history.entry(ev.key).or_default().push((ev.revision, ev.kind == EventKind::Deleted));
    }
    let truth: BTreeMap<String, Bytes> =
        store.list("/c/", None, None).await.unwrap().items.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(truth.len(), WRITERS);
    for observer in observers {
        let (state, listings) = observer.await.unwrap();
        assert_eq!(state, truth);
        for listing in &listings {
            assert_listing_covers_its_revision(&history, listing);
        }
    }
}

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, SledOptions { live_buffer: 2, ..SledOptions::default() });
    let mut watch = store.watch("/", 0).unwrap();
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(put(&store, "/a", &i.to_string()).await);
    }
    for (i, rev) in revs.iter().enumerate() {
        let ev = next_event(&mut watch).await;
        assert_eq!((ev.revision, ev.value), (*rev, Bytes::from(i.to_string())));
    }
    let next = put(&store, "/a", "live").await;
    assert_eq!(next_event(&mut watch).await.revision, next);
}

#[tokio::test]
async fn a_lagging_watcher_past_compaction_ends_with_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, SledOptions { live_buffer: 2, ..SledOptions::default() });
    let mut watch = store.watch("/", 0).unwrap();
    let first = put(&store, "/a", "0").await;
    assert_eq!(next_event(&mut watch).await.revision, first);
    for i in 1..20 {
        put(&store, "/a", &i.to_string()).await;
    }
    store.compact(store.revision()).await.unwrap();
    match tokio::time::timeout(HANG, watch.next()).await.unwrap() {
        Some(Err(StoreError::Compacted { requested, oldest })) => {
            assert_eq!(requested, first);
            assert_eq!(oldest, store.compacted_revision());
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "the stream ends after Compacted");
}

#[tokio::test]
async fn the_change_log_is_kept_to_the_watch_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, SledOptions { watch_window: 16, ..SledOptions::default() });
    for i in 0..100 {
        put(&store, "/a", &i.to_string()).await;
    }
    // The background compaction runs after flushes; wait until it caught up.
    let mut compacted = store.compacted_revision();
    for _ in 0..200 {
        if store.revision() - compacted <= 16 + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        compacted = store.compacted_revision();
    }
    assert!(compacted >= 100 - 16 - 1, "compacted at {compacted}");
    assert!(matches!(store.watch("/", 0), Err(StoreError::Compacted { .. })));
    let mut watch = store.watch("/", compacted).unwrap();
    assert_eq!(next_event(&mut watch).await.revision, compacted + 1);
}

/// The first `count` events a watch from `from` gives: revision, key and
/// value length.
async fn replay(store: &SledStore, from: Revision, count: usize) -> Vec<(Revision, String, usize)> {
    let mut watch = store.watch("/", from).unwrap();
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let e = next_event(&mut watch).await;
        seen.push((e.revision, e.key.clone(), e.value.len()));
    }
    seen
}

/// Writes from many writers at once (so that batches hold many events, some
/// transactions two, some values larger than a change-log run), then watches
/// from many revisions: each replay holds exactly the events after its
/// start, in order, also after compacting to a revision in the middle of the
/// history.
#[tokio::test]
async fn replays_from_any_revision_of_a_batch_give_exactly_the_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writers = (0..48).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..6 {
                // Every third value is 24 KiB, larger than a run: a run of its own.
                let size = if (w + i) % 3 == 0 { 24 << 10 } else { 8 };
                let value = format!("{w}-{i}-{}", "x".repeat(size));
                let ops = vec![put_op(&format!("/k/{w}"), &value), put_op(&format!("/j/{w}/{i}"), "second")];
                committed(store.txn(Txn { compares: vec![], ops }).await.unwrap());
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    let last = store.revision();
    assert_eq!(last, 48 * 6);
    let all = replay(&store, 0, 2 * 48 * 6).await;
    let revisions: Vec<Revision> = all.iter().map(|e| e.0).collect();
    assert!(revisions.windows(2).all(|w| w[0] <= w[1]), "replayed out of order");
    assert_eq!(revisions.iter().filter(|&&r| r == 7).count(), 2, "both events of a transaction");
    let after = |from: Revision| all.iter().filter(|e| e.0 > from).cloned().collect::<Vec<_>>();
    for from in (0..last).step_by(7).chain([last - 1]) {
        let expected = after(from);
        assert_eq!(replay(&store, from, expected.len()).await, expected, "replay from {from}");
    }
    // Compacted to the middle of the history: a replay from there is whole.
    store.compact(last / 2 + 1).await.unwrap();
    let from = store.compacted_revision();
    let expected = after(from);
    assert_eq!(replay(&store, from, expected.len()).await, expected);
}

#[tokio::test]
async fn the_memo_holds_what_its_capacity_allows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, SledOptions { memo_capacity: 64 << 10, ..SledOptions::default() });
    let memo = store.memo().expect("a sled store has a memo");
    assert_eq!(memo.capacity(), 64 << 10);
    // Sixty-four entries of 1 KiB fit; the next one makes room by the oldest.
    for i in 0..65u64 {
        memo.put(&format!("/m/{i}"), i + 1, i, 1 << 10);
    }
    assert_eq!(memo.len(), 64);
    assert!(memo.weight() <= memo.capacity());
    assert_eq!(memo.take::<u64>("/m/0", 1), None, "the oldest made room");
    assert_eq!(memo.take::<u64>("/m/64", 65), Some(64));
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, SledOptions::default());
    assert_eq!(store.memo().unwrap().capacity(), meseta_apiserver::store::memo::DEFAULT_CAPACITY);
}
