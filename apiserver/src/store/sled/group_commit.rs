//! Group commit: one flusher makes applied writes durable in batches and then
//! publishes them.
//!
//! Owns the revision bookkeeping shared by writers, readers, watchers and the
//! background task (`applied`, `durable`, `compacted`), the queue of events
//! waiting for their flush, and the live broadcast. It must not evaluate
//! transactions or read trees.
//!
//! # Expected flow
//!
//! 1. A writer, holding the store's write lock, applies its sled transaction and
//!    calls [`Shared::record_applied`]: its events and a one-shot waiter join
//!    `pending` and `applied` advances. It then awaits its waiter.
//! 2. The flusher wakes, reads `applied` as its target `T`, runs one
//!    `Db::flush` (fsync) on the blocking pool, then, under the publish lock,
//!    sets `durable = T` and broadcasts every pending event with revision `<= T`
//!    as one batch, then wakes exactly the writers at or below `T` (no herd).
//!    Writes applied while a flush runs ride on the next one, so concurrent
//!    writers share fsyncs.
//!
//! # Guarantees
//!
//! - `durable` only grows and never passes `applied`.
//! - Events reach the broadcast once durable, in revision order, each once.
//! - [`Shared::subscribe_live`] subscribes and reads `durable` under the same
//!   lock the flusher publishes under: every event above the returned revision
//!   arrives on the returned receiver, every event at or below it is in the
//!   change log. That is what lets a watch switch from replay to live with no
//!   gap and no duplicate.
//!
//! # Errors
//!
//! A failed flush poisons the store: waiting and later writers get
//! `StoreError::Backend` with the sled error text, since nothing can be
//! promised durable any more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio::sync::{broadcast, oneshot, Notify};

use super::{compact, Handles};
use crate::store::{Revision, StoreError, WatchEvent};

/// A batch of durable events, in revision order, as sent to live watchers.
pub(super) type EventBatch = Arc<Vec<WatchEvent>>;

/// Resolves when a writer's revision is durable (or the store failed).
pub(super) type DurableWaiter = oneshot::Receiver<Result<(), StoreError>>;

/// Applied work waiting for its flush, in revision order.
#[derive(Default)]
struct Pending {
    events: Vec<WatchEvent>,
    waiters: VecDeque<(Revision, oneshot::Sender<Result<(), StoreError>>)>,
}

/// State shared between the store, its watchers and the flusher task.
pub(super) struct Shared {
    applied: AtomicU64,
    durable: AtomicU64,
    pub(super) compacted: AtomicU64,
    pending: Mutex<Pending>,
    live: broadcast::Sender<EventBatch>,
    publish: Mutex<()>,
    wake: Notify,
    /// Guards the flusher's access to the trees against the store's drop.
    pub(super) gate: Mutex<bool>,
    failure: OnceLock<String>,
    flushes: AtomicU64,
    compacting: AtomicBool,
    /// Serializes compactions.
    pub(super) compact_lock: Mutex<()>,
}

impl Shared {
    /// State for a store whose last revision is `revision`.
    pub(super) fn new(revision: Revision, compacted: Revision, live_buffer: usize) -> Self {
        Self {
            applied: AtomicU64::new(revision),
            durable: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            pending: Mutex::new(Pending::default()),
            live: broadcast::channel(live_buffer.max(1)).0,
            publish: Mutex::new(()),
            wake: Notify::new(),
            gate: Mutex::new(false),
            failure: OnceLock::new(),
            flushes: AtomicU64::new(0),
            compacting: AtomicBool::new(false),
            compact_lock: Mutex::new(()),
        }
    }

    /// The last applied (maybe not yet durable) revision. Only meaningful to
    /// the holder of the write lock.
    pub(super) fn applied(&self) -> Revision {
        self.applied.load(Ordering::Acquire)
    }

    /// The latest durable revision.
    pub(super) fn durable(&self) -> Revision {
        self.durable.load(Ordering::Acquire)
    }

    /// How many flushes the flusher has run.
    pub(super) fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The reason writes are refused, once a flush has failed.
    pub(super) fn failure(&self) -> Option<StoreError> {
        self.failure.get().map(|e| StoreError::Backend(e.clone()))
    }

