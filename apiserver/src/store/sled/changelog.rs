//! The change log: the events a watch replays, read back from the
//! write-ahead log's segments, which are kept for as long as the watch
//! window needs them.
//!
//! Owns the index of every kept segment's records (which revisions each
//! holds and where it lies), reading a range of revisions' events from them,
//! and removing the segments that are both compacted and checkpointed. It
//! must not append to the log (the committer does, through `wal::Log`),
//! decide the compaction point (`compact`) or touch sled.
//!
//! # Why in the log
//!
//! Every batch's record already carries its change-log runs (`codec::Runs`:
//! each event's key and previous value; its new value is the record's put of
//! the object), since the log must make the batch durable. Writing the runs to sled as well cost about two thirds of
//! the bytes sled was given per write, the compaction that deleted them
//! again, and sled's own rewriting of their pages. So sled holds objects and
//! counters alone, and the log's segments stay after a checkpoint until
//! every revision they hold is compacted.
//!
//! # Guarantees
//!
//! - [`ChangeLog::appended`] is called by the committer after a record is
//!   synced and before its revisions are published as durable, so every
//!   durable revision above the compaction point is in the index.
//! - A segment leaves the index, and then the disk, only when every
//!   revision it holds is at or below the compaction point and the last
//!   checkpoint is past it (an open still replays it otherwise). A reader
//!   that found nothing of a removed segment sees the compaction point
//!   raised, as with any compaction (see `watch`).
//! - The revisions of the indexed records follow on from one another: a gap
//!   found on open drops what comes before it (see [`ChangeLog::new`]).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::codec;
use super::group_commit::lock;
use super::wal::{self, Found, Place};
use crate::store::{Revision, StoreError};

/// Record bytes one [`ChangeLog::events`] call reads at most (beyond its
/// first record), so a replay hands its events on in steps: a watcher holds
/// about this much of the log while it replays (its events are slices of
/// the records read), and a thousand agents catching up at once after a
/// restart hold a thousand times that. About one batch of 64 updates.
const READ_BUDGET: u64 = 256 << 10;

/// One kept segment.
struct Segment {
    seq: u64,
    file: Arc<File>,
    places: Vec<Place>,
}

/// The index of the kept segments; see the module docs.
pub(super) struct ChangeLog {
    dir: PathBuf,
    segments: Mutex<VecDeque<Segment>>,
    /// Segments numbered below this hold nothing sled lacks.
    checkpointed: AtomicU64,
}

impl ChangeLog {
    /// The index of the segments an open found in `dir`, all of them in
    /// sled already (the open's checkpoint, `checkpointed`, is past them).
    /// Where a segment does not follow on from the one before, the segments
    /// before it are removed: nothing can be replayed across the gap; so are
    /// empty segments. Returns the index and the revisions it holds, first
    /// and last (`None` when empty).
    ///
    /// Errors: a segment that cannot be opened or removed, or whose records
    /// skip revisions (damage: records are appended in revision order).
    pub(super) fn new(
        dir: PathBuf,
        found: Vec<Found>,
        checkpointed: u64,
    ) -> Result<(ChangeLog, Option<(Revision, Revision)>), StoreError> {
        let mut segments: VecDeque<Segment> = VecDeque::with_capacity(found.len());
        // Segments that hold nothing a watch can use: empty ones, and the
        // ones before a gap. Every found segment is in sled already.
        let mut useless = Vec::new();
        let mut last: Option<Revision> = None;
        for Found { seq, places } in found {
            if places.is_empty() {
                useless.push(seq);
                continue;
            }
            if last.is_some_and(|last| places[0].first != last + 1) {
                tracing::warn!(
                    segment = seq,
                    after = last,
                    first = places[0].first,
                    "the write-ahead log skips revisions; watches can resume only after the gap"
                );
                useless.extend(segments.drain(..).map(|s| s.seq));
            }
            if let Some(gap) = places.windows(2).position(|w| w[1].first != w[0].last + 1) {
                return Err(StoreError::Backend(format!(
                    "the store's write-ahead log is damaged: segment {seq} skips from revision {} to {}; \
                     restore the data directory from a backup",
                    places[gap].last,
                    places[gap + 1].first
                )));
            }
            last = places.last().map(|p| p.last);
            let file = Arc::new(wal::open_segment(&dir, seq)?);
            segments.push_back(Segment { seq, file, places });
        }
        for seq in useless {
            wal::remove_segment(&dir, seq)?;
        }
        let first = segments.iter().find_map(|s| s.places.first()).map(|p| p.first);
        let held = first.zip(last);
        let log = ChangeLog { dir, segments: Mutex::new(segments), checkpointed: AtomicU64::new(checkpointed) };
        Ok((log, held))
    }

