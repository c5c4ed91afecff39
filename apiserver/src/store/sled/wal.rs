//! The store's write-ahead log: what makes a committed batch durable, so
//! that sled need not be flushed for every batch.
//!
//! Owns the log's segment files (`<dir>/wal/<seq>.wal`), the byte layout of
//! a record, appending with `fdatasync`, reading the log back after a crash
//! or a record by its place, and the checkpoint mark. It must not decide
//! what a batch writes (that is `commit`), when sled is flushed (the
//! committer's checkpoint, in `group_commit`), which records a recovery
//! applies (the store's open, in `mod`) or which segments are kept (the
//! change log's, in `changelog`).
//!
//! # Why
//!
//! A sled flush per batch writes sled's I/O buffers, pages included, and
//! syncs its data file; a sled batch rolls those buffers twice to be
//! recovered whole. The log instead appends exactly what the batch wrote and
//! syncs one file, as etcd's WAL does, before the batch goes to sled key by
//! key. sled is flushed only at a checkpoint, when a segment has grown past
//! its size limit ([`SEGMENT_BYTES`] by default); after that flush the older
//! segments hold nothing sled would not recover, which the checkpoint mark
//! (`<dir>/wal/checkpoint`, the number of the first segment sled may lack)
//! records. After a crash sled may hold any part of what it was given since
//! its last flush, all of it logged: the open replays every record from the
//! marked segment on, in order, which puts each key back as the last batch
//! left it. The segments before the mark stay as the change log until
//! compacted (see `changelog`); their records are not replayed.
//!
//! # Record layout
//!
//! `payload length (u32 LE) | CRC-32 of payload (u32 LE) | payload`, where
//! the payload is `first revision (u64 BE) | last revision (u64 BE) | ops`
//! and each op is `1 | key length (u32 BE) | key | value length (u32 BE) |
//! value` (a put) or `2 | key length (u32 BE) | key` (a removal), in the
//! order the batch staged them. Keys and values are the tree's own bytes
//! (see `codec`), so a record replays as the writes it was ([`Writes`]),
//! less the change-log runs, which are puts to the log alone.
//!
//! # Guarantees
//!
//! - [`Log::append`] returns once the record and the file's size are on
//!   disk; a new segment's directory entry is synced before any record in it
//!   is appended.
//! - A record cut short by a crash (length or checksum wrong) can only be the
//!   last of the last segment, since the next record is appended only after
//!   the previous one synced; reading stops there, and the open cuts the
//!   segment back to its last whole record before it starts the next. The
//!   same damage anywhere earlier is reported as corruption.
//!
//! # Prepared segments
//!
//! Once a segment is half full, a background thread prepares the next one:
//! `<seq>.wal.prep`, its blocks allocated with `fallocate` a little past the
//! size limit (they read as zeros) and synced, then renamed into place at
//! the rotation. Appending into blocks that are already allocated and a size
//! that is already on disk spares each `fdatasync` the allocation. Writing
//! the zeros instead would spare it the file system's journal as well (0.28
//! ms per sync instead of 0.36 with 64 writers), but it writes every byte of
//! the log twice, now that segments are kept as the change log: in two
//! alternated runs of the schedule bench the allocated segments gave 2,702 /
//! 3,039 tasks/s against 2,635 / 2,706 for zeros, and updates at 64 clients
//! 37.7k / 34.1k/s against 33.0k / 28.7k/s. A zero record length is
//! therefore the end of a segment's records (a real record's payload is
//! never empty); past it, a segment other than the last must hold only
//! zeros, while the last may hold the pages of a record whose append a
//! crash cut short.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ::sled::{IVec, Tree};

use super::codec::LOG_PREFIX;
use crate::store::{Revision, StoreError};

/// The log's directory inside the store directory.
pub(super) const WAL_DIR: &str = "wal";

/// Default size past which the committer starts a new segment and a
/// checkpoint (`SledOptions::wal_segment_bytes`). About 30,000 creates of a
/// typical Task: a checkpoint every second or so at full load, and a replay
/// of at most this much after a crash.
pub(super) const SEGMENT_BYTES: u64 = 64 << 20;

