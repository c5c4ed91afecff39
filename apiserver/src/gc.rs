//! The garbage collector: cascading deletion through
//! `metadata.ownerReferences`, and the `orphan` / `foregroundDeletion`
//! finalizers that the delete propagation policies leave behind.
//!
//! # Expected flow
//!
//! At start it lists every object once, builds an in-memory index
//! (owner uid → dependent keys, uid → key), then sweeps: dependents whose
//! owners are all gone are deleted, and objects waiting on a collector
//! finalizer are processed. Then it watches the whole registry from the list
//! revision and reacts to each change in order:
//!
//! - an owner deleted → each dependent is checked: deleted when no owner
//!   remains, otherwise stripped of the dangling reference;
//! - `orphan` finalizer → the reference to the owner is removed from every
//!   dependent, then the finalizer (the owner then disappears if it was the last);
//! - `foregroundDeletion` finalizer → every dependent is deleted (itself in
//!   the foreground), and when none remains the finalizer is removed.
//!
//! # Guarantees
//!
//! - Decisions to delete are made on authoritative reads: an owner is gone
//!   only when the store has no object with the reference's kind, name and
//!   uid. The index only says where to look, so a cascade touches the
//!   dependents and never scans the store.
//! - Convergent: after a crash mid-cascade, the start-up sweep finishes it.
//! - Any error (the store failing, the watch compacted) restarts the loop
//!   from a fresh list.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use meseta_schemas::registry;
use serde_json::Value;

use crate::error::ApiError;
use crate::object::{self, OwnerRef, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::objects::{self, UpdateMode, WriteOptions};
use crate::path::{kind_of_key, object_key, REGISTRY_PREFIX};
use crate::request::{DeleteOptions, FieldValidation, Propagation};
use crate::state::AppState;
use crate::store::{EventKind, Store, WatchEvent};

/// Keys read per page while building the index.
const PAGE: usize = 1000;
/// Pause before restarting after an error.
const RETRY: Duration = Duration::from_secs(1);

/// Runs the collector until the state shuts down.
pub async fn run(state: AppState) {
    loop {
        let mut collector = Collector { store: state.store().clone(), index: OwnerIndex::default() };
        let outcome = tokio::select! {
            r = collector.run_once() => r,
            _ = state.shutting_down() => return,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "garbage collector restarting");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = state.shutting_down() => return,
        }
    }
}

