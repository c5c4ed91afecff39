//! The Meseta apiserver: a Kubernetes-style REST API over a durable store.
//!
//! # Layout
//!
//! - [`age`]: object ages in kubectl's short form.
//! - [`server`]: routes ([`router`]), per-request tracing and metrics, health,
//!   and the serve loop ([`serve`]).
//! - [`handlers`](crate::handlers) (private): `/apis/meseta.io/v1/...` dispatch
//!   and response shapes.
//! - [`objects`]: create / update / delete / list rules over the store, shared
//!   by the handlers and the garbage collector.
//! - [`watch`](crate::watch) (private): watch streams.
//! - [`gc`]: the garbage collector (owner references, propagation finalizers).
//! - [`discovery`](crate::discovery) (private): `/version`, `/api`, `/apis`, ...
//! - [`openapi`]: `/openapi/v3` documents from the kinds' JSON Schemas.
//! - [`table`]: server-side printing (`Accept: ...;as=Table`).
//! - [`apply`]: server-side apply with `managedFields` ownership and conflicts.
//! - [`core_events`](crate::core_events) (private): a read-only core `v1`
//!   events list for `kubectl describe`.
//! - [`path`], [`object`], [`request`]: addressing, untyped object metadata,
//!   query parameters and bodies.
//! - [`selector`], [`patch`]: label/field selectors, merge/JSON patches and
//!   continue tokens.
//! - [`error`]: [`ApiError`], rendered as a Kubernetes `Status`.
//! - [`metrics`], [`state`]: Prometheus metrics and [`AppState`].
//! - [`store`]: the storage contract and its sled implementation.
//! - [`testing`]: [`testing::TestServer`], a real server for tests.

pub mod age;
pub mod allocator;
pub mod apply;
mod core_events;
mod discovery;
pub mod error;
pub mod gc;
mod handlers;
pub mod metrics;
pub mod object;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod request;
pub mod selector;
pub mod server;
pub mod state;
pub mod store;
pub mod table;
pub mod testing;
mod watch;

use std::path::Path;
use std::sync::Arc;

pub use error::ApiError;
pub use server::{router, serve, shutdown_signal};
pub use state::AppState;

use store::sled::{SledOptions, SledStore};
use store::{Store, StoreError};

/// Opens the embedded sled store of a data directory (in `DIR/store`),
/// creating it when missing, with the default tuning. Must be called inside
/// a tokio runtime.
pub fn open_sled(data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_sled_with(data_dir, SledOptions::default())
}

/// [`open_sled`] with the given tuning.
pub fn open_sled_with(data_dir: &Path, opts: SledOptions) -> Result<Arc<dyn Store>, StoreError> {
    let dir = data_dir.join("store");
    std::fs::create_dir_all(&dir)
        .map_err(|e| StoreError::Backend(format!("creating the data directory {}: {e}", dir.display())))?;
    let store: Arc<dyn Store> = SledStore::open(&dir, opts)?;
    Ok(store)
}