const HEADER: usize = 8;
const PAYLOAD_HEADER: usize = 16;
const PUT: u8 = 1;
const REMOVE: u8 = 2;
const SUFFIX: &str = ".wal";
/// The name a segment has while it is prepared.
const PREPARING_SUFFIX: &str = ".wal.prep";

/// A batch's writes, staged for sled and encoded for the log at once.
pub(super) struct Staged {
    writes: Writes,
    record: Vec<u8>,
}

/// A batch's writes to sled, in order: a key and its new value, or `None`
/// for a removal.
#[derive(Default)]
pub(super) struct Writes(Vec<(IVec, Option<IVec>)>);

impl Writes {
    /// Writes them to `tree` one by one, not as one sled batch: a crash may
    /// leave any part of them in sled, which is sound only because their log
    /// record was synced before (see the module docs).
    pub(super) fn apply(self, tree: &Tree) -> ::sled::Result<()> {
        for (key, value) in self.0 {
            match value {
                Some(value) => tree.insert(key, value)?,
                None => tree.remove(key)?,
            };
        }
        Ok(())
    }
}

impl Staged {
    /// An empty batch whose first transaction will commit at `first`, its
    /// record encoded into `buffer` (cleared first: the committer hands back
    /// the last batch's, so that a batch's record needs no fresh memory).
    pub(super) fn new(first: Revision, buffer: Vec<u8>) -> Staged {
        let mut record = buffer;
        record.clear();
        record.extend_from_slice(&[0; HEADER]);
        record.extend_from_slice(&first.to_be_bytes());
        record.extend_from_slice(&[0; 8]);
        Staged { writes: Writes::default(), record }
    }

    /// Stages a put of `value` under `key`.
    pub(super) fn insert(&mut self, key: &[u8], value: IVec) {
        self.record.push(PUT);
        put_bytes(&mut self.record, key);
        put_bytes(&mut self.record, &value);
        self.writes.0.push((key.into(), Some(value)));
    }

    /// Stages a put that goes to the log alone, never to sled: a change-log
    /// run (see `changelog`).
    pub(super) fn log(&mut self, key: &[u8], value: &[u8]) {
        self.record.push(PUT);
        put_bytes(&mut self.record, key);
        put_bytes(&mut self.record, value);
    }

    /// Stages the removal of `key`.
    pub(super) fn remove(&mut self, key: &[u8]) {
        self.record.push(REMOVE);
        put_bytes(&mut self.record, key);
        self.writes.0.push((key.into(), None));
    }

    /// The writes and the sealed log record of a batch whose last
    /// committed transaction has revision `last`.
    pub(super) fn seal(self, last: Revision) -> (Writes, Vec<u8>) {
        let Staged { writes, mut record } = self;
        record[HEADER + 8..HEADER + PAYLOAD_HEADER].copy_from_slice(&last.to_be_bytes());
        let len = u32::try_from(record.len() - HEADER).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(&record[HEADER..]);
        record[..4].copy_from_slice(&len.to_le_bytes());
        record[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        (writes, record)
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    // A key or value of 4 GiB or more never reaches the store: the request
    // body limit is far below it.
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// One record read back from the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record {
    /// Revision of the batch's first committed transaction.
    pub(super) first: Revision,
    /// Revision of its last.
    pub(super) last: Revision,
    /// Its writes in order: a key and its new value, or `None` for a removal.
    pub(super) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Record {
    /// The record's writes, to apply to sled again. Change-log runs stay in
    /// the log: records of stores that wrote them to sled too hold them as
    /// puts like any other.
    pub(super) fn into_writes(self) -> Writes {
        let to_sled = self.ops.into_iter().filter(|(key, _)| key.first() != Some(&LOG_PREFIX));
        Writes(to_sled.map(|(key, value)| (key.into(), value.map(IVec::from))).collect())
    }
}

/// What the front of `buf` holds.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A whole record, and the bytes it took.
    Record(Record, usize),
    /// Nothing: the end of the segment.
    End,
    /// A record cut short or not matching its checksum.
    Torn(String),
}

/// Decodes the record at the front of `buf`.
fn next_record(buf: &[u8]) -> Next {
    // No bytes, or a zero length: the zeros of a prepared segment that
    // records have not reached.
    if buf[..buf.len().min(4)].iter().all(|&b| b == 0) {
        return Next::End;
    }
    if buf.len() < HEADER {
        return Next::Torn(format!("{} bytes where a record header needs {HEADER}", buf.len()));
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..HEADER].try_into().expect("4 bytes"));
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Next::Torn(format!("a record of {len} bytes with only {} left", buf.len() - HEADER));
    };
    if crc32fast::hash(payload) != crc {
        return Next::Torn(format!("a record of {len} bytes does not match its checksum"));
    }
    match decode_payload(payload) {
        Some(record) => Next::Record(record, HEADER + len),
        None => Next::Torn(format!("a record of {len} bytes matches its checksum but is malformed")),
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let first = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let last = u64::from_be_bytes(payload.get(8..PAYLOAD_HEADER)?.try_into().ok()?);
    let mut rest = &payload[PAYLOAD_HEADER..];
    let mut ops = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        let (key, tail) = take_bytes(tail)?;
        let (value, tail) = match tag {
            PUT => {
                let (value, tail) = take_bytes(tail)?;
                (Some(value.to_vec()), tail)
            }
            REMOVE => (None, tail),
            _ => return None,
        };
        ops.push((key.to_vec(), value));
        rest = tail;
    }
    Some(Record { first, last, ops })
}