/// Owner uid → dependent keys, and uid ↔ key, of every object.
#[derive(Debug, Default)]
struct OwnerIndex {
    key_by_uid: HashMap<String, String>,
    owners_by_key: HashMap<String, Vec<String>>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl OwnerIndex {
    fn upsert(&mut self, key: &str, obj: &Value) {
        let uid = object::uid(obj);
        let owners: Vec<String> = object::owner_refs(obj).into_iter().map(|r| r.uid).collect();
        // Most writes change neither: the index is left as it is.
        let same_uid = uid.is_empty() || self.key_by_uid.get(uid).is_some_and(|k| k == key);
        let same_owners = self.owners_by_key.get(key).map_or(owners.is_empty(), |known| *known == owners);
        if same_uid && same_owners {
            return;
        }
        if !uid.is_empty() {
            self.key_by_uid.insert(uid.to_string(), key.to_string());
        }
        self.unlink(key);
        for o in &owners {
            self.dependents.entry(o.clone()).or_default().insert(key.to_string());
        }
        if !owners.is_empty() {
            self.owners_by_key.insert(key.to_string(), owners);
        }
    }

    /// Forgets `key`; returns the uids of its owners.
    fn remove(&mut self, key: &str, obj: &Value) -> Vec<String> {
        let uid = object::uid(obj);
        if self.key_by_uid.get(uid).is_some_and(|k| k == key) {
            self.key_by_uid.remove(uid);
        }
        self.unlink(key)
    }

    fn unlink(&mut self, key: &str) -> Vec<String> {
        let owners = self.owners_by_key.remove(key).unwrap_or_default();
        for o in &owners {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
        owners
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The parts of a stored object's `metadata` the collector reads from
/// events; every other field is skipped without being decoded.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerMeta {
    uid: Option<Value>,
    owner_references: Option<Value>,
    deletion_timestamp: Option<Value>,
    finalizers: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct OwnerObject {
    #[serde(default)]
    metadata: Option<OwnerMeta>,
}

/// The `metadata` fields the collector reads.
const OWNER_FIELDS: [&str; 4] = ["uid", "ownerReferences", "deletionTimestamp", "finalizers"];

/// Where `deletionTimestamp` is in [`OWNER_FIELDS`].
const DELETION: usize = 2;

/// The place of the `metadata` field `key` in [`OWNER_FIELDS`].
fn owner_field(key: &[u8]) -> Option<usize> {
    OWNER_FIELDS.iter().position(|f| f.as_bytes() == key)
}

/// The [`OWNER_FIELDS`] of stored bytes, as their raw JSON text; `None`
/// when a scan cannot tell.
fn owner_fields(stored: &[u8]) -> Option<[Option<&[u8]>; 4]> {
    let mut fields = [None; 4];
    object::metadata_fields(stored, |key, raw| {
        if let Some(slot) = owner_field(key) {
            fields[slot] = Some(raw);
        }
    })?;
    Some(fields)
}

/// Whether an update from `before` to `after` (stored bytes) left the fields
/// the collector reads exactly as they were, on an object not being deleted.
fn owner_fields_unchanged(before: &[u8], after: &[u8]) -> bool {
    match (owner_fields(before), owner_fields(after)) {
        (Some(before), Some(after)) => before == after && after[DELETION].is_none_or(|t| t == b"null"),
        _ => false,
    }
}

/// A stored object reduced to `metadata.{uid, ownerReferences,
/// deletionTimestamp, finalizers}`: all the [`object`] helpers the collector
/// applies to an event's object read, at a fraction of a full decode (every
/// write reaches the collector's watch).
fn owner_view(stored: &[u8]) -> Result<Value, ApiError> {
    // Only those four fields of `metadata` are parsed when the scan finds
    // them; anything the scan cannot tell is parsed in full.
    let mut meta = serde_json::Map::new();
    let mut parsed_all = true;
    let scanned = object::metadata_fields(stored, |key, raw| {
        let Some(field) = owner_field(key).map(|i| OWNER_FIELDS[i]) else { return };
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Null) => {}
            Ok(v) => {
                meta.insert(field.into(), v);
            }
            Err(_) => parsed_all = false,
        }
    });
    if scanned.is_some() && parsed_all {
        return Ok(serde_json::json!({ "metadata": meta }));
    }
    let parsed: OwnerObject = serde_json::from_slice(stored)
        .map_err(|e| ApiError::Internal(format!("stored object is not a JSON object: {e}")))?;
    let mut meta = serde_json::Map::new();
    if let Some(m) = parsed.metadata {
        for (field, v) in [
            ("uid", m.uid),
            ("ownerReferences", m.owner_references),
            ("deletionTimestamp", m.deletion_timestamp),
            ("finalizers", m.finalizers),
        ] {
            if let Some(v) = v {
                meta.insert(field.into(), v);
            }
        }
    }
    Ok(serde_json::json!({ "metadata": meta }))
}

struct Collector {
    store: Arc<dyn Store>,
    index: OwnerIndex,
}

fn gc_write() -> WriteOptions {
    WriteOptions { dry_run: false, validation: FieldValidation::Ignore, prechecked: false, precondition: None }
}

/// Treats "already gone" as done.
fn ignore_missing<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn has_collector_finalizer(obj: &Value) -> bool {
    object::is_deleting(obj)
        && object::finalizers(obj).iter().any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER)
}

impl Collector {
    async fn run_once(&mut self) -> Result<(), ApiError> {
        let mut after: Option<String> = None;
        let mut revision = None;
        let mut owned = Vec::new();
        let mut waiting = Vec::new();
        loop {
            let page = self.store.list(REGISTRY_PREFIX, after.as_deref(), Some(PAGE)).await?;
            revision.get_or_insert(page.revision);
            for kv in &page.items {
                let obj = object::from_kv(kv)?;
                self.index.upsert(&kv.key, &obj);
                if !object::owner_refs(&obj).is_empty() {
                    owned.push(kv.key.clone());
                }
                if has_collector_finalizer(&obj) {
                    waiting.push(kv.key.clone());
                }
            }
            after = page.items.last().map(|kv| kv.key.clone());
            if !page.more || page.items.is_empty() {
                break;
            }
        }
        for key in owned {
            if self.owners_missing(&key) {
                self.check_dependent(&key).await?;
            }
        }
        for key in waiting {
            self.process_finalizers(&key).await?;
        }
        let mut stream = self.store.watch(REGISTRY_PREFIX, revision.unwrap_or(0))?;
        while let Some(ev) = stream.next().await {
            self.handle(ev?).await?;
        }
        Ok(())
    }

