//! The controller's run loop: triggers in, reconciles out.
//!
//! Owns the loop that feeds triggers into the [`WorkQueue`], starts
//! reconciles on a `JoinSet`, applies their [`Action`]s and the per-object
//! error backoff, and drains on shutdown. It must not watch anything: it takes
//! a plain stream of object references and a lookup function, so tests drive
//! it without a server.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use meseta_schemas::Resource;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::queue::WorkQueue;
use super::{Action, Config, Error};
use crate::backoff::ExponentialBackoff;
use crate::{watcher, ObjectRef};

/// A stream of objects to reconcile (or watch errors to report).
pub(crate) type Triggers = BoxStream<'static, Result<Vec<ObjectRef>, watcher::Error>>;

type Output<E> = Result<(ObjectRef, Action), Error<E>>;

struct Loop<K, Ctx, E, R, P, L> {
    triggers: Triggers,
    triggers_done: bool,
    shutdown: BoxFuture<'static, ()>,
    stopping: bool,
    queue: WorkQueue,
    config: Config,
    backoffs: HashMap<ObjectRef, ExponentialBackoff>,
    tasks: JoinSet<Result<Action, E>>,
    running: HashMap<Id, (ObjectRef, Arc<K>)>,
    out: VecDeque<Output<E>>,
    reconcile: R,
    error_policy: P,
    lookup: L,
    ctx: Arc<Ctx>,
}

impl<K, Ctx, E, R, Fut, P, L> Loop<K, Ctx, E, R, P, L>
where
    K: Resource,
    Ctx: Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    R: Fn(Arc<K>, Arc<Ctx>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    L: Fn(&ObjectRef) -> Option<Arc<K>>,
{
    /// Starts every reconcile that is due and has a free slot.
    fn start_ready(&mut self) {
        let now = Instant::now();
        while let Some(key) = self.queue.pop_ready(now) {
            let Some(obj) = (self.lookup)(&key) else {
                // Deleted since it was queued: nothing left to reconcile.
                tracing::debug!(kind = K::KIND, object = %key, "skipping an object that no longer exists");
                self.queue.finish(&key);
                self.backoffs.remove(&key);
                continue;
            };
            let span = tracing::info_span!("reconcile", kind = K::KIND, object = %key);
            let fut = (self.reconcile)(obj.clone(), self.ctx.clone());
            let handle = self.tasks.spawn(fut.instrument(span));
            self.running.insert(handle.id(), (key, obj));
        }
    }

    /// The delay before retrying `key` after a failure for which the error
    /// policy chose `action`; `None` to wait for a change.
    fn retry_delay(&mut self, key: &ObjectRef, action: &Action) -> Option<Duration> {
        let floor = action.requeue_after?;
        let backoff = self.backoffs.entry(key.clone()).or_insert_with(|| self.config.error_backoff.clone());
        let delay = backoff.next().unwrap_or(self.config.error_backoff.max);
        Some(delay.max(floor))
    }

    fn finished(&mut self, id: Id, result: Result<Result<Action, E>, tokio::task::JoinError>) {
        let Some((key, obj)) = self.running.remove(&id) else { return };
        self.queue.finish(&key);
        let now = Instant::now();
        match result {
            Ok(Ok(action)) => {
                self.backoffs.remove(&key);
                if let Some(after) = action.requeue_after {
                    self.queue.schedule(key.clone(), now + after);
                }
                self.out.push_back(Ok((key, action)));
            }
            Ok(Err(err)) => {
                let action = (self.error_policy)(obj, &err, self.ctx.clone());
                let delay = self.retry_delay(&key, &action);
                tracing::warn!(kind = K::KIND, object = %key, error = %err, retry_in = ?delay, "reconcile failed");
                if let Some(delay) = delay {
                    self.queue.schedule(key.clone(), now + delay);
                }
                self.out.push_back(Err(Error::ReconcileFailed { object: key, source: err }));
            }
            Err(join_error) => {
                let delay = self.retry_delay(&key, &Action::requeue(Duration::ZERO));
                tracing::error!(kind = K::KIND, object = %key, error = %join_error, "reconcile panicked");
                if let Some(delay) = delay.filter(|_| !self.stopping) {
                    self.queue.schedule(key.clone(), now + delay);
                }
                self.out.push_back(Err(Error::ReconcilerPanicked { object: key }));
            }
        }
        if self.stopping {
            self.queue.clear_queued();
        }
    }

    /// Runs until there is something to report, or the loop is over.
    async fn next(&mut self) -> Option<Output<E>> {
        loop {
            if let Some(out) = self.out.pop_front() {
                return Some(out);
            }
            if !self.stopping {
                self.start_ready();
            }
            let idle = self.tasks.is_empty() && (self.stopping || self.queue.queued() == 0);
            if idle && (self.stopping || self.triggers_done) {
                return None;
            }
            let next_due = if self.stopping { None } else { self.queue.next_due() };
            tokio::select! {
                biased;
                () = &mut self.shutdown, if !self.stopping => {
                    tracing::info!(kind = K::KIND, running = self.queue.running(), "controller shutting down");
                    self.stopping = true;
                    self.queue.clear_queued();
                }
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match done {
                        Ok((id, result)) => self.finished(id, Ok(result)),
                        Err(e) => {
                            let id = e.id();
                            self.finished(id, Err(e));
                        }
                    }
                }
                trigger = self.triggers.next(), if !self.stopping && !self.triggers_done => match trigger {
                    Some(Ok(keys)) => {
                        let now = Instant::now();
                        for key in keys {
                            self.queue.schedule(key, now);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(kind = K::KIND, error = %e, "controller input failed; retrying");
                        self.out.push_back(Err(Error::Watch(e)));
                    }
                    None => self.triggers_done = true,
                },
                () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
            }
        }
    }
}

/// Runs reconciles for the objects `triggers` name, reading each object's
/// latest state through `lookup` when its reconcile starts. See
/// [`super::Controller::run`] for the contract.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<K, Ctx, E, R, Fut, P, L>(
    triggers: Triggers,
    lookup: L,
    reconcile: R,
    error_policy: P,
    ctx: Arc<Ctx>,
    config: Config,
    shutdown: BoxFuture<'static, ()>,
) -> impl Stream<Item = Output<E>> + Send
where
    K: Resource,
    Ctx: Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + 'static,
    L: Fn(&ObjectRef) -> Option<Arc<K>> + Send + 'static,
{
    let state = Loop {
        triggers,
        triggers_done: false,
        shutdown,
        stopping: false,
        queue: WorkQueue::new(config.concurrency),
        config,
        backoffs: HashMap::new(),
        tasks: JoinSet::new(),
        running: HashMap::new(),
        out: VecDeque::new(),
        reconcile,
        error_policy,
        lookup,
        ctx,
    };
    futures::stream::unfold(state, |mut state| async move {
        let out = state.next().await?;
        Some((out, state))
    })
}
