//! The store's two threads: the committer, which applies queued
//! transactions in batches, and the flusher, which makes applied batches
//! durable, publishes their events and answers their writers.
//!
//! Owns the loops only; the queue, the hand-over between the two threads and
//! the revision bookkeeping are `group_commit`'s (its module docs describe
//! the flow and the guarantees), evaluating transactions is `commit`'s. It
//! must not answer a committed writer before the flush that covers its
//! revision, nor a failed compare before what it saw is durable.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::commit::{self, Applied};
use super::group_commit::{lock, Reply, Shared};
use super::{compact, Handles};
use crate::store::{Revision, StoreError, TxnOutcome, WatchEvent};

/// An applied batch on its way to durability.
pub(super) struct Unflushed {
    /// The last revision applied when the batch was handed over: once it is
    /// durable, so is everything the batch wrote or compared against.
    pub(super) target: Revision,
    /// The batch's events, in revision order.
    pub(super) events: Vec<WatchEvent>,
    /// Committed writers and their revisions.
    pub(super) committed: Vec<(Revision, Reply)>,
    /// Writers whose compare failed, with their answers.
    pub(super) failed: Vec<(Reply, TxnOutcome)>,
}

/// The committer thread's loop: runs until the store is dropped, then tells
/// the flusher to stop once it has answered what it was handed.
pub(super) fn run_committer(shared: Arc<Shared>, handles: Weak<Handles>) {
    commit_batches(&shared, &handles);
    shared.committer_done();
}

fn commit_batches(shared: &Shared, handles: &Weak<Handles>) {
    let mut gather = 1;
    loop {
        shared.wait_for_room();
        let Some((txns, replies)) = shared.next_batch(gather) else { return };
        gather = txns.len();
        if let Some(reason) = shared.failure.get() {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(reason.clone())));
            }
            continue;
        }
        let Some(trees) = upgrade(shared, handles) else { return };
        let first = shared.applied() + 1;
        let outcomes = match commit::apply_batch(&trees, txns, first) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::warn!(error = %err, "applying a batch of transactions failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(err.to_string())));
                }
                continue;
            }
        };
        drop(trees);
        let mut batch = Unflushed { target: 0, events: Vec::new(), committed: Vec::new(), failed: Vec::new() };
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            match outcome {
                Applied::Committed { revision, events: mut produced } => {
                    if batch.events.is_empty() {
                        batch.events = produced;
                    } else {
                        batch.events.append(&mut produced);
                    }
                    batch.committed.push((revision, reply));
                }
                Applied::Failed { compare, current } => {
                    batch.failed.push((reply, TxnOutcome::Failed { compare, current }))
                }
            }
        }
        if let Some(&(target, _)) = batch.committed.last() {
            shared.applied.store(target, Ordering::Release);
        }
        batch.target = shared.applied();
        if batch.committed.is_empty() && batch.target <= shared.durable() {
            // Every compare failed against durable state: nothing to wait for.
            for (reply, outcome) in batch.failed {
                let _ = reply.send(Ok(outcome));
            }
            continue;
        }
        shared.hand_over(batch);
    }
}

/// The flusher thread's loop: makes handed-over batches durable, publishes
/// their events and answers their writers, until the committer has stopped
/// and everything is answered.
pub(super) fn run_flusher(
    shared: Arc<Shared>,
    handles: Weak<Handles>,
    watch_window: u64,
    runtime: tokio::runtime::Handle,
) {
    // Background compactions go to the runtime's blocking pool.
    let _runtime = runtime.enter();
    while let Some(batches) = shared.next_flush() {
        let Some(target) = batches.last().map(|b| b.target) else { continue };
        if let Some(reason) = shared.failure.get() {
            for reply in all_replies(batches) {
                let _ = reply.send(Err(StoreError::Backend(reason.clone())));
            }
            continue;
        }
        // Batches of failed compares only may be covered by an earlier flush.
        let flush = target > shared.durable();
        if flush {
            // Closing: the writers learn so from their dropped answers.
            let Some(trees) = upgrade(&shared, &handles) else { continue };
            if let Err(err) = trees.db.flush() {
                shared.poison(err.to_string(), all_replies(batches));
                continue;
            }
            drop(trees);
            shared.flushes.fetch_add(1, Ordering::Relaxed);
        }
        let mut events = Vec::new();
        let mut answers = Vec::with_capacity(batches.len());
        for mut batch in batches {
            if events.is_empty() {
                events = std::mem::take(&mut batch.events);
            } else {
                events.append(&mut batch.events);
            }
            answers.push((batch.committed, batch.failed));
        }
        if flush {
            shared.publish(target, events);
        }
        for (committed, failed) in answers {
            for (revision, done) in committed {
                // The writer may have given up waiting (its future was dropped).
                let _ = done.send(Ok(TxnOutcome::Committed { revision }));
            }
            for (done, outcome) in failed {
                let _ = done.send(Ok(outcome));
            }
        }
        maybe_compact(&shared, &handles, watch_window);
    }
}

/// Every writer waiting on `batches`.
fn all_replies(batches: Vec<Unflushed>) -> Vec<Reply> {
    let mut replies = Vec::new();
    for batch in batches {
        replies.extend(batch.committed.into_iter().map(|(_, reply)| reply));
        replies.extend(batch.failed.into_iter().map(|(reply, _)| reply));
    }
    replies
}

/// Starts a background compaction when the log holds noticeably more than
/// `watch_window` revisions; the slack keeps compactions infrequent. The job
/// re-checks after it ends, so the bound holds even for writes that arrived
/// while it ran.
fn maybe_compact(shared: &Arc<Shared>, handles: &Weak<Handles>, watch_window: u64) {
    if !shared.log_over_window(watch_window) || shared.compacting.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(trees) = upgrade(shared, handles) else {
        shared.compacting.store(false, Ordering::Release);
        return;
    };
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        loop {
            let target = shared.durable().saturating_sub(watch_window);
            if let Err(err) = compact::compact_blocking(&trees, &shared, target) {
                tracing::warn!(error = %err, target, "background change-log compaction failed");
                shared.compacting.store(false, Ordering::Release);
                break;
            }
            shared.compacting.store(false, Ordering::Release);
            let closed = *lock(&shared.gate);
            if closed || !shared.log_over_window(watch_window) || shared.compacting.swap(true, Ordering::AcqRel) {
                break;
            }
        }
        drop(trees);
    });
}

/// A strong handle to the trees, unless the store is closing.
fn upgrade(shared: &Shared, handles: &Weak<Handles>) -> Option<Arc<Handles>> {
    let closed = lock(&shared.gate);
    if *closed {
        return None;
    }
    handles.upgrade()
}
