//! Group commit: one committer thread checks queued transactions in
//! batches, makes each batch durable with one write-ahead log append, writes
//! it to sled and then publishes it.
//!
//! Owns the revision bookkeeping shared by writers, readers, watchers and the
//! committer (`applied`, `durable`, `compacted`), the queue of submitted
//! transactions, the live broadcast and the routed watchers' registry
//! (`dispatch`). It must not evaluate transactions
//! itself (that is `commit`) or read trees.
//!
//! # Expected flow
//!
//! 1. A writer submits its transaction ([`Shared::submit`]): it joins the
//!    queue with a one-shot for its answer, and the writer awaits that.
//! 2. The committer wakes, takes everything queued (after the last batch had
//!    several writers, waiting up to half a millisecond for as many again)
//!    and checks it as one batch (`commit::prepare_batch`), staging the
//!    writes of the transactions whose compares held. Transactions whose
//!    compare failed wrote nothing; they are answered at once when the batch
//!    committed nothing, else after its log append, since their compare may
//!    have seen a write of the batch.
//! 3. It makes the batch durable (`wal::Log::append`: the batch's writes,
//!    appended to the write-ahead log and synced), writes it to sled
//!    (`commit::write`), then, under the publish lock, sets `durable`, queues
//!    the batch's events for routed watchers and broadcasts them to the
//!    others, then answers the batch's committed writers. Transactions
//!    submitted meanwhile form the next batch, so concurrent writers share
//!    the fsync.
//!
//! 4. When the log's segment is full, it starts the next one and a
//!    checkpoint in the background: sled's flush and the sync of its files
//!    (`Handles::make_durable`), after which the checkpoint mark moves to the
//!    new segment; the older segments stay as the change log until compacted
//!    (`changelog`).
//!
//! A dedicated thread rather than a task: the apply and the sync block, and
//! a thread that sleeps on the queue's condition variable costs one wake-up
//! per batch instead of a hop to the blocking pool per sync.
//!
//! # Guarantees
//!
//! - A writer learns that its transaction committed only once it is durable,
//!   and that its compare failed only once what it was compared against is.
//! - `durable` only grows and never passes `applied`.
//! - Events reach the broadcast once durable, in revision order, each once,
//!   and the change log's index holds a batch's record before its events
//!   are published.
//! - [`Shared::subscribe_live`] subscribes and reads `durable` under the same
//!   lock the committer publishes under: every event above the returned
//!   revision arrives on the returned receiver, every event at or below it is
//!   in the change log. That is what lets a watch switch from replay to live
//!   with no gap and no duplicate. [`Shared::subscribe_routed`] does the
//!   same for a routed watcher.
//!
//! # Errors
//!
//! A failed log append, or a failed write to sled after it, poisons the
//! store: waiting (including the batch's failed compares), queued and later
//! writers get `StoreError::Backend` with the error text, since nothing can
//! be promised durable any more (sled may hold part of the batch; the next
//! open replays its record). A batch whose check fails (a read error) wrote
//! nothing: its writers get the error, the store carries on. A failed
//! checkpoint only keeps the older segments, and the next one retries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use super::changelog::ChangeLog;
use super::commit::{self, Applied};
use super::dispatch::{Dispatch, Subscription};
use super::presence::Presence;
use super::{compact, wal, Handles};
use crate::store::{Revision, StoreError, Txn, TxnOutcome, WatchEvent, WatchIndex};

/// A batch of durable events, in revision order, as sent to live watchers.
pub(super) type EventBatch = Arc<Vec<WatchEvent>>;

/// Where a submitted transaction's answer goes.
type Reply = oneshot::Sender<Result<TxnOutcome, StoreError>>;

/// Resolves with a submitted transaction's outcome: at once when a compare
/// failed, once durable when it committed.
pub(super) type Answer = oneshot::Receiver<Result<TxnOutcome, StoreError>>;

/// Longest a batch waits for more writers once one is queued (see
/// `Shared::next_batch`).
const GATHER_WAIT: Duration = Duration::from_micros(500);

/// Transactions waiting for the committer, in submission order.
struct Queue {
    txns: Vec<Txn>,
    replies: Vec<Reply>,
    /// How many queued transactions the waiting committer wants; a submit
    /// that reaches it wakes the committer.
    gather: usize,
    closed: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue { txns: Vec::new(), replies: Vec::new(), gather: usize::MAX, closed: false }
    }
}

