//! [`watcher()`]: an endless, self-healing list-then-watch of one collection.
//!
//! Owns the state machine that turns list and watch requests into a stream of
//! [`Event`]s. It must not sleep or give up: every error is yielded and the
//! next poll retries, so pacing comes from outside
//! ([`crate::backoff::StreamBackoffExt::default_backoff`]).
//!
//! # Expected flow
//!
//! ```text
//!   Empty ──list all pages──▶ InitListed{rv} ──watch(rv)──▶ Watching{rv, stream}
//!     ▲     (Restarted(objs))       ▲                        │ ADDED/MODIFIED → Applied
//!     │                             │                        │ DELETED        → Deleted
//!     │                             └── stream ended / error ┤ BOOKMARK       → rv only
//!     └──────────── 410 Gone (on watch start or as an ERROR event)
//! ```
//!
//! # Guarantees
//!
//! - The first event, and the first after every re-list, is
//!   [`Event::Restarted`] with the complete list: consumers replace their
//!   state with it (objects deleted while the watch was down are absent).
//! - After that, every change is delivered in resourceVersion order, once:
//!   a list is not a snapshot (it reports the revision read before its
//!   scan, and an object written during the scan shows its newer state), so
//!   the watch from the list's version replays some of what the list
//!   already showed. Those replays (an event of an object at or below the
//!   version the list showed it at) are dropped; see [`Ahead`].
//! - A watch the server closes cleanly (e.g. `timeoutSeconds`) resumes from
//!   the last resourceVersion seen (objects or bookmarks), without a re-list.
//! - A 410 (the version was compacted) re-lists without yielding an error.
//!
//! # Errors
//!
//! Transport, decode and server errors are yielded as [`Error`] and the state
//! machine stays where it was (a failed list is retried; a failed watch is
//! reopened from the same version). Wrap the stream in a backoff, or it
//! retries as fast as the server answers.

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use meseta_schemas::{ObjectList, Resource};

use crate::api::{Api, WatchEvent, WatchStream};
use crate::error::StatusBody;
use crate::params::{ListParams, WatchParams};

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<K> {
    /// The object was created or changed; its new state.
    Applied(K),
    /// The object was deleted; its last state.
    Deleted(K),
    /// The complete current list (first event, and after every re-list):
    /// forget every object not in it.
    Restarted(Vec<K>),
}

impl<K> Event<K> {
    /// The objects this event carries.
    pub fn objects(&self) -> impl Iterator<Item = &K> {
        let slice: &[K] = match self {
            Event::Applied(o) | Event::Deleted(o) => std::slice::from_ref(o),
            Event::Restarted(objs) => objs,
        };
        slice.iter()
    }
}

/// A watcher failure; the watcher retries on the next poll.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the collection failed.
    #[error("listing {kind} failed: {source}")]
    InitialList {
        /// The kind watched.
        kind: &'static str,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// Opening the watch failed.
    #[error("opening a watch of {kind} failed: {source}")]
    WatchStart {
        /// The kind watched.
        kind: &'static str,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// The open watch broke (connection lost, undecodable event).
    #[error("watch of {kind} broke: {source}")]
    Watch {
        /// The kind watched.
        kind: &'static str,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// The server ended the watch with an error Status other than 410.
    #[error("the server ended the watch of {kind}: {} ({})", .status.message, .status.reason)]
    WatchError {
        /// The kind watched.
        kind: &'static str,
        /// The server's Status.
        status: Box<StatusBody>,
    },
}

/// Where list and watch requests go: an [`Api`], or a scripted fake in tests.
pub(crate) trait ListWatch<K>: Send + Sync + 'static {
    fn list_all<'a>(&'a self, params: &'a ListParams) -> BoxFuture<'a, crate::Result<ObjectList<K>>>;
    fn watch<'a>(&'a self, params: &'a WatchParams, rv: &'a str) -> BoxFuture<'a, crate::Result<WatchStream<K>>>;
}

impl<K: Resource> ListWatch<K> for Api<K> {
    fn list_all<'a>(&'a self, params: &'a ListParams) -> BoxFuture<'a, crate::Result<ObjectList<K>>> {
        Api::list_all(self, params).boxed()
    }

    fn watch<'a>(&'a self, params: &'a WatchParams, rv: &'a str) -> BoxFuture<'a, crate::Result<WatchStream<K>>> {
        Api::watch(self, params, rv).boxed()
    }
}

/// The state machine's position.
enum State<K> {
    /// Nothing known: list next.
    Empty,
    /// Listed (or the watch ended) at `resource_version`: watch from there next.
    InitListed { resource_version: String, ahead: Ahead },
    /// A watch is open; `resource_version` is the last one seen.
    Watching { resource_version: String, ahead: Ahead, stream: WatchStream<K> },
}

/// The listed objects whose version is newer than the list's own, with
/// that version: a watch from the list's version replays their changes up
/// to it, which the consumer already has. Versions are compared as
/// numbers; an object whose version is not a number is never dropped.
#[derive(Debug, Default)]
pub(crate) struct Ahead {
    at: HashMap<(Option<String>, String), u64>,
    max: u64,
}

fn version_of<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

fn key_of<K: Resource>(obj: &K) -> (Option<String>, String) {
    let meta = obj.meta();
    (meta.namespace.clone(), meta.name.clone())
}

