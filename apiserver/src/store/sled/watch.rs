//! The watch stream: replay from the change log, then live batches.
//!
//! Owns the per-watcher state machine. It must not hold the store alive: it
//! keeps a `Weak` and upgrades it only for the synchronous moments it reads
//! the log, so dropping the store ends every watch with `StoreError::Closed`.
//!
//! # Expected flow
//!
//! 1. [`start`] subscribes to live batches and reads the durable revision `D`
//!    in one step (see `group_commit`), so every event above `D` will arrive
//!    live and every event at or below `D` is in the log.
//! 2. Replay: the log is read in chunks of revisions `(last, D]` (see
//!    `changelog`).
//! 3. Live: batches are received; events at or below `last` are skipped.
//! 4. Lagged (the watcher fell behind the live buffer): read the durable
//!    revision again the same way and go back to step 2 from `last`.
//!
//! A routed watcher (a narrowed watch, see `dispatch`) follows the same
//! steps with its own queue in place of the broadcast: step 1 registers it,
//! replays keep only the events of its value, and step 4 happens when its
//! queue overflowed. While idle it learns the revision up to which nothing
//! more is coming for it, which moves `last` and the watch's progress.
//!
//! # Guarantees
//!
//! Every event with revision > `from` under the prefix, in order, once. When
//! the log no longer holds what the watcher still needs (compacted past
//! `last`), the last item is `StoreError::Compacted` and the stream ends.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Weak;

use tokio::sync::broadcast::{error::RecvError, Receiver};

use super::codec::{self, log_key};
use super::dispatch::{Subscription, Taken};
use super::group_commit::EventBatch;
use super::{backend, SledStore};
use crate::store::{IndexedWatch, Revision, StoreError, WatchEvent, WatchProgress, WatchStream};

/// Revisions read from the log per replay step.
const REPLAY_CHUNK: u64 = 512;

/// Where live events come from.
enum Live {
    /// Every batch of the store.
    All(Receiver<EventBatch>),
    /// The watcher's own queue, and where it reports progress.
    Routed(Subscription, WatchProgress),
}

struct State {
    store: Weak<SledStore>,
    prefix: String,
    live: Live,
    /// Every event at or below this revision was delivered or filtered out.
    last: Revision,
    /// Replay the log up to here before reading live batches.
    replay_to: Revision,
    ready: VecDeque<WatchEvent>,
    finished: bool,
}

/// Starts a watch of `prefix` after `from`; the caller checked compaction.
pub(super) fn start(store: &SledStore, prefix: &str, from: Revision) -> WatchStream {
    let (live, durable) = store.shared.subscribe_live();
    stream(store, prefix, from, Live::All(live), durable)
}

/// Starts a watch of `prefix` after `from` narrowed to `narrow`; the caller
/// checked compaction and that the index covers `prefix`.
pub(super) fn start_routed(store: &SledStore, prefix: &str, from: Revision, narrow: IndexedWatch<'_>) -> WatchStream {
    let (subscription, durable) = store.shared.subscribe_routed(narrow.index, narrow.value);
    subscription.report_to(&narrow.progress);
    stream(store, prefix, from, Live::Routed(subscription, narrow.progress), durable)
}

fn stream(store: &SledStore, prefix: &str, from: Revision, live: Live, durable: Revision) -> WatchStream {
    let state = State {
        store: store.me.clone(),
        prefix: prefix.to_owned(),
        live,
        last: from,
        replay_to: durable,
        ready: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, next))
}

async fn next(mut state: State) -> Option<(Result<WatchEvent, StoreError>, State)> {
    loop {
        if let Some(event) = state.ready.pop_front() {
            return Some((Ok(event), state));
        }
        if state.finished {
            return None;
        }
        if let Live::Routed(_, progress) = &state.live {
            // Everything up to `last` was yielded or is not for this watcher.
            progress.advance(state.last);
        }
        let step = if state.last < state.replay_to { state.replay_chunk() } else { state.receive().await };
        if let Err(err) = step {
            state.finished = true;
            return Some((Err(err), state));
        }
    }
}

impl State {
    /// Reads the next chunk of the log into `ready`: from the write-ahead
    /// log's segments, or from sled while the entries a store written before
    /// them keeps there are not yet replayed.
    fn replay_chunk(&mut self) -> Result<(), StoreError> {
        let store = self.store.upgrade().ok_or(StoreError::Closed)?;
        let reached = if self.last < store.legacy_end {
            self.replay_legacy(&store)?
        } else {
            let (last, prefix) = (self.last, self.prefix.as_bytes());
            let (live, ready) = (&self.live, &mut self.ready);
            store.changelog.events(last, self.replay_to, |revision, raw, value| {
                if codec::event_key(&raw).is_some_and(|k| k.starts_with(prefix)) {
                    let event = codec::decode_event_bytes(revision, raw, value)?;
                    if !matches!(live, Live::Routed(sub, _) if !sub.wants(&event)) {
                        ready.push_back(event);
                    }
                }
                Ok(())
            })?
        };
        // Compaction raises the mark before deleting: if it is still at or
        // below `last`, nothing this scan needed was deleted.
        let compacted = store.shared.compacted.load(Ordering::Acquire);
        if compacted > self.last {
            self.ready.clear();
            return Err(StoreError::Compacted { requested: self.last, oldest: compacted });
        }
        self.last = reached;
        Ok(())
    }