fn take_bytes(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let bytes = buf.get(4..4 + len)?;
    Some((bytes, &buf[4 + len..]))
}

/// The record `bytes` holds, whole; `None` when it is torn.
#[cfg(test)]
pub(super) fn decode_one(bytes: &[u8]) -> Option<Record> {
    match next_record(bytes) {
        Next::Record(record, used) if used == bytes.len() => Some(record),
        _ => None,
    }
}

/// The segment being appended to.
pub(super) struct Log {
    dir: PathBuf,
    file: File,
    seq: u64,
    len: u64,
    limit: u64,
    /// The next segment, being prepared (see the module docs).
    next: Option<std::thread::JoinHandle<std::io::Result<File>>>,
}

impl Log {
    /// Starts segment `seq` in the log directory `dir` (created if missing);
    /// it is full past `limit` bytes. Segments left half-prepared by an
    /// earlier run are removed.
    pub(super) fn create(dir: &Path, seq: u64, limit: u64) -> Result<Log, StoreError> {
        std::fs::create_dir_all(dir).map_err(|err| failed("creating", dir, err))?;
        remove_preparing(dir)?;
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|err| failed("creating", &path, err))?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Log { dir: dir.to_owned(), file, seq, len: 0, limit, next: None })
    }

    /// Appends `record` (from [`Staged::seal`]) and syncs it; returns the
    /// byte offset it was written at. The first append past half the limit
    /// starts preparing the next segment.
    pub(super) fn append(&mut self, record: &[u8]) -> Result<u64, StoreError> {
        let path = || segment_path(&self.dir, self.seq);
        let offset = self.len;
        self.file.write_all(record).map_err(|err| failed("appending to", &path(), err))?;
        self.len += record.len() as u64;
        self.file.sync_data().map_err(|err| failed("syncing", &path(), err))?;
        if self.next.is_none() && self.len >= self.limit / 2 {
            let (path, size) = (preparing_path(&self.dir, self.seq + 1), self.limit + self.limit / 8);
            let spawned =
                std::thread::Builder::new().name("meseta-wal-prep".into()).spawn(move || prepare(&path, size));
            // Without the thread the next segment is simply started empty.
            self.next = spawned.ok();
        }
        Ok(offset)
    }

    /// The number of the segment being appended to.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// The log's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the segment has grown past its limit.
    pub(super) fn full(&self) -> bool {
        self.len >= self.limit
    }

    /// Starts the next segment, the prepared one when its preparation
    /// succeeded (waiting for it to finish), else an empty one; returns its
    /// number: once sled is flushed, sled holds everything the segments
    /// below it hold (see [`write_checkpoint`]).
    pub(super) fn rotate(&mut self) -> Result<u64, StoreError> {
        let seq = self.seq + 1;
        let prepared = match self.next.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(file))) => Some(file),
            Some(Ok(Err(err))) => {
                tracing::warn!(error = %err, "preparing the next write-ahead log segment failed; starting it empty");
                None
            }
            Some(Err(_)) => {
                tracing::warn!("preparing the next write-ahead log segment panicked; starting it empty");
                None
            }
            None => None,
        };
        let Some(file) = prepared else {
            *self = Log::create(&self.dir, seq, self.limit)?;
            return Ok(seq);
        };
        let (from, to) = (preparing_path(&self.dir, seq), segment_path(&self.dir, seq));
        std::fs::rename(&from, &to).map_err(|err| failed("renaming into place", &from, err))?;
        sync_dir(&self.dir)?;
        *self = Log { dir: self.dir.clone(), file, seq, len: 0, limit: self.limit, next: None };
        Ok(seq)
    }
}

