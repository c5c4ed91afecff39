//! Making what sled wrote durable against a power cut, not only a crash.
//!
//! Owns the files sled writes to: its data file (`<dir>/db`) and its blob
//! files (`<dir>/blobs/<lsn>`, where sled puts any page too large for a log
//! message). sled's flush writes its buffers with `sync_file_range`, which
//! neither commits a file's size and extents nor flushes the disk's write
//! cache, and writes blob files without syncing them or their directory.
//! After each flush [`Files::sync`] therefore runs `fdatasync` on the data
//! file and on every blob file not synced before, and `fsync` on the blob
//! directory when it gained one, as etcd does for its WAL. It must not write
//! anything itself.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::StoreError;

/// sled's files in one store directory.
pub(super) struct Files {
    data: File,
    blobs: PathBuf,
    /// The highest blob id synced so far (blob ids grow with sled's log).
    synced_blob: Mutex<Option<u64>>,
}

impl Files {
    /// The files of the sled database in `dir` (already open).
    pub(super) fn open(dir: &Path) -> Result<Files, StoreError> {
        let path = dir.join("db");
        let data = File::open(&path).map_err(|err| failed("opening", &path, err))?;
        Ok(Files { data, blobs: dir.join("blobs"), synced_blob: Mutex::new(None) })
    }

    /// Syncs the data file and the blob files written since the last call.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.data.sync_data().map_err(|err| failed("syncing", Path::new("db"), err))?;
        let mut synced = super::group_commit::lock(&self.synced_blob);
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(failed("listing", &self.blobs, err)),
        };
        let names = entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok());
        let fresh = unsynced(names, *synced);
        let Some(&newest) = fresh.last() else { return Ok(()) };
        for id in &fresh {
            let path = self.blobs.join(id.to_string());
            match File::open(&path) {
                Ok(file) => file.sync_data().map_err(|err| failed("syncing", &path, err))?,
                // sled removed it already (a later rewrite made it garbage).
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(failed("opening", &path, err)),
            }
        }
        File::open(&self.blobs).and_then(|dir| dir.sync_all()).map_err(|err| failed("syncing", &self.blobs, err))?;
        *synced = Some(newest);
        Ok(())
    }
}

/// The blob ids among `names` above `synced`, in ascending order; names that
/// are not blob ids are skipped.
fn unsynced(names: impl Iterator<Item = String>, synced: Option<u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = names.filter_map(|n| n.parse().ok()).filter(|id| synced.is_none_or(|s| *id > s)).collect();
    ids.sort_unstable();
    ids
}

fn failed(what: &str, path: &Path, err: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {} to make the store durable: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter().map(|s| s.to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn every_blob_is_new_at_first_then_only_those_above_the_last_synced() {
        assert_eq!(unsynced(names(&["30", "7", "12"]), None), vec![7, 12, 30]);
        assert_eq!(unsynced(names(&["30", "7", "12", "41"]), Some(30)), vec![41]);
        assert_eq!(unsynced(names(&["7", "12"]), Some(30)), Vec::<u64>::new());
    }

    #[test]
    fn names_that_are_not_blob_ids_are_skipped() {
        assert_eq!(unsynced(names(&["5", "tmp", "6.partial", ""]), None), vec![5]);
    }

    #[test]
    fn a_store_with_a_large_value_syncs_its_blob_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = ::sled::Config::new().path(dir.path()).open().unwrap();
        // Far above sled's largest log message: written as a blob file.
        db.insert(b"big", vec![7u8; 4 << 20]).unwrap();
        db.flush().unwrap();
        let files = Files::open(dir.path()).unwrap();
        files.sync().unwrap();
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(blobs > 0, "the large value went to a blob file");
        assert!(crate::store::sled::group_commit::lock(&files.synced_blob).is_some(), "its blob was synced");
        assert_eq!(db.get(b"big").unwrap().unwrap().len(), 4 << 20);
    }
}
