//! Delete: finalizers, `deletionTimestamp`, and propagation policies.
//!
//! # Expected flow
//!
//! - No finalizers, `Background`: the key is removed at once; the garbage
//!   collector later deletes dependents (it watches deletions).
//! - Finalizers present: `deletionTimestamp` is set (once) and the object
//!   stays until an update removes the last finalizer.
//! - `Foreground` / `Orphan`: the object gets `deletionTimestamp` plus the
//!   `foregroundDeletion` / `orphan` finalizer; the garbage collector deletes
//!   (or orphans) the dependents, then removes the finalizer.

use meseta_schemas::registry::KindInfo;
use serde_json::Value;

use super::{not_found, MAX_RETRIES};
use crate::error::ApiError;
use crate::object::{self, meta_mut, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::request::{DeleteOptions, Propagation};
use crate::store::{Compare, Op, Store, Txn, TxnOutcome};

/// Deletes (or starts deleting) the object at `key`; returns the object as it
/// is after the request: gone (with the deletion revision as
/// `resourceVersion`) or marked with `deletionTimestamp`.
pub async fn delete(
    store: &dyn Store,
    kind: &'static KindInfo,
    key: &str,
    name: &str,
    opts: DeleteOptions,
) -> Result<Value, ApiError> {
    for _ in 0..MAX_RETRIES {
        let Some(kv) = store.get(key).await? else {
            return Err(not_found(kind, name));
        };
        let current = object::from_kv(&kv)?;
        let policy_finalizer = match opts.propagation {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
        };
        let mut finalizers = object::finalizers(&current);
        let (op, mut result) = if finalizers.is_empty() && policy_finalizer.is_none() {
            (Op::Delete { key: key.to_string() }, current.clone())
        } else {
            let mut next = current.clone();
            if !object::is_deleting(&current) {
                let m = meta_mut(&mut next);
                m.insert("deletionTimestamp".into(), Value::String(object::now_timestamp()));
                m.insert("deletionGracePeriodSeconds".into(), Value::from(0));
                if let Some(f) = policy_finalizer {
                    if !finalizers.iter().any(|x| x == f) {
                        finalizers.push(f.to_string());
                    }
                }
                object::set_finalizers(&mut next, finalizers);
            }
            if next == current {
                return Ok(current);
            }
            (Op::Put { key: key.to_string(), value: object::to_stored(&next) }, next)
        };
        if opts.dry_run {
            return Ok(result);
        }
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.to_string(), revision: kv.mod_revision }],
            ops: vec![op],
        };
        match store.txn(txn).await? {
            TxnOutcome::Committed { revision } => {
                object::set_resource_version(&mut result, revision);
                return Ok(result);
            }
            TxnOutcome::Failed { current: None, .. } => return Err(not_found(kind, name)),
            TxnOutcome::Failed { .. } => continue,
        }
    }
    Err(ApiError::Conflict {
        resource: crate::path::resource_name(kind),
        name: name.to_string(),
        reason: "the object kept changing while being deleted; try again".into(),
    })
}
