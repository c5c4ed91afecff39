//! Update: the read-modify-write loop behind PUT, PATCH, the `status`
//! subresource and the garbage collector's edits.
//!
//! # Rules
//!
//! - `metadata.resourceVersion` in the desired object is a precondition: if
//!   it differs from the stored one the update is a 409 Conflict. Without it
//!   the update is unconditional (re-read and retried on a race).
//! - Main resource: `status` is kept as stored (kinds with a status
//!   subresource); `generation` is bumped when anything outside `metadata`
//!   and `status` changed.
//! - `status` subresource: only `status` changes; `generation` never moves.
//! - Once `deletionTimestamp` is set no finalizer may be added; removing the
//!   last one deletes the object for real.
//! - An update that changes nothing writes nothing.
//!
//! The stored object is the one the last write of the key left in the
//! store's memo (`store::memo`) when it is still there at the revision read,
//! else the stored bytes decoded: the two are the same object. The first
//! try takes the memo's entry without reading at all; its write compares
//! the key's revision with the entry's, so it commits only if the entry was
//! the stored object, and every answer that would not be checked that way
//! (an error, a conflict, a dry run, "unchanged") is decided after a read.

use std::any::Any;

use meseta_schemas::kinds::Task;
use meseta_schemas::registry::KindInfo;
use meseta_schemas::FieldError;
use serde_json::Value;

use super::{check, not_found, stale, stored_written, WriteOptions, Written, WrittenObject, MAX_RETRIES};
use crate::error::ApiError;
use crate::object::{self, meta, meta_mut};
use crate::store::{Compare, KeyValue, Op, Revision, Store, Txn, TxnOutcome};

/// Which part of the object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Everything but server-owned metadata and `status`.
    Main,
    /// Only `status`.
    Status,
}

/// Metadata only the server sets; user values are replaced by the stored ones.
const SERVER_OWNED: [&str; 5] =
    ["uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"];

/// Replaces the object at `key` with what `desired` computes from the current
/// one (which carries its `resourceVersion`).
pub async fn update<F>(
    store: &dyn Store,
    kind: &'static KindInfo,
    key: &str,
    name: &str,
    mode: UpdateMode,
    opts: WriteOptions,
    mut desired: F,
) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    run::<Value>(store, kind, key, name, mode, opts, |current, revision| {
        let wanted = desired(current)?;
        let precondition = object::resource_version(&wanted)?;
        if precondition.is_some_and(|rv| rv != revision) {
            return Err(stale(kind, name));
        }
        admit(kind, current, wanted, mode, opts, precondition)
    })
    .await
}

/// An object in the form an update works on: the general `Value`, or a
/// kind's Rust type where a typed update stands in (a Task's status, see
/// `task_status`). The store's memo may hold either form; a value left in
/// the other is converted, which is still cheaper than decoding its bytes.
pub(super) trait Form: Sized + Send + 'static {
    /// Decodes the stored object `kv`, stamped with its revision.
    fn decode(kv: &KeyValue) -> Result<Self, ApiError>;
    /// A memo entry as this form, if it holds this form or the other.
    fn from_memo(entry: Box<dyn Any + Send>) -> Option<Self>;
    /// Sets `metadata.resourceVersion`.
    fn stamp(&mut self, revision: Revision);
    /// Whether it is being deleted with no finalizer left: writing it
    /// deletes it for real.
    fn finished(&self) -> bool;
    /// Its stored bytes (it has no `resourceVersion`), and where a response
    /// splices the revision in when known; `capacity` guesses the size.
    fn encode(&self, capacity: usize) -> (bytes::Bytes, Option<(usize, bool)>);
    /// It as a `Value`, for the answers that are not stored bytes.
    fn into_value(self) -> Result<Value, ApiError>;
}

impl Form for Value {
    fn decode(kv: &KeyValue) -> Result<Self, ApiError> {
        object::from_kv(kv)
    }

    fn from_memo(entry: Box<dyn Any + Send>) -> Option<Self> {
        match entry.downcast::<Value>() {
            Ok(value) => Some(*value),
            Err(entry) => serde_json::to_value(*entry.downcast::<Task>().ok()?).ok(),
        }
    }

    fn stamp(&mut self, revision: Revision) {
        object::set_resource_version(self, revision);
    }

