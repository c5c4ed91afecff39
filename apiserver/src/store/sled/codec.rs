//! Byte layout of the sled store's one tree.
//!
//! Owns how objects, change-log entries and meta counters are keyed, encoded
//! and decoded. It must not touch sled itself beyond `IVec`: reading and
//! writing the tree belongs to the other modules.
//!
//! Everything sled holds lives in the tree [`TREE`], in key spaces told
//! apart by the key's first byte:
//!
//! - objects: `o | key` → `create_revision (u64 BE) | mod_revision (u64 BE) | value`
//! - log: `l | revision (u64 BE) | index (u32 BE)` → one event or a run of
//!   events. The committer puts the runs in the write-ahead log's records
//!   alone (see `changelog`); sled holds them only for stores written before
//!   that, until compacted. An event is
//!   `kind (u8: 0, 1, 2) | key length (u32 BE) | key | value length (u32 BE) | value | prev_value`,
//!   at the key's revision; a run is `3 | (revision (u64 BE) | event length
//!   (u32 BE) | event)*`, keyed by the revision of its last event. The
//!   committer writes a batch's events as runs of up to [`RUN_BYTES`] (one
//!   sled insert for several events); single events are what stores
//!   written before runs hold, and are still read. In a write-ahead log
//!   record an event whose new value the same record puts under the
//!   object's key leaves it out: `kind (u8: 4 created, 5 updated) | key
//!   length (u32 BE) | key | prev_value`, its value being that put's (the
//!   one whose `mod_revision` is the event's revision, less the object
//!   header). Logs written before hold every value inline, and are still
//!   read.
//! - meta: [`META_REVISION`], [`META_COMPACTED`] and [`META_LAYOUT`] → `u64 BE`
//!
//! Stores written before the one-tree layout kept the same records in the
//! trees `objects`, `log` and `meta` without the prefix byte (see `migrate`).

use ::sled::IVec;
use bytes::Bytes;

use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// The name of the store's tree.
pub(super) const TREE: &str = "store";

/// First byte of every object key.
pub(super) const OBJECT_PREFIX: u8 = b'o';
/// First byte of every change-log key.
pub(super) const LOG_PREFIX: u8 = b'l';
/// First byte of every meta key.
pub(super) const META_PREFIX: u8 = b'm';

/// Meta key holding the last applied revision.
pub(super) const META_REVISION: &[u8] = b"mrevision";
/// Meta key holding the compacted revision.
pub(super) const META_COMPACTED: &[u8] = b"mcompacted";
/// Meta key holding the layout version ([`LAYOUT`]); written once the store
/// is in the one-tree layout, so a migration knows it has finished.
pub(super) const META_LAYOUT: &[u8] = b"mlayout";
/// The layout version this code writes.
pub(super) const LAYOUT: u64 = 2;

const OBJECT_HEADER: usize = 16;

/// Length of a change-log key.
pub(super) const LOG_KEY_LEN: usize = 13;

/// The tree key of the object stored under `key`.
pub(super) fn object_key(key: &str) -> Vec<u8> {
    prefixed(OBJECT_PREFIX, key.as_bytes())
}

/// `prefix` followed by `rest`.
pub(super) fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + rest.len());
    buf.push(prefix);
    buf.extend_from_slice(rest);
    buf
}

/// Encodes an object record.
pub(super) fn encode_object(create_revision: Revision, mod_revision: Revision, value: &[u8]) -> IVec {
    let mut buf = Vec::with_capacity(OBJECT_HEADER + value.len());
    buf.extend_from_slice(&create_revision.to_be_bytes());
    buf.extend_from_slice(&mod_revision.to_be_bytes());
    buf.extend_from_slice(value);
    IVec::from(buf)
}

/// The revisions and value of an object record, without copying the value.
pub(super) struct ObjectRecord {
    pub(super) create_revision: Revision,
    pub(super) mod_revision: Revision,
    pub(super) value: Bytes,
}

