//! The embedded store: the [`Store`] contract on sled, with group commit.
//!
//! Owns the sled database of one apiserver (its one tree holding objects and
//! counters under distinct key prefixes) and its write-ahead log, which also
//! holds the change log: the write path, reads, watches and compaction. It
//! must not know about kinds, JSON or HTTP.
//!
//! # Layout
//!
//! - `codec`: the tree's key spaces and byte layouts.
//! - `migrate`: bringing a store written with one tree per key space into
//!   the one-tree layout on open.
//! - `commit`: compares and the writes of a batch of transactions.
//! - `wal`: the write-ahead log that makes each batch durable; sled itself
//!   is flushed only at checkpoints, and on open the log gives back what a
//!   crash took from sled.
//! - `changelog`: the change log, read back from the log's segments, which
//!   are kept until compacted.
//! - `durable`: syncing sled's files after its flush, so that what it
//!   wrote survives a power cut.
//! - `presence`: the committer's count of stored object keys, which spares
//!   compares on keys that cannot exist (creates) their B-tree read.
//! - `group_commit`: revision bookkeeping, the committer thread that applies
//!   concurrent writers' transactions in batches sharing one log sync,
//!   checkpoints, and the live event broadcast.
//! - `watch`: replay-then-live watch streams.
//! - `dispatch`: routing live events to narrowed watchers by index value.
//! - `compact`: change-log compaction.
//!
//! # Consistency of reads
//!
//! Reads see every write sled was given, which is durable (logged) but may
//! not be published yet, and may be part of a batch. [`Store::revision`] and the
//! revision of a [`ListResult`] are the durable revision `D` read *before*
//! the listing, so the listing holds every write at or below `D` (and maybe
//! some above it). A watch from `D` replays the log above `D`, where the
//! writes applied but not yet durable at list time are, and delivers them
//! once durable: a list followed by a watch from its revision misses nothing.
//!
//! # Caveats
//!
//! - `SledStore::open` must run inside a tokio runtime: the committer thread
//!   hands compactions to its blocking pool.
//! - One process may open a directory once at a time (sled locks it). Dropping
//!   the last `Arc<SledStore>` closes it synchronously, so the directory can be
//!   opened again right after; live watch streams then end with `Closed`.

mod changelog;
mod codec;
mod commit;
mod compact;
mod dispatch;
mod durable;
mod group_commit;
mod migrate;
mod presence;
mod wal;
mod watch;

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use self::changelog::ChangeLog;
use self::group_commit::Shared;
use super::memo::{self, KeyMemo};
use super::{IndexedWatch, KeyValue, ListResult, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream};

/// sled's page cache by default: 64 MiB. A write to a cached page adds to
/// it in memory until sled's cache fills, so a larger cache only means the
/// process keeps taking fresh memory (and the kernel zeroing it) for a
/// longer time; the object bytes a miss needs are in the kernel's page cache
/// anyway. Measured with 64 writers: 16.2k updates/s with 64 MiB, 14.8k
/// with sled's own default of 1 GiB; a list of 100,000 Tasks took 367 ms
/// instead of 345, with 288 MiB of RSS instead of 408.
pub const CACHE_BYTES: u64 = 64 << 20;

/// Tuning of a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledOptions {
    /// Revisions kept in the change log for watches to resume from; older
    /// ones are compacted in the background. Default 200,000. The change
    /// log is the write-ahead log's segments: the window's revisions cost
    /// their records' bytes on disk (each event's value and previous value
    /// besides the objects), plus up to a segment's worth.
    pub watch_window: u64,
    /// Flush batches buffered per live watcher (events, for a narrowed watch)
    /// before it must catch up from the log. Default 1,024.
    pub live_buffer: usize,
    /// sled's page-cache size in bytes. Default [`CACHE_BYTES`].
    pub cache_capacity: u64,
    /// The memo's capacity ([`KeyMemo`]), in stored bytes of the objects it
    /// holds; a decoded object takes several times its stored bytes. Default
    /// [`memo::DEFAULT_CAPACITY`].
    pub memo_capacity: usize,
    /// Bytes of write-ahead log after which sled is flushed and the log
    /// started afresh (a checkpoint). Default 64 MiB.
    pub wal_segment_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            watch_window: 200_000,
            live_buffer: 1024,
            cache_capacity: CACHE_BYTES,
            memo_capacity: memo::DEFAULT_CAPACITY,
            wal_segment_bytes: wal::SEGMENT_BYTES,
        }
    }
}

