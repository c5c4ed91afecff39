//! Routed live events: each durable event goes only to the watchers of the
//! index values of its new and old value, into a bounded queue per watcher.
//!
//! Owns the registry of routed watchers (per [`WatchIndex`], per value) and
//! their queues. The committer calls [`Dispatch::publish`] under the publish
//! lock, right after marking a batch durable, so a watcher registered under
//! that lock receives every event above the durable revision it read there
//! (see `group_commit`). It must not block: a full queue is dropped and its
//! watcher marked lagged, to catch up from the log; it never reads trees.
//!
//! # Cost
//!
//! Per event and index: one `read` of each side (so one scan of the bytes
//! for everyone), one map lookup per value, and a clone (shared memo) per
//! watcher of that value. Watchers of other values are not touched.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::group_commit::lock;
use crate::store::{Revision, WatchEvent, WatchIndex, WatchProgress};

/// What a routed watcher finds when it looks at its queue.
pub(super) enum Taken {
    /// Queued events, in revision order.
    Events(VecDeque<WatchEvent>),
    /// Nothing queued; every event for it up to this revision was queued
    /// (and so already taken).
    Idle(Revision),
    /// Its queue overflowed and was dropped: catch up from the log, then
    /// [`Route::resume`] under the publish lock.
    Lagged,
    /// The store is closing.
    Closed,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<WatchEvent>,
    lagged: bool,
    closed: bool,
    /// The watcher found the queue empty and waits, having yielded all it
    /// took: it has reached whatever was published before it looks again.
    parked: bool,
}

/// One routed watcher's queue and wake-up.
pub(super) struct Route {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Route {
    /// Queues `event` unless the queue is full (then drops it all and marks
    /// the watcher lagged); whether the watcher should be woken.
    fn push(&self, event: &WatchEvent, capacity: usize) -> bool {
        let mut queue = lock(&self.queue);
        if queue.lagged || queue.closed {
            return false;
        }
        if queue.events.len() >= capacity {
            queue.events = VecDeque::new();
            queue.lagged = true;
        } else {
            queue.events.push_back(event.clone());
        }
        true
    }

    /// Takes what is queued. `published` must be read before the call.
    fn take(&self, published: Revision) -> Taken {
        let mut queue = lock(&self.queue);
        queue.parked = false;
        if !queue.events.is_empty() {
            return Taken::Events(std::mem::take(&mut queue.events));
        }
        if queue.closed {
            Taken::Closed
        } else if queue.lagged {
            Taken::Lagged
        } else {
            queue.parked = true;
            Taken::Idle(published)
        }
    }

    /// The revision a parked watcher has reached. `published` must be read
    /// before the call.
    fn reached(&self, published: Revision) -> Option<Revision> {
        let queue = lock(&self.queue);
        (queue.parked && queue.events.is_empty() && !queue.lagged).then_some(published)
    }

    /// Routes events to this watcher again after a catch-up. Call under the
    /// publish lock, with the durable revision read under it as the point
    /// the catch-up replays to.
    pub(super) fn resume(&self) {
        let mut queue = lock(&self.queue);
        queue.lagged = false;
        queue.events.clear();
    }
}

/// The watchers of one index.
struct IndexRoutes {
    index: &'static WatchIndex,
    by_value: HashMap<String, Vec<Arc<Route>>>,
}

#[derive(Default)]
struct Registry {
    indexes: Vec<IndexRoutes>,
    closed: bool,
}

/// The routed watchers of one store.
pub(super) struct Dispatch {
    registry: Mutex<Registry>,
    /// Events queued per watcher before it must catch up from the log.
    capacity: usize,
    /// The revision of the last published batch, stored after its events
    /// were queued.
    published: AtomicU64,
}

impl Dispatch {
    /// An empty registry whose queues hold up to `capacity` events.
    pub(super) fn new(capacity: usize, revision: Revision) -> Self {
        Dispatch { registry: Mutex::default(), capacity: capacity.max(1), published: AtomicU64::new(revision) }
    }

    /// Registers a watcher of `value` of `index`. Call under the publish lock.
    pub(super) fn register(self: &Arc<Self>, index: &'static WatchIndex, value: &str) -> Subscription {
        let route = Arc::new(Route { queue: Mutex::default(), wake: Notify::new() });
        let mut registry = lock(&self.registry);
        lock(&route.queue).closed = registry.closed;
        let pos = match registry.indexes.iter().position(|r| std::ptr::eq(r.index, index)) {
            Some(pos) => pos,
            None => {
                registry.indexes.push(IndexRoutes { index, by_value: HashMap::new() });
                registry.indexes.len() - 1
            }
        };
        registry.indexes[pos].by_value.entry(value.to_owned()).or_default().push(Arc::clone(&route));
        Subscription { dispatch: Arc::clone(self), index, value: value.to_owned(), route }
    }