    fn finished(&self) -> bool {
        object::is_deleting(self) && object::finalizers(self).is_empty()
    }

    fn encode(&self, capacity: usize) -> (bytes::Bytes, Option<(usize, bool)>) {
        object::encode_stored(self, capacity)
    }

    fn into_value(self) -> Result<Value, ApiError> {
        Ok(self)
    }
}

/// The update loop over objects of form `D`. `compute` makes, from the
/// current object (which it may take parts of) and its revision, what to
/// write; an error it gives is the answer, once a read confirms it.
pub(super) async fn run<D: Form>(
    store: &dyn Store,
    kind: &'static KindInfo,
    key: &str,
    name: &str,
    mode: UpdateMode,
    opts: WriteOptions,
    mut compute: impl FnMut(&mut D, Revision) -> Result<Admitted<D>, ApiError>,
) -> Result<Written, ApiError> {
    // The first try starts from the object this apiserver last wrote under
    // the key, if the memo still holds it, without reading the store: the
    // write's compare of the key's revision checks that it is still the
    // stored one. Any other answer (an error, a conflict, "unchanged") is
    // settled by a read: a caller that may be called again computes again
    // from the stored object, one with a known precondition (called at
    // most once) has its answer confirmed or gets the conflict its
    // precondition then is. A dry run's answer is never checked, so it reads.
    let expected = opts.precondition;
    let mut guess = match opts.dry_run {
        false => store.memo().and_then(|memo| memo.take_latest_any(key)),
        true => None,
    }
    .and_then(|(revision, entry, weight)| Some((revision, D::from_memo(entry)?, weight)));
    if expected.is_some() && guess.as_ref().map(|(revision, _, _)| *revision) != expected {
        guess = None;
    }
    for _ in 0..MAX_RETRIES {
        let (mut current, read) = match guess.take() {
            Some((revision, current, weight)) => (current, Read { revision, stored: None, size: weight }),
            None => {
                let Some(kv) = store.get(key).await? else {
                    return Err(not_found(kind, name));
                };
                // The object this apiserver wrote at that revision, if it is
                // still memoised, is what decoding the stored bytes would give.
                let memoised = store
                    .memo()
                    .and_then(|memo| memo.take_latest_any(key))
                    .filter(|(revision, _, _)| *revision == kv.mod_revision)
                    .and_then(|(_, entry, _)| D::from_memo(entry));
                let current = match memoised {
                    Some(current) => current,
                    None => D::decode(&kv)?,
                };
                (current, Read { revision: kv.mod_revision, size: kv.value.len(), stored: Some(kv.value) })
            }
        };
        let guessed = read.stored.is_none();
        // What a guessed try answers instead of a write: with a known
        // precondition the answer stands once the store confirms the guess;
        // otherwise the loop goes round again from a read.
        macro_rules! settle {
            ($answer:expr) => {{
                if !guessed {
                    return $answer;
                }
                if expected.is_none() {
                    continue;
                }
                return match confirm(store, kind, name, key, read.revision).await? {
                    Confirmed::Held(_) => $answer,
                    Confirmed::Refused(err) => Err(err),
                };
            }};
        }
        let Admitted { mut next, warnings, unchanged, precondition } = match compute(&mut current, read.revision) {
            Ok(admitted) => admitted,
            Err(err) => settle!(Err(err)),
        };
        drop(current);
        if opts.dry_run {
            next.stamp(read.revision);
            return Ok(Written { object: WrittenObject::Value(next.into_value()?), warnings });
        }
        if unchanged {
            next.stamp(read.revision);
            // `next` is the stored object: back to the memo, and the stored
            // bytes are the answer.
            let stored = match read.stored {
                Some(stored) => stored,
                None => match confirm(store, kind, name, key, read.revision).await? {
                    Confirmed::Held(stored) => stored,
                    Confirmed::Refused(_) if expected.is_none() => continue,
                    Confirmed::Refused(err) => return Err(err),
                },
            };
            let object = stored_written(store, key, next, stored, read.revision, None, false);
            return Ok(Written { object, warnings });
        }
        // Admitted without its revision: serialised without copying it.
        let (stored, splice_at) = match next.finished() {
            true => (None, None),
            false => {
                let (bytes, at) = next.encode(read.size + 64);
                (Some(bytes), at)
            }
        };
        let op = match &stored {
            None => Op::Delete { key: key.to_string() },
            Some(value) => Op::Put { key: key.to_string(), value: value.clone() },
        };
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.to_string(), revision: read.revision }],
            ops: vec![op],
        };
        match store.txn(txn).await? {
            TxnOutcome::Committed { revision } => {
                next.stamp(revision);
                let object = match stored {
                    // A new status is only offered to the memo (see `stored_written`).
                    Some(bytes) => {
                        stored_written(store, key, next, bytes, revision, splice_at, mode == UpdateMode::Status)
                    }
                    None => WrittenObject::Value(next.into_value()?),
                };
                return Ok(Written { object, warnings });
            }
            // The client's revision was the one compared: it is stale.
            TxnOutcome::Failed { .. } if precondition.is_some() => return Err(stale(kind, name)),
            TxnOutcome::Failed { current: None, .. } => return Err(not_found(kind, name)),
            TxnOutcome::Failed { .. } => continue,
        }
    }
    Err(stale(kind, name))
}