/// Makes `path` a segment of `size` bytes allocated on disk (reading as
/// zeros), its cursor at the start.
fn prepare(path: &Path, size: u64) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
    nix::fcntl::fallocate(file.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, size as i64)?;
    file.sync_all()?;
    Ok(file)
}

/// Removes the segments of `dir` that were being prepared.
fn remove_preparing(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|err| failed("listing", dir, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| failed("listing", dir, err))?;
        if entry.file_name().to_str().is_some_and(|name| name.ends_with(PREPARING_SUFFIX)) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|err| failed("removing", &path, err))?;
        }
    }
    Ok(())
}

/// Where one record lies in its segment, and the revisions it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    /// Revision of the batch's first committed transaction.
    pub(super) first: Revision,
    /// Revision of its last.
    pub(super) last: Revision,
    /// Byte offset of the record's header in the segment.
    pub(super) offset: u64,
    /// Bytes of the record, header included.
    pub(super) len: u64,
}

/// One segment found by [`replay`]: its number and its records' places.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) seq: u64,
    pub(super) places: Vec<Place>,
}

/// Reads the log in `dir`, oldest segment first. The records of segments
/// numbered `from` or above (written since sled's last checkpoint) are read
/// whole and handed to `apply`, in order; of the segments below, only the
/// headers are read. Returns every segment's places and the number the next
/// segment should take.
///
/// The last segment is cut back to the end of its last whole record: it may
/// end with an append a crash cut short, and it is closed from now on, so
/// that later reads of its headers find only whole records.
///
/// Errors: a segment that cannot be read, a damaged record from `from` on
/// anywhere but at the end of the last segment, or an error of `apply`. A
/// header that does not fit its segment below `from` ends what is read of
/// that segment (a watch from there is refused as compacted, see
/// `changelog`): it costs history, never objects.
pub(super) fn replay(
    dir: &Path,
    from: u64,
    mut apply: impl FnMut(Record) -> Result<(), StoreError>,
) -> Result<(Vec<Found>, u64), StoreError> {
    let segments = segments(dir)?;
    let count = segments.len();
    let mut found = Vec::with_capacity(count);
    for (i, (seq, path)) in segments.iter().enumerate() {
        let last_segment = i + 1 == count;
        if *seq < from && !last_segment {
            found.push(Found { seq: *seq, places: scan_headers(path)? });
            continue;
        }
        let bytes = std::fs::read(path).map_err(|err| failed("reading", path, err))?;
        let mut places = Vec::new();
        let mut at = 0;
        loop {
            match next_record(&bytes[at..]) {
                Next::Record(record, used) => {
                    places.push(Place { first: record.first, last: record.last, offset: at as u64, len: used as u64 });
                    at += used;
                    if *seq >= from {
                        apply(record)?;
                    }
                }
                // Past the last record of an earlier segment there are only
                // the zeros it was prepared with.
                Next::End if !last_segment && bytes[at..].iter().any(|&b| b != 0) => {
                    return Err(StoreError::Backend(format!(
                        "the store's write-ahead log is damaged: bytes after the end of the records at byte {at} of \
                         {}, which is not its last segment; restore the data directory from a backup",
                        path.display()
                    )))
                }
                Next::End => break,
                Next::Torn(what) if last_segment => {
                    // The crash came while this record was written: it was
                    // never acknowledged.
                    tracing::warn!(segment = %path.display(), offset = at, "{what}: the log ends here");
                    break;
                }
                Next::Torn(what) => {
                    return Err(StoreError::Backend(format!(
                        "the store's write-ahead log is damaged: {what} at byte {at} of {}, which is not its last \
                         segment; restore the data directory from a backup",
                        path.display()
                    )))
                }
            }
        }
        if last_segment && bytes.len() > at {
            cut_back(path, at as u64)?;
        }
        found.push(Found { seq: *seq, places });
    }
    Ok((found, segments.last().map_or(1, |(n, _)| n + 1)))
}