/// The sled handles. Only the store holds them strongly, apart from short
/// blocking jobs (flush, list, compaction) that the store's drop waits for.
struct Handles {
    db: ::sled::Db,
    /// Objects and counters (see `codec`).
    tree: ::sled::Tree,
    /// sled's files, synced after each flush (see `durable`); `None` for a
    /// temporary database.
    files: Option<durable::Files>,
}

impl Handles {
    /// Makes every write applied so far durable, against a power cut too:
    /// sled's flush, then `durable::Files::sync`.
    fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        if let Some(files) = &self.files {
            files.sync()?;
        }
        Ok(())
    }
}

/// The embedded, durable [`Store`] on sled. See the module docs.
pub struct SledStore {
    trees: Arc<Handles>,
    shared: Arc<Shared>,
    /// The change log in the write-ahead log's segments.
    changelog: Arc<ChangeLog>,
    /// The last revision of the change-log entries that a store written
    /// before the change log moved to the write-ahead log keeps in sled; 0
    /// when it keeps none above the compaction point. Watches replay those
    /// entries up to here, the segments after it (see `watch`).
    legacy_end: Revision,
    me: Weak<SledStore>,
    /// Batches the open took from the write-ahead log.
    recovered: u64,
    /// The consumer's memo ([`Store::memo`]).
    memo: KeyMemo,
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and starts its committer thread.
    /// Opening replays the write-ahead log's batches written since sled's
    /// last flush (see `recover`), reads every object key once (the committer's
    /// `presence` count) and migrates a store of the older layout
    /// (`migrate`).
    ///
    /// Errors: `StoreError::Backend` when called outside a tokio runtime, when
    /// sled cannot open the directory (including when it is already open),
    /// when the stored counters are corrupt, when the write-ahead log is
    /// damaged or does not continue what sled recovered, or when migrating a
    /// store of the older layout fails (see `migrate`; it is retried on the
    /// next open).
    pub fn open(dir: &Path, opts: SledOptions) -> Result<Arc<SledStore>, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Backend("SledStore::open must be called inside a tokio runtime".into()))?;
        let config = ::sled::Config::new()
            .path(dir)
            .mode(::sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .cache_capacity(opts.cache_capacity);
        let db = open_db(&config, dir)?;
        let files = Some(durable::Files::open(dir)?);
        let trees = Handles { tree: db.open_tree(codec::TREE).map_err(backend)?, db, files };
        migrate::to_one_tree(&trees, dir)?;
        let wal_dir = dir.join(wal::WAL_DIR);
        let (recovered, found, next_segment) = recover(&trees, &wal_dir)?;
        let revision =
            codec::decode_counter(codec::META_REVISION, trees.tree.get(codec::META_REVISION).map_err(backend)?)?;
        let stored_compacted =
            codec::decode_counter(codec::META_COMPACTED, trees.tree.get(codec::META_COMPACTED).map_err(backend)?)?;
        // What the log held is now in sled: made durable there, the log goes
        // on in a new segment, and later opens replay from it.
        trees.make_durable()?;
        let log = wal::Log::create(&wal_dir, next_segment, opts.wal_segment_bytes)?;
        wal::write_checkpoint(&wal_dir, next_segment)?;
        let (changelog, held) = ChangeLog::new(wal_dir, found, next_segment)?;
        let legacy_end = legacy_log_end(&trees)?;
        let compacted = history_start(revision, stored_compacted, legacy_end, held);
        if compacted != stored_compacted {
            trees.tree.insert(codec::META_COMPACTED, &compacted.to_be_bytes()).map_err(backend)?;
        }
        // Finish a compaction that a crash interrupted.
        compact::delete_through(&trees, compacted)?;
        changelog.remove_through(compacted)?;
        let legacy_end = if legacy_end > compacted { legacy_end } else { 0 };
        let presence = presence::Presence::load(&trees)?;
        tracing::debug!(dir = %dir.display(), revision, compacted, "sled store opened");

        let trees = Arc::new(trees);
        let changelog = Arc::new(changelog);
        let shared = Arc::new(Shared::new(revision, compacted, opts.live_buffer));
        let (committer_shared, handles) = (Arc::clone(&shared), Arc::downgrade(&trees));
        let committer_log = Arc::clone(&changelog);
        std::thread::Builder::new()
            .name("meseta-store-commit".into())
            .spawn(move || {
                group_commit::run_committer(
                    committer_shared,
                    handles,
                    presence,
                    log,
                    committer_log,
                    opts.watch_window,
                    runtime,
                )
            })
            .map_err(|err| StoreError::Backend(format!("starting the store's committer thread: {err}")))?;
        Ok(Arc::new_cyclic(|me| SledStore {
            trees,
            shared,
            changelog,
            legacy_end,
            me: me.clone(),
            recovered,
            memo: KeyMemo::new(opts.memo_capacity),
        }))
    }

    /// How many fsyncs the store has run for writes (group commit shares one
    /// among all writers waiting at that moment).
    pub fn flush_count(&self) -> u64 {
        self.shared.flush_count()
    }

    /// How many checkpoints (sled flushed, older log segments removed) have
    /// completed since the open.
    pub fn checkpoint_count(&self) -> u64 {
        self.shared.checkpoint_count()
    }

    /// How many batches the open replayed from the write-ahead log: those
    /// written since sled's last flush, which a crash may have taken from it.
    pub fn recovered_batches(&self) -> u64 {
        self.recovered
    }

    /// The revision of the last applied write, durable or not.
    pub fn applied_revision(&self) -> Revision {
        self.shared.applied()
    }
}