    /// Notes a record of segment `seq` at `place`, synced and not yet
    /// published; a new `seq` is a segment the log just started.
    pub(super) fn appended(&self, seq: u64, place: Place) -> Result<(), StoreError> {
        let mut segments = lock(&self.segments);
        if segments.back().is_none_or(|s| s.seq != seq) {
            let file = Arc::new(wal::open_segment(&self.dir, seq)?);
            segments.push_back(Segment { seq, file, places: Vec::new() });
        }
        segments.back_mut().expect("pushed above").places.push(place);
        Ok(())
    }

    /// Notes that sled holds everything of the segments below `seq`.
    pub(super) fn checkpointed(&self, seq: u64) {
        self.checkpointed.fetch_max(seq, Ordering::AcqRel);
    }

    /// Hands `each` the encoded events above `after`, up to `upto`, in
    /// order: each event's revision and bytes, and the value its record
    /// holds for it when the event leaves its value to the record (see
    /// `codec::decode_event_bytes`).
    /// Reads whole records, about [`READ_BUDGET`] bytes of them at most;
    /// returns the revision up to which it handed on every event (`upto`
    /// when the index holds nothing more, which only a compaction makes so).
    pub(super) fn events(
        &self,
        after: Revision,
        upto: Revision,
        mut each: impl FnMut(Revision, Bytes, Option<Bytes>) -> Result<(), StoreError>,
    ) -> Result<Revision, StoreError> {
        let wanted = self.records(after, upto);
        let Some(&(_, _, last_place)) = wanted.last() else { return Ok(upto) };
        for (seq, file, place) in &wanted {
            let payload = wal::read_payload(file, *seq, place)?;
            // The record's object puts, by key, read once one is needed.
            let mut objects: Option<HashMap<Bytes, Vec<Bytes>>> = None;
            for (key, run) in wal::puts_under(&payload, codec::LOG_PREFIX)? {
                let key_revision = codec::log_key_revision(&key)?;
                for (revision, at) in codec::entry_events(key_revision, &run)? {
                    if revision <= after || revision > upto {
                        continue;
                    }
                    let raw = run.slice(at);
                    let value = match codec::value_in_record(&raw) {
                        false => None,
                        true => {
                            let objects = match &mut objects {
                                Some(objects) => objects,
                                None => objects.insert(object_puts(&payload)?),
                            };
                            let key = codec::event_key(&raw).unwrap_or_default();
                            let puts = objects.get(key).map(Vec::as_slice).unwrap_or_default();
                            puts.iter().find_map(|put| codec::object_value_at(put, revision))
                        }
                    };
                    each(revision, raw, value)?;
                }
            }
        }
        Ok(last_place.last.min(upto))
    }

    /// The records holding revisions above `after` and up to `upto`, oldest
    /// first, up to about [`READ_BUDGET`] bytes.
    fn records(&self, after: Revision, upto: Revision) -> Vec<(u64, Arc<File>, Place)> {
        let segments = lock(&self.segments);
        // The first segment whose last record goes past `after`.
        let start = segments.partition_point(|s| s.places.last().is_none_or(|p| p.last <= after));
        let mut wanted = Vec::new();
        let mut bytes = 0;
        for segment in segments.range(start..) {
            let from = segment.places.partition_point(|p| p.last <= after);
            for place in &segment.places[from..] {
                if place.first > upto || (bytes > 0 && bytes + place.len > READ_BUDGET) {
                    return wanted;
                }
                bytes += place.len;
                wanted.push((segment.seq, Arc::clone(&segment.file), *place));
            }
        }
        wanted
    }

    /// Removes, from the index and then from the disk, the oldest segments
    /// whose revisions are all at or below `compacted` and which the last
    /// checkpoint is past; never the segment being appended to. Returns how
    /// many went.
    pub(super) fn remove_through(&self, compacted: Revision) -> Result<usize, StoreError> {
        let checkpointed = self.checkpointed.load(Ordering::Acquire);
        let gone: Vec<u64> = {
            let mut segments = lock(&self.segments);
            let mut gone = Vec::new();
            while segments.len() > 1 {
                let front = &segments[0];
                let done = front.places.last().is_none_or(|p| p.last <= compacted);
                if !done || front.seq >= checkpointed {
                    break;
                }
                gone.push(front.seq);
                segments.pop_front();
            }
            gone
        };
        for &seq in &gone {
            wal::remove_segment(&self.dir, seq)?;
        }
        if !gone.is_empty() {
            tracing::debug!(segments = gone.len(), compacted, "write-ahead log segments removed after compaction");
        }
        Ok(gone.len())
    }