/// The places of a closed segment's records, from their headers alone.
fn scan_headers(path: &Path) -> Result<Vec<Place>, StoreError> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(|err| failed("opening", path, err))?;
    let size = file.metadata().map_err(|err| failed("reading", path, err))?.len();
    let mut places = Vec::new();
    let mut at = 0u64;
    let mut header = [0u8; HEADER + PAYLOAD_HEADER];
    while at + (HEADER + PAYLOAD_HEADER) as u64 <= size {
        file.read_exact_at(&mut header, at).map_err(|err| failed("reading", path, err))?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
        if len == 0 {
            break;
        }
        let end = at + HEADER as u64 + len;
        if len < PAYLOAD_HEADER as u64 || end > size {
            tracing::warn!(segment = %path.display(), offset = at, "a record header does not fit its segment");
            break;
        }
        let first = u64::from_be_bytes(header[HEADER..HEADER + 8].try_into().expect("8 bytes"));
        let last = u64::from_be_bytes(header[HEADER + 8..].try_into().expect("8 bytes"));
        places.push(Place { first, last, offset: at, len: end - at });
        at = end;
    }
    Ok(places)
}

/// Cuts the segment at `path` back to `len` bytes, durably.
fn cut_back(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|err| failed("opening", path, err))?;
    file.set_len(len).and_then(|()| file.sync_all()).map_err(|err| failed("cutting back", path, err))
}

/// The payload of the record at `place` of `file`, checked against its
/// checksum.
pub(super) fn read_payload(file: &File, seq: u64, place: &Place) -> Result<bytes::Bytes, StoreError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; place.len as usize];
    let damaged = |what: &str| {
        StoreError::Backend(format!(
            "the store's write-ahead log is damaged: {what} at byte {} of segment {seq}",
            place.offset
        ))
    };
    file.read_exact_at(&mut buf, place.offset).map_err(|err| damaged(&format!("reading a record failed ({err})")))?;
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..HEADER].try_into().expect("4 bytes"));
    if len + HEADER != buf.len() || crc32fast::hash(&buf[HEADER..]) != crc {
        return Err(damaged("a record that does not match its checksum"));
    }
    Ok(bytes::Bytes::from(buf).slice(HEADER..))
}

/// The puts of a record's payload (from [`read_payload`]) whose key starts
/// with `prefix`: each key and its value, as slices of the payload.
pub(super) fn puts_under(payload: &bytes::Bytes, prefix: u8) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>, StoreError> {
    let bad = || StoreError::Backend("a write-ahead log record matches its checksum but is malformed".into());
    let mut puts = Vec::new();
    let mut at = PAYLOAD_HEADER;
    let field = |at: usize| -> Option<(usize, usize)> {
        let len = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
        (at + 4 + len <= payload.len()).then_some((at + 4, at + 4 + len))
    };
    while at < payload.len() {
        let tag = payload[at];
        let (key_start, key_end) = field(at + 1).ok_or_else(bad)?;
        at = key_end;
        match tag {
            PUT => {
                let (value_start, value_end) = field(at).ok_or_else(bad)?;
                at = value_end;
                if payload[key_start..key_end].first() == Some(&prefix) {
                    puts.push((payload.slice(key_start..key_end), payload.slice(value_start..value_end)));
                }
            }
            REMOVE => {}
            _ => return Err(bad()),
        }
    }
    Ok(puts)
}

/// The name of the checkpoint mark in the log's directory.
const CHECKPOINT: &str = "checkpoint";

/// Marks that sled holds everything the segments numbered below `seq`
/// hold, so an open replays only from `seq` on; written atomically.
pub(super) fn write_checkpoint(dir: &Path, seq: u64) -> Result<(), StoreError> {
    let (tmp, path) = (dir.join(format!("{CHECKPOINT}.tmp")), dir.join(CHECKPOINT));
    let mut file = File::create(&tmp).map_err(|err| failed("creating", &tmp, err))?;
    file.write_all(format!("{seq}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| failed("writing", &tmp, err))?;
    std::fs::rename(&tmp, &path).map_err(|err| failed("renaming into place", &tmp, err))?;
    sync_dir(dir)
}

/// The segment the last checkpoint marked (see [`write_checkpoint`]); 0,
/// replay everything, when there is no mark or it cannot be read.
pub(super) fn read_checkpoint(dir: &Path) -> u64 {
    let path = dir.join(CHECKPOINT);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(mark = %path.display(), "the checkpoint mark is not a number; replaying the whole log");
            0
        }),
        Err(_) => 0,
    }
}