/// State shared between the store, its watchers and the committer.
pub(super) struct Shared {
    applied: AtomicU64,
    durable: AtomicU64,
    pub(super) compacted: AtomicU64,
    queue: Mutex<Queue>,
    /// Signalled when the queue stops being empty, or on close.
    wake: Condvar,
    live: broadcast::Sender<EventBatch>,
    /// Routed watchers; kept apart so that holding it does not keep the
    /// broadcast open.
    dispatch: Arc<Dispatch>,
    publish: Mutex<()>,
    /// Guards the background jobs' access to the trees against the store's drop.
    pub(super) gate: Mutex<bool>,
    failure: OnceLock<String>,
    flushes: AtomicU64,
    compacting: AtomicBool,
    checkpointing: AtomicBool,
    checkpoints: AtomicU64,
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
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            live: broadcast::channel(live_buffer.max(1)).0,
            dispatch: Arc::new(Dispatch::new(live_buffer, revision)),
            publish: Mutex::new(()),
            gate: Mutex::new(false),
            failure: OnceLock::new(),
            flushes: AtomicU64::new(0),
            compacting: AtomicBool::new(false),
            checkpointing: AtomicBool::new(false),
            checkpoints: AtomicU64::new(0),
            compact_lock: Mutex::new(()),
        }
    }

    /// The last applied (maybe not yet durable) revision.
    pub(super) fn applied(&self) -> Revision {
        self.applied.load(Ordering::Acquire)
    }

    /// The latest durable revision.
    pub(super) fn durable(&self) -> Revision {
        self.durable.load(Ordering::Acquire)
    }

    /// How many log appends (each with its sync) the committer has run.
    pub(super) fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// How many checkpoints have completed.
    pub(super) fn checkpoint_count(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Queues `txn` for the committer. Refused once a log append has failed.
    pub(super) fn submit(&self, txn: Txn) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let mut queue = lock(&self.queue);
        // Checked under the queue lock: `poison` drains the queue under it,
        // so nothing can be queued after the drain.
        if let Some(reason) = self.failure.get() {
            return Err(StoreError::Backend(reason.clone()));
        }
        if queue.closed {
            return Err(StoreError::Closed);
        }
        queue.txns.push(txn);
        queue.replies.push(reply);
        // The committer sleeps on an empty queue, or until it holds `gather`.
        let queued = queue.txns.len();
        let wake = queued == 1 || queued == queue.gather;
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        Ok(answer)
    }

    /// Waits for queued transactions and takes them all; `None` once closed.
    ///
    /// With `gather` > 1 (the last batch had that many writers, so they are
    /// likely to come back), waits up to [`GATHER_WAIT`] for that many
    /// before taking a non-empty queue: every batch costs sled two buffer
    /// writes and the log a sync whatever its size, so fuller batches cost
    /// less per write. A lone writer is never held back.
    fn next_batch(&self, gather: usize) -> Option<(Vec<Txn>, Vec<Reply>)> {
        let mut queue = lock(&self.queue);
        let mut deadline = None;
        loop {
            if queue.closed {
                return None;
            }
            let queued = queue.txns.len();
            if queued > 0 {
                let now = Instant::now();
                let until = *deadline.get_or_insert(now + GATHER_WAIT);
                if queued >= gather || now >= until {
                    queue.gather = usize::MAX;
                    return Some((std::mem::take(&mut queue.txns), std::mem::take(&mut queue.replies)));
                }
                queue.gather = gather;
                queue = self.wake.wait_timeout(queue, until - now).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            queue = self.wake.wait(queue).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Subscribes to live batches and returns the durable revision at that
    /// instant: everything above it arrives on the receiver.
    pub(super) fn subscribe_live(&self) -> (broadcast::Receiver<EventBatch>, Revision) {
        let _publish = lock(&self.publish);
        (self.live.subscribe(), self.durable())
    }

    /// Registers a routed watcher of `value` of `index` and returns the
    /// durable revision at that instant: every event of that value above it
    /// is queued for the watcher.
    pub(super) fn subscribe_routed(&self, index: &'static WatchIndex, value: &str) -> (Subscription, Revision) {
        let _publish = lock(&self.publish);
        (self.dispatch.register(index, value), self.durable())
    }

    /// Routes events to a lagged watcher again; returns the durable revision
    /// it must catch up to from the log (every later event is queued).
    pub(super) fn resume_routed(&self, subscription: &Subscription) -> Revision {
        let _publish = lock(&self.publish);
        subscription.resume();
        self.durable()
    }

    /// The durable revision, read so that every event above it is still to
    /// come on any receiver subscribed before this call.
    pub(super) fn durable_for_catch_up(&self) -> Revision {
        let _publish = lock(&self.publish);
        self.durable()
    }

    /// Marks `target` durable and broadcasts `events` (everything applied up
    /// to it).
    fn publish(&self, target: Revision, events: Vec<WatchEvent>) {
        let _publish = lock(&self.publish);
        self.durable.store(target, Ordering::Release);
        if events.is_empty() {
            self.dispatch.advance(target);
        } else {
            self.dispatch.publish(target, &events);
            // No receivers is fine: nobody is watching.
            let _ = self.live.send(Arc::new(events));
        }
    }

    /// Refuses every write from now on; answers `waiting` and the queued
    /// transactions with the reason.
    fn poison(&self, reason: String, waiting: Vec<Reply>) {
        tracing::error!(error = %reason, "a store batch could not be logged or written; refusing further writes");
        let queued = {
            let mut queue = lock(&self.queue);
            let _ = self.failure.set(reason.clone());
            queue.txns.clear();
            std::mem::take(&mut queue.replies)
        };
        for done in waiting.into_iter().chain(queued) {
            let _ = done.send(Err(StoreError::Backend(reason.clone())));
        }
    }

    /// Whether the log holds more than `watch_window` revisions plus slack.
    fn log_over_window(&self, watch_window: u64) -> bool {
        let slack = (watch_window / 16).max(1);
        let held = self.durable().saturating_sub(self.compacted.load(Ordering::Acquire));
        held > watch_window.saturating_add(slack)
    }

    /// Asks the committer to stop (the store is being dropped).
    pub(super) fn close(&self) {
        *lock(&self.gate) = true;
        lock(&self.queue).closed = true;
        self.wake.notify_one();
        self.dispatch.close();
    }
}

/// The largest log record buffer the committer keeps for the next batch.
const RECORD_BUFFER_KEPT: usize = 4 << 20;

/// The committer thread's loop: runs until the store is dropped or a log
/// append or a write to sled fails. It alone holds `presence` (see
/// `presence`) and appends to `log`.
pub(super) fn run_committer(
    shared: Arc<Shared>,
    handles: Weak<Handles>,
    mut presence: Presence,
    mut log: wal::Log,
    changelog: Arc<ChangeLog>,
    watch_window: u64,
    runtime: tokio::runtime::Handle,
) {
    // Background compactions go to the runtime's blocking pool.
    let _runtime = runtime.enter();
    let mut gather = 1;
    // The last batch's log record buffer, reused for the next record.
    let mut buffer = Vec::new();
    while let Some((txns, replies)) = shared.next_batch(gather) {
        gather = txns.len();
        let Some(trees) = upgrade(&shared, &handles) else { return };
        let first = shared.applied() + 1;
        let (outcomes, prepared) =
            match commit::prepare_batch(&trees, &mut presence, txns, first, std::mem::take(&mut buffer)) {
                Ok(applied) => applied,
                Err(err) => {
                    tracing::warn!(error = %err, "checking a batch of transactions failed");
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Backend(err.to_string())));
                    }
                    continue;
                }
            };
        let mut events = Vec::new();
        let mut waiting = Vec::new();
        let mut failed = Vec::new();
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            match outcome {
                Applied::Committed { revision, events: mut produced } => {
                    if events.is_empty() {
                        events = produced;
                    } else {
                        events.append(&mut produced);
                    }
                    waiting.push((revision, reply));
                }
                Applied::Failed { compare, current } => failed.push((reply, TxnOutcome::Failed { compare, current })),
            }
        }
        let Some(&(target, _)) = waiting.last() else {
            // Every compare saw durable state (earlier batches are logged).
            answer_failed(failed);
            continue;
        };
        let Some(prepared) = prepared else {
            let err = "a batch that committed writes staged nothing";
            return shared.poison(err.into(), every_reply(waiting, failed));
        };
        // Logged first, then written to sled: whatever part of the batch
        // sled holds after a crash, its record is there to complete it. The
        // change log learns where the record lies before it is published.
        let (seq, len) = (log.seq(), prepared.record.len() as u64);
        let written = log.append(&prepared.record).and_then(|offset| {
            changelog.appended(seq, wal::Place { first, last: target, offset, len })?;
            commit::write(&trees, &mut presence, prepared).map_err(|err| {
                StoreError::Backend(format!(
                    "{err} (the batch is in the write-ahead log: restarting the apiserver applies it)"
                ))
            })
        });
        match written {
            // One batch of a few huge objects does not keep its memory.
            Ok(record) if record.capacity() <= RECORD_BUFFER_KEPT => buffer = record,
            Ok(_) => {}
            Err(err) => return shared.poison(err.to_string(), every_reply(waiting, failed)),
        }
        shared.applied.store(target, Ordering::Release);
        drop(trees);
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        shared.publish(target, events);
        for (revision, done) in waiting {
            // The writer may have given up waiting (its future was dropped).
            let _ = done.send(Ok(TxnOutcome::Committed { revision }));
        }
        // A failed compare may have seen a write of this batch: answered
        // only now that it is durable.
        answer_failed(failed);
        maybe_compact(&shared, &handles, &changelog, watch_window);
        maybe_checkpoint(&shared, &handles, &changelog, &mut log);
    }
}