    /// How many segments the index holds.
    #[cfg(test)]
    pub(super) fn segment_count(&self) -> usize {
        lock(&self.segments).len()
    }
}

/// The object puts of a record's payload: each object's key (without the
/// key space's prefix) and the records put under it, in order.
fn object_puts(payload: &Bytes) -> Result<HashMap<Bytes, Vec<Bytes>>, StoreError> {
    let mut objects: HashMap<Bytes, Vec<Bytes>> = HashMap::new();
    for (key, value) in wal::puts_under(payload, codec::OBJECT_PREFIX)? {
        objects.entry(key.slice(1..)).or_default().push(value);
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;
    use ::sled::IVec;
    use std::path::Path;

    /// Appends a batch of revisions `first..=last` (one event each, on key
    /// `/k/{revision}`, value `payload` long) and notes it in `index`.
    fn append(log: &mut wal::Log, index: &ChangeLog, first: Revision, last: Revision, payload: usize) {
        let mut staged = wal::Staged::new(first, Vec::new());
        let mut runs = codec::Runs::default();
        for revision in first..=last {
            let key = format!("/k/{revision}");
            let value = vec![b'v'; payload];
            staged.insert(&codec::object_key(&key), IVec::from(&value[..]));
            runs.push(revision, &EventKind::Updated, &key, Some(&value), b"before");
        }
        for (key, run) in runs.entries() {
            staged.log(&key, &run);
        }
        let record = staged.seal(last).1;
        let offset = log.append(&record).unwrap();
        index.appended(log.seq(), Place { first, last, offset, len: record.len() as u64 }).unwrap();
    }

    /// Every event `index` hands on above `after`, in steps as a replay
    /// reads them: revisions and keys.
    fn replay(index: &ChangeLog, after: Revision, upto: Revision) -> Vec<(Revision, String)> {
        let (mut seen, mut last) = (Vec::new(), after);
        while last < upto {
            let before = seen.len();
            last = index
                .events(last, upto, |revision, raw, value| {
                    let event = codec::decode_event_bytes(revision, raw, value)?;
                    assert_eq!(&event.prev_value[..], b"before");
                    seen.push((revision, event.key));
                    Ok(())
                })
                .unwrap();
            assert!(seen.len() > before || last == upto, "a step handed on nothing");
        }
        seen
    }

    fn expected(after: Revision, upto: Revision) -> Vec<(Revision, String)> {
        (after + 1..=upto).map(|r| (r, format!("/k/{r}"))).collect()
    }

    fn empty_index(dir: &Path) -> ChangeLog {
        ChangeLog::new(dir.to_owned(), Vec::new(), 0).unwrap().0
    }

    #[test]
    fn an_event_that_leaves_its_value_to_its_record_gets_the_put_of_its_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = wal::Log::create(dir.path(), 1, 64 << 10).unwrap();
        let index = empty_index(dir.path());
        // One batch: `/a` written twice, `/b` created, `/c` deleted.
        let mut staged = wal::Staged::new(5, Vec::new());
        let mut runs = codec::Runs::default();
        staged.insert(&codec::object_key("/a"), codec::encode_object(1, 5, b"a at 5"));
        runs.push(5, &EventKind::Updated, "/a", None, b"a before");
        staged.insert(&codec::object_key("/a"), codec::encode_object(1, 6, b"a at 6"));
        runs.push(6, &EventKind::Updated, "/a", None, b"a at 5");
        staged.insert(&codec::object_key("/b"), codec::encode_object(6, 6, b"b"));
        runs.push(6, &EventKind::Created, "/b", None, b"");
        staged.remove(&codec::object_key("/c"));
        runs.push(7, &EventKind::Deleted, "/c", Some(b""), b"c before");
        for (key, run) in runs.entries() {
            staged.log(&key, &run);
        }
        let record = staged.seal(7).1;
        let offset = log.append(&record).unwrap();
        index.appended(log.seq(), Place { first: 5, last: 7, offset, len: record.len() as u64 }).unwrap();

        let mut seen = Vec::new();
        index
            .events(4, 7, |revision, raw, value| {
                let ev = codec::decode_event_bytes(revision, raw, value)?;
                let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
                seen.push((ev.revision, ev.kind, ev.key.clone(), text(&ev.value), text(&ev.prev_value)));
                Ok(())
            })
            .unwrap();
        let s = |v: &str| v.to_string();
        assert_eq!(
            seen,
            vec![
                (5, EventKind::Updated, s("/a"), s("a at 5"), s("a before")),
                (6, EventKind::Updated, s("/a"), s("a at 6"), s("a at 5")),
                (6, EventKind::Created, s("/b"), s("b"), s("")),
                (7, EventKind::Deleted, s("/c"), s(""), s("c before")),
            ]
        );
        // Less of the record's bytes than with every value inline.
        let mut inline = codec::Runs::default();
        inline.push(5, &EventKind::Updated, "/a", Some(b"a at 5"), b"a before");
        let mut referring = codec::Runs::default();
        referring.push(5, &EventKind::Updated, "/a", None, b"a before");
        let size = |runs: codec::Runs| runs.entries().map(|(_, run)| run.len()).sum::<usize>();
        assert_eq!(size(inline), size(referring) + 4 + "a at 5".len());
    }

    #[test]
    fn events_come_back_in_order_from_any_revision_across_segments_and_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = wal::Log::create(dir.path(), 1, 64 << 10).unwrap();
        let index = empty_index(dir.path());
        // Batches of 1 to 5 revisions; values large enough that a step
        // stops at its byte budget and the log starts several segments.
        let mut revision = 0;
        for batch in 0..120u64 {
            let size = 1 + batch % 5;
            append(&mut log, &index, revision + 1, revision + size, 20 << 10);
            revision += size;
            if log.full() {
                log.rotate().unwrap();
            }
        }
        assert!(index.segment_count() > 10, "{} segments", index.segment_count());
        for after in [0, 1, 2, 7, 100, revision - 1] {
            assert_eq!(replay(&index, after, revision), expected(after, revision), "from {after}");
        }
        // Up to a revision in the middle of a batch, and nothing past it.
        assert_eq!(replay(&index, 10, 13), expected(10, 13));
        assert_eq!(index.events(revision, revision + 5, |_, _, _| panic!("no such event")).unwrap(), revision + 5);
    }

    #[test]
    fn only_compacted_segments_before_the_checkpoint_go_and_never_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = wal::Log::create(dir.path(), 1, 1 << 20).unwrap();
        let index = empty_index(dir.path());
        for segment in 0..4 {
            append(&mut log, &index, segment * 10 + 1, segment * 10 + 10, 10);
            log.rotate().unwrap();
        }
        // Segments 1-4 hold revisions 1-10, 11-20, 21-30, 31-40.
        assert_eq!(index.remove_through(25).unwrap(), 0, "no checkpoint yet");
        index.checkpointed(3);
        assert_eq!(index.remove_through(25).unwrap(), 2, "segments 1 and 2");
        assert!(!dir.path().join(format!("{:020}.wal", 1)).exists());
        assert!(dir.path().join(format!("{:020}.wal", 3)).exists(), "21-30 is not all compacted");
        index.checkpointed(10);
        assert_eq!(index.remove_through(40).unwrap(), 1, "segment 3; the last one stays");
        assert_eq!(index.segment_count(), 1);
        assert_eq!(replay(&index, 30, 40), expected(30, 40));
    }

    #[test]
    fn an_open_drops_what_comes_before_a_gap_and_empty_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = wal::Log::create(dir.path(), 1, 1 << 20).unwrap();
        let scratch = empty_index(dir.path());
        append(&mut log, &scratch, 1, 5, 10);
        log.rotate().unwrap();
        log.rotate().unwrap();
        // A revision sled kept past the log's end: the next records skip.
        append(&mut log, &scratch, 9, 12, 10);
        append(&mut log, &scratch, 13, 13, 10);
        drop(log);
        let (found, next) = wal::replay(dir.path(), 0, |_| Ok(())).unwrap();
        assert_eq!((found.len(), next), (3, 4));

        let (index, held) = ChangeLog::new(dir.path().to_owned(), found, next).unwrap();
        assert_eq!(held, Some((9, 13)));
        assert_eq!(index.segment_count(), 1);
        for seq in [1, 2] {
            assert!(!dir.path().join(format!("{seq:020}.wal")).exists(), "segment {seq} stayed");
        }
        assert_eq!(replay(&index, 8, 13), expected(8, 13));

        // Records of one segment that skip revisions are damage.
        let broken = vec![Found {
            seq: 3,
            places: vec![
                Place { first: 1, last: 2, offset: 0, len: 10 },
                Place { first: 4, last: 4, offset: 10, len: 10 },
            ],
        }];
        let err = ChangeLog::new(dir.path().to_owned(), broken, next).err().unwrap().to_string();
        assert!(err.contains("skips from revision 2 to 4"), "{err}");
    }
}
