//! The storage contract of the apiserver: a revisioned key-value store with
//! transactions and a watchable change log (an etcd-shaped API).
//!
//! Owns the `Store` trait and its value types. Implementations: [`sled`]
//! (embedded, the default). It must not know about kinds, JSON or HTTP: keys
//! and values are opaque to it.
//!
//! # Guarantees every implementation gives
//!
//! - One monotonic revision counter for the whole store. Every committed
//!   transaction gets the next revision; every key it writes gets that
//!   revision as its `mod_revision`.
//! - `txn` returns `Committed` only after the write is durable (fsynced).
//!   Concurrent writers share flushes (group commit).
//! - A transaction's compares and ops apply atomically, or not at all.
//! - Watch delivers every event with `revision > from` for keys under the
//!   prefix, in revision order, each exactly once, and only events that are
//!   already durable. If `from` is older than the compaction point the watch
//!   fails with `StoreError::Compacted`, so the client must re-list.
//! - The revision counter and the change log (up to its compaction window)
//!   survive a restart.
//! - [`Store::watch_indexed`] gives the same guarantees for the events it
//!   promises (those of one value of a [`WatchIndex`]); it exists so an
//!   implementation can route events to the watchers that want them instead
//!   of waking every watcher of a prefix.

pub mod memo;
pub mod sled;

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use memo::KeyMemo;

/// A store revision. 0 means "never written".
pub type Revision = u64;

/// A key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Revision of the transaction that created the key.
    pub create_revision: Revision,
    /// Revision of the last transaction that wrote the key.
    pub mod_revision: Revision,
}

/// A condition a transaction checks before applying its ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals the given one; 0 means "the key is absent".
    ModRevision {
        /// The key to check.
        key: String,
        /// Expected `mod_revision` (0 = must not exist).
        revision: Revision,
    },
    /// The key exists (any revision).
    Exists {
        /// The key to check.
        key: String,
    },
}