    /// Queues each of `events` (one durable batch ending at `target`) for
    /// the watchers of its values, then wakes them. Call under the publish
    /// lock.
    pub(super) fn publish(&self, target: Revision, events: &[WatchEvent]) {
        let registry = lock(&self.registry);
        let mut woken: Vec<&Arc<Route>> = Vec::new();
        for routes in registry.indexes.iter().filter(|r| !r.by_value.is_empty()) {
            for event in events.iter().filter(|e| e.key.starts_with(routes.index.prefix)) {
                let (new, old) = (read_side(routes.index, &event.value), read_side(routes.index, &event.prev_value));
                if matches!(new, Some(None)) || matches!(old, Some(None)) {
                    // Unreadable: every watcher of the index decides for itself.
                    for route in routes.by_value.values().flatten() {
                        if route.push(event, self.capacity) {
                            woken.push(route);
                        }
                    }
                    continue;
                }
                let (new, old) = (new.flatten(), old.flatten());
                for value in new.iter().chain(old.iter().filter(|o| Some(*o) != new.as_ref())) {
                    for route in routes.by_value.get(value.as_ref()).into_iter().flatten() {
                        if route.push(event, self.capacity) {
                            woken.push(route);
                        }
                    }
                }
            }
        }
        self.published.store(target, Ordering::Release);
        woken.sort_by_key(|r| Arc::as_ptr(r));
        woken.dedup_by_key(|r| Arc::as_ptr(r));
        for route in woken {
            route.wake.notify_one();
        }
    }

    /// Marks the revision `target` published when its batch had no events.
    pub(super) fn advance(&self, target: Revision) {
        self.published.store(target, Ordering::Release);
    }

    /// Ends every routed watch (after what is queued) and refuses new ones.
    pub(super) fn close(&self) {
        let mut registry = lock(&self.registry);
        registry.closed = true;
        for route in registry.indexes.iter().flat_map(|r| r.by_value.values().flatten()) {
            lock(&route.queue).closed = true;
            route.wake.notify_one();
        }
    }

    fn unregister(&self, index: &'static WatchIndex, value: &str, route: &Arc<Route>) {
        let mut registry = lock(&self.registry);
        let Some(routes) = registry.indexes.iter_mut().find(|r| std::ptr::eq(r.index, index)) else { return };
        if let Some(list) = routes.by_value.get_mut(value) {
            list.retain(|r| !Arc::ptr_eq(r, route));
            if list.is_empty() {
                routes.by_value.remove(value);
            }
        }
    }
}

/// The index value of one side of an event: `None` for an absent side,
/// `Some(None)` for one that cannot be read.
fn read_side<'a>(index: &WatchIndex, bytes: &'a [u8]) -> Option<Option<Cow<'a, str>>> {
    (!bytes.is_empty()).then(|| (index.read)(bytes))
}

/// A registered routed watcher; unregisters when dropped.
pub(super) struct Subscription {
    dispatch: Arc<Dispatch>,
    /// The index and value it is routed by.
    pub(super) index: &'static WatchIndex,
    pub(super) value: String,
    route: Arc<Route>,
}

impl Subscription {
    /// What is queued now, without waiting.
    pub(super) fn take(&self) -> Taken {
        self.route.take(self.dispatch.published.load(Ordering::Acquire))
    }

    /// Lets `progress` learn, when asked, how far this watcher has read while
    /// it waits (events of other values wake nobody, so it cannot report by
    /// itself). Call only when the watcher takes from the queue with nothing
    /// else left to yield, as the watch stream does.
    pub(super) fn report_to(&self, progress: &WatchProgress) {
        let (dispatch, route) = (Arc::clone(&self.dispatch), Arc::clone(&self.route));
        progress.set_probe(move || route.reached(dispatch.published.load(Ordering::Acquire)));
    }

    /// Waits until something may have been queued since the last
    /// [`Subscription::take`]. A wake-up that lands between the two leaves a
    /// permit, so none is lost.
    pub(super) async fn wait(&self) {
        self.route.wake.notified().await;
    }

    /// See [`Route::resume`].
    pub(super) fn resume(&self) {
        self.route.resume();
    }

    /// Whether an event with these sides belongs to this watcher (the same
    /// rule `publish` routes by), for replays from the log.
    pub(super) fn wants(&self, event: &WatchEvent) -> bool {
        [&event.value, &event.prev_value]
            .into_iter()
            .filter(|b| !b.is_empty())
            .any(|b| (self.index.read)(b).is_none_or(|v| v == self.value.as_str()))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.dispatch.unregister(self.index, &self.value, &self.route);
    }
}
