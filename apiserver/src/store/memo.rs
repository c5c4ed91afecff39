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
//! It must not grow past its capacity (a total of the weights its consumer
//! gives, such as stored bytes), and it must not hold its lock while a value
//! is dropped.

use std::any::Any;
use std::collections::HashMap;
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
    value: Box<dyn Any + Send>,
}

/// The entries and their total weight.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    weight: usize,
}

impl Entries {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.weight -= entry.weight;
        Some(entry)
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

    /// Takes the entry of `key` if it was put for `revision` and holds a `T`.
    /// The key's entry is gone afterwards either way: one of another revision
    /// can no longer be asked for.
    pub fn take<T: Any>(&self, key: &str, revision: Revision) -> Option<T> {
        let entry = self.lock().remove(key)?;
        if entry.revision != revision {
            return None;
        }
        entry.value.downcast::<T>().ok().map(|value| *value)
    }

    /// Leaves `value`, of `weight`, as what the value of `key` at `revision`
    /// gives, replacing the key's entry. Other keys' entries make room when
    /// the memo is full; a value heavier than a 64th of the capacity is not
    /// kept (nor is the key's older entry).
    pub fn put<T: Any + Send>(&self, key: &str, revision: Revision, value: T, weight: usize) {
        let mut evicted = Vec::new();
        let mut entries = self.lock();
        evicted.extend(entries.remove(key));
        if weight.saturating_mul(LARGEST_SHARE) <= self.capacity {
            while entries.weight + weight > self.capacity {
                let Some(other) = entries.map.keys().next().cloned() else { break };
                evicted.extend(entries.remove(&other));
            }
            entries.weight += weight;
            entries.map.insert(key.to_string(), Entry { revision, weight, value: Box::new(value) });
        }
        drop(entries);
        drop(evicted);
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