/// Starts a checkpoint when the log's segment is full: the next segment at
/// once, then, in the background, sled's flush and the mark that sled holds
/// everything of the segments before the new one (it was applied to sled
/// before the flush began); those of them that are compacted go.
fn maybe_checkpoint(shared: &Arc<Shared>, handles: &Weak<Handles>, changelog: &Arc<ChangeLog>, log: &mut wal::Log) {
    if !log.full() || shared.checkpointing.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(trees) = upgrade(shared, handles) else {
        shared.checkpointing.store(false, Ordering::Release);
        return;
    };
    let keep_from = match log.rotate() {
        Ok(seq) => seq,
        Err(err) => {
            tracing::warn!(error = %err, "starting a new write-ahead log segment failed; the current one grows");
            shared.checkpointing.store(false, Ordering::Release);
            return;
        }
    };
    let dir = log.dir().to_owned();
    let (shared, changelog) = (Arc::clone(shared), Arc::clone(changelog));
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let done = trees.make_durable().and_then(|()| wal::write_checkpoint(&dir, keep_from)).and_then(|()| {
            changelog.checkpointed(keep_from);
            changelog.remove_through(shared.compacted.load(Ordering::Acquire))
        });
        match done {
            Ok(_) => {
                shared.checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(elapsed = ?started.elapsed(), keep_from, "store checkpoint done");
            }
            Err(err) => tracing::warn!(
                error = %err,
                "store checkpoint failed; the write-ahead log keeps its older segments until the next one"
            ),
        }
        drop(trees);
        shared.checkpointing.store(false, Ordering::Release);
    });
}

