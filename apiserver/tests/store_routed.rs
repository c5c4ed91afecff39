//! Narrowed watches of the sled store (`Store::watch_indexed`): events routed
//! by index value, both sides of a move, replay then live, overflow catch-up,
//! compaction, progress and shutdown, checked against filtering a plain
//! watch's full event list.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use meseta_apiserver::store::sled::{SledOptions, SledStore};
use meseta_apiserver::store::{
    EventKind, IndexedWatch, Op, Revision, Store, StoreError, Txn, TxnOutcome, WatchEvent, WatchIndex, WatchProgress,
    WatchStream,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Guard against a hung stream; never reached when the store works.
const HANG: Duration = Duration::from_secs(20);

/// Values are `{"agent": "..."}` JSON; anything else cannot be read.
fn agent_of(stored: &[u8]) -> Option<Cow<'_, str>> {
    let value: serde_json::Value = serde_json::from_slice(stored).ok()?;
    Some(Cow::Owned(value["agent"].as_str().unwrap_or("").to_owned()))
}

static AGENT: WatchIndex = WatchIndex { prefix: "/t/", field: "agent", read: agent_of };

fn open_with(dir: &tempfile::TempDir, live_buffer: usize) -> Arc<SledStore> {
    SledStore::open(dir.path(), SledOptions { live_buffer, ..SledOptions::default() }).expect("open store")
}