    /// Reads the next chunk of the change-log entries sled holds into
    /// `ready`; returns the revision it read up to.
    fn replay_legacy(&mut self, store: &SledStore) -> Result<Revision, StoreError> {
        let end = self.replay_to.min(store.legacy_end).min(self.last.saturating_add(REPLAY_CHUNK));
        // Entries are keyed by their last event's revision: the first one
        // from `last + 1` on may hold earlier events, and the first past
        // `end` may hold events up to it.
        let lower = log_key(self.last + 1, 0);
        let range = (Bound::Included(&lower[..]), Bound::Excluded(&[codec::LOG_PREFIX + 1][..]));
        for entry in store.trees.tree.range::<&[u8], _>(range) {
            let (key, raw) = entry.map_err(backend)?;
            let key_revision = codec::log_key_revision(&key)?;
            let events = codec::entry_events(key_revision, &raw)?;
            let raw = bytes::Bytes::from_owner(raw);
            for (revision, at) in events {
                let wanted = revision > self.last
                    && revision <= end
                    && codec::event_key(&raw[at.clone()]).is_some_and(|k| k.starts_with(self.prefix.as_bytes()));
                if !wanted {
                    continue;
                }
                let event = codec::decode_event_bytes(revision, raw.slice(at), None)?;
                if !matches!(&self.live, Live::Routed(sub, _) if !sub.wants(&event)) {
                    self.ready.push_back(event);
                }
            }
            if key_revision > end {
                break;
            }
        }
        Ok(end)
    }

    /// Waits for the next live events and queues the matching ones.
    async fn receive(&mut self) -> Result<(), StoreError> {
        let live = match &mut self.live {
            Live::All(live) => live,
            Live::Routed(..) => return self.receive_routed().await,
        };
        match live.recv().await {
            Ok(batch) => {
                let last = self.last;
                let wanted = batch.iter().filter(|e| e.revision > last && e.key.starts_with(&self.prefix));
                self.ready.extend(wanted.cloned());
                if let Some(newest) = batch.last() {
                    self.last = self.last.max(newest.revision);
                }
                Ok(())
            }
            Err(RecvError::Lagged(missed)) => {
                let store = self.store.upgrade().ok_or(StoreError::Closed)?;
                tracing::debug!(missed, last = self.last, "watcher fell behind live events; catching up from the log");
                self.replay_to = store.shared.durable_for_catch_up();
                self.check_compacted(&store)
            }
            Err(RecvError::Closed) => Err(StoreError::Closed),
        }
    }

    /// [`State::receive`] for a routed watcher: waits for its queue.
    async fn receive_routed(&mut self) -> Result<(), StoreError> {
        let Live::Routed(sub, progress) = &self.live else { unreachable!("only called for routed watches") };
        loop {
            match sub.take() {
                Taken::Events(events) => {
                    let (last, newest) = (self.last, events.back().map(|e| e.revision));
                    let wanted = events.into_iter().filter(|e| e.revision > last && e.key.starts_with(&self.prefix));
                    self.ready.extend(wanted);
                    self.last = self.last.max(newest.unwrap_or(0));
                    return Ok(());
                }
                Taken::Idle(published) => {
                    // Nothing is queued: every event up to `published` that
                    // was for this watcher has been taken.
                    self.last = self.last.max(published);
                    progress.advance(self.last);
                    sub.wait().await;
                }
                Taken::Lagged => {
                    let store = self.store.upgrade().ok_or(StoreError::Closed)?;
                    tracing::debug!(
                        index = sub.index.field,
                        value = %sub.value,
                        last = self.last,
                        "routed watcher's queue overflowed; catching up from the log"
                    );
                    self.replay_to = store.shared.resume_routed(sub);
                    return self.check_compacted(&store);
                }
                Taken::Closed => return Err(StoreError::Closed),
            }
        }
    }

    /// Fails when the log no longer holds what comes after `last`.
    fn check_compacted(&self, store: &SledStore) -> Result<(), StoreError> {
        let compacted = store.shared.compacted.load(Ordering::Acquire);
        if compacted > self.last {
            return Err(StoreError::Compacted { requested: self.last, oldest: compacted });
        }
        Ok(())
    }
}