/// What a read says of the revision a guessed try started from.
enum Confirmed {
    /// The key still holds it: these are its stored bytes.
    Held(bytes::Bytes),
    /// It moved on or is gone: what a precondition of that revision gets.
    Refused(ApiError),
}

/// Reads `key` to check that it is still at `revision`.
async fn confirm(
    store: &dyn Store,
    kind: &KindInfo,
    name: &str,
    key: &str,
    revision: Revision,
) -> Result<Confirmed, ApiError> {
    Ok(match store.get(key).await? {
        Some(kv) if kv.mod_revision == revision => Confirmed::Held(kv.value),
        Some(_) => Confirmed::Refused(stale(kind, name)),
        None => Confirmed::Refused(not_found(kind, name)),
    })
}

/// The stored object's revision as an update read it.
struct Read {
    revision: Revision,
    /// The stored bytes; `None` when the memo stood in for the read.
    stored: Option<bytes::Bytes>,
    /// How many bytes the stored object takes.
    size: usize,
}

/// What an update makes of a desired object (see [`admit`]).
pub(super) struct Admitted<D> {
    /// The object to write, without `resourceVersion`.
    pub(super) next: D,
    /// Warnings to send back.
    pub(super) warnings: Vec<String>,
    /// Whether `next` is the stored object (with its revision stamped): the
    /// update writes nothing.
    pub(super) unchanged: bool,
    /// The revision the desired object named: a failed compare is then the
    /// client's conflict, not a race to retry.
    pub(super) precondition: Option<Revision>,
}

/// Checks `wanted` and merges it with `current` per `mode`. The parts of
/// `current` that `next` keeps as they are (its `status` on the main
/// resource, all of it on the `status` subresource) are moved out of it
/// rather than copied, so `current` is not the stored object afterwards.
fn admit(
    kind: &KindInfo,
    current: &mut Value,
    mut wanted: Value,
    mode: UpdateMode,
    opts: WriteOptions,
    precondition: Option<Revision>,
) -> Result<Admitted<Value>, ApiError> {
    if !wanted.is_object() {
        return Err(ApiError::BadRequest("the object must be a JSON object".into()));
    }
    let pinned = pin_identity(kind, current, &mut wanted)?;
    let (checked, warnings) =
        if opts.prechecked && !pinned { (wanted, Vec::new()) } else { check(kind, &wanted, opts.validation)? };
    let (mut next, unchanged) = match mode {
        UpdateMode::Main => {
            let mut next = checked;
            for field in SERVER_OWNED {
                match meta(current).get(field) {
                    Some(v) => meta_mut(&mut next).insert(field.into(), v.clone()),
                    None => meta_mut(&mut next).remove(field),
                };
            }
            // The stored status, moved: `current` has none left, so the two
            // agree on it and are compared without it.
            let moved = kind.has_status;
            if moved {
                set_status(&mut next, current.as_object_mut().and_then(|o| o.remove("status")));
            }
            if !object::same_desired_part(&next, current) {
                let generation = meta(current).get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta_mut(&mut next).insert("generation".into(), Value::from(generation + 1));
            }
            let unchanged = same_but_revision(&next, current, moved);
            (next, unchanged)
        }
        UpdateMode::Status => {
            check_task_transition(kind, current, &checked)?;
            // Everything but the status is the stored object's, moved.
            let mut checked = checked;
            let status = checked.as_object_mut().and_then(|o| o.remove("status")).filter(|s| !s.is_null());
            let unchanged = current.get("status") == status.as_ref();
            let mut next = std::mem::take(current);
            set_status(&mut next, status);
            meta_mut(&mut next).remove("resourceVersion");
            return Ok(Admitted { next, warnings, unchanged, precondition });
        }
    };
    if object::is_deleting(current) {
        let before = object::finalizers(current);
        let added: Vec<String> = object::finalizers(&next).into_iter().filter(|f| !before.contains(f)).collect();
        if !added.is_empty() {
            return Err(ApiError::Invalid {
                kind: kind.kind.to_string(),
                name: object::name(current).to_string(),
                causes: vec![FieldError::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                    ),
                )],
            });
        }
    }
    meta_mut(&mut next).remove("resourceVersion");
    Ok(Admitted { next, warnings, unchanged, precondition })
}

