//! Reflector caches that wake a controller loop when anything changes.
//!
//! Owns spawning a watcher + reflector per kind and a shared [`Notify`]
//! (or several: [`crate::watches`] shares one cache between loops), and the
//! pacing of passes. It must not interpret objects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use meseta_client::backoff::StreamBackoffExt;
use meseta_client::reflector::{self, Store};
use meseta_client::watcher::Event;
use meseta_client::{watcher, Api, WatchParams};
use meseta_schemas::Resource;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Keeps a [`Store`] of `api`'s objects current until `cancel`, notifying
/// `changed` after every event.
pub(crate) fn spawn_cache<K: Resource>(
    api: Api<K>,
    params: WatchParams,
    changed: Arc<Notify>,
    cancel: CancellationToken,
) -> Store<K> {
    spawn_cache_observing(api, params, changed, cancel, |_| {})
}

/// [`spawn_cache`], also handing every event to `observe` once the store
/// has applied it (so a caller learns of objects that came and went between
/// two looks at the store).
pub(crate) fn spawn_cache_observing<K: Resource>(
    api: Api<K>,
    params: WatchParams,
    changed: Arc<Notify>,
    cancel: CancellationToken,
    observe: impl FnMut(&Event<K>) + Send + 'static,
) -> Store<K> {
    let subscribers: Subscribers<K> = Arc::new(Mutex::new(vec![(changed, Box::new(observe))]));
    spawn_hub(api, params, subscribers, cancel)
}

/// What a cache hands each event to, after its store applied it.
pub(crate) type Observer<K> = Box<dyn FnMut(&Event<K>) + Send>;

/// The loops a cache wakes: each its [`Notify`] and [`Observer`]. More may
/// be added while the cache runs.
pub(crate) type Subscribers<K> = Arc<Mutex<Vec<(Arc<Notify>, Observer<K>)>>>;

/// Keeps a [`Store`] of `api`'s objects current until `cancel`, handing
/// every event to each of `subscribers` and notifying it.
pub(crate) fn spawn_hub<K: Resource>(
    api: Api<K>,
    params: WatchParams,
    subscribers: Subscribers<K>,
    cancel: CancellationToken,
) -> Store<K> {
    let (store, writer) = reflector::store::<K>();
    // No controller reads field ownership, and an update sent without it
    // keeps the stored entries: the caches leave it out of the decode.
    let params = params.strip_managed_fields();
    let stream = reflector::reflector(writer, watcher(api, params).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = stream.next() => match ev {
                    Some(Ok(ev)) => {
                        for (changed, observe) in subscribers.lock().expect("subscribers lock").iter_mut() {
                            observe(&ev);
                            changed.notify_one();
                        }
                    }
                    Some(Err(e)) => tracing::debug!(kind = K::KIND, error = %e, "watch failed; retrying"),
                    None => return,
                },
            }
        }
    });
    store
}

/// How long a loop whose passes look at every object waits after a change
/// before its next pass: `settle`, but no less than its last pass kept the
/// CPU busy, so such passes take at most about half of a core.
pub(crate) fn paced_settle(settle: Duration, last_pass_busy: Duration) -> Duration {
    last_pass_busy.max(settle)
}

/// Waits for `changed` (then a short `settle` to coalesce bursts) or `every`,
/// whichever comes first; `false` once `cancel` fires.
pub(crate) async fn wait_tick(
    changed: &Notify,
    every: std::time::Duration,
    settle: std::time::Duration,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => return false,
        _ = changed.notified() => {}
        _ = tokio::time::sleep(every) => {}
    }
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(settle) => true,
    }
}
