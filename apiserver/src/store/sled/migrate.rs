//! Bringing a store written with one sled tree per key space (`objects`,
//! `log`, `meta`, keys without a prefix byte) into the one-tree layout of
//! `codec`.
//!
//! Owns the order of that migration. It runs on open, before the committer
//! starts, so nothing else writes the tree meanwhile. It must not change a
//! record's bytes: values are copied as they are, keys only gain the prefix
//! of their key space.
//!
//! # Crash safety
//!
//! 1. Every record of the old trees is copied into the store's tree (in
//!    chunks), then the database is flushed.
//! 2. [`META_LAYOUT`] is written and flushed: from here on the store's tree
//!    is complete, and it is the only thing later opens read.
//! 3. The old trees are dropped and the database flushed.
//!
//! A crash before 2 leaves the old trees whole and no layout mark: the next
//! open copies everything again, overwriting the partial copy with the same
//! bytes (nothing else wrote the store's tree before the mark). A crash after
//! 2 leaves the mark: the next open only drops what is left of the old trees.

use std::path::Path;

use ::sled::Batch;

use super::codec::{self, LAYOUT, LOG_PREFIX, META_LAYOUT, META_PREFIX, OBJECT_PREFIX};
use super::{backend, Handles};
use crate::store::StoreError;

/// The trees of the older layout and the prefix their keys get.
pub(super) const OLD_TREES: [(&str, u8); 3] = [("objects", OBJECT_PREFIX), ("log", LOG_PREFIX), ("meta", META_PREFIX)];

/// Records copied per sled batch, so a large store is not held in memory
/// twice.
const COPY_CHUNK: usize = 8192;

/// Migrates the older layout into the store's tree when the directory holds
/// it, and marks the store's layout; does nothing for a store already in
/// the one-tree layout.
pub(super) fn to_one_tree(trees: &Handles, dir: &Path) -> Result<(), StoreError> {
    let names = trees.db.tree_names();
    let old: Vec<(&str, u8)> =
        OLD_TREES.into_iter().filter(|(name, _)| names.iter().any(|n| n == name.as_bytes())).collect();
    let marked = trees.tree.get(META_LAYOUT).map_err(backend)?.is_some();
    if !marked && !old.is_empty() {
        let mut copied = 0;
        for &(name, prefix) in &old {
            copied += copy(trees, name, prefix)?;
        }
        trees.make_durable()?;
        tracing::info!(dir = %dir.display(), records = copied, "store migrated from one tree per key space to one tree");
    }
    if !marked {
        trees.tree.insert(META_LAYOUT, &LAYOUT.to_be_bytes()[..]).map_err(backend)?;
        trees.make_durable()?;
    }
    if !old.is_empty() {
        for (name, _) in &old {
            trees.db.drop_tree(name).map_err(backend)?;
        }
        trees.make_durable()?;
        tracing::info!(dir = %dir.display(), "trees of the older store layout dropped");
    }
    Ok(())
}

/// Copies every record of the old tree `name` into the store's tree under
/// `prefix`; returns how many.
fn copy(trees: &Handles, name: &str, prefix: u8) -> Result<usize, StoreError> {
    let old = trees.db.open_tree(name).map_err(backend)?;
    let (mut copied, mut batch, mut in_batch) = (0, Batch::default(), 0);
    for entry in old.iter() {
        let (key, value) = entry.map_err(backend)?;
        batch.insert(codec::prefixed(prefix, &key), value);
        in_batch += 1;
        if in_batch == COPY_CHUNK {
            trees.tree.apply_batch(std::mem::take(&mut batch)).map_err(backend)?;
            copied += in_batch;
            in_batch = 0;
        }
    }
    trees.tree.apply_batch(batch).map_err(backend)?;
    Ok(copied + in_batch)
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
