//! A bounded memo of what a store's consumer derived from the values it
//! recently wrote, keyed by key and revision.
//!
//! Owns the map and its bound. The apiserver leaves here the decoded object
//! it just wrote, so the next update of the same key (a controller's status
//! write, a client's PUT of what it read back) takes it instead of decoding
//! the stored bytes again. Like [`super::EventMemo`], the store neither fills
//! nor reads it: it holds whatever the consumer puts in.
//!
//! # Why an entry cannot be wrong
//!
//! A key's value at a given revision never changes, so an entry put for
//! `(key, revision)` is what that value decodes to for as long as it is asked
//! for with that revision; a newer write of the key makes the entry
//! unreachable, never stale. Losing an entry (the bound, a take by a racing
//! writer, a restart) only costs the decode it would have saved.
//!
//! # Which entries make room
//!
//! The oldest put first. Every use of an entry is a take followed by a put
//! of the key's next value, so the keys in use are always the youngest and
//! the ones no longer written go first: least recently used, in effect.
//!
//! It must not grow past its capacity (a total of the weights its consumer
//! gives, such as stored bytes), and it must not hold its lock while a value
//! is dropped.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::Revision;

/// The total weight a store's memo holds by default. The apiserver weighs an
/// object by its stored bytes, so this is some 8,000 Tasks: the objects a
/// busy cluster's controllers update within seconds of writing them, in
/// tens of MiB once decoded.
pub const DEFAULT_CAPACITY: usize = 8 << 20;

/// The heaviest entry is this fraction of the capacity: one huge object does
/// not empty the memo.
const LARGEST_SHARE: usize = 64;

/// What one key's entry holds.
struct Entry {
    revision: Revision,
    weight: usize,
    /// When it was put (`Entries::puts` then).
    put: u64,
    value: Box<dyn Any + Send>,
}

/// The entries, their total weight and the order they were put in.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    weight: usize,
    /// Keys in the order their entries were put, with when: an item whose
    /// key's entry was put later (or taken) is stale and skipped.
    order: VecDeque<(String, u64)>,
    /// Puts so far.
    puts: u64,
}

impl Entries {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.weight -= entry.weight;
        Some(entry)
    }

    fn insert(&mut self, key: &str, revision: Revision, weight: usize, value: Box<dyn Any + Send>) {
        self.puts += 1;
        self.weight += weight;
        self.order.push_back((key.to_string(), self.puts));
        self.map.insert(key.to_string(), Entry { revision, weight, put: self.puts, value });
        // Stale items are dropped once they outnumber the live ones.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|(key, put)| map.get(key).is_some_and(|e| e.put == *put));
        }
    }

    /// Removes the entry put longest ago.
    fn remove_oldest(&mut self) -> Option<Entry> {
        while let Some((key, put)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.put == put) {
                return self.remove(&key);
            }
        }
        None
    }
}

/// A bounded map from a key to one value derived from the key's value at one
/// revision. See the module doc.
pub struct KeyMemo {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl KeyMemo {
    /// An empty memo of at most `capacity` in total weight (0 keeps
    /// nothing).
    pub fn new(capacity: usize) -> KeyMemo {
        KeyMemo { entries: Mutex::new(Entries::default()), capacity }
    }

    /// The total weight it may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes the entry of `key` if it was put for `revision` and holds a `T`.
    /// The key's entry is gone afterwards either way: one of another revision
    /// can no longer be asked for.
    pub fn take<T: Any>(&self, key: &str, revision: Revision) -> Option<T> {
        self.take_latest(key).and_then(|(put_for, value, _)| (put_for == revision).then_some(value))
    }

    /// Takes the entry of `key` whatever its revision, if it holds a `T`:
    /// the revision it was put for, the value and its weight. Nothing says
    /// that revision is still the key's: a caller must check it, as a write
    /// that compares the key's revision with it does. The entry is gone
    /// afterwards either way.
    pub fn take_latest<T: Any>(&self, key: &str) -> Option<(Revision, T, usize)> {
        let (revision, value, weight) = self.take_latest_any(key)?;
        value.downcast::<T>().ok().map(|value| (revision, *value, weight))
    }