/// Decodes an object record stored under `key`.
pub(super) fn decode_object(key: &str, raw: IVec) -> Result<ObjectRecord, StoreError> {
    if raw.len() < OBJECT_HEADER {
        return Err(corrupt("object", key));
    }
    let create_revision = read_u64(&raw[0..8]);
    let mod_revision = read_u64(&raw[8..16]);
    let value = Bytes::from_owner(raw).slice(OBJECT_HEADER..);
    Ok(ObjectRecord { create_revision, mod_revision, value })
}

/// Decodes an object record into the contract's `KeyValue`.
pub(super) fn decode_key_value(key: String, raw: IVec) -> Result<KeyValue, StoreError> {
    let record = decode_object(&key, raw)?;
    Ok(KeyValue {
        key,
        value: record.value,
        create_revision: record.create_revision,
        mod_revision: record.mod_revision,
    })
}

/// Turns a stored object's tree key back into the contract's key.
pub(super) fn decode_key(raw: &[u8]) -> Result<String, StoreError> {
    match raw.split_first() {
        Some((&OBJECT_PREFIX, key)) => {
            String::from_utf8(key.to_vec()).map_err(|_| StoreError::Backend("a stored key is not valid UTF-8".into()))
        }
        _ => Err(StoreError::Backend(format!("{:?} is not an object key", String::from_utf8_lossy(raw)))),
    }
}

/// The change-log key of the `index`-th event of `revision`.
pub(super) fn log_key(revision: Revision, index: u32) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[0] = LOG_PREFIX;
    key[1..9].copy_from_slice(&revision.to_be_bytes());
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The revision a change-log key belongs to.
pub(super) fn log_key_revision(raw: &[u8]) -> Result<Revision, StoreError> {
    if raw.len() != LOG_KEY_LEN || raw[0] != LOG_PREFIX {
        return Err(StoreError::Backend(format!(
            "change-log key {raw:?} is not {LOG_KEY_LEN} bytes starting with {LOG_PREFIX:?}"
        )));
    }
    Ok(read_u64(&raw[1..9]))
}

/// Encodes one change-log event, as stores written before runs hold them.
#[cfg(test)]
pub(super) fn encode_event(kind: &EventKind, key: &str, value: &[u8], prev_value: &[u8]) -> IVec {
    let mut buf = Vec::with_capacity(9 + key.len() + value.len() + prev_value.len());
    write_event(&mut buf, kind, key, Some(value), prev_value);
    IVec::from(buf)
}

/// Writes one event; `value` `None`: the record it goes in puts the value
/// under the object's key (see the module docs).
fn write_event(buf: &mut Vec<u8>, kind: &EventKind, key: &str, value: Option<&[u8]>, prev_value: &[u8]) {
    let code = match kind {
        EventKind::Created => 0,
        EventKind::Updated => 1,
        EventKind::Deleted => 2,
    };
    buf.push(if value.is_none() { code + IN_RECORD } else { code });
    buf.extend_from_slice(&len_u32(key.len()).to_be_bytes());
    buf.extend_from_slice(key.as_bytes());
    if let Some(value) = value {
        buf.extend_from_slice(&len_u32(value.len()).to_be_bytes());
        buf.extend_from_slice(value);
    }
    buf.extend_from_slice(prev_value);
}

/// Added to an event's kind when its value is the record's put (4, 5).
const IN_RECORD: u8 = 4;

/// Whether an encoded event leaves its value to the record it is in: the
/// value is then the one the record puts under `object_key` of the event's
/// key at the event's revision.
pub(super) fn value_in_record(raw: &[u8]) -> bool {
    matches!(raw.first(), Some(&k) if k == IN_RECORD || k == IN_RECORD + 1)
}

/// The value of the object put `raw` (an object record, see
/// [`encode_object`]) if it was written at `revision`.
pub(super) fn object_value_at(raw: &Bytes, revision: Revision) -> Option<Bytes> {
    (raw.len() >= OBJECT_HEADER && read_u64(&raw[8..16]) == revision).then(|| raw.slice(OBJECT_HEADER..))
}