    /// Whether the index lacks any owner of `key` (a hint; confirmed by reads).
    fn owners_missing(&self, key: &str) -> bool {
        self.index.owners_by_key.get(key).is_some_and(|os| os.iter().any(|o| !self.index.key_by_uid.contains_key(o)))
    }

    async fn handle(&mut self, ev: WatchEvent) -> Result<(), ApiError> {
        match ev.kind {
            // Most updates (every status write) leave what the collector
            // reads as it was: the index already holds it, and an object
            // not being deleted has nothing to finalize.
            EventKind::Updated if owner_fields_unchanged(&ev.prev_value, &ev.value) => {}
            EventKind::Created | EventKind::Updated => {
                let obj = owner_view(&ev.value)?;
                self.index.upsert(&ev.key, &obj);
                if self.owners_missing(&ev.key) {
                    self.check_dependent(&ev.key).await?;
                }
                if has_collector_finalizer(&obj) {
                    self.process_finalizers(&ev.key).await?;
                }
            }
            EventKind::Deleted => {
                let old = owner_view(&ev.prev_value)?;
                let owners = self.index.remove(&ev.key, &old);
                for dep in self.index.dependents_of(object::uid(&old)) {
                    self.check_dependent(&dep).await?;
                }
                for owner in owners {
                    if self.index.dependents_of(&owner).is_empty() {
                        if let Some(owner_key) = self.index.key_by_uid.get(&owner).cloned() {
                            self.process_finalizers(&owner_key).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the owner a reference names exists (same kind, name and uid).
    async fn owner_exists(&self, r: &OwnerRef, namespace: Option<&str>) -> Result<bool, ApiError> {
        let Some(kind) = registry::by_kind(&r.kind) else { return Ok(false) };
        let key = object_key(kind, namespace, &r.name);
        Ok(match self.store.get(&key).await? {
            Some(kv) => object::uid(&object::from_kv(&kv)?) == r.uid,
            None => false,
        })
    }

    /// Deletes `key` when all its owners are gone, or drops dangling references.
    async fn check_dependent(&self, key: &str) -> Result<(), ApiError> {
        let Some(kv) = self.store.get(key).await? else { return Ok(()) };
        let obj = object::from_kv(&kv)?;
        let ns = object::meta_str(&obj, "namespace");
        let mut dead = Vec::new();
        let mut alive = 0;
        for r in object::owner_refs(&obj) {
            if self.owner_exists(&r, ns).await? {
                alive += 1;
            } else {
                dead.push(r.uid);
            }
        }
        let Some(kind) = kind_of_key(key) else { return Ok(()) };
        let name = object::name(&obj).to_string();
        if dead.is_empty() {
            return Ok(());
        }
        if alive == 0 {
            tracing::debug!(key, "collecting a dependent whose owners are gone");
            let opts = DeleteOptions { propagation: Propagation::Background, dry_run: false };
            return ignore_missing(objects::delete(self.store.as_ref(), kind, key, &name, opts).await);
        }
        self.strip_owners(key, &dead).await
    }

    async fn strip_owners(&self, key: &str, uids: &[String]) -> Result<(), ApiError> {
        let Some(kind) = kind_of_key(key) else { return Ok(()) };
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        let r = objects::update(self.store.as_ref(), kind, key, &name, UpdateMode::Main, gc_write(), |current| {
            let mut next = current.clone();
            object::remove_owner_refs(&mut next, uids);
            object::meta_mut(&mut next).remove("resourceVersion");
            Ok(next)
        })
        .await;
        ignore_missing(r)
    }

    async fn remove_finalizer(&self, key: &str, finalizer: &str) -> Result<(), ApiError> {
        let Some(kind) = kind_of_key(key) else { return Ok(()) };
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        let r = objects::update(self.store.as_ref(), kind, key, &name, UpdateMode::Main, gc_write(), |current| {
            let mut next = current.clone();
            let rest: Vec<String> = object::finalizers(current).into_iter().filter(|f| f != finalizer).collect();
            object::set_finalizers(&mut next, rest);
            object::meta_mut(&mut next).remove("resourceVersion");
            Ok(next)
        })
        .await;
        ignore_missing(r)
    }

    /// Carries out the `orphan` and `foregroundDeletion` finalizers of `key`.
    async fn process_finalizers(&self, key: &str) -> Result<(), ApiError> {
        let Some(kv) = self.store.get(key).await? else { return Ok(()) };
        let obj = object::from_kv(&kv)?;
        if !object::is_deleting(&obj) {
            return Ok(());
        }
        let uid = object::uid(&obj).to_string();
        let finalizers = object::finalizers(&obj);
        if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            for dep in self.index.dependents_of(&uid) {
                self.strip_owners(&dep, std::slice::from_ref(&uid)).await?;
            }
            self.remove_finalizer(key, ORPHAN_FINALIZER).await?;
        } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            let deps = self.index.dependents_of(&uid);
            if deps.is_empty() {
                self.remove_finalizer(key, FOREGROUND_FINALIZER).await?;
            }
            for dep in deps {
                let Some(kind) = kind_of_key(&dep) else { continue };
                let name = dep.rsplit('/').next().unwrap_or_default().to_string();
                let opts = DeleteOptions { propagation: Propagation::Foreground, dry_run: false };
                ignore_missing(objects::delete(self.store.as_ref(), kind, &dep, &name, opts).await)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_owner_view_reads_what_a_full_decode_reads() {
        let full = json!({"apiVersion": "meseta.io/v1", "kind": "Task",
            "metadata": {"name": "t", "uid": "u1", "labels": {"a": "b"}, "deletionTimestamp": "2024-01-01T00:00:00Z",
                "finalizers": ["orphan", "x"], "managedFields": [{"manager": "m"}],
                "ownerReferences": [{"apiVersion": "meseta.io/v1", "kind": "Job", "name": "j", "uid": "o1"}]},
            "spec": {"command": "true"}, "status": {"state": "PENDING"}});
        let stored = serde_json::to_vec(&full).unwrap();
        let view = owner_view(&stored).unwrap();
        assert_eq!(object::uid(&view), "u1");
        assert_eq!(object::owner_refs(&view), object::owner_refs(&full));
        assert_eq!(object::finalizers(&view), vec!["orphan".to_string(), "x".to_string()]);
        assert!(object::is_deleting(&view) && has_collector_finalizer(&view));
        let bare = owner_view(br#"{"metadata":{"name":"n","deletionTimestamp":null},"spec":{}}"#).unwrap();
        assert_eq!(object::uid(&bare), "");
        assert!(object::owner_refs(&bare).is_empty() && !object::is_deleting(&bare));
        assert!(owner_view(b"[1]").is_err());
        // What the scan cannot tell is parsed in full, the same way.
        let escaped = owner_view(br#"{"metadata":{"uid":"u2","fin\u0061lizers":["x"]}}"#).unwrap();
        assert_eq!((object::uid(&escaped), object::finalizers(&escaped)), ("u2", vec!["x".to_string()]));
    }

    #[test]
    fn an_update_is_passed_over_only_when_what_the_collector_reads_is_as_it_was() {
        let base = json!({"metadata": {"name": "t", "uid": "u1", "labels": {"a": "b"},
            "ownerReferences": [{"apiVersion": "meseta.io/v1", "kind": "Job", "name": "j", "uid": "o1"}]},
            "spec": {"command": "true"}, "status": {"state": "PENDING"}});
        let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            edit(&mut v);
            bytes(&v)
        };
        // A new status, label or spec: passed over.
        let status = with(&|v| v["status"]["state"] = json!("RUNNING"));
        assert!(owner_fields_unchanged(&bytes(&base), &status));
        assert!(owner_fields_unchanged(&bytes(&base), &with(&|v| v["metadata"]["labels"]["c"] = json!("d"))));
        // Anything the collector reads: handled.
        for changed in [
            with(&|v| v["metadata"]["uid"] = json!("u2")),
            with(&|v| v["metadata"]["ownerReferences"][0]["uid"] = json!("o2")),
            with(&|v| v["metadata"]["ownerReferences"] = json!([])),
            with(&|v| v["metadata"]["finalizers"] = json!(["x"])),
            with(&|v| v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z")),
        ] {
            assert!(!owner_fields_unchanged(&bytes(&base), &changed), "{}", String::from_utf8_lossy(&changed));
        }
        // An object being deleted is always handled, and so is what the scan cannot read.
        let deleting = with(&|v| v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z"));
        assert!(!owner_fields_unchanged(&deleting, &deleting));
        assert!(!owner_fields_unchanged(b"[1]", b"[1]"));
    }

    #[test]
    fn index_tracks_owners_and_dependents() {
        let mut idx = OwnerIndex::default();
        let job = json!({"metadata": {"name": "j", "uid": "J"}});
        let task = json!({"metadata": {"name": "t", "uid": "T", "ownerReferences": [{"uid": "J", "kind": "Job", "name": "j"}]}});
        idx.upsert("/registry/jobs/a/j", &job);
        idx.upsert("/registry/tasks/a/t", &task);
        assert_eq!(idx.dependents_of("J"), vec!["/registry/tasks/a/t".to_string()]);
        // Written again unchanged, and then with another owner.
        idx.upsert("/registry/tasks/a/t", &task);
        assert_eq!(idx.dependents_of("J"), vec!["/registry/tasks/a/t".to_string()]);
        let moved = json!({"metadata": {"name": "t", "uid": "T", "ownerReferences": [{"uid": "K", "kind": "Job", "name": "k"}]}});
        idx.upsert("/registry/tasks/a/t", &moved);
        assert!(idx.dependents_of("J").is_empty());
        assert_eq!(idx.dependents_of("K"), vec!["/registry/tasks/a/t".to_string()]);
        idx.upsert("/registry/tasks/a/t", &task);
        assert!(idx.dependents_of("K").is_empty());
        // A key that takes another uid (deleted and made again) is found by it.
        let again = json!({"metadata": {"name": "j", "uid": "J2"}});
        idx.upsert("/registry/jobs/a/j", &again);
        assert_eq!(idx.key_by_uid.get("J2").map(String::as_str), Some("/registry/jobs/a/j"));
        let orphaned = json!({"metadata": {"name": "t", "uid": "T"}});
        idx.upsert("/registry/tasks/a/t", &orphaned);
        assert!(idx.dependents_of("J").is_empty());
        idx.upsert("/registry/tasks/a/t", &task);
        assert_eq!(idx.remove("/registry/tasks/a/t", &task), vec!["J".to_string()]);
        assert!(idx.dependents_of("J").is_empty());
        assert!(!idx.key_by_uid.contains_key("T"));
        assert!(idx.key_by_uid.contains_key("J"));
    }
}