/// The replies of a batch's committed and failed transactions together.
fn every_reply(waiting: Vec<(Revision, Reply)>, failed: Vec<(Reply, TxnOutcome)>) -> Vec<Reply> {
    waiting.into_iter().map(|(_, reply)| reply).chain(failed.into_iter().map(|(reply, _)| reply)).collect()
}

/// Answers writers whose compare failed; they wrote nothing.
fn answer_failed(failed: Vec<(Reply, TxnOutcome)>) {
    for (reply, outcome) in failed {
        let _ = reply.send(Ok(outcome));
    }
}

/// Starts a background compaction when the log holds noticeably more than
/// `watch_window` revisions; the slack keeps compactions infrequent. The job
/// re-checks after it ends, so the bound holds even for writes that arrived
/// while it ran.
fn maybe_compact(shared: &Arc<Shared>, handles: &Weak<Handles>, changelog: &Arc<ChangeLog>, watch_window: u64) {
    if !shared.log_over_window(watch_window) || shared.compacting.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(trees) = upgrade(shared, handles) else {
        shared.compacting.store(false, Ordering::Release);
        return;
    };
    let (shared, changelog) = (Arc::clone(shared), Arc::clone(changelog));
    tokio::task::spawn_blocking(move || {
        loop {
            let target = shared.durable().saturating_sub(watch_window);
            if let Err(err) = compact::compact_blocking(&trees, &shared, &changelog, target) {
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
