//! Reflector caches that wake a controller loop when anything changes.
//!
//! Owns spawning a watcher + reflector per kind and a shared [`Notify`]. It
//! must not interpret objects.

use std::sync::Arc;

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
    mut observe: impl FnMut(&Event<K>) + Send + 'static,
) -> Store<K> {
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(api, params).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = stream.next() => match ev {
                    Some(Ok(ev)) => {
                        observe(&ev);
                        changed.notify_one();
                    }
                    Some(Err(e)) => tracing::debug!(kind = K::KIND, error = %e, "watch failed; retrying"),
                    None => return,
                },
            }
        }
    });
    store
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