impl Compare {
    /// The key it checks.
    pub fn key(&self) -> &str {
        match self {
            Compare::ModRevision { key, .. } | Compare::Exists { key } => key,
        }
    }
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite `key` with `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// Remove `key` (a no-op if absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Rewrite `key`'s value with `edit` as the transaction applies: see
    /// [`Edit`]. A no-op when the key is absent or the edit keeps the value.
    Edit {
        /// The key.
        key: String,
        /// The rewrite.
        edit: Edit,
    },
}

impl Op {
    /// The key it writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } | Op::Edit { key, .. } => key,
        }
    }
}

/// A rewrite of a key's value that the store runs when it applies the
/// transaction, on the value as of that moment (after the writes of the
/// transactions ordered before it). Writers whose changes commute (a filter
/// added to a shared object) use it instead of a compare on the object's
/// revision, so they do not keep losing the race to each other and retrying.
///
/// The function runs in the store's commit path: it must be pure and quick,
/// and must not block or take locks. `None` keeps the value as it is (no
/// write, no event). A panic in it is caught and also keeps the value.
#[derive(Clone)]
pub struct Edit(Arc<Rewrite>);

/// The function behind an [`Edit`].
type Rewrite = dyn Fn(&[u8]) -> Option<Bytes> + Send + Sync;

impl Edit {
    /// An edit running `rewrite` on the current value.
    pub fn new(rewrite: impl Fn(&[u8]) -> Option<Bytes> + Send + Sync + 'static) -> Edit {
        Edit(Arc::new(rewrite))
    }

    /// The new value for `current`, or `None` to keep it (also when the
    /// rewrite panicked, which is logged).
    pub fn apply(&self, current: &[u8]) -> Option<Bytes> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.0)(current))) {
            Ok(value) => value,
            Err(_) => {
                tracing::error!("a store edit panicked; the value is kept as it was");
                None
            }
        }
    }
}

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Edit(..)")
    }
}

/// Two edits are equal when they are the same function object.
impl PartialEq for Edit {
    fn eq(&self, other: &Edit) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Edit {}

/// An atomic, conditional multi-key write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// All must hold for the ops to apply.
    pub compares: Vec<Compare>,
    /// Applied in order, atomically, when every compare holds.
    pub ops: Vec<Op>,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Applied and durable at `revision`.
    Committed {
        /// The revision of this transaction.
        revision: Revision,
    },
    /// A compare failed; nothing was written.
    Failed {
        /// Index of the first compare that failed.
        compare: usize,
        /// The current value of that compare's key, if any.
        current: Option<KeyValue>,
    },
}

/// One page of a prefix listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending order.
    pub items: Vec<KeyValue>,
    /// The store revision the listing was read at.
    pub revision: Revision,
    /// Whether more keys remain after the last item.
    pub more: bool,
}

/// What happened to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Created,
    /// An existing key was overwritten.
    Updated,
    /// The key was removed.
    Deleted,
}

/// One change of one key, as seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Revision of the transaction that made the change.
    pub revision: Revision,
    /// What happened.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The value after the change (empty for `Deleted`).
    pub value: Bytes,
    /// The value before the change (empty for `Created`).
    pub prev_value: Bytes,
    /// Shared by every clone of this event: where the first watcher to
    /// derive something from it (a decoded object, wire bytes) leaves it for
    /// the others. Stores only create it empty.
    pub memo: EventMemo,
}

/// A write-once slot shared by the clones of one [`WatchEvent`].
///
/// A live event reaches every watcher of its prefix as a clone; without the
/// memo each of them would decode the same bytes again. The store never reads
/// it, so it holds whatever one type its consumer puts in, and it takes no
/// part in equality.
#[derive(Clone, Default)]
pub struct EventMemo(std::sync::Arc<std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>>);

impl EventMemo {
    /// The memo's value, made by `init` if this is the first call on any clone.
    ///
    /// # Panics
    ///
    /// If an earlier call stored a value of another type: one event has one
    /// consumer type.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(|| Box::new(init())).downcast_ref().expect("an event memo holds one type")
    }
}

impl PartialEq for EventMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EventMemo {}

impl std::fmt::Debug for EventMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "EventMemo(set)" } else { "EventMemo(empty)" })
    }
}

/// A stream of watch events; ends with an error when the watcher fell behind
/// the compaction point.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// A field of stored values that watches can be narrowed to (see
/// [`Store::watch_indexed`]). Values stay opaque to the store: `read` is how
/// it learns a value's field.
#[derive(Debug)]
pub struct WatchIndex {
    /// The keys the index covers: those under this prefix.
    pub prefix: &'static str,
    /// The field's name, for logs (e.g. `spec.agent`).
    pub field: &'static str,
    /// The field's value in a stored value; `None` when the value cannot be
    /// read, and then its event goes to every watcher of the index.
    pub read: fn(&[u8]) -> Option<Cow<'_, str>>,
}

/// A watch narrowed to the events whose new or old value has `value` in
/// `index`'s field: both sides count, so an object whose field changes from
/// A to B reaches A's watchers (which see it leave) and B's.
#[derive(Debug, Clone)]
pub struct IndexedWatch<'a> {
    /// The index.
    pub index: &'static WatchIndex,
    /// The field value the watcher asks for.
    pub value: &'a str,
    /// Where the watch reports how far it has read.
    pub progress: WatchProgress,
}

/// How far a narrowed watch has read: every event it would yield at or below
/// this revision has been yielded (events of other values go by without being
/// yielded, so a watcher's bookmarks follow this rather than the last event
/// it saw). 0 until the implementation reports.
#[derive(Clone, Default)]
pub struct WatchProgress(Arc<ProgressInner>);

#[derive(Default)]
struct ProgressInner {
    reached: AtomicU64,
    probe: OnceLock<Box<dyn Fn() -> Option<Revision> + Send + Sync>>,
}

impl WatchProgress {
    /// The revision reached, asking the implementation's probe if it set one.
    pub fn get(&self) -> Revision {
        let reached = self.0.reached.load(Ordering::Acquire);
        self.0.probe.get().and_then(|probe| probe()).map_or(reached, |now| now.max(reached))
    }

    /// Records that the watch reached `revision` (never moves back).
    pub fn advance(&self, revision: Revision) {
        self.0.reached.fetch_max(revision, Ordering::AcqRel);
    }

    /// For implementations: how to learn, when asked, a revision the watch
    /// has reached while it waits (`None` when it cannot tell). Set once;
    /// later calls are ignored.
    pub fn set_probe(&self, probe: impl Fn() -> Option<Revision> + Send + Sync + 'static) {
        let _ = self.0.probe.set(Box::new(probe));
    }
}

impl std::fmt::Debug for WatchProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WatchProgress").field(&self.get()).finish()
    }
}

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision was compacted away; re-list and watch again.
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The oldest revision still watchable.
        oldest: Revision,
    },
    /// The underlying storage failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// The storage contract. See the module docs for the guarantees.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Keys under `prefix` in ascending order, starting after `start_after`
    /// when given, at most `limit` of them (all when `None`).
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError>;

    /// Apply `txn` atomically; returns once it is durable.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// Events for keys under `prefix` with revision > `from`, then live ones.
    fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError>;

    /// Like [`Store::watch`], for a watcher that only wants the events of
    /// `narrow` (see [`IndexedWatch`]): yields at least those, maybe others
    /// (the caller still filters), with the same guarantees. The default
    /// watches the whole prefix and never advances the progress.
    fn watch_indexed(&self, prefix: &str, from: Revision, narrow: IndexedWatch<'_>) -> Result<WatchStream, StoreError> {
        let _ = narrow;
        self.watch(prefix, from)
    }

    /// The latest durable revision.
    fn revision(&self) -> Revision;

    /// The oldest revision a watch may start from.
    fn compacted_revision(&self) -> Revision;

    /// Drop change-log entries at or below `revision`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// Where the consumer may leave what it derived from values it wrote
    /// (see [`KeyMemo`]); the store never reads it. `None`: this store keeps
    /// no memo, and every value is decoded afresh.
    fn memo(&self) -> Option<&KeyMemo> {
        None
    }
}
