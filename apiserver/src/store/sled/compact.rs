//! Change-log compaction: drops log entries at or below a revision and raises
//! the compacted revision.
//!
//! Owns the order of a compaction. It must not run on an async worker (it
//! blocks on sled) and must not touch objects.
//!
//! # Guarantees
//!
//! - The in-memory compacted revision is raised before any entry is deleted,
//!   and the persisted one is written before the deletions, so a reader that
//!   scanned the log and then sees `compacted <= from` knows its scan was
//!   complete, and a crash half-way leaves only stale entries below the mark
//!   (removed again on the next open or compaction).
//! - Never compacts past the durable revision: watchers still need those
//!   entries to replay.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use super::codec::{log_key, LOG_PREFIX, META_COMPACTED};
use super::group_commit::{lock, Shared};
use super::{backend, Handles};
use crate::store::{Revision, StoreError};

/// Deletions per sled batch, so no single batch stalls other work for long.
const DELETE_CHUNK: usize = 4096;

/// Compacts the change log up to `revision` (clamped to the durable revision).
pub(super) fn compact_blocking(trees: &Handles, shared: &Shared, revision: Revision) -> Result<(), StoreError> {
    let _serial = lock(&shared.compact_lock);
    let target = revision.min(shared.durable());
    if target <= shared.compacted.load(Ordering::Acquire) {
        return Ok(());
    }
    shared.compacted.store(target, Ordering::Release);
    trees.tree.insert(META_COMPACTED, &target.to_be_bytes()).map_err(backend)?;
    let removed = delete_through(trees, target)?;
    tracing::debug!(compacted = target, removed, "change log compacted");
    Ok(())
}

/// Removes every log entry with revision <= `target`; returns how many.
pub(super) fn delete_through(trees: &Handles, target: Revision) -> Result<usize, StoreError> {
    let end = log_key(target.saturating_add(1), 0);
    let mut removed = 0;
    loop {
        let mut batch = ::sled::Batch::default();
        let mut in_batch = 0;
        let range = (Bound::Included(&[LOG_PREFIX][..]), Bound::Excluded(&end[..]));
        for entry in trees.tree.range::<&[u8], _>(range).keys() {
            batch.remove(entry.map_err(backend)?);
            in_batch += 1;
            if in_batch == DELETE_CHUNK {
                break;
            }
        }
        if in_batch == 0 {
            return Ok(removed);
        }
        trees.tree.apply_batch(batch).map_err(backend)?;
        removed += in_batch;
    }
}