/// First byte of a change-log entry holding a run of events.
const RUN: u8 = 3;

/// The most bytes a run of several events holds. sled splits a leaf past 16
/// entries and writes any page over 128 KiB (a quarter of its 512 KiB
/// segment) as a file of its own, at every rewrite of the page: 17 runs
/// must stay below that. An event larger than this is a run of its own.
pub(super) const RUN_BYTES: usize = 7 << 10;

/// Encodes events into change-log runs; see the module docs.
#[derive(Default)]
pub(super) struct Runs {
    /// Closed runs with the revision of their last event.
    closed: Vec<(Revision, Vec<u8>)>,
    open: Vec<u8>,
    last: Revision,
}

impl Runs {
    /// Appends an event written at `revision` (not below the last one);
    /// `value` `None`: the record the runs go in puts it (see the module
    /// docs).
    pub(super) fn push(
        &mut self,
        revision: Revision,
        kind: &EventKind,
        key: &str,
        value: Option<&[u8]>,
        prev_value: &[u8],
    ) {
        let len = 5 + key.len() + value.map_or(0, |v| 4 + v.len()) + prev_value.len();
        if !self.open.is_empty() && self.open.len() + 12 + len > RUN_BYTES {
            self.closed.push((self.last, std::mem::take(&mut self.open)));
        }
        if self.open.is_empty() {
            self.open.push(RUN);
        }
        self.open.extend_from_slice(&revision.to_be_bytes());
        self.open.extend_from_slice(&len_u32(len).to_be_bytes());
        write_event(&mut self.open, kind, key, value, prev_value);
        self.last = revision;
    }

    /// The runs as change-log entries `(key, value)`, in key order.
    pub(super) fn entries(mut self) -> impl Iterator<Item = ([u8; LOG_KEY_LEN], Vec<u8>)> {
        if !self.open.is_empty() {
            self.closed.push((self.last, self.open));
        }
        // Runs of one batch may end at the same revision: the index keeps
        // their keys apart and in order.
        self.closed.into_iter().enumerate().map(|(i, (revision, run))| (log_key(revision, len_u32(i)), run))
    }
}

/// The events of the change-log entry under a key of `key_revision`: each
/// event's revision and encoded bytes, in order.
pub(super) fn entry_events(
    key_revision: Revision,
    raw: &[u8],
) -> Result<Vec<(Revision, std::ops::Range<usize>)>, StoreError> {
    if raw.first() != Some(&RUN) {
        return Ok(vec![(key_revision, 0..raw.len())]);
    }
    let bad = || StoreError::Backend(format!("corrupt change-log run ending at revision {key_revision}"));
    let mut events = Vec::new();
    let mut at = 1;
    while at < raw.len() {
        let header = raw.get(at..at + 12).ok_or_else(bad)?;
        let (revision, len) = (read_u64(&header[..8]), read_u32(&header[8..]) as usize);
        let start = at + 12;
        if start + len > raw.len() {
            return Err(bad());
        }
        events.push((revision, start..start + len));
        at = start + len;
    }
    Ok(events)
}

/// The key bytes of an encoded event, to filter by prefix before decoding.
pub(super) fn event_key(raw: &[u8]) -> Option<&[u8]> {
    let len = read_u32(raw.get(1..5)?) as usize;
    raw.get(5..5 + len)
}

/// Decodes one change-log event written at `revision`.
#[cfg(test)]
pub(super) fn decode_event(revision: Revision, raw: IVec) -> Result<WatchEvent, StoreError> {
    decode_event_bytes(revision, Bytes::from_owner(raw), None)
}