/// Whether `next` (before its revision is stamped) will equal `current`
/// (stamped with it) once stamped with the same revision; with
/// `status_moved`, `current`'s status is in `next` and is left out.
fn same_but_revision(next: &Value, current: &Value, status_moved: bool) -> bool {
    let (Some(n), Some(c)) = (next.as_object(), current.as_object()) else { return next == current };
    let same_meta = |a: &Value, b: &Value| {
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
        let plain = |(k, _): &(&String, &Value)| k.as_str() != "resourceVersion";
        a.iter().filter(plain).eq(b.iter().filter(plain))
    };
    let skip = |(k, _): &(&String, &Value)| !(status_moved && k.as_str() == "status");
    let mut left = n.iter().filter(skip);
    let mut right = c.iter().filter(skip);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some((ka, va)), Some((kb, vb))) => {
                let same = ka == kb && if ka == "metadata" { same_meta(va, vb) } else { va == vb };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A Task's status write must follow the state machine
/// (`state_machine::validate_status_update`): an illegal change of
/// `status.state` is a 422 naming the field.
fn check_task_transition(kind: &KindInfo, current: &Value, wanted: &Value) -> Result<(), ApiError> {
    if kind.kind != "Task" {
        return Ok(());
    }
    let status = |v: &Value| -> Option<meseta_schemas::kinds::TaskStatus> {
        // Read in place: `&Value` is a deserializer, no copy of the status needed.
        let status = v.get("status").filter(|s| !s.is_null())?;
        serde::Deserialize::deserialize(status).ok()
    };
    let Some(new) = status(wanted) else { return Ok(()) };
    let causes = meseta_schemas::state_machine::validate_status_update(status(current).as_ref(), &new);
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid { kind: kind.kind.to_string(), name: object::name(current).to_string(), causes })
}

/// Fills name and namespace from the stored object; a different one is a
/// 400. Returns whether it changed `wanted`.
fn pin_identity(kind: &KindInfo, current: &Value, wanted: &mut Value) -> Result<bool, ApiError> {
    let mut changed = false;
    for (field, what) in [("name", "name"), ("namespace", "namespace")] {
        let stored = object::meta_str(current, field).unwrap_or_default().to_string();
        match object::meta_str(wanted, field) {
            None | Some("") => {
                if !stored.is_empty() {
                    meta_mut(wanted).insert(field.into(), Value::String(stored));
                    changed = true;
                }
            }
            Some(given) if given == stored => {}
            Some(given) if field == "namespace" && !kind.namespaced => {
                let _ = given;
                meta_mut(wanted).remove("namespace");
                changed = true;
            }
            Some(given) => {
                return Err(ApiError::BadRequest(format!(
                    "the {what} of the object ({given}) does not match the {what} on the URL ({stored})"
                )))
            }
        }
    }
    Ok(changed)
}

fn set_status(obj: &mut Value, status: Option<Value>) {
    let Some(o) = obj.as_object_mut() else { return };
    match status {
        Some(s) if !s.is_null() => {
            o.insert("status".into(), s);
        }
        _ => {
            o.remove("status");
        }
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "update_memo_tests.rs"]
mod memo_tests;
