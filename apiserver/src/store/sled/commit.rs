//! Applying one transaction: check its compares, then write objects, change
//! log and revision in one sled multi-tree transaction.
//!
//! Owns the write path up to "applied". It must be called with the store's
//! write lock held (compares read outside the sled transaction, which is only
//! sound because nothing else writes meanwhile), and must not wait for
//! durability: that is group commit's job.

use ::sled::transaction::{ConflictableTransactionResult, TransactionError};
use ::sled::{IVec, Transactional};
use bytes::Bytes;

use super::codec::{self, META_REVISION};
use super::{backend, Handles};
use crate::store::{Compare, EventKind, KeyValue, Op, Revision, StoreError, Txn, WatchEvent};

/// What applying a transaction did.
pub(super) enum Applied {
    /// Written at `revision` (not yet durable), with the events it produced.
    Committed { revision: Revision, events: Vec<WatchEvent> },
    /// A compare failed; nothing was written.
    Failed { compare: usize, current: Option<KeyValue> },
}

/// The state of a key as seen by the ops of one transaction so far.
struct Staged {
    key: String,
    current: Option<(Revision, Bytes)>,
}

/// Checks `txn`'s compares and, when they all hold, writes it at `revision`.
pub(super) fn apply(trees: &Handles, txn: Txn, revision: Revision) -> Result<Applied, StoreError> {
    // What the compares read, reused when an op writes the same key (the
    // usual create and update): the write lock keeps it current.
    let mut read: Vec<(&str, Option<IVec>)> = Vec::with_capacity(txn.compares.len());
    for (index, compare) in txn.compares.iter().enumerate() {
        let key = match compare {
            Compare::ModRevision { key, .. } | Compare::Exists { key } => key,
        };
        let current = trees.objects.get(key).map_err(backend)?;
        read.push((key, current.clone()));
        let current_mod = match &current {
            Some(raw) => codec::decode_object(key, raw.clone())?.mod_revision,
            None => 0,
        };
        let holds = match compare {
            Compare::ModRevision { revision, .. } => current_mod == *revision,
            Compare::Exists { .. } => current.is_some(),
        };
        if !holds {
            let current = current.map(|raw| codec::decode_key_value(key.clone(), raw)).transpose()?;
            return Ok(Applied::Failed { compare: index, current });
        }
    }

    let mut staged: Vec<Staged> = Vec::with_capacity(txn.ops.len());
    let mut object_writes: Vec<(IVec, Option<IVec>)> = Vec::with_capacity(txn.ops.len());
    let mut log_writes: Vec<([u8; codec::LOG_KEY_LEN], IVec)> = Vec::with_capacity(txn.ops.len());
    let mut events = Vec::with_capacity(txn.ops.len());
    for op in txn.ops {
        let key = match &op {
            Op::Put { key, .. } | Op::Delete { key } => key,
        };
        let slot = match staged.iter().position(|s| &s.key == key) {
            Some(slot) => slot,
            None => {
                let stored = match read.iter().find(|(k, _)| *k == key.as_str()) {
                    Some((_, raw)) => raw.clone(),
                    None => trees.objects.get(key).map_err(backend)?,
                };
                let current = match stored {
                    Some(raw) => {
                        let record = codec::decode_object(key, raw)?;
                        Some((record.create_revision, record.value))
                    }
                    None => None,
                };
                staged.push(Staged { key: key.clone(), current });
                staged.len() - 1
            }
        };
        let before = staged[slot].current.take();
        let event = match op {
            Op::Put { key, value } => {
                let (kind, create_revision, prev_value) = match before {
                    Some((created, prev)) => (EventKind::Updated, created, prev),
                    None => (EventKind::Created, revision, Bytes::new()),
                };
                object_writes
                    .push((IVec::from(key.as_bytes()), Some(codec::encode_object(create_revision, revision, &value))));
                staged[slot].current = Some((create_revision, value.clone()));
                WatchEvent { revision, kind, key, value, prev_value, memo: Default::default() }
            }
            Op::Delete { key } => {
                let Some((_, prev_value)) = before else { continue };
                object_writes.push((IVec::from(key.as_bytes()), None));
                WatchEvent {
                    revision,
                    kind: EventKind::Deleted,
                    key,
                    value: Bytes::new(),
                    prev_value,
                    memo: Default::default(),
                }
            }
        };
        let index = u32::try_from(events.len())
            .map_err(|_| StoreError::Backend("a transaction may write at most 2^32 events".into()))?;
        let encoded = codec::encode_event(&event.kind, &event.key, &event.value, &event.prev_value);
        log_writes.push((codec::log_key(revision, index), encoded));
        events.push(event);
    }

    let revision_bytes = revision.to_be_bytes();
    (&trees.objects, &trees.log, &trees.meta)
        .transaction(|(objects, log, meta)| -> ConflictableTransactionResult<(), ()> {
            for (key, value) in &object_writes {
                match value {
                    Some(value) => objects.insert(key.clone(), value.clone())?,
                    None => objects.remove(key.clone())?,
                };
            }
            for (key, event) in &log_writes {
                log.insert(&key[..], event.clone())?;
            }
            meta.insert(META_REVISION, &revision_bytes[..])?;
            Ok(())
        })
        .map_err(|err: TransactionError<()>| match err {
            TransactionError::Storage(err) => backend(err),
            TransactionError::Abort(()) => StoreError::Backend("transaction aborted".into()),
        })?;
    Ok(Applied::Committed { revision, events })
}