    /// Records that the transaction at `revision` was applied with `events`;
    /// the returned waiter resolves once it is durable. Called with the
    /// store's write lock held, so revisions arrive in order.
    pub(super) fn record_applied(&self, revision: Revision, events: Vec<WatchEvent>) -> DurableWaiter {
        let (done, waiter) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.events.is_empty() {
                pending.events = events;
            } else {
                pending.events.extend(events);
            }
            match self.failure.get() {
                // The flusher is gone; it cannot wake this writer any more.
                Some(reason) => drop(done.send(Err(StoreError::Backend(reason.clone())))),
                None => pending.waiters.push_back((revision, done)),
            }
        }
        self.applied.store(revision, Ordering::Release);
        self.wake.notify_one();
        waiter
    }

    /// Subscribes to live batches and returns the durable revision at that
    /// instant: everything above it arrives on the receiver.
    pub(super) fn subscribe_live(&self) -> (broadcast::Receiver<EventBatch>, Revision) {
        let _publish = lock(&self.publish);
        (self.live.subscribe(), self.durable())
    }

    /// The durable revision, read so that every event above it is still to
    /// come on any receiver subscribed before this call.
    pub(super) fn durable_for_catch_up(&self) -> Revision {
        let _publish = lock(&self.publish);
        self.durable()
    }

    /// Marks `target` durable, broadcasts the events up to it and wakes the
    /// writers it covers.
    fn publish(&self, target: Revision) {
        let (batch, mut woken) = {
            let mut pending = lock(&self.pending);
            let events = match pending.events.last() {
                Some(last) if last.revision <= target => std::mem::take(&mut pending.events),
                Some(_) => {
                    let split = pending.events.partition_point(|e| e.revision <= target);
                    let rest = pending.events.split_off(split);
                    std::mem::replace(&mut pending.events, rest)
                }
                None => Vec::new(),
            };
            let covered = pending.waiters.partition_point(|(rev, _)| *rev <= target);
            (events, pending.waiters.drain(..covered).collect::<Vec<_>>())
        };
        {
            let _publish = lock(&self.publish);
            self.durable.store(target, Ordering::Release);
            if !batch.is_empty() {
                // No receivers is fine: nobody is watching.
                let _ = self.live.send(Arc::new(batch));
            }
        }
        for (_, done) in woken.drain(..) {
            // The writer may have given up waiting (its future was dropped).
            let _ = done.send(Ok(()));
        }
    }

    fn poison(&self, reason: String) {
        tracing::error!(error = %reason, "store flush failed; refusing further writes");
        let waiters = {
            // Set under the pending lock so no writer can queue after the drain.
            let mut pending = lock(&self.pending);
            let _ = self.failure.set(reason.clone());
            std::mem::take(&mut pending.waiters)
        };
        for (_, done) in waiters {
            let _ = done.send(Err(StoreError::Backend(reason.clone())));
        }
    }

    /// Whether the log holds more than `watch_window` revisions plus slack.
    fn log_over_window(&self, watch_window: u64) -> bool {
        let slack = (watch_window / 16).max(1);
        let held = self.durable().saturating_sub(self.compacted.load(Ordering::Acquire));
        held > watch_window.saturating_add(slack)
    }

    /// Asks the flusher to stop (the store is being dropped).
    pub(super) fn close(&self) {
        *lock(&self.gate) = true;
        self.wake.notify_one();
    }
}

/// The flusher task: runs until the store is dropped or a flush fails.
pub(super) async fn run_flusher(shared: Arc<Shared>, handles: Weak<Handles>, watch_window: u64) {
    loop {
        let target = shared.applied();
        if target <= shared.durable() {
            shared.wake.notified().await;
            if *lock(&shared.gate) {
                return;
            }
            continue;
        }
        let Some(trees) = upgrade(&shared, &handles) else { return };
        let flushed = tokio::task::spawn_blocking(move || {
            let result = trees.db.flush();
            drop(trees);
            result
        })
        .await;
        match flushed {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return shared.poison(err.to_string()),
            Err(join) => return shared.poison(format!("flush task failed: {join}")),
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        shared.publish(target);
        maybe_compact(&shared, &handles, watch_window);
    }
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

/// Locks a mutex, ignoring poisoning: every critical section here leaves the
/// data consistent even if it panicked half-way.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
