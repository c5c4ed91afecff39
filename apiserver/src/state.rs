//! The shared state of one apiserver: its store, metrics, settings and the
//! shutdown signal that ends open watches and background tasks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::{MeteredStore, Metrics};
use crate::store::Store;

/// Default interval between watch `BOOKMARK` events.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    raw_store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: Arc<watch::Sender<bool>>,
    bookmark_interval: Duration,
}

impl AppState {
    /// State serving `store` with default settings.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let metered: Arc<dyn Store> = Arc::new(MeteredStore::new(store.clone(), metrics.clone()));
        let (shutdown, _) = watch::channel(false);
        AppState {
            store: metered,
            raw_store: store,
            metrics,
            shutdown: Arc::new(shutdown),
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
        }
    }

    /// The same state with another interval between watch bookmarks.
    pub fn with_bookmark_interval(mut self, interval: Duration) -> AppState {
        self.bookmark_interval = interval;
        self
    }

    /// The store, instrumented with storage metrics.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store as it was given to [`AppState::new`].
    pub fn raw_store(&self) -> &Arc<dyn Store> {
        &self.raw_store
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Interval between watch bookmarks.
    pub fn bookmark_interval(&self) -> Duration {
        self.bookmark_interval
    }

    /// Ends open watches and background tasks; new watches end at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether [`AppState::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once shutdown begins.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("bookmark_interval", &self.bookmark_interval).finish_non_exhaustive()
    }
}
