//! The Meseta client: typed API access, watch streams, a reflector cache, a
//! controller runtime and leader election.
//!
//! # Layout
//!
//! - [`Client`] (`client`): the HTTP connection to one apiserver; bearer token, timeouts.
//! - [`Error`] (`error`): every failure, with the server's [`StatusBody`].
//! - [`Api`] (`api`): typed verbs for one kind: get, list, create, replace,
//!   patch, status writes, delete, watch, and a subresource escape hatch.
//! - [`params`]: list, watch and delete parameters.
//! - [`ObjectRef`]: namespace + name, the key of caches and work queues.
//! - [`backoff`]: exponential backoff and [`backoff::StreamBackoff`] for error-retrying streams.
//! - [`watcher`]: list-then-watch as an explicit state machine that recovers
//!   from every error (re-lists on 410).
//! - [`reflector`]: a read-only [`reflector::Store`] kept current by a watcher.
//! - [`controller`]: watch → deduplicating work queue → reconcile, with
//!   per-object backoff, bounded concurrency and graceful shutdown.
//! - [`leader`]: leader election on a `Lease`.

pub mod api;
pub mod backoff;
mod client;
pub mod controller;
mod error;
pub mod leader;
mod object_ref;
pub mod params;
pub mod reflector;
pub mod watcher;

pub use api::{Api, DeleteOutcome, WatchEvent, WatchStream};
pub use client::{Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use controller::{Action, Controller};
pub use error::{Error, Result, StatusBody, StatusCause, StatusDetails};
pub use object_ref::ObjectRef;
pub use params::{DeleteParams, ListParams, PropagationPolicy, WatchParams};
pub use reflector::reflector;
pub use watcher::watcher;
