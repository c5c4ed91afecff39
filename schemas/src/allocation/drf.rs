//! DRF ordering: who is picked next. Owns the sort key (share, offers made
//! this cycle, index) and an ordered set that re-keys only the entry that
//! changed, so a pick costs O(log n) instead of a full sort per agent. It must
//! not decide what is offered.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A dominant share, totally ordered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share(pub(crate) f64);

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Share {}
impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sort key: lowest share first, then fewest offers this cycle, then index
/// (indices follow names, so the last tie-break is the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) share: Share,
    pub(crate) offers: u64,
    pub(crate) idx: u32,
}

impl Key {
    /// Key of entry `idx` with this share and offer count.
    pub(crate) fn new(share: f64, offers: u64, idx: u32) -> Key {
        Key { share: Share(share), offers, idx }
    }
}

/// Entries in DRF order.
#[derive(Debug, Default)]
pub(crate) struct Sorter {
    set: BTreeSet<Key>,
}

impl Sorter {
    /// Add an entry.
    pub(crate) fn insert(&mut self, key: Key) {
        self.set.insert(key);
    }

    /// Remove an entry by its current key.
    pub(crate) fn remove(&mut self, key: &Key) {
        self.set.remove(key);
    }

    /// Move an entry from `old` to `new`.
    pub(crate) fn rekey(&mut self, old: &Key, new: Key) {
        if *old != new {
            self.set.remove(old);
            self.set.insert(new);
        }
    }

    /// Whether no entry is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Entries, lowest key first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Key> + '_ {
        self.set.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_share_then_fewest_offers_then_index() {
        let mut s = Sorter::default();
        s.insert(Key::new(0.5, 0, 0));
        s.insert(Key::new(0.25, 3, 1));
        s.insert(Key::new(0.25, 1, 2));
        s.insert(Key::new(0.25, 1, 3));
        let order: Vec<u32> = s.iter().map(|k| k.idx).collect();
        assert_eq!(order, vec![2, 3, 1, 0]);
        s.rekey(&Key::new(0.5, 0, 0), Key::new(0.0, 1, 0));
        assert_eq!(s.iter().next().map(|k| k.idx), Some(0));
        s.remove(&Key::new(0.0, 1, 0));
        assert_eq!(s.iter().count(), 3);
    }
}