#[async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self.trees.tree.get(codec::object_key(key)).map_err(backend)? {
            Some(raw) => codec::decode_key_value(key.to_owned(), raw).map(Some),
            None => Ok(None),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        // Read the revision first: everything at or below it is then visible.
        let revision = self.shared.durable();
        let trees = Arc::clone(&self.trees);
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        let page = tokio::task::spawn_blocking(move || list_blocking(&trees, &prefix, start_after.as_deref(), limit))
            .await
            .map_err(|err| StoreError::Backend(format!("list task failed: {err}")))??;
        Ok(ListResult { items: page.0, revision, more: page.1 })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        // A dropped answer means the committer is gone: the store is closing.
        self.shared.submit(txn)?.await.map_err(|_| StoreError::Closed)?
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let compacted = self.compacted_revision();
        if from < compacted {
            return Err(StoreError::Compacted { requested: from, oldest: compacted });
        }
        Ok(watch::start(self, prefix, from))
    }

    /// Routes live events to the watch by index value (see `dispatch`)
    /// when the index covers `prefix`; otherwise a plain watch.
    fn watch_indexed(&self, prefix: &str, from: Revision, narrow: IndexedWatch<'_>) -> Result<WatchStream, StoreError> {
        if !prefix.starts_with(narrow.index.prefix) {
            return self.watch(prefix, from);
        }
        let compacted = self.compacted_revision();
        if from < compacted {
            return Err(StoreError::Compacted { requested: from, oldest: compacted });
        }
        Ok(watch::start_routed(self, prefix, from, narrow))
    }

    fn revision(&self) -> Revision {
        self.shared.durable()
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    /// Compacts up to `revision`, clamped to the durable revision; compacting
    /// at or below the current compaction point does nothing.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (trees, shared, changelog) =
            (Arc::clone(&self.trees), Arc::clone(&self.shared), Arc::clone(&self.changelog));
        tokio::task::spawn_blocking(move || compact::compact_blocking(&trees, &shared, &changelog, revision))
            .await
            .map_err(|err| StoreError::Backend(format!("compaction task failed: {err}")))?
    }

    fn memo(&self) -> Option<&KeyMemo> {
        Some(&self.memo)
    }
}

