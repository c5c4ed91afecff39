//! [`Controller`]: watch a kind, reconcile each object until it converges.
//!
//! Owns the glue from watchers to reconciles: a reflector [`Store`] of the
//! primary kind, trigger streams (the primary's own changes, and secondary
//! kinds mapped to primary objects by [`Controller::watches`]), and the run
//! loop. It must not hold object state of its own: reconcilers read the
//! latest state from the store, so the controller stays level-triggered.
//!
//! # Expected flow
//!
//! ```text
//! watcher(primary) ─▶ reflector(store) ─┐
//! watcher(other) ──▶ mapper ────────────┼─▶ work queue ─▶ reconcile(Arc<K>, Arc<Ctx>)
//!                                       │   (dedup, per-object      │
//!           requeue / backoff ◀─────────┘    serialisation)  ◀──────┘ Action / error_policy
//! ```
//!
//! # Guarantees
//!
//! - Deduplication: an object triggered many times before its reconcile
//!   starts is reconciled once, with the latest state in the store.
//! - Serialisation: two reconciles of one object never run at once; an
//!   object that changes while it is being reconciled is reconciled again
//!   once the running reconcile finishes.
//! - Bounded concurrency: at most [`Config::concurrency`] reconciles run at
//!   once (default 16).
//! - Errors back off per object: after a failure the object is retried after
//!   the next delay of its [`Config::error_backoff`] (default 100 ms doubling
//!   to 30 s), or after the error policy's `requeue` delay if that is longer;
//!   an error policy answering [`Action::await_change`] disables the retry.
//!   A success resets the object's backoff. A change of the object still
//!   triggers a reconcile at once.
//! - Graceful shutdown: once the future given to
//!   [`Controller::graceful_shutdown_on`] completes, no new reconcile starts,
//!   the running ones finish, and then the stream ends.
//!
//! # Caveats
//!
//! - Objects deleted before their reconcile starts are not reconciled; use
//!   finalizers for clean-up that must happen.
//! - The returned stream must be polled for anything to happen; dropping it
//!   aborts running reconciles.
//!
//! # Errors
//!
//! The stream yields reconcile failures and watch failures as [`Error`]s:
//! diagnostics to log, never a reason to stop. Watchers retry with backoff.

mod queue;
mod runner;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use meseta_schemas::Resource;

use crate::backoff::{ExponentialBackoff, StreamBackoffExt};
use crate::reflector::{self, Store};
use crate::watcher::{self, watcher, Event};
use crate::{Api, ObjectRef, WatchParams};

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// Reconcile again after this long, even without a change.
    pub requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `after` (also without a change).
    pub fn requeue(after: Duration) -> Self {
        Action { requeue_after: Some(after) }
    }

    /// Reconcile again only when the object (or a watched related one) changes.
    pub fn await_change() -> Self {
        Action { requeue_after: None }
    }
}

/// Tuning of a [`Controller`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How many reconciles may run at once (at least 1). Default: 16.
    pub concurrency: usize,
    /// Per-object delays after failures. Default: 100 ms doubling to 30 s.
    pub error_backoff: ExponentialBackoff,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 16,
            error_backoff: ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(30)),
        }
    }
}

impl Config {
    /// The same config with another concurrency bound.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The same config with another per-object error backoff.
    pub fn error_backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.error_backoff = backoff;
        self
    }
}

/// A failure reported by a running controller; the controller carries on.
#[derive(Debug, thiserror::Error)]
pub enum Error<E> {
    /// A reconcile returned an error; it is retried per the error policy.
    #[error("reconciling {object} failed: {source}")]
    ReconcileFailed {
        /// The object.
        object: ObjectRef,
        /// The reconciler's error.
        #[source]
        source: E,
    },
    /// A reconcile panicked; it is retried with backoff.
    #[error("reconciling {object} panicked")]
    ReconcilerPanicked {
        /// The object.
        object: ObjectRef,
    },
    /// A watch feeding the controller failed; it retries with backoff.
    #[error(transparent)]
    Watch(#[from] watcher::Error),
}

/// Reconciles every object of kind `K`; see the module docs.
pub struct Controller<K: Resource> {
    store: Store<K>,
    triggers: Vec<runner::Triggers>,
    config: Config,
    shutdown: BoxFuture<'static, ()>,
}

impl<K: Resource> Controller<K> {
    /// A controller for the objects `api` and `params` select.
    pub fn new(api: Api<K>, params: WatchParams) -> Self {
        let (store, writer) = reflector::store();
        let primary = reflector::reflector(writer, watcher(api, params).default_backoff())
            .map_ok(|event| match event {
                Event::Applied(obj) => vec![ObjectRef::from_obj(&obj)],
                Event::Deleted(_) => Vec::new(),
                Event::Restarted(objs) => objs.iter().map(ObjectRef::from_obj).collect(),
            })
            .boxed();
        Controller {
            store,
            triggers: vec![primary],
            config: Config::default(),
            shutdown: futures::future::pending().boxed(),
        }
    }

    /// Also reconcile the objects `mapper` names whenever an `O` that `api`
    /// and `params` select is created, changed or deleted (e.g. a Job when
    /// one of its Tasks changes).
    pub fn watches<O: Resource>(
        mut self,
        api: Api<O>,
        params: WatchParams,
        mapper: impl Fn(&O) -> Vec<ObjectRef> + Send + Sync + 'static,
    ) -> Self {
        let triggers =
            watcher(api, params).default_backoff().map_ok(move |event| event.objects().flat_map(&mapper).collect());
        self.triggers.push(triggers.boxed());
        self
    }

    /// The same controller with another [`Config`].
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Shut down gracefully once `signal` completes.
    pub fn graceful_shutdown_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = signal.boxed();
        self
    }

    /// The cache of primary objects the controller keeps (ready after the first list).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Runs the controller. Nothing happens until the stream is polled; it
    /// yields `(object, action)` after each successful reconcile and an
    /// [`Error`] for each failure, and ends only after a graceful shutdown.
    ///
    /// Contract: `reconcile(object, ctx)` brings the world in line with
    /// `object` and says when to look again; it must be idempotent. On error,
    /// `error_policy(object, &error, ctx)` chooses the retry (see the module
    /// docs for how it combines with the per-object backoff).
    pub fn run<R, Fut, P, E, Ctx>(
        self,
        reconcile: R,
        error_policy: P,
        ctx: Arc<Ctx>,
    ) -> impl Stream<Item = Result<(ObjectRef, Action), Error<E>>> + Send
    where
        R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + 'static,
        E: std::error::Error + Send + 'static,
        Ctx: Send + Sync + 'static,
    {
        let store = self.store;
        let triggers = futures::stream::select_all(self.triggers).boxed();
        let lookup = move |key: &ObjectRef| store.get_ref(key);
        runner::run(triggers, lookup, reconcile, error_policy, ctx, self.config, self.shutdown)
    }
}
