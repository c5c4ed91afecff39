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
//! 2. Replay: the log is read in chunks of revisions `(last, D]`.
//! 3. Live: batches are received; events at or below `last` are skipped.
//! 4. Lagged (the watcher fell behind the live buffer): read the durable
//!    revision again the same way and go back to step 2 from `last`.
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
use super::group_commit::EventBatch;
use super::{backend, SledStore};
use crate::store::{Revision, StoreError, WatchEvent, WatchStream};

/// Revisions read from the log per replay step.
const REPLAY_CHUNK: u64 = 512;

struct State {
    store: Weak<SledStore>,
    prefix: String,
    live: Receiver<EventBatch>,
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
        let step = if state.last < state.replay_to { state.replay_chunk() } else { state.receive().await };
        if let Err(err) = step {
            state.finished = true;
            return Some((Err(err), state));
        }
    }
}

impl State {
    /// Reads the next chunk of the log into `ready`.
    fn replay_chunk(&mut self) -> Result<(), StoreError> {
        let store = self.store.upgrade().ok_or(StoreError::Closed)?;
        let end = self.replay_to.min(self.last.saturating_add(REPLAY_CHUNK));
        let lower = log_key(self.last + 1, 0);
        let upper = log_key(end + 1, 0);
        let range = (Bound::Included(&lower[..]), Bound::Excluded(&upper[..]));
        for entry in store.trees.log.range::<&[u8], _>(range) {
            let (key, raw) = entry.map_err(backend)?;
            let matches = codec::event_key(&raw).is_some_and(|k| k.starts_with(self.prefix.as_bytes()));
            if matches {
                let revision = codec::log_key_revision(&key)?;
                self.ready.push_back(codec::decode_event(revision, raw)?);
            }
        }
        // Compaction raises the mark before deleting: if it is still at or
        // below `last`, nothing this scan needed was deleted.
        let compacted = store.shared.compacted.load(Ordering::Acquire);
        if compacted > self.last {
            self.ready.clear();
            return Err(StoreError::Compacted { requested: self.last, oldest: compacted });
        }
        self.last = end;
        Ok(())
    }

    /// Waits for the next live batch and queues its matching events.
    async fn receive(&mut self) -> Result<(), StoreError> {
        match self.live.recv().await {
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
                let compacted = store.shared.compacted.load(Ordering::Acquire);
                if compacted > self.last {
                    return Err(StoreError::Compacted { requested: self.last, oldest: compacted });
                }
                Ok(())
            }
            Err(RecvError::Closed) => Err(StoreError::Closed),
        }
    }
}