/// Applies every record of the log in `wal_dir` written since sled's last
/// checkpoint (`wal::read_checkpoint`), in order: sled may hold any part of
/// those batches (they went to it key by key), and replaying them all puts
/// every key back as the last one left it. The first record must follow on
/// from what sled's last flush holds, and each record from the one before.
/// Returns how many it applied, every segment's records (see
/// `wal::replay`) and the number of the log's next segment.
fn recover(trees: &Handles, wal_dir: &Path) -> Result<(u64, Vec<wal::Found>, u64), StoreError> {
    let stored = codec::decode_counter(codec::META_REVISION, trees.tree.get(codec::META_REVISION).map_err(backend)?)?;
    let mut last: Option<Revision> = None;
    let mut applied = 0;
    let (found, next_segment) = wal::replay(wal_dir, wal::read_checkpoint(wal_dir), |record| {
        let follows = match last {
            None => record.first <= stored + 1,
            Some(last) => record.first == last + 1,
        };
        if !follows {
            let held = last.unwrap_or(stored);
            return Err(StoreError::Backend(format!(
                "the store holds revisions up to {held}, but its write-ahead log goes on with {}..={}: \
                 the revisions in between are lost; restore the data directory from a backup",
                record.first, record.last
            )));
        }
        last = Some(record.last);
        record.into_writes().apply(&trees.tree).map_err(backend)?;
        applied += 1;
        Ok(())
    })?;
    // A revision sled recovered beyond the log's end is kept, never reused.
    if last.is_some_and(|last| last < stored) {
        trees.tree.insert(codec::META_REVISION, &stored.to_be_bytes()).map_err(backend)?;
    }
    if let Some(revision) = last {
        tracing::info!(batches = applied, revision, "store replayed its write-ahead log");
    }
    Ok((applied, found, next_segment))
}

/// The revision of the last change-log entry sled holds (0: none). Only a
/// store written before the change log moved to the write-ahead log holds
/// any; they are read until compacted.
fn legacy_log_end(trees: &Handles) -> Result<Revision, StoreError> {
    let (start, end) = (codec::log_key(0, 0), codec::log_key(Revision::MAX, u32::MAX));
    match trees.tree.range(start..=end).next_back() {
        Some(entry) => codec::log_key_revision(&entry.map_err(backend)?.0),
        None => Ok(0),
    }
}

/// The compaction point an open starts from: the stored one, raised so that
/// every revision above it up to `revision` is in the change log, which is
/// the entries sled holds up to `legacy_end` followed by the write-ahead
/// log's records, `held` (first and last revision).
fn history_start(
    revision: Revision,
    compacted: Revision,
    legacy_end: Revision,
    held: Option<(Revision, Revision)>,
) -> Revision {
    let from_sled = legacy_end.max(compacted);
    match held {
        // The log reaches the end, and sled's entries (or the compaction
        // point) reach its start.
        Some((first, last)) if last >= revision && first <= from_sled + 1 => compacted,
        // Only the log's own records can be replayed.
        Some((first, last)) if last >= revision => first - 1,
        // sled's entries alone reach the end.
        None if from_sled >= revision => compacted,
        // Nothing continuous reaches the end: history starts now.
        _ => revision,
    }
    .max(compacted)
    .min(revision)
}

/// One page of keys under `prefix`, and whether more follow.
fn list_blocking(
    trees: &Handles,
    prefix: &str,
    start_after: Option<&str>,
    limit: Option<usize>,
) -> Result<(Vec<KeyValue>, bool), StoreError> {
    let prefix = codec::object_key(prefix);
    let lower = match start_after.map(codec::object_key) {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix.clone()),
    };
    let limit = limit.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    for entry in trees.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
        let (key, raw) = entry.map_err(backend)?;
        if !key.starts_with(&prefix) {
            break;
        }
        if items.len() == limit {
            return Ok((items, true));
        }
        items.push(codec::decode_key_value(codec::decode_key(&key)?, raw)?);
    }
    Ok((items, false))
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.shared.close();
        // Wait for in-flight blocking jobs (flush, list, compaction) to let go
        // of the database, so the directory can be reopened at once (sled's
        // own io threads may hold its lock a moment longer: `open_db` waits).
        let mut waited = Duration::ZERO;
        while Arc::strong_count(&self.trees) > 1 && waited < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
            waited += Duration::from_millis(1);
        }
        if let Err(err) = self.trees.make_durable() {
            tracing::warn!(error = %err, "final flush of the store failed");
        }
    }
}

/// How long an open waits for an earlier holder of the directory (a store
/// still being dropped, an apiserver still exiting) to release its lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the database, waiting up to [`LOCK_WAIT`] while another holder
/// releases the directory's lock.
fn open_db(config: &::sled::Config, dir: &Path) -> Result<::sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(err) => {
                let locked = err.to_string().contains("could not acquire lock");
                if locked && started.elapsed() < LOCK_WAIT {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let hint = if locked { " (is another meseta-apiserver using this data directory?)" } else { "" };
                return Err(StoreError::Backend(format!("opening {}: {err}{hint}", dir.display())));
            }
        }
    }
}

/// Wraps a sled error, keeping its text.
fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}
