//! Committing a batch of transactions: check each one's compares against
//! the state the batch has built so far and stage the objects, change log and
//! revision of every transaction that held (`prepare_batch`), then, once the
//! committer has logged them, write them to sled (`write`).
//!
//! Owns the write path up to "applied". Only the committer (`group_commit`)
//! calls it, one batch at a time: compares read the tree before the write,
//! which is only sound because nothing else writes objects or the revision
//! meanwhile (compaction only removes log entries below the durable
//! revision). A key the committer's `Presence` count proves absent is not
//! read at all. It must not wait for durability: that is group commit's job.
//!
//! The writes go to sled key by key, not as one `Tree::apply_batch`: the
//! write-ahead log record, synced before them, is what makes a batch whole
//! after a crash (the open replays it), so sled's own batch atomicity is not
//! needed, and it is dear: sled rolls its I/O buffer twice for every batch
//! and writes each sealed buffer out on its I/O threads.

use std::collections::HashMap;

use bytes::Bytes;

use super::codec::{self, META_REVISION};
use super::presence::Presence;
use super::wal::{Staged, Writes};
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

/// A key the batch has looked at.
struct Touched {
    /// Whether the tree held it before the batch.
    stored: bool,
    /// Its state after the batch's writes so far.
    now: Option<Record>,
}

/// The objects overlaid with the writes of the batch so far.
struct View<'a> {
    trees: &'a Handles,
    presence: &'a Presence,
    keys: HashMap<String, Touched>,
}

impl View<'_> {
    /// The state of `key`: the batch's last write to it, else the tree's.
    fn current(&mut self, key: &str) -> Result<Option<Record>, StoreError> {
        if let Some(known) = self.keys.get(key) {
            return Ok(known.now.clone());
        }
        let raw = match self.presence.may_exist(key) {
            true => self.trees.tree.get(codec::object_key(key)).map_err(backend)?,
            false => None,
        };
        let record = match raw {
            Some(raw) => {
                let r = codec::decode_object(key, raw)?;
                Some(Record { create_revision: r.create_revision, mod_revision: r.mod_revision, value: r.value })
            }
            None => None,
        };
        self.keys.insert(key.to_owned(), Touched { stored: record.is_some(), now: record.clone() });
        Ok(record)
    }

    /// Records a write of `key`; `current` was called for it before.
    fn set(&mut self, key: &str, record: Option<Record>) {
        if let Some(touched) = self.keys.get_mut(key) {
            touched.now = record;
        }
    }
}

/// A batch whose compares were checked and whose writes are staged, not
/// yet written to sled.
pub(super) struct Prepared {
    /// The write-ahead log record of the batch's writes.
    pub(super) record: Vec<u8>,
    writes: Writes,
    touched: HashMap<String, Touched>,
}

/// Checks `txns` in order; the ones whose compares hold get consecutive
/// revisions from `first_revision` and their writes are staged, the log
/// record encoded into `buffer` (see [`write`]). Returns one
/// [`Applied`] per transaction, in order, and the staged batch (`None` when
/// it committed nothing), which the caller logs and then [`write`]s before it
/// prepares the next batch. Nothing is written to sled here.
pub(super) fn prepare_batch(
    trees: &Handles,
    presence: &mut Presence,
    txns: Vec<Txn>,
    first_revision: Revision,
    buffer: Vec<u8>,
) -> Result<(Vec<Applied>, Option<Prepared>), StoreError> {
    presence.refresh(trees)?;
    let mut view = View { trees, presence, keys: HashMap::with_capacity(txns.len()) };
    let mut writes = Staged::new(first_revision, buffer);
    let mut runs = codec::Runs::default();
    let mut outcomes = Vec::with_capacity(txns.len());
    let mut next = first_revision;
    for txn in txns {
        let outcome = apply_one(&mut view, &mut writes, &mut runs, txn, next)?;
        if matches!(outcome, Applied::Committed { .. }) {
            next += 1;
        }
        outcomes.push(outcome);
    }
    if next == first_revision {
        return Ok((outcomes, None));
    }

    for (key, run) in runs.entries() {
        writes.log(&key, &run);
    }
    writes.insert(META_REVISION, (next - 1).to_be_bytes()[..].into());
    let (writes, record) = writes.seal(next - 1);
    Ok((outcomes, Some(Prepared { record, writes, touched: view.keys })))
}