    /// [`KeyMemo::take_latest`] of whatever the entry holds, for a caller
    /// that can use values of several types.
    pub fn take_latest_any(&self, key: &str) -> Option<(Revision, Box<dyn Any + Send>, usize)> {
        let entry = self.lock().remove(key)?;
        Some((entry.revision, entry.value, entry.weight))
    }

    /// Leaves `value`, of `weight`, as what the value of `key` at `revision`
    /// gives, replacing the key's entry. The entries put longest ago make
    /// room when the memo is full; a value heavier than a 64th of the
    /// capacity is not kept (nor is the key's older entry).
    pub fn put<T: Any + Send>(&self, key: &str, revision: Revision, value: T, weight: usize) {
        self.keep(key, revision, Box::new(value), weight, true);
    }

    /// [`KeyMemo::put`] when that needs no other key's entry to make room;
    /// otherwise the memo stays as it is. For values that may never be asked
    /// for (a new key's): making room means dropping an entry put long ago,
    /// whose memory is no longer in the processor's caches.
    pub fn offer<T: Any + Send>(&self, key: &str, revision: Revision, value: T, weight: usize) {
        self.keep(key, revision, Box::new(value), weight, false);
    }

    /// [`KeyMemo::put`] (`make_room`) or [`KeyMemo::offer`].
    fn keep(&self, key: &str, revision: Revision, value: Box<dyn Any + Send>, weight: usize, make_room: bool) {
        let mut dropped = Vec::new();
        let mut entries = self.lock();
        let heavy = weight.saturating_mul(LARGEST_SHARE) > self.capacity;
        let held = entries.map.get(key).map_or(0, |e| e.weight);
        if !make_room && (heavy || entries.weight - held + weight > self.capacity) {
            return;
        }
        dropped.extend(entries.remove(key));
        if !heavy {
            while entries.weight + weight > self.capacity {
                let Some(oldest) = entries.remove_oldest() else { break };
                dropped.push(oldest);
            }
            entries.insert(key, revision, weight, value);
        }
        drop(entries);
        drop(dropped);
    }

    /// How many keys have an entry.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The total weight of the entries.
    pub fn weight(&self) -> usize {
        self.lock().weight
    }

    /// Whether no key has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMemo").field("len", &self.len()).field("capacity", &self.capacity).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A memo with room for `n` entries of weight 1.
    fn room_for(n: usize) -> KeyMemo {
        KeyMemo::new(n * LARGEST_SHARE)
    }

    #[test]
    fn an_entry_is_taken_once_and_only_at_its_revision() {
        let memo = room_for(8);
        memo.put("/a", 5, String::from("five"), 1);
        assert_eq!(memo.take::<String>("/a", 5).as_deref(), Some("five"));
        assert_eq!(memo.take::<String>("/a", 5), None, "a take removes the entry");
        memo.put("/a", 6, String::from("six"), 1);
        assert_eq!(memo.take::<String>("/a", 7), None, "another revision's entry is not given");
        assert!(memo.is_empty(), "nor kept: it can no longer be asked for");
        assert_eq!(memo.weight(), 0);
    }

    #[test]
    fn the_latest_entry_is_given_with_its_revision_and_weight_once() {
        let memo = room_for(8);
        memo.put("/a", 5, String::from("five"), 1);
        memo.put("/a", 6, String::from("six"), 1);
        assert_eq!(memo.take_latest::<String>("/a"), Some((6, String::from("six"), 1)));
        assert_eq!(memo.take_latest::<String>("/a"), None, "a take removes the entry");
        memo.put("/b", 1, 7u32, 1);
        assert_eq!(memo.take_latest::<String>("/b"), None, "nor is one of another type");
        assert!(memo.is_empty() && memo.weight() == 0);
    }

    #[test]
    fn an_entry_of_another_type_is_not_given() {
        let memo = room_for(8);
        memo.put("/a", 1, 7u32, 1);
        assert_eq!(memo.take::<String>("/a", 1), None);
    }

