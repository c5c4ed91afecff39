//! Applying a batch of transactions: check each one's compares against the
//! state the batch has built so far, then write objects, change log and
//! revision of every transaction that held in one sled multi-tree
//! transaction.
//!
//! Owns the write path up to "applied". Only the committer (`group_commit`)
//! calls it, one batch at a time: compares read outside the sled
//! transaction, which is only sound because nothing else writes meanwhile.
//! It must not wait for durability: that is group commit's job.
//!
//! One sled transaction per batch rather than per store transaction matters:
//! sled rolls its I/O buffer twice for every transaction and writes each
//! sealed buffer out with `sync_file_range` on its I/O threads, so that cost
//! is now paid once per batch.

use std::collections::HashMap;

use ::sled::transaction::{ConflictableTransactionResult, TransactionError};
use ::sled::{IVec, Transactional};
use bytes::Bytes;

use super::codec::{self, META_REVISION};
use super::{backend, Handles};
use crate::store::{Compare, EventKind, KeyValue, Op, Revision, StoreError, Txn, WatchEvent};

/// What applying one transaction of a batch did.
pub(super) enum Applied {
    /// Written at `revision` (not yet durable), with the events it produced.
    Committed { revision: Revision, events: Vec<WatchEvent> },
    /// A compare failed; nothing of this transaction was written.
    Failed { compare: usize, current: Option<KeyValue> },
}

/// A key as the batch sees it so far: `None` when absent.
#[derive(Clone)]
struct Record {
    create_revision: Revision,
    mod_revision: Revision,
    value: Bytes,
}

/// The objects tree overlaid with the writes of the batch so far.
struct View<'a> {
    trees: &'a Handles,
    keys: HashMap<String, Option<Record>>,
}

impl View<'_> {
    /// The state of `key`: the batch's last write to it, else the tree's.
    fn current(&mut self, key: &str) -> Result<Option<Record>, StoreError> {
        if let Some(known) = self.keys.get(key) {
            return Ok(known.clone());
        }
        let record = match self.trees.objects.get(key).map_err(backend)? {
            Some(raw) => {
                let r = codec::decode_object(key, raw)?;
                Some(Record { create_revision: r.create_revision, mod_revision: r.mod_revision, value: r.value })
            }
            None => None,
        };
        self.keys.insert(key.to_owned(), record.clone());
        Ok(record)
    }

    fn set(&mut self, key: &str, record: Option<Record>) {
        self.keys.insert(key.to_owned(), record);
    }
}

/// Every write of a batch, in order.
#[derive(Default)]
struct Writes {
    objects: Vec<(IVec, Option<IVec>)>,
    log: Vec<([u8; codec::LOG_KEY_LEN], IVec)>,
}

/// Applies `txns` in order; the ones whose compares hold get consecutive
/// revisions from `first_revision`. Returns one [`Applied`] per transaction,
/// in order. On a storage error nothing of the batch was written.
pub(super) fn apply_batch(
    trees: &Handles,
    txns: Vec<Txn>,
    first_revision: Revision,
) -> Result<Vec<Applied>, StoreError> {
    let mut view = View { trees, keys: HashMap::with_capacity(txns.len()) };
    let mut writes = Writes::default();
    let mut outcomes = Vec::with_capacity(txns.len());
    let mut next = first_revision;
    for txn in txns {
        let outcome = apply_one(&mut view, &mut writes, txn, next)?;
        if matches!(outcome, Applied::Committed { .. }) {
            next += 1;
        }
        outcomes.push(outcome);
    }
    if next == first_revision {
        return Ok(outcomes);
    }

    let revision_bytes = (next - 1).to_be_bytes();
    (&trees.objects, &trees.log, &trees.meta)
        .transaction(|(objects, log, meta)| -> ConflictableTransactionResult<(), ()> {
            for (key, value) in &writes.objects {
                match value {
                    Some(value) => objects.insert(key.clone(), value.clone())?,
                    None => objects.remove(key.clone())?,
                };
            }
            for (key, event) in &writes.log {
                log.insert(&key[..], event.clone())?;
            }
            meta.insert(META_REVISION, &revision_bytes[..])?;
            Ok(())
        })
        .map_err(|err: TransactionError<()>| match err {
            TransactionError::Storage(err) => backend(err),
            TransactionError::Abort(()) => StoreError::Backend("transaction aborted".into()),
        })?;
    Ok(outcomes)
}