/// Writes a prepared batch to sled, key by key. On a storage error sled may
/// hold any part of it: the store must not go on (its log record replays it
/// whole at the next open), and `presence` is recounted should it be used
/// again. Returns the record's buffer, for the next batch.
pub(super) fn write(trees: &Handles, presence: &mut Presence, prepared: Prepared) -> Result<Vec<u8>, StoreError> {
    let Prepared { writes, touched, record } = prepared;
    if let Err(err) = writes.apply(&trees.tree) {
        presence.invalidate();
        return Err(backend(err));
    }
    for (key, Touched { stored, now }) in touched {
        match (stored, now.is_some()) {
            (false, true) => presence.added(&key),
            (true, false) => presence.removed(&key),
            _ => {}
        }
    }
    Ok(record)
}

/// Checks one transaction's compares against `view` and, when they all hold,
/// stages its writes at `revision`.
fn apply_one(
    view: &mut View<'_>,
    writes: &mut Staged,
    runs: &mut codec::Runs,
    txn: Txn,
    revision: Revision,
) -> Result<Applied, StoreError> {
    for (index, compare) in txn.compares.iter().enumerate() {
        let key = compare.key();
        let current = view.current(key)?;
        let holds = match compare {
            Compare::ModRevision { revision, .. } => current.as_ref().map_or(0, |r| r.mod_revision) == *revision,
            Compare::Exists { .. } => current.is_some(),
        };
        if !holds {
            let current = current.map(|r| KeyValue {
                key: key.to_owned(),
                value: r.value,
                create_revision: r.create_revision,
                mod_revision: r.mod_revision,
            });
            return Ok(Applied::Failed { compare: index, current });
        }
    }

    let mut events = Vec::with_capacity(txn.ops.len());
    for op in txn.ops {
        let before = view.current(op.key())?;
        // The value to write (`None`: delete). An edit is a put of what it
        // makes of the current value, or nothing.
        let (key, value) = match op {
            Op::Put { key, value } => (key, Some(value)),
            Op::Delete { key } => (key, None),
            Op::Edit { key, edit } => match before.as_ref().and_then(|prev| edit.apply(&prev.value)) {
                Some(value) => (key, Some(value)),
                None => continue,
            },
        };
        let event = match value {
            Some(value) => {
                let (kind, create_revision, prev_value) = match before {
                    Some(prev) => (EventKind::Updated, prev.create_revision, prev.value),
                    None => (EventKind::Created, revision, Bytes::new()),
                };
                writes.insert(&codec::object_key(&key), codec::encode_object(create_revision, revision, &value));
                view.set(&key, Some(Record { create_revision, mod_revision: revision, value: value.clone() }));
                WatchEvent { revision, kind, key, value, prev_value, memo: Default::default() }
            }
            None => {
                let Some(prev) = before else { continue };
                writes.remove(&codec::object_key(&key));
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
        // A put's value is in the record already, under the object's key.
        let value = matches!(event.kind, EventKind::Deleted).then_some(&event.value[..]);
        runs.push(revision, &event.kind, &event.key, value, &event.prev_value);
        events.push(event);
    }
    Ok(Applied::Committed { revision, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trees() -> Handles {
        let db = ::sled::Config::new().temporary(true).open().expect("temporary sled");
        Handles { tree: db.open_tree(codec::TREE).unwrap(), db, files: None }
    }

    fn create(key: &str, value: &'static str) -> Txn {
        Txn {
            compares: vec![Compare::ModRevision { key: key.into(), revision: 0 }],
            ops: vec![Op::Put { key: key.into(), value: Bytes::from_static(value.as_bytes()) }],
        }
    }

    fn presence(trees: &Handles) -> Presence {
        Presence::load(trees).unwrap()
    }

    /// Prepares and writes a batch, as the committer does (less the log);
    /// returns the outcomes and the log record.
    fn commit_batch(
        trees: &Handles,
        presence: &mut Presence,
        txns: Vec<Txn>,
        first_revision: Revision,
    ) -> Result<(Vec<Applied>, Option<Vec<u8>>), StoreError> {
        let (outcomes, prepared) = prepare_batch(trees, presence, txns, first_revision, Vec::new())?;
        let record = match prepared {
            Some(prepared) => Some(write(trees, presence, prepared)?),
            None => None,
        };
        Ok((outcomes, record))
    }

    /// The outcomes alone.
    fn apply_batch(
        trees: &Handles,
        presence: &mut Presence,
        txns: Vec<Txn>,
        first_revision: Revision,
    ) -> Result<Vec<Applied>, StoreError> {
        commit_batch(trees, presence, txns, first_revision).map(|(outcomes, _)| outcomes)
    }

    fn contents(tree: &::sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter().map(|e| e.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn the_log_records_of_the_batches_rebuild_the_tree_they_wrote() {
        let trees = trees();
        let mut known = presence(&trees);
        let batches = vec![
            (vec![create("/a", "1"), create("/b", "1"), create("/c", "1")], 1),
            (vec![delete("/a"), create("/b", "again"), append("/c", "x"), create("/d", "1")], 4),
            (vec![delete("/d"), create("/a", "2")], 7),
        ];
        let replica = ::sled::Config::new().temporary(true).open().unwrap().open_tree(codec::TREE).unwrap();
        for (txns, first) in batches {
            let (_, record) = commit_batch(&trees, &mut known, txns, first).unwrap();
            let record = record.expect("the batch committed something");
            let log = super::super::wal::decode_one(&record).expect("a whole record");
            assert_eq!(log.first, first);
            log.into_writes().apply(&replica).unwrap();
            assert_eq!(contents(&replica), contents(&trees.tree), "after the batch from {first}");
        }
        assert_eq!(trees.tree.get(META_REVISION).unwrap().unwrap().as_ref(), &8u64.to_be_bytes());
    }

    fn delete(key: &str) -> Txn {
        Txn { compares: vec![Compare::Exists { key: key.into() }], ops: vec![Op::Delete { key: key.into() }] }
    }

    /// Events in the change-log runs of a batch's log record; sled holds
    /// none of them.
    fn log_len(trees: &Handles, record: &[u8]) -> usize {
        assert_eq!(trees.tree.scan_prefix([codec::LOG_PREFIX]).count(), 0, "change-log runs went to sled");
        let record = super::super::wal::decode_one(record).expect("a whole record");
        record
            .ops
            .iter()
            .filter(|(key, _)| key.first() == Some(&codec::LOG_PREFIX))
            .map(|(key, run)| {
                let run = run.as_deref().expect("a run is a put");
                codec::entry_events(codec::log_key_revision(key).unwrap(), run).unwrap().len()
            })
            .sum()
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
        let (out, record) =
            commit_batch(&trees, &mut presence(&trees), vec![create("/a", "1"), create("/a", "x"), update, delete], 5)
                .unwrap();
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
        assert!(trees.tree.get(codec::object_key("/a")).unwrap().is_none());
        assert_eq!(log_len(&trees, &record.unwrap()), 3);
        assert_eq!(trees.tree.get(META_REVISION).unwrap().unwrap().as_ref(), &7u64.to_be_bytes());
    }

    fn append(key: &str, suffix: &'static str) -> Txn {
        let edit = crate::store::Edit::new(move |current| {
            (!current.ends_with(suffix.as_bytes())).then(|| [current, suffix.as_bytes()].concat().into())
        });
        Txn { compares: vec![], ops: vec![Op::Edit { key: key.into(), edit }] }
    }

    #[test]
    fn edits_rewrite_the_value_as_the_batch_left_it() {
        let trees = trees();
        apply_batch(&trees, &mut presence(&trees), vec![create("/a", "1")], 1).unwrap();
        // Each edit sees the one before it in the batch; one that keeps the
        // value and one of an absent key write nothing and make no event.
        let panics = Txn {
            compares: vec![],
            ops: vec![Op::Edit { key: "/a".into(), edit: crate::store::Edit::new(|_| panic!("a broken edit")) }],
        };
        let out = apply_batch(
            &trees,
            &mut presence(&trees),
            vec![append("/a", "x"), append("/a", "y"), append("/a", "y"), append("/absent", "z"), panics],
            2,
        )
        .unwrap();
        type Seen = (EventKind, Vec<u8>, Vec<u8>);
        let events: Vec<Vec<Seen>> = out
            .iter()
            .map(|o| match o {
                Applied::Committed { events, .. } => {
                    events.iter().map(|e| (e.kind.clone(), e.value.to_vec(), e.prev_value.to_vec())).collect()
                }
                Applied::Failed { .. } => panic!("an edit has no compare to fail"),
            })
            .collect();
        assert_eq!(
            events,
            vec![
                vec![(EventKind::Updated, b"1x".to_vec(), b"1".to_vec())],
                vec![(EventKind::Updated, b"1xy".to_vec(), b"1x".to_vec())],
                vec![],
                vec![],
                vec![],
            ]
        );
        let stored = codec::decode_object("/a", trees.tree.get(codec::object_key("/a")).unwrap().unwrap()).unwrap();
        assert_eq!((stored.create_revision, stored.mod_revision, &stored.value[..]), (1, 3, &b"1xy"[..]));
        assert!(trees.tree.get(codec::object_key("/absent")).unwrap().is_none());
    }

    #[test]
    fn a_batch_with_no_committed_transaction_writes_nothing() {
        let trees = trees();
        apply_batch(&trees, &mut presence(&trees), vec![create("/a", "1")], 1).unwrap();
        let (out, record) = commit_batch(&trees, &mut presence(&trees), vec![create("/a", "2")], 2).unwrap();
        assert!(revision_of(&out[0]).is_none());
        assert!(record.is_none(), "nothing for the log either");
        assert_eq!(trees.tree.get(META_REVISION).unwrap().unwrap().as_ref(), &1u64.to_be_bytes());
    }

    #[test]
    fn the_presence_count_follows_every_batch() {
        let trees = trees();
        let mut known = presence(&trees);
        apply_batch(&trees, &mut known, vec![create("/a", "1"), create("/b", "1")], 1).unwrap();
        assert!(known.may_exist("/a") && known.may_exist("/b") && !known.may_exist("/c"));
        // Created and deleted within one batch: never stored.
        let out = apply_batch(&trees, &mut known, vec![delete("/a"), create("/c", "1"), delete("/c")], 3).unwrap();
        assert_eq!(out.iter().map(revision_of).collect::<Vec<_>>(), vec![Some(3), Some(4), Some(5)]);
        assert!(!known.may_exist("/a") && known.may_exist("/b") && !known.may_exist("/c"));
        // A key proven absent is created afresh, at its new revision.
        let out = apply_batch(&trees, &mut known, vec![create("/a", "2")], 6).unwrap();
        match &out[0] {
            Applied::Committed { events, .. } => {
                assert_eq!((&events[0].kind, events[0].revision), (&EventKind::Created, 6))
            }
            Applied::Failed { .. } => panic!("the re-create must hold"),
        }
        // A count taken from the tree agrees with the one kept by the batches.
        let counted = presence(&trees);
        for key in ["/a", "/b", "/c", "/d"] {
            assert_eq!(counted.may_exist(key), known.may_exist(key), "{key}");
        }
    }

    #[test]
    fn a_count_loaded_from_the_tree_sends_compares_on_stored_keys_to_the_tree() {
        let trees = trees();
        apply_batch(&trees, &mut presence(&trees), vec![create("/a", "1")], 1).unwrap();
        let mut reopened = presence(&trees);
        let out = apply_batch(&trees, &mut reopened, vec![create("/a", "2")], 2).unwrap();
        match &out[0] {
            Applied::Failed { compare: 0, current: Some(kv) } => {
                assert_eq!((kv.mod_revision, &kv.value[..]), (1, &b"1"[..]))
            }
            _ => panic!("a create of a stored key must fail with its current value"),
        }
        // After a failed write the count is recounted from the tree.
        reopened.invalidate();
        assert!(reopened.may_exist("/zzz"), "a count in doubt proves nothing absent");
        apply_batch(&trees, &mut reopened, vec![delete("/a")], 2).unwrap();
        assert!(!reopened.may_exist("/a") && !reopened.may_exist("/zzz"));
    }
}
