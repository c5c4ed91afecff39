//! Group commit under concurrent writers racing for the same keys: batches
//! mix winners and losers of the same compare, and no writer may hear of a
//! state that is not durable yet.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use meseta_apiserver::store::sled::{SledOptions, SledStore};
use meseta_apiserver::store::{Compare, Op, Store, Txn, TxnOutcome};

const WRITERS: usize = 32;
const ROUNDS: usize = 20;

fn create(key: &str, value: String) -> Txn {
    Txn {
        compares: vec![Compare::ModRevision { key: key.into(), revision: 0 }],
        ops: vec![Op::Put { key: key.into(), value: Bytes::from(value) }],
    }
}

/// Each round, every writer tries to create the same key: exactly one wins,
/// every other one is told who did, and only once that winner's revision is
/// durable (`Store::revision` is the durable revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_answered_only_against_durable_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).expect("open store");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS {
                let key = format!("/race/{round}");
                let outcome = store.txn(create(&key, format!("w{w}"))).await.unwrap();
                match &outcome {
                    TxnOutcome::Committed { revision } => {
                        assert!(store.revision() >= *revision, "acknowledged revision {revision} is not durable");
                    }
                    TxnOutcome::Failed { compare: 0, current: Some(kv) } => {
                        let durable = store.revision();
                        assert!(
                            durable >= kv.mod_revision,
                            "conflict reported against revision {} while only {durable} is durable",
                            kv.mod_revision
                        );
                    }
                    other => panic!("unexpected outcome {other:?}"),
                }
                outcomes.push((round, outcome));
            }
            outcomes
        }));
    }
    let mut winners = vec![None; ROUNDS];
    let mut seen = vec![HashSet::new(); ROUNDS];
    for task in tasks {
        for (round, outcome) in task.await.unwrap() {
            match outcome {
                TxnOutcome::Committed { revision } => {
                    assert!(winners[round].replace(revision).is_none(), "two writers created /race/{round}");
                }
                TxnOutcome::Failed { current: Some(kv), .. } => {
                    seen[round].insert(kv.mod_revision);
                }
                TxnOutcome::Failed { current: None, .. } => unreachable!("checked in the writer"),
            }
        }
    }
    for round in 0..ROUNDS {
        let winner = winners[round].unwrap_or_else(|| panic!("nobody created /race/{round}"));
        // Every loser saw the winner's write, and nothing else.
        assert_eq!(seen[round], HashSet::from([winner]), "round {round}");
        let stored = store.get(&format!("/race/{round}")).await.unwrap().expect("the key exists");
        assert_eq!(stored.mod_revision, winner);
    }
    assert_eq!(store.revision(), ROUNDS as u64, "failed creates take no revision");
}