impl Ahead {
    /// The objects of a list at `list_version` that are newer than it.
    pub(crate) fn of<K: Resource>(list_version: &str, items: &[K]) -> Self {
        let Ok(listed) = list_version.parse::<u64>() else { return Ahead::default() };
        let mut ahead = Ahead::default();
        for obj in items {
            if let Some(v) = version_of(obj).filter(|v| *v > listed) {
                ahead.at.insert(key_of(obj), v);
                ahead.max = ahead.max.max(v);
            }
        }
        ahead
    }

    /// Whether a watch event carrying `obj` replays what the list showed.
    /// Once the watch reaches the newest listed version nothing more can
    /// be a replay, and the set is let go.
    pub(crate) fn replays<K: Resource>(&mut self, obj: &K) -> bool {
        if self.at.is_empty() {
            return false;
        }
        let Some(v) = version_of(obj) else { return false };
        let replay = self.at.get(&key_of(obj)).is_some_and(|listed| v <= *listed);
        if v >= self.max {
            self.at = HashMap::new();
        }
        replay
    }
}

fn is_expired(status: &StatusBody) -> bool {
    status.code == 410 || status.reason == "Expired" || status.reason == "Gone"
}

type Step<K> = (Option<Result<Event<K>, Error>>, State<K>);

/// One transition. Returns the event to yield (if any) and the next state.
async fn step<K: Resource, S: ListWatch<K>>(src: &S, params: &WatchParams, state: State<K>) -> Step<K> {
    match state {
        State::Empty => match src.list_all(&params.list_params()).await {
            Ok(list) => {
                let resource_version = list.metadata.resource_version.unwrap_or_default();
                let ahead = Ahead::of(&resource_version, &list.items);
                tracing::debug!(kind = K::KIND, %resource_version, items = list.items.len(), ahead = ahead.at.len(), "listed");
                (Some(Ok(Event::Restarted(list.items))), State::InitListed { resource_version, ahead })
            }
            Err(source) => (Some(Err(Error::InitialList { kind: K::KIND, source })), State::Empty),
        },
        State::InitListed { resource_version, ahead } => match src.watch(params, &resource_version).await {
            Ok(stream) => (None, State::Watching { resource_version, ahead, stream }),
            Err(e) if e.is_gone() => {
                tracing::info!(kind = K::KIND, %resource_version, "watch version compacted; re-listing");
                (None, State::Empty)
            }
            Err(source) => {
                (Some(Err(Error::WatchStart { kind: K::KIND, source })), State::InitListed { resource_version, ahead })
            }
        },
        State::Watching { mut resource_version, mut ahead, mut stream } => {
            let mut advance = |obj: &K| {
                if let Some(rv) = obj.meta().resource_version.as_ref().filter(|rv| !rv.is_empty()) {
                    resource_version.clone_from(rv);
                }
            };
            let out = match stream.next().await {
                Some(Ok(WatchEvent::Added(obj) | WatchEvent::Modified(obj))) => {
                    advance(&obj);
                    let replay = ahead.replays(&obj);
                    Some(Event::Applied(obj)).filter(|_| !replay)
                }
                Some(Ok(WatchEvent::Deleted(obj))) => {
                    advance(&obj);
                    let replay = ahead.replays(&obj);
                    Some(Event::Deleted(obj)).filter(|_| !replay)
                }
                Some(Ok(WatchEvent::Bookmark { resource_version: rv })) => {
                    if !rv.is_empty() {
                        resource_version = rv;
                    }
                    return (None, State::Watching { resource_version, ahead, stream });
                }
                Some(Ok(WatchEvent::Error(status))) if is_expired(&status) => {
                    tracing::info!(kind = K::KIND, %resource_version, "watch expired; re-listing");
                    return (None, State::Empty);
                }
                Some(Ok(WatchEvent::Error(status))) => {
                    let err = Error::WatchError { kind: K::KIND, status };
                    return (Some(Err(err)), State::InitListed { resource_version, ahead });
                }
                Some(Err(e)) if e.is_gone() => return (None, State::Empty),
                Some(Err(source)) => {
                    let err = Error::Watch { kind: K::KIND, source };
                    return (Some(Err(err)), State::InitListed { resource_version, ahead });
                }
                None => {
                    tracing::debug!(kind = K::KIND, %resource_version, "watch closed; resuming");
                    return (None, State::InitListed { resource_version, ahead });
                }
            };
            (out.map(Ok), State::Watching { resource_version, ahead, stream })
        }
    }
}

/// Runs the state machine over any list/watch source.
pub(crate) fn watch_source<K: Resource, S: ListWatch<K>>(
    src: S,
    params: WatchParams,
) -> impl Stream<Item = Result<Event<K>, Error>> + Send {
    futures::stream::unfold((src, params, State::Empty), |(src, params, mut state)| async move {
        loop {
            let (out, next) = step(&src, &params, state).await;
            state = next;
            if let Some(out) = out {
                return Some((out, (src, params, state)));
            }
        }
    })
}

/// Lists, then watches `api`'s collection forever; see the module docs.
///
/// The stream never ends and never sleeps: wrap it with
/// [`crate::backoff::StreamBackoffExt::default_backoff`] (or another backoff)
/// so errors do not turn into a busy loop.
pub fn watcher<K: Resource>(api: Api<K>, params: WatchParams) -> impl Stream<Item = Result<Event<K>, Error>> + Send {
    watch_source(api, params)
}