/// [`decode_event`] of bytes that may be a slice of a run; `in_record` is
/// the value of an event that leaves it to its record ([`value_in_record`]),
/// which such an event cannot do without.
pub(super) fn decode_event_bytes(
    revision: Revision,
    raw: Bytes,
    in_record: Option<Bytes>,
) -> Result<WatchEvent, StoreError> {
    let bad = || StoreError::Backend(format!("corrupt change-log event at revision {revision}"));
    let (kind, inline) = match raw.first() {
        Some(0) => (EventKind::Created, true),
        Some(1) => (EventKind::Updated, true),
        Some(2) => (EventKind::Deleted, true),
        Some(4) => (EventKind::Created, false),
        Some(5) => (EventKind::Updated, false),
        _ => return Err(bad()),
    };
    let key_end = 5 + event_key(&raw).ok_or_else(bad)?.len();
    let key = std::str::from_utf8(&raw[5..key_end]).map_err(|_| bad())?.to_owned();
    let (value, prev_start) = match inline {
        true => {
            let value_len = read_u32(raw.get(key_end..key_end + 4).ok_or_else(bad)?) as usize;
            let value_start = key_end + 4;
            let value_end = value_start + value_len;
            if value_end > raw.len() {
                return Err(bad());
            }
            (raw.slice(value_start..value_end), value_end)
        }
        false => (
            in_record.ok_or_else(|| {
                StoreError::Backend(format!("the log record of revision {revision} lacks the value of {key}"))
            })?,
            key_end,
        ),
    };
    Ok(WatchEvent { revision, kind, key, value, prev_value: raw.slice(prev_start..), memo: Default::default() })
}

/// Decodes a meta counter; absent means 0.
pub(super) fn decode_counter(name: &[u8], raw: Option<IVec>) -> Result<u64, StoreError> {
    match raw {
        None => Ok(0),
        Some(raw) if raw.len() == 8 => Ok(read_u64(&raw)),
        Some(_) => {
            let name = String::from_utf8_lossy(name.strip_prefix(&[META_PREFIX]).unwrap_or(name)).into_owned();
            Err(StoreError::Backend(format!("meta counter {name} is corrupt")))
        }
    }
}

fn corrupt(what: &str, key: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what} record for key {key:?}"))
}

fn read_u64(raw: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&raw[..8]);
    u64::from_be_bytes(buf)
}

fn read_u32(raw: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&raw[..4]);
    u32::from_be_bytes(buf)
}

