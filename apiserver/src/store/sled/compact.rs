//! Change-log compaction: raises the compacted revision, then removes the
//! write-ahead log segments holding only revisions at or below it (see
//! `changelog`) and the change-log entries a store written before them keeps
//! in sled.
//!
//! Owns the order of a compaction. It must not run on an async worker (it
//! blocks on sled and the file system) and must not touch objects.
//!
//! # Guarantees
//!
//! - The in-memory compacted revision is raised before any entry or segment
//!   is deleted, and the persisted one is written before the deletions, so a
//!   reader that scanned the log and then sees `compacted <= from` knows its
//!   scan was complete, and a crash half-way leaves only stale entries below
//!   the mark (removed again on the next open or compaction). A persisted
//!   mark that a crash took back is raised again on open to where the kept
//!   segments begin.
//! - Never compacts past the durable revision: watchers still need those
//!   entries to replay.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use super::changelog::ChangeLog;
use super::codec::{log_key, LOG_PREFIX, META_COMPACTED};
use super::group_commit::{lock, Shared};
use super::{backend, Handles};
use crate::store::{Revision, StoreError};

/// Compacts the change log up to `revision` (clamped to the durable revision).
pub(super) fn compact_blocking(
    trees: &Handles,
    shared: &Shared,
    changelog: &ChangeLog,
    revision: Revision,
) -> Result<(), StoreError> {
    let _serial = lock(&shared.compact_lock);
    let target = revision.min(shared.durable());
    if target <= shared.compacted.load(Ordering::Acquire) {
        return Ok(());
    }
    shared.compacted.store(target, Ordering::Release);
    trees.tree.insert(META_COMPACTED, &target.to_be_bytes()).map_err(backend)?;
    let removed = delete_through(trees, target)?;
    let segments = changelog.remove_through(target)?;
    tracing::debug!(compacted = target, removed, segments, "change log compacted");
    Ok(())
}

/// Removes every log entry with revision <= `target`; returns how many.
/// Entry by entry, not as sled batches: a batch takes sled's write lock,
/// which holds up the committer's writes while it is applied, and rolls
/// sled's I/O buffer twice; a crash half-way only leaves stale entries below
/// the persisted mark, which the next open removes.
pub(super) fn delete_through(trees: &Handles, target: Revision) -> Result<usize, StoreError> {
    let end = log_key(target.saturating_add(1), 0);
    let range = (Bound::Included(&[LOG_PREFIX][..]), Bound::Excluded(&end[..]));
    let mut removed = 0;
    for key in trees.tree.range::<&[u8], _>(range).keys() {
        trees.tree.remove(key.map_err(backend)?).map_err(backend)?;
        removed += 1;
    }
    Ok(removed)
}
