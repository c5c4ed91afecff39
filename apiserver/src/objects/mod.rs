//! Object operations over the store, independent of HTTP: create, update
//! (main resource and `status`), delete with finalizers and propagation, and
//! filtered, paginated lists. The HTTP handlers and the garbage collector both
//! go through here, so every write obeys the same rules.
//!
//! # Guarantees
//!
//! - Every write is one store transaction conditioned on the `mod_revision`
//!   that was read, so a concurrent write is never lost: an explicit
//!   `resourceVersion` precondition turns a race into 409 Conflict, an
//!   unconditional write re-reads and retries.
//! - A rejected request writes nothing; `dry_run` computes the result and
//!   writes nothing.
//! - Server-owned metadata (uid, creationTimestamp, generation,
//!   deletionTimestamp) is set here and cannot be changed by callers.
//!
//! It must not know about URLs, headers or response formats.

mod create;
mod delete;
pub mod filter;
mod list;
mod strict;
mod task_status;
mod typed;
mod update;

pub use create::{create, create_tracked, NewObject};
pub(crate) use create::{prepare_new, prepare_new_task_at};
pub use delete::delete;
pub use filter::Filter;
pub use list::{list, list_stored, ListPage, StoredItem, StoredPage};
pub(crate) use task_status::update_task_status;
pub(crate) use typed::{check_json, check_task, Checked};
pub use update::{update, UpdateMode};

use meseta_schemas::registry::KindInfo;
use serde_json::Value;

use crate::error::ApiError;
use crate::object;
use crate::request::FieldValidation;

/// How a write is carried out.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Validate and compute the result, write nothing.
    pub dry_run: bool,
    /// What to do with unknown fields.
    pub validation: FieldValidation,
    /// The desired objects an update computes come already checked by the
    /// kind's rules ([`check_json`]), managedFields aside: the update checks
    /// them again only when it had to fill in their name or namespace.
    pub prechecked: bool,
    /// The revision the desired object's `resourceVersion` names, when the
    /// caller knows it before computing the object (a PUT's body): the
    /// update then computes it at most once, so the caller may move its
    /// body into the result.
    pub precondition: Option<crate::store::Revision>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { dry_run: false, validation: FieldValidation::Strict, prechecked: false, precondition: None }
    }
}

/// The result of a write: the object after it and the warnings to send back.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object after the write.
    pub object: WrittenObject,
    /// `Warning` header texts (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// The object after a write, in the form the write left it.
#[derive(Debug, Clone)]
pub enum WrittenObject {
    /// Nothing was stored (a dry run, the deletion that removed the last
    /// finalizer): the object, with its `resourceVersion`.
    Value(Value),
    /// The bytes the write stored (the object's JSON without
    /// `resourceVersion`, see [`object::encode_stored`]) at `revision`, or
    /// for an update that changed nothing the bytes already stored. The
    /// response splices the revision into them instead of serialising the
    /// object again, and the decoded object goes to the store's memo for
    /// the key's next update.
    Stored {
        /// The stored bytes.
        bytes: bytes::Bytes,
        /// The write's revision: the object's `resourceVersion`.
        revision: crate::store::Revision,
        /// Where the revision goes in `bytes`, noted when the write
        /// serialised them; `None` leaves the response to scan for it.
        splice_at: Option<(usize, bool)>,
    },
}

/// Leaves `obj`, just stored at `revision` under `key` as `stored`, in the
/// store's memo, and gives the stored form to answer with. An object just
/// created or given a new status is only offered (kept if there is room, see
/// [`crate::store::KeyMemo::offer`]): many new objects are never updated, and
/// a status is written by whoever runs the object when something happened to
/// it, seldom soon again (an agent's RUNNING). Those must not push out the
/// objects whose next write is near: one just updated, a task just bound.
fn stored_written<T: std::any::Any + Send>(
    store: &dyn crate::store::Store,
    key: &str,
    obj: T,
    stored: bytes::Bytes,
    revision: crate::store::Revision,
    splice_at: Option<(usize, bool)>,
    offered: bool,
) -> WrittenObject {
    match store.memo() {
        Some(memo) if offered => memo.offer(key, revision, obj, stored.len()),
        Some(memo) => memo.put(key, revision, obj, stored.len()),
        None => {}
    }
    WrittenObject::Stored { bytes: stored, revision, splice_at }
}

/// Decodes, defaults and validates a submitted object against its kind.
/// Unknown fields are handled per `validation`; violations are a 422 naming
/// every field. Returns the normalized object and the warnings.
pub(crate) fn check(
    kind: &KindInfo,
    submitted: &Value,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let checked = (kind.check)(submitted);
    let object = (!checked.object.is_null()).then_some(checked.object);
    judge(kind, submitted, object, checked.unknown_fields, checked.errors, validation)
}

/// [`check`] of a submitted `K`, giving the typed object.
pub(crate) fn check_typed<K: meseta_schemas::Resource + meseta_schemas::validation::Validate>(
    kind: &KindInfo,
    submitted: &Value,
    validation: FieldValidation,
) -> Result<(K, Vec<String>), ApiError> {
    let checked = meseta_schemas::registry::check_typed::<K>(submitted);
    judge(kind, submitted, checked.object, checked.unknown_fields, checked.errors, validation)
}

/// The answer to a check: the object and the warnings, or the error that
/// `unknown` fields (per `validation`) or `errors` make it.
fn judge<T>(
    kind: &KindInfo,
    submitted: &Value,
    object: Option<T>,
    unknown: Vec<String>,
    errors: Vec<meseta_schemas::FieldError>,
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                return Err(ApiError::BadRequest(format!("strict decoding error: {}", list.join(", "))));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            }
            FieldValidation::Ignore => {}
        }
    }
    match object {
        Some(object) if errors.is_empty() => Ok((object, warnings)),
        _ => Err(ApiError::Invalid {
            kind: kind.kind.to_string(),
            name: object::name(submitted).to_string(),
            causes: errors,
        }),
    }
}

/// A `Conflict` for a stale `resourceVersion`.
pub fn stale(kind: &KindInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: crate::path::resource_name(kind),
        name: name.to_string(),
        reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// A `NotFound` for `name` of `kind`.
pub fn not_found(kind: &KindInfo, name: &str) -> ApiError {
    ApiError::NotFound { resource: crate::path::resource_name(kind), name: name.to_string() }
}

/// How many times an unconditional write re-reads after losing a race.
pub(crate) const MAX_RETRIES: usize = 64;