fn len_u32(len: usize) -> u32 {
    // Keys and values above 4 GiB are refused by sled long before this point.
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_round_trip() {
        let raw = encode_object(3, 7, b"hello");
        let kv = decode_key_value("/a".into(), raw).unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, &kv.value[..]), (3, 7, &b"hello"[..]));
    }

    #[test]
    fn event_round_trip_and_prefix_key() {
        let raw = encode_event(&EventKind::Updated, "/tasks/a", b"new", b"old");
        assert_eq!(event_key(&raw), Some(&b"/tasks/a"[..]));
        let ev = decode_event(9, raw).unwrap();
        assert_eq!(ev.kind, EventKind::Updated);
        assert_eq!((ev.revision, ev.key.as_str()), (9, "/tasks/a"));
        assert_eq!((&ev.value[..], &ev.prev_value[..]), (&b"new"[..], &b"old"[..]));
    }

    #[test]
    fn runs_give_back_every_event_in_order_under_ascending_keys() {
        let mut runs = Runs::default();
        let big = vec![b'x'; RUN_BYTES / 3];
        let huge = vec![b'y'; RUN_BYTES * 2];
        let mut pushed = Vec::new();
        for (revision, value) in
            [(5, &b"a"[..]), (5, &big[..]), (6, &big[..]), (6, &big[..]), (7, &big[..]), (7, &huge[..]), (8, &b"z"[..])]
        {
            let key = format!("/k/{}", pushed.len());
            runs.push(revision, &EventKind::Updated, &key, Some(value), b"before");
            pushed.push((revision, key, value.to_vec()));
        }
        let entries: Vec<_> = runs.entries().collect();
        assert!(entries.len() >= 2, "{} runs", entries.len());
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "keys ascend");
        let mut read = Vec::new();
        for (key, raw) in entries {
            assert!(raw.len() <= RUN_BYTES || entry_events(0, &raw).unwrap().len() == 1, "an overfull run");
            let key_revision = log_key_revision(&key).unwrap();
            let events = entry_events(key_revision, &raw).unwrap();
            assert_eq!(events.last().unwrap().0, key_revision, "a run is keyed by its last event");
            let raw = Bytes::copy_from_slice(&raw);
            for (revision, at) in events {
                let ev = decode_event_bytes(revision, raw.slice(at), None).unwrap();
                assert_eq!(&ev.prev_value[..], b"before");
                read.push((ev.revision, ev.key, ev.value.to_vec()));
            }
        }
        assert_eq!(read, pushed);
        // A single event, as older stores hold them, is an entry of one.
        let single = encode_event(&EventKind::Created, "/a", b"v", b"");
        assert_eq!(entry_events(9, &single).unwrap(), vec![(9, 0..single.len())]);
        assert!(entry_events(9, &[RUN, 0, 0]).is_err(), "a cut run is corrupt");
    }

    #[test]
    fn an_event_left_to_its_record_needs_the_record_value() {
        let mut runs = Runs::default();
        runs.push(4, &EventKind::Created, "/a", None, b"");
        runs.push(5, &EventKind::Updated, "/a", None, b"first");
        let (key, raw) = runs.entries().next().unwrap();
        let raw = Bytes::from(raw);
        let events = entry_events(log_key_revision(&key).unwrap(), &raw).unwrap();
        let (created, updated) = (raw.slice(events[0].1.clone()), raw.slice(events[1].1.clone()));
        assert!(value_in_record(&created) && value_in_record(&updated));
        assert_eq!(event_key(&updated), Some(&b"/a"[..]));
        let ev = decode_event_bytes(5, updated.clone(), Some(Bytes::from_static(b"second"))).unwrap();
        assert_eq!((ev.kind, &ev.value[..], &ev.prev_value[..]), (EventKind::Updated, &b"second"[..], &b"first"[..]));
        let ev = decode_event_bytes(4, created, Some(Bytes::from_static(b"first"))).unwrap();
        assert_eq!((ev.kind, &ev.value[..], &ev.prev_value[..]), (EventKind::Created, &b"first"[..], &b""[..]));
        assert!(decode_event_bytes(5, updated, None).is_err(), "its value must come from the record");
        // The put it takes the value from is the one at its revision.
        let put = Bytes::from(encode_object(4, 5, b"second").to_vec());
        assert_eq!(object_value_at(&put, 5).as_deref(), Some(&b"second"[..]));
        assert_eq!(object_value_at(&put, 4), None);
        assert!(!value_in_record(&encode_event(&EventKind::Updated, "/a", b"v", b"")));
    }

    #[test]
    fn log_keys_sort_by_revision_then_index() {
        assert!(log_key(1, 5) < log_key(2, 0));
        assert!(log_key(256, 0) > log_key(255, 9));
        assert_eq!(log_key_revision(&log_key(42, 3)).unwrap(), 42);
        // The log's key space lies below the meta and object key spaces.
        assert!(log_key(0, 0)[0] == LOG_PREFIX && log_key(u64::MAX, u32::MAX).as_slice() < META_COMPACTED);
        assert!(META_REVISION < &object_key("")[..] && META_LAYOUT < &object_key("")[..]);
        assert!(log_key_revision(&object_key("/abcdefghijkl")).is_err());
    }

    #[test]
    fn object_keys_round_trip_and_refuse_other_spaces() {
        assert_eq!(decode_key(&object_key("/tasks/a")).unwrap(), "/tasks/a");
        assert!(decode_key(&log_key(1, 0)).is_err());
        assert!(decode_key(META_REVISION).is_err());
    }

    #[test]
    fn truncated_records_are_errors() {
        assert!(decode_object("/a", IVec::from(&b"short"[..])).is_err());
        assert!(decode_event(1, IVec::from(&[0u8, 0, 0, 0, 9, b'a'][..])).is_err());
    }
}
