//! Which object keys may be stored: how many stored object keys have each
//! 64-bit key hash, held by the committer so that a compare or write on a
//! key that cannot exist (a create, above all) skips the B-tree read.
//!
//! Owns that count and its invariant. Only the committer thread holds it
//! (no lock), and only the committer writes objects, so it can keep the
//! invariant exactly:
//!
//! > for every hash `h`, `count(h)` is the number of object keys in the tree
//! > whose hash is `h`.
//!
//! It is built by scanning the objects at open and updated after each batch
//! the tree accepted, from the batch's net effect on each key it touched
//! (`commit`). If a batch's write fails half-way, the tree may hold part of
//! it: the committer then rebuilds the count from the tree before the next
//! batch ([`Presence::invalidate`]). A hash with count 0 proves the key
//! absent; a non-zero count only means "read the tree" (two keys may share a
//! hash), so the answer is never wrong, at worst a read is not saved.
//!
//! It must not hold values or revisions: those stay in the tree, so memory
//! is about 20 bytes per stored object.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::codec::OBJECT_PREFIX;
use super::{backend, Handles};
use crate::store::StoreError;

/// The count per key hash; see the module docs.
pub(super) struct Presence {
    /// Hashes the keys (SipHash with per-process random keys, so nobody can
    /// pick keys that all share a hash).
    hasher: RandomState,
    counts: HashMap<u64, u32, BuildHasherDefault<HashIsKey>>,
    /// Set when the count may disagree with the tree; rebuilt before use.
    stale: bool,
}

impl Presence {
    /// Counts the object keys stored in `trees`.
    pub(super) fn load(trees: &Handles) -> Result<Presence, StoreError> {
        let mut presence = Presence { hasher: RandomState::new(), counts: HashMap::default(), stale: false };
        presence.rebuild(trees)?;
        Ok(presence)
    }

    /// Recounts from the tree when a failed write left the count in doubt.
    pub(super) fn refresh(&mut self, trees: &Handles) -> Result<(), StoreError> {
        if self.stale {
            self.rebuild(trees)?;
        }
        Ok(())
    }

    fn rebuild(&mut self, trees: &Handles) -> Result<(), StoreError> {
        self.counts.clear();
        for entry in trees.tree.scan_prefix([OBJECT_PREFIX]).keys() {
            let key = entry.map_err(backend)?;
            let hash = self.hasher.hash_one(&key[1..]);
            *self.counts.entry(hash).or_insert(0) += 1;
        }
        self.stale = false;
        tracing::debug!(objects = self.counts.values().map(|&c| u64::from(c)).sum::<u64>(), "object keys counted");
        Ok(())
    }

    /// Whether `key` may be stored; `false` proves it is not.
    pub(super) fn may_exist(&self, key: &str) -> bool {
        self.stale || self.counts.contains_key(&self.hash(key))
    }

    /// Records that the tree now holds `key`, which it did not.
    pub(super) fn added(&mut self, key: &str) {
        *self.counts.entry(self.hash(key)).or_insert(0) += 1;
    }

    /// Records that the tree no longer holds `key`, which it did.
    pub(super) fn removed(&mut self, key: &str) {
        let hash = self.hash(key);
        match self.counts.get_mut(&hash) {
            Some(1) => {
                self.counts.remove(&hash);
            }
            Some(count) => *count -= 1,
            // Cannot happen while the invariant holds; recount to restore it.
            None => self.stale = true,
        }
    }

    /// Marks the count as possibly wrong (a batch's write failed).
    pub(super) fn invalidate(&mut self) {
        self.stale = true;
    }

    fn hash(&self, key: &str) -> u64 {
        // The tree key without its prefix, as `rebuild` hashes it.
        self.hasher.hash_one(key.as_bytes())
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
pub(super) struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