/// Opens segment `seq` of `dir` for reading.
pub(super) fn open_segment(dir: &Path, seq: u64) -> Result<File, StoreError> {
    let path = segment_path(dir, seq);
    File::open(&path).map_err(|err| failed("opening", &path, err))
}

/// Removes segment `seq` of `dir`.
pub(super) fn remove_segment(dir: &Path, seq: u64) -> Result<(), StoreError> {
    let path = segment_path(dir, seq);
    std::fs::remove_file(&path).map_err(|err| failed("removing", &path, err))
}

/// The segments of `dir`, by number; none when it does not exist.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(failed("listing", dir, err)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| failed("listing", dir, err))?;
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse().ok()) else {
            continue;
        };
        found.push((n, entry.path()));
    }
    found.sort_unstable();
    Ok(found)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

fn preparing_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{PREPARING_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|err| failed("syncing", dir, err))
}

fn failed(what: &str, path: &Path, err: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} the store's write-ahead log {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(first: Revision, last: Revision, puts: &[(&str, &str)], removes: &[&str]) -> Vec<u8> {
        let mut staged = Staged::new(first, Vec::new());
        for (k, v) in puts {
            staged.insert(k.as_bytes(), IVec::from(v.as_bytes()));
        }
        for k in removes {
            staged.remove(k.as_bytes());
        }
        staged.seal(last).1
    }

    fn read_all(dir: &Path) -> Result<(Vec<Record>, u64), StoreError> {
        let mut records = Vec::new();
        let (_, next) = replay(dir, 0, |r| {
            records.push(r);
            Ok(())
        })?;
        Ok((records, next))
    }

    #[test]
    fn a_sealed_record_reads_back_as_its_revisions_and_ops_in_order() {
        let bytes = sealed(7, 9, &[("oa", "1"), ("ob", "")], &["oc"]);
        let Next::Record(record, used) = next_record(&bytes) else { panic!("not a record") };
        assert_eq!(used, bytes.len());
        assert_eq!(record.first, 7);
        assert_eq!(record.last, 9);
        let ops =
            vec![(b"oa".to_vec(), Some(b"1".to_vec())), (b"ob".to_vec(), Some(Vec::new())), (b"oc".to_vec(), None)];
        assert_eq!(record.ops, ops);
    }

    #[test]
    fn a_record_cut_anywhere_or_with_a_flipped_bit_is_torn() {
        let bytes = sealed(1, 1, &[("oa", "value")], &["ob"]);
        for cut in 1..bytes.len() {
            assert!(matches!(next_record(&bytes[..cut]), Next::Torn(_)), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(!matches!(next_record(&flipped), Next::Record(..)), "bit flipped at byte {at}");
        }
    }

    #[test]
    fn replay_reads_segments_in_order_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let mut log = Log::create(&wal, 9, SEGMENT_BYTES).unwrap();
        log.append(&sealed(1, 1, &[("oa", "1")], &[])).unwrap();
        assert_eq!(log.rotate().unwrap(), 10);
        log.append(&sealed(2, 3, &[("ob", "1")], &["oa"])).unwrap();
        // A crash half-way through the next append.
        let torn = sealed(4, 4, &[("oc", "1")], &[]);
        log.file.write_all(&torn[..torn.len() / 2]).unwrap();

        let (records, next) = read_all(&wal).unwrap();
        assert_eq!(records.iter().map(|r| (r.first, r.last)).collect::<Vec<_>>(), vec![(1, 1), (2, 3)]);
        assert_eq!(next, 11);
    }

    #[test]
    fn damage_before_the_last_segment_is_an_error_not_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let mut log = Log::create(&wal, 1, SEGMENT_BYTES).unwrap();
        log.append(&sealed(1, 1, &[("oa", "1")], &[])).unwrap();
        log.rotate().unwrap();
        log.append(&sealed(2, 2, &[("ob", "1")], &[])).unwrap();
        edit_segment(&wal, 1, |bytes| {
            let end = bytes.len() - 1;
            bytes[end] ^= 1;
        });

        let err = read_all(&wal).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_missing_log_is_empty_and_segments_before_the_checkpoint_are_indexed_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        assert_eq!(read_all(&wal).unwrap(), (Vec::new(), 1));
        assert_eq!(read_checkpoint(&wal), 0, "no mark: replay everything");
        let mut log = Log::create(&wal, 1, SEGMENT_BYTES).unwrap();
        log.append(&sealed(1, 1, &[("oa", "1")], &[])).unwrap();
        log.append(&sealed(2, 4, &[("ob", "1")], &[])).unwrap();
        log.rotate().unwrap();
        assert_eq!(log.append(&sealed(5, 5, &[("oc", "2")], &[])).unwrap(), 0, "a new segment starts at 0");
        write_checkpoint(&wal, 2).unwrap();
        assert_eq!(read_checkpoint(&wal), 2);

        let mut replayed = Vec::new();
        let (found, next) = replay(&wal, read_checkpoint(&wal), |r| {
            replayed.push(r.first);
            Ok(())
        })
        .unwrap();
        assert_eq!(replayed, vec![5], "only the segments from the mark on are replayed");
        assert_eq!(next, 3);
        // The headers alone give the same places as reading every record.
        let (whole, _) = replay(&wal, 0, |_| Ok(())).unwrap();
        assert_eq!(found, whole);
        let revisions: Vec<Vec<(Revision, Revision)>> =
            found.iter().map(|f| f.places.iter().map(|p| (p.first, p.last)).collect()).collect();
        assert_eq!(revisions, vec![vec![(1, 1), (2, 4)], vec![(5, 5)]]);
        assert_eq!(found[0].places[1].offset, found[0].places[0].len);

        remove_segment(&wal, 1).unwrap();
        assert_eq!(read_all(&wal).unwrap().0.iter().map(|r| r.first).collect::<Vec<_>>(), vec![5]);
        std::fs::write(wal.join(CHECKPOINT), "not a number").unwrap();
        assert_eq!(read_checkpoint(&wal), 0, "a mark that cannot be read replays everything");
    }

    #[test]
    fn the_last_segment_is_cut_back_to_its_last_whole_record_and_reads_back_by_place() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let mut log = Log::create(&wal, 1, SEGMENT_BYTES).unwrap();
        let mut staged = Staged::new(1, Vec::new());
        staged.insert(b"oa", IVec::from(&b"object"[..]));
        staged.log(b"lrun-one", b"events");
        staged.remove(b"ob");
        staged.log(b"lrun-two", b"more events");
        let whole = staged.seal(2).1;
        log.append(&whole).unwrap();
        let torn = sealed(3, 3, &[("oc", "1")], &[]);
        log.file.write_all(&torn[..torn.len() - 3]).unwrap();

        let (found, _) = replay(&wal, 0, |_| Ok(())).unwrap();
        let place = found[0].places[0];
        assert_eq!(found[0].places.len(), 1);
        let size = std::fs::metadata(segment_path(&wal, 1)).unwrap().len();
        assert_eq!(size, whole.len() as u64, "the torn append was cut off");
        assert_eq!(scan_headers(&segment_path(&wal, 1)).unwrap(), vec![place]);

        let file = open_segment(&wal, 1).unwrap();
        let payload = read_payload(&file, 1, &place).unwrap();
        let puts: Vec<(Vec<u8>, Vec<u8>)> =
            puts_under(&payload, b'l').unwrap().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(
            puts,
            vec![(b"lrun-one".to_vec(), b"events".to_vec()), (b"lrun-two".to_vec(), b"more events".to_vec())]
        );
        // The log-only puts do not go to sled on a replay.
        let Next::Record(record, _) = next_record(&whole) else { panic!("not a record") };
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        record.into_writes().apply(&db).unwrap();
        assert_eq!(db.iter().keys().map(|k| k.unwrap().to_vec()).collect::<Vec<_>>(), vec![b"oa".to_vec()]);
        // A flipped bit is damage, reported with the segment.
        edit_segment(&wal, 1, |bytes| bytes[30] ^= 1);
        let err = read_payload(&open_segment(&wal, 1).unwrap(), 1, &place).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("segment 1"), "{err}");
    }

    /// Rewrites segment `seq` of `wal` as `edit` leaves its bytes: damage
    /// as a crash or a bad disk would leave it.
    fn edit_segment(wal: &Path, seq: u64, edit: impl FnOnce(&mut Vec<u8>)) {
        let path = segment_path(wal, seq);
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
    }

    /// A log of `limit`-byte segments with records appended until the next
    /// segment was prepared, then rotated onto it.
    fn rotated_onto_a_prepared_segment(wal: &Path, limit: u64) -> Log {
        let mut log = Log::create(wal, 1, limit).unwrap();
        let mut revision = 0;
        while log.next.is_none() {
            revision += 1;
            log.append(&sealed(revision, revision, &[("oa", "some value")], &[])).unwrap();
        }
        assert_eq!(log.rotate().unwrap(), 2);
        log
    }

    #[test]
    fn a_half_full_segment_prepares_the_next_one_which_its_zeros_end() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let mut log = rotated_onto_a_prepared_segment(&wal, 4096);
        let size = std::fs::metadata(segment_path(&wal, 2)).unwrap().len();
        assert_eq!(size, 4096 + 512, "the rotation took the prepared segment, zeros past the limit");
        assert!(!preparing_path(&wal, 2).exists(), "renamed into place");
        log.append(&sealed(100, 100, &[("ob", "1")], &[])).unwrap();
        log.append(&sealed(101, 101, &[("oc", "2")], &[])).unwrap();
        assert_eq!(std::fs::metadata(segment_path(&wal, 2)).unwrap().len(), size, "appends go into the zeros");

        let (records, next) = read_all(&wal).unwrap();
        let last: Vec<_> = records.iter().rev().take(2).map(|r| r.first).collect();
        assert_eq!(last, vec![101, 100], "the zeros after the last record end the log");
        assert_eq!(next, 3);
    }

    #[test]
    fn past_the_zeros_only_the_last_segment_may_hold_a_cut_short_append() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let mut log = rotated_onto_a_prepared_segment(&wal, 4096);
        log.append(&sealed(100, 100, &[("ob", "1")], &[])).unwrap();
        // A crash wrote the second page of the next record, not its first.
        edit_segment(&wal, 2, |bytes| bytes[4000] = 7);
        let (records, _) = read_all(&wal).unwrap();
        assert_eq!(records.last().map(|r| r.first), Some(100), "the last segment ends at its zeros");
        let end = std::fs::metadata(segment_path(&wal, 2)).unwrap().len();
        assert!(end < 4000, "the last segment was cut back to its records, {end} bytes");

        // The same bytes in a segment followed by another are damage.
        log.rotate().unwrap();
        log.append(&sealed(101, 101, &[("oc", "1")], &[])).unwrap();
        edit_segment(&wal, 2, |bytes| {
            bytes.resize(4001, 0);
            bytes[4000] = 7;
        });
        let err = read_all(&wal).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("after the end of the records"), "{err}");
    }

    #[test]
    fn segments_left_half_prepared_go_when_a_log_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(WAL_DIR);
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(preparing_path(&wal, 5), [0u8; 100]).unwrap();
        let _log = Log::create(&wal, 5, SEGMENT_BYTES).unwrap();
        assert!(!preparing_path(&wal, 5).exists());
        assert_eq!(read_all(&wal).unwrap(), (Vec::new(), 6));
    }

    #[test]
    fn a_record_replays_as_the_writes_it_was_staged_with() {
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        db.insert("oc", "old").unwrap();
        let bytes = sealed(1, 2, &[("oa", "1"), ("ob", "2"), ("oa", "3")], &["oc"]);
        let Next::Record(record, _) = next_record(&bytes) else { panic!("not a record") };
        record.into_writes().apply(&db).unwrap();
        assert_eq!(db.get("oa").unwrap().unwrap(), b"3"[..]);
        assert_eq!(db.get("ob").unwrap().unwrap(), b"2"[..]);
        assert_eq!(db.get("oc").unwrap(), None);
    }
}