fn on(agent: &str, n: usize) -> String {
    format!(r#"{{"agent":"{agent}","n":{n}}}"#)
}

async fn txn(store: &SledStore, ops: Vec<Op>) -> Revision {
    match store.txn(Txn { compares: vec![], ops }).await.unwrap() {
        TxnOutcome::Committed { revision } => revision,
        other => panic!("expected Committed, got {other:?}"),
    }
}

fn put_op(key: &str, value: &str) -> Op {
    Op::Put { key: key.into(), value: Bytes::copy_from_slice(value.as_bytes()) }
}

async fn put(store: &SledStore, key: &str, value: &str) -> Revision {
    txn(store, vec![put_op(key, value)]).await
}

fn routed(store: &SledStore, prefix: &str, from: Revision, agent: &str) -> (WatchStream, WatchProgress) {
    let progress = WatchProgress::default();
    let narrow = IndexedWatch { index: &AGENT, value: agent, progress: progress.clone() };
    (store.watch_indexed(prefix, from, narrow).expect("watch"), progress)
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(HANG, stream.next()).await.expect("watch event in time") {
        Some(Ok(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn take(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(stream).await);
    }
    events
}

/// Whether `event` is one a watcher of `agent` must get: either side has
/// that agent, or cannot be read.
fn wanted(event: &WatchEvent, agent: &str) -> bool {
    [&event.value, &event.prev_value]
        .into_iter()
        .filter(|b| !b.is_empty())
        .any(|b| agent_of(b).is_none_or(|a| a == agent))
}

type Seen = (Revision, EventKind, String, Bytes, Bytes);

fn seen(events: &[WatchEvent]) -> Vec<Seen> {
    events.iter().map(|e| (e.revision, e.kind.clone(), e.key.clone(), e.value.clone(), e.prev_value.clone())).collect()
}

/// Everything a routed watcher of `agent` after `from` must get, out of
/// the full list.
fn expected(all: &[WatchEvent], agent: &str, from: Revision) -> Vec<Seen> {
    let narrowed: Vec<WatchEvent> = all.iter().filter(|e| e.revision > from && wanted(e, agent)).cloned().collect();
    seen(&narrowed)
}

/// Reads the stream (each poll bounded) until `progress` reaches `target`.
async fn progress_reaches(stream: &mut WatchStream, progress: &WatchProgress, target: Revision) {
    for _ in 0..400 {
        if progress.get() >= target {
            return;
        }
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
            panic!("nothing more was due, got {item:?}");
        }
    }
    panic!("progress stayed at {} below {target}", progress.get());
}

#[tokio::test]
async fn a_routed_watcher_gets_its_value_only_and_both_sides_of_a_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, 1024);
    let (mut a1, p1) = routed(&store, "/t/", 0, "a1");
    let (mut a2, _) = routed(&store, "/t/", 0, "a2");
    let x1 = put(&store, "/t/x", &on("a1", 1)).await;
    let y = put(&store, "/t/y", &on("a2", 2)).await;
    let moved = put(&store, "/t/x", &on("a2", 3)).await;
    let other = put(&store, "/t/z", &on("a3", 4)).await;
    let outside = put(&store, "/u/x", &on("a1", 5)).await;
    let gone = txn(&store, vec![Op::Delete { key: "/t/x".into() }]).await;

    let got = take(&mut a1, 2).await;
    let kinds: Vec<_> = got.iter().map(|e| (e.revision, e.kind.clone(), e.key.as_str())).collect();
    assert_eq!(kinds, vec![(x1, EventKind::Created, "/t/x"), (moved, EventKind::Updated, "/t/x")]);
    assert_eq!(got[1].prev_value, on("a1", 1), "a1 sees x leave with its old value");
    progress_reaches(&mut a1, &p1, gone).await;

    let got = take(&mut a2, 3).await;
    let kinds: Vec<_> = got.iter().map(|e| (e.revision, e.kind.clone(), e.key.as_str())).collect();
    assert_eq!(
        kinds,
        vec![(y, EventKind::Created, "/t/y"), (moved, EventKind::Updated, "/t/x"), (gone, EventKind::Deleted, "/t/x")]
    );
    assert_eq!(got[2].prev_value, on("a2", 3));
    assert!(other < gone && outside < gone, "a3's write and writes outside the index went by");

    // A narrowed watch of a prefix outside the index is a plain one.
    let (mut plain, _) = routed(&store, "/u/", 0, "nobody");
    assert_eq!(next_event(&mut plain).await.revision, outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_watchers_get_exactly_what_filtering_the_full_list_gives() {
    let agents = ["a0", "a1", "a2", "a3", "a4", ""];
    for seed in [1u64, 7, 42] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(&dir, 1024);
        let mut all = store.watch("/t/", 0).unwrap();
        let mut watchers: Vec<_> = agents.iter().map(|a| (*a, routed(&store, "/t/", 0, a).0)).collect();
        let mut narrow_ns = routed(&store, "/t/k1", 0, "a1").0;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut writers = Vec::new();
        for _ in 0..300 {
            let mut ops = Vec::new();
            for _ in 0..rng.random_range(1..=3) {
                let key = format!("/t/k{}", rng.random_range(0..12));
                let op = match rng.random_range(0..10) {
                    0 => Op::Delete { key },
                    1 => put_op(&key, "not json"),
                    _ => put_op(&key, &on(agents[rng.random_range(0..agents.len())], rng.random_range(0..1000))),
                };
                ops.push(op);
            }
            let store = Arc::clone(&store);
            // Several writers at once, so batches hold several transactions.
            writers.push(tokio::spawn(async move { txn(&store, ops).await }));
            if writers.len() == 8 {
                for w in writers.drain(..) {
                    w.await.unwrap();
                }
            }
        }
        for w in writers {
            w.await.unwrap();
        }
        put(&store, "/t/end", &on("zz", 0)).await;
        let mut full = Vec::new();
        while full.last().is_none_or(|e: &WatchEvent| e.key != "/t/end") {
            full.push(next_event(&mut all).await);
        }
        assert!(full.len() > 300, "deletes of absent keys aside, every op is an event");
        assert!(full.windows(2).all(|w| w[0].revision <= w[1].revision), "the full list is in order");
        for (agent, stream) in &mut watchers {
            let want = expected(&full, agent, 0);
            assert_eq!(seen(&take(stream, want.len()).await), want, "seed {seed}, agent {agent:?}");
        }
        let want: Vec<Seen> = expected(&full, "a1", 0).into_iter().filter(|e| e.2.starts_with("/t/k1")).collect();
        assert_eq!(seen(&take(&mut narrow_ns, want.len()).await), want, "seed {seed}: a narrower prefix");
        // Nothing extra is pending: the next event each sees is a marker.
        for (agent, stream) in &mut watchers {
            let marker = put(&store, "/t/marker", &on(agent, 0)).await;
            assert_eq!(next_event(stream).await.revision, marker, "seed {seed}, agent {agent:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_watcher_from_an_old_revision_replays_then_goes_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, 1024);
    let mut all = store.watch("/t/", 0).unwrap();
    let mut revs = Vec::new();
    for i in 0..100 {
        revs.push(put(&store, &format!("/t/k{}", i % 7), &on(["a1", "a2", "a3"][i % 3], i)).await);
    }
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 100..400 {
                put(&store, &format!("/t/k{}", i % 7), &on(["a1", "a2", "a3"][i % 5 % 3], i)).await;
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Starts while the writer runs: the replay and the switch to live
    // events overlap with commits.
    let from = revs[40];
    let (mut a1, _) = routed(&store, "/t/", from, "a1");
    writer.await.unwrap();
    let full = take(&mut all, 400).await;
    let want = expected(&full, "a1", from);
    assert!(want.len() > 100, "a1 has plenty of events");
    assert_eq!(seen(&take(&mut a1, want.len()).await), want);
    let marker = put(&store, "/t/marker", &on("a1", 0)).await;
    assert_eq!(next_event(&mut a1).await.revision, marker, "nothing delivered twice");
}

#[tokio::test]
async fn an_overflowing_routed_watcher_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, 4);
    let mut all = store.watch("/t/", 0).unwrap();
    let (mut slow, _) = routed(&store, "/t/", 0, "a1");
    let (mut live, _) = routed(&store, "/t/", 0, "a2");
    let mut a2_seen = Vec::new();
    for i in 0..60 {
        if i % 3 == 0 {
            put(&store, &format!("/t/b{}", i % 5), &on("a2", i)).await;
            // The other watcher keeps up meanwhile.
            a2_seen.push(next_event(&mut live).await);
        } else {
            put(&store, &format!("/t/k{}", i % 5), &on("a1", i)).await;
        }
    }
    let full = take(&mut all, 60).await;
    assert_eq!(seen(&a2_seen), expected(&full, "a2", 0));
    let want = expected(&full, "a1", 0);
    assert!(want.len() > 4 * 4, "well past the queue's size");
    assert_eq!(seen(&take(&mut slow, want.len()).await), want);
    let marker = put(&store, "/t/m", &on("a1", 0)).await;
    assert_eq!(next_event(&mut slow).await.revision, marker, "live again after the catch-up");
}

#[tokio::test]
async fn an_overflowed_routed_watcher_past_compaction_ends_with_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, 2);
    let (mut watch, _) = routed(&store, "/t/", 0, "a1");
    let first = put(&store, "/t/a", &on("a1", 0)).await;
    assert_eq!(next_event(&mut watch).await.revision, first);
    for i in 1..20 {
        put(&store, "/t/a", &on("a1", i)).await;
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
    assert!(matches!(routed_err(&store, 1), Some(StoreError::Compacted { .. })), "starting below is refused");
}

fn routed_err(store: &SledStore, from: Revision) -> Option<StoreError> {
    let narrow = IndexedWatch { index: &AGENT, value: "a1", progress: WatchProgress::default() };
    store.watch_indexed("/t/", from, narrow).err()
}

#[tokio::test]
async fn dropping_the_store_ends_routed_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, 1024);
    let (mut watch, _) = routed(&store, "/t/", 0, "a1");
    let first = put(&store, "/t/a", &on("a1", 0)).await;
    drop(store);
    assert_eq!(next_event(&mut watch).await.revision, first, "what was queued still arrives");
    let end = tokio::time::timeout(HANG, watch.next()).await.expect("stream ends in time");
    assert!(matches!(end, Some(Err(StoreError::Closed))), "got {end:?}");
    assert!(watch.next().await.is_none());
    let reopened = open_with(&dir, 1024);
    assert_eq!(reopened.revision(), first);
}