    #[test]
    fn a_memo_of_no_capacity_keeps_nothing() {
        let memo = KeyMemo::new(0);
        memo.put("/a", 1, 1u8, 0);
        memo.put("/b", 1, 1u8, 1);
        assert_eq!(memo.take::<u8>("/b", 1), None);
    }

    #[test]
    fn a_value_too_heavy_to_keep_also_drops_the_older_entry() {
        let memo = room_for(1);
        memo.put("/a", 1, 1u8, 1);
        memo.put("/a", 2, 2u8, 2);
        assert!(memo.is_empty(), "an entry of weight 2 is over a 64th of the capacity");
        assert_eq!(memo.take::<u8>("/a", 1), None, "revision 1 is not the key's value any more");
    }

    #[test]
    fn an_offer_is_kept_only_where_there_is_room_for_it() {
        // Room for 64 entries of weight 1.
        let memo = KeyMemo::new(64);
        for k in 0..64u8 {
            memo.offer(&format!("/k{k}"), 1, k, 1);
        }
        memo.offer("/x", 1, 99u8, 1);
        assert_eq!(memo.len(), 64, "a full memo takes no new key's offer");
        memo.offer("/k1", 2, 101u8, 1);
        memo.offer("/k2", 2, 102u8, 2);
        assert_eq!(memo.take::<u8>("/k2", 1), Some(2), "a heavier value found no room and left the entry");
        assert_eq!(memo.take::<u8>("/k1", 2), Some(101), "a key's own entry makes room for its next");
        assert_eq!(memo.weight(), 62);
    }

    #[test]
    fn the_keys_in_use_keep_their_entries_while_others_make_room() {
        // Room for 100 entries of weight 64.
        let memo = KeyMemo::new(100 * 64);
        for cold in 0..100 {
            memo.put(&format!("/cold{cold}"), 1, 0u64, 64);
        }
        // Ten keys, each taken and put back at its next revision, over and
        // over, their values' weights changing: the puts that need room get
        // it from the cold keys.
        for revision in 1..=1000u64 {
            for hot in 0..10 {
                let key = format!("/hot{hot}");
                if revision > 1 {
                    assert_eq!(memo.take::<u64>(&key, revision - 1), Some(revision - 1), "{key} at {revision}");
                }
                memo.put(&key, revision, revision, 60 + (revision % 5) as usize);
            }
        }
        assert_eq!(memo.take::<u64>("/cold99", 1), Some(0), "the youngest cold keys stay");
        assert_eq!(memo.take::<u64>("/cold0", 1), None, "the oldest went first");
        assert!(memo.lock().order.len() <= 2 * 100 + 64, "stale order items are dropped");
    }

    proptest! {
        /// Against a plain map of every put: the memo's weight is the sum of
        /// its entries' and never passes the capacity, and whatever it gives
        /// is what was last put for that key at that revision.
        #[test]
        fn gives_only_what_was_put_and_stays_bounded(
            room in 1usize..6,
            ops in proptest::collection::vec((any::<bool>(), 0u8..10, 1u64..4, any::<u16>(), 0usize..3), 1..200),
        ) {
            let memo = room_for(room);
            let mut model: HashMap<String, (Revision, u16)> = HashMap::new();
            for (is_put, key, revision, value, weight) in ops {
                let key = format!("/k{key}");
                if is_put {
                    memo.put(&key, revision, value, weight);
                    model.insert(key.clone(), (revision, value));
                    let kept = memo.lock().map.get(&key).map(|e| (e.revision, e.weight));
                    let fits = weight * LARGEST_SHARE <= memo.capacity;
                    prop_assert_eq!(kept, fits.then_some((revision, weight)), "a put that fits is kept");
                } else {
                    let got = memo.take::<u16>(&key, revision);
                    let last = model.remove(&key);
                    if let Some(v) = got {
                        prop_assert_eq!(last, Some((revision, v)));
                    }
                }
                let entries = memo.lock();
                prop_assert_eq!(entries.weight, entries.map.values().map(|e| e.weight).sum::<usize>());
                prop_assert!(entries.weight <= room * LARGEST_SHARE);
            }
        }
    }
}