/// Checks one transaction's compares against `view` and, when they all hold,
/// stages its writes at `revision`.
fn apply_one(view: &mut View<'_>, writes: &mut Writes, txn: Txn, revision: Revision) -> Result<Applied, StoreError> {
    for (index, compare) in txn.compares.iter().enumerate() {
        let key = match compare {
            Compare::ModRevision { key, .. } | Compare::Exists { key } => key,
        };
        let current = view.current(key)?;
        let holds = match compare {
            Compare::ModRevision { revision, .. } => current.as_ref().map_or(0, |r| r.mod_revision) == *revision,
            Compare::Exists { .. } => current.is_some(),
        };
        if !holds {
            let current = current.map(|r| KeyValue {
                key: key.clone(),
                value: r.value,
                create_revision: r.create_revision,
                mod_revision: r.mod_revision,
            });
            return Ok(Applied::Failed { compare: index, current });
        }
    }

    let mut events = Vec::with_capacity(txn.ops.len());
    for op in txn.ops {
        let key = match &op {
            Op::Put { key, .. } | Op::Delete { key } => key,
        };
        let before = view.current(key)?;
        let event = match op {
            Op::Put { key, value } => {
                let (kind, create_revision, prev_value) = match before {
                    Some(prev) => (EventKind::Updated, prev.create_revision, prev.value),
                    None => (EventKind::Created, revision, Bytes::new()),
                };
                writes
                    .objects
                    .push((IVec::from(key.as_bytes()), Some(codec::encode_object(create_revision, revision, &value))));
                view.set(&key, Some(Record { create_revision, mod_revision: revision, value: value.clone() }));
                WatchEvent { revision, kind, key, value, prev_value, memo: Default::default() }
            }
            Op::Delete { key } => {
                let Some(prev) = before else { continue };
                writes.objects.push((IVec::from(key.as_bytes()), None));
                view.set(&key, None);
                WatchEvent {
                    revision,
                    kind: EventKind::Deleted,
                    key,
                    value: Bytes::new(),
                    prev_value: prev.value,
                    memo: Default::default(),
                }
            }
        };
        let index = u32::try_from(events.len())
            .map_err(|_| StoreError::Backend("a transaction may write at most 2^32 events".into()))?;
        let encoded = codec::encode_event(&event.kind, &event.key, &event.value, &event.prev_value);
        writes.log.push((codec::log_key(revision, index), encoded));
        events.push(event);
    }
    Ok(Applied::Committed { revision, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trees() -> Handles {
        let db = ::sled::Config::new().temporary(true).open().expect("temporary sled");
        Handles {
            objects: db.open_tree("objects").unwrap(),
            log: db.open_tree("log").unwrap(),
            meta: db.open_tree("meta").unwrap(),
            db,
        }
    }

    fn create(key: &str, value: &'static str) -> Txn {
        Txn {
            compares: vec![Compare::ModRevision { key: key.into(), revision: 0 }],
            ops: vec![Op::Put { key: key.into(), value: Bytes::from_static(value.as_bytes()) }],
        }
    }

    fn revision_of(applied: &Applied) -> Option<Revision> {
        match applied {
            Applied::Committed { revision, .. } => Some(*revision),
            Applied::Failed { .. } => None,
        }
    }

    #[test]
    fn later_transactions_of_a_batch_see_the_earlier_ones() {
        let trees = trees();
        let update = Txn {
            compares: vec![Compare::ModRevision { key: "/a".into(), revision: 5 }],
            ops: vec![Op::Put { key: "/a".into(), value: Bytes::from_static(b"2") }],
        };
        let delete = Txn {
            compares: vec![Compare::Exists { key: "/a".into() }],
            ops: vec![Op::Delete { key: "/a".into() }, Op::Delete { key: "/absent".into() }],
        };
        let out = apply_batch(&trees, vec![create("/a", "1"), create("/a", "x"), update, delete], 5).unwrap();
        // The second create sees the first; a failed compare takes no revision.
        assert_eq!(out.iter().map(revision_of).collect::<Vec<_>>(), vec![Some(5), None, Some(6), Some(7)]);
        match &out[1] {
            Applied::Failed { compare: 0, current: Some(kv) } => {
                assert_eq!((kv.mod_revision, &kv.value[..]), (5, &b"1"[..]));
            }
            _ => panic!("the second create must fail on its compare"),
        }
        match &out[2] {
            Applied::Committed { events, .. } => {
                assert_eq!(events.len(), 1);
                assert_eq!((&events[0].kind, &events[0].prev_value[..]), (&EventKind::Updated, &b"1"[..]));
            }
            Applied::Failed { .. } => panic!("the update must see the create's revision"),
        }
        match &out[3] {
            // Deleting an absent key is no event.
            Applied::Committed { events, .. } => assert_eq!(events.len(), 1),
            Applied::Failed { .. } => panic!("the delete must see the key"),
        }
        assert!(trees.objects.get("/a").unwrap().is_none());
        assert_eq!(trees.log.len(), 3);
        assert_eq!(trees.meta.get(META_REVISION).unwrap().unwrap().as_ref(), &7u64.to_be_bytes());
    }

    #[test]
    fn a_batch_with_no_committed_transaction_writes_nothing() {
        let trees = trees();
        apply_batch(&trees, vec![create("/a", "1")], 1).unwrap();
        let out = apply_batch(&trees, vec![create("/a", "2")], 2).unwrap();
        assert!(revision_of(&out[0]).is_none());
        assert_eq!(trees.log.len(), 1);
        assert_eq!(trees.meta.get(META_REVISION).unwrap().unwrap().as_ref(), &1u64.to_be_bytes());
    }
}
