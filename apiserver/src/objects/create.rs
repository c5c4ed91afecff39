//! Create: name generation, namespace defaulting, server-owned metadata, the
//! status a new object starts with, and the "must not exist" transaction.
//!
//! # Initial status
//!
//! Like Kubernetes, a create ignores the `status` the caller sent for kinds
//! with a status subresource. [`initial_status`] is the one per-kind hook
//! that then puts the status every new object of a kind starts with (as the
//! pod strategy's `PrepareForCreate` sets `status.phase: Pending`): today
//! only a Task, which starts PENDING with one `taskEvents` entry stamped to
//! the nanosecond, so MTTA / MTTR are measured from the moment of creation
//! rather than from the whole-second `creationTimestamp`.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use meseta_schemas::kinds::{Task, TaskEvent, TaskState, TaskStatus};
use meseta_schemas::registry::KindInfo;
use meseta_schemas::Resource;
use rand::Rng;
use serde_json::{json, Value};

use super::{check, stored_written, WriteOptions, Written, WrittenObject};
use crate::error::ApiError;
use crate::object::{self, meta_mut};
use crate::path::{object_key, resource_name};
use crate::store::{Compare, Op, Store, Txn, TxnOutcome};

/// Characters of generated name suffixes (no vowels, like Kubernetes).
const SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Attempts at a fresh generated name before giving up.
const GENERATE_ATTEMPTS: usize = 8;

/// Creates `body` as an object of `kind` in `namespace` (the path's). Fails
/// with 409 AlreadyExists when the name is taken.
pub async fn create(
    store: &dyn Store,
    kind: &'static KindInfo,
    namespace: Option<&str>,
    mut body: Value,
    opts: WriteOptions,
) -> Result<Written, ApiError> {
    place_in_namespace(kind, namespace, &mut body)?;
    if !generates_name(&body) {
        return create_once(store, kind, body, opts).await;
    }
    for _ in 0..GENERATE_ATTEMPTS {
        let mut candidate = body.clone();
        let prefix = object::meta_str(&body, "generateName").unwrap_or_default();
        meta_mut(&mut candidate).insert("name".into(), Value::String(format!("{prefix}{}", suffix())));
        match create_once(store, kind, candidate, opts).await {
            Err(ApiError::AlreadyExists { .. }) => continue,
            other => return other,
        }
    }
    Err(ApiError::AlreadyExists {
        resource: resource_name(kind),
        name: object::meta_str(&body, "generateName").unwrap_or_default().to_string(),
    })
}

/// What a create request brings.
#[derive(Debug)]
pub enum NewObject {
    /// The decoded body, still to be placed in the path's namespace and checked.
    Decoded(Value),
    /// The body already placed and checked ([`super::check_json`]).
    Checked(Value),
}

/// Creates the object of a create request in `namespace` (the path's);
/// `track` records the write's field ownership on the checked object (on
/// the decoded body when the server generates the name) before it is
/// stored.
pub async fn create_tracked(
    store: &dyn Store,
    kind: &'static KindInfo,
    namespace: Option<&str>,
    body: NewObject,
    opts: WriteOptions,
    track: impl FnOnce(&mut Value),
) -> Result<Written, ApiError> {
    let (mut obj, warnings) = match body {
        NewObject::Checked(obj) => (obj, Vec::new()),
        NewObject::Decoded(mut body) => {
            place_in_namespace(kind, namespace, &mut body)?;
            if generates_name(&body) {
                track(&mut body);
                return create(store, kind, namespace, body, opts).await;
            }
            check(kind, &body, opts.validation)?
        }
    };
    if generates_name(&obj) {
        track(&mut obj);
        return create(store, kind, namespace, obj, opts).await;
    }
    track(&mut obj);
    create_checked(store, kind, obj, warnings, opts).await
}

/// Whether the server picks the name of `body` (`generateName` without `name`).
fn generates_name(body: &Value) -> bool {
    object::name(body).is_empty() && object::meta_str(body, "generateName").is_some_and(|g| !g.is_empty())
}

/// Checks `body` like a create and fills the server-owned metadata of a new
/// object (uid, creationTimestamp, generation) and its initial status (see
/// [`initial_status`]), as of now. Writes nothing: callers that create
/// objects inside a larger transaction (offer accepts) go through here, or
/// [`prepare_new_at`], so new objects look the same however they were made.
pub(crate) fn prepare_new(
    kind: &'static KindInfo,
    body: &Value,
    validation: crate::request::FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    prepare_new_at(kind, body, validation, Utc::now())
}

/// [`prepare_new`] as of `now`: the creation time and the initial status are
/// both stamped with it, so a caller that goes on to record later moments of
/// the same request (an accept's ASSIGNED) never records one before it.
pub(crate) fn prepare_new_at(
    kind: &'static KindInfo,
    body: &Value,
    validation: crate::request::FieldValidation,
    now: DateTime<Utc>,
) -> Result<(Value, Vec<String>), ApiError> {
    let (mut obj, warnings) = check(kind, body, validation)?;
    stamp_new(kind, &mut obj, now);
    Ok((obj, warnings))
}

/// [`prepare_new_at`] of a Task, giving the typed Task: checked like a
/// create, with the same server-owned metadata and initial status, without
/// the trip through JSON and back (an accept goes on with the typed task).
pub(crate) fn prepare_new_task_at(
    kind: &'static KindInfo,
    body: &Value,
    validation: crate::request::FieldValidation,
    now: DateTime<Utc>,
) -> Result<Task, ApiError> {
    let (mut task, _) = super::check_typed::<Task>(kind, body, validation)?;
    let m = &mut task.metadata;
    (m.resource_version, m.deletion_timestamp, m.deletion_grace_period_seconds) = (None, None, None);
    m.uid = Some(new_uid());
    m.creation_timestamp = Some(now.trunc_subsecs(0));
    m.generation = Some(1);
    task.status = Some(TaskStatus {
        state: TaskState::Pending,
        task_events: vec![TaskEvent { timestamp: now, state: TaskState::Pending, message: CREATED.into() }],
        ..Default::default()
    });
    Ok(task)
}

/// The message of a Task's first event.
const CREATED: &str = "created";

/// Fills the server-owned metadata and the initial status of the checked
/// new object `obj`, as of `now`.
fn stamp_new(kind: &KindInfo, obj: &mut Value, now: DateTime<Utc>) {
    let m = meta_mut(obj);
    for server_owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        m.remove(server_owned);
    }
    m.insert("uid".into(), Value::String(new_uid()));
    m.insert("creationTimestamp".into(), Value::String(now.to_rfc3339_opts(SecondsFormat::Secs, true)));
    m.insert("generation".into(), Value::from(1));
    if kind.has_status {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
            if let Some(status) = initial_status(kind, now) {
                o.insert("status".into(), status);
            }
        }
    }
}

/// The status a new object of `kind` starts with, whatever the caller sent;
/// `None` leaves it without one (the Kubernetes default for kinds with a
/// status subresource). A Task starts PENDING with one `created` event at
/// `now` (RFC 3339, nanoseconds): the first entry of its history, which the
/// state machine keeps and MTTA / MTTR are measured from.
fn initial_status(kind: &KindInfo, now: DateTime<Utc>) -> Option<Value> {
    (kind.kind == Task::KIND).then(|| {
        let pending = Value::from(TaskState::Pending.as_str());
        json!({
            "state": pending,
            "taskEvents": [{
                "timestamp": now.to_rfc3339_opts(SecondsFormat::Nanos, true),
                "state": pending,
                "message": CREATED,
            }],
        })
    })
}

/// A fresh random (version 4) uid. The bytes come from the thread's
/// cryptographically secure generator (`rand::rng`, reseeded from the OS)
/// rather than one `getrandom` system call per object.
fn new_uid() -> String {
    let uid = uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid();
    uid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
}

fn suffix() -> String {
    let mut rng = rand::rng();
    (0..5).map(|_| SUFFIX_CHARS[rng.random_range(0..SUFFIX_CHARS.len())] as char).collect()
}

/// Fills the body's namespace from the path, refusing a different one.
fn place_in_namespace(kind: &KindInfo, namespace: Option<&str>, body: &mut Value) -> Result<(), ApiError> {
    if !kind.namespaced {
        meta_mut(body).remove("namespace");
        return Ok(());
    }
    let Some(ns) = namespace else {
        return Err(ApiError::MethodNotAllowed(format!(
            "{} are namespaced: create them with POST /apis/meseta.io/v1/namespaces/{{namespace}}/{}",
            kind.plural, kind.plural
        )));
    };
    match object::meta_str(body, "namespace") {
        None | Some("") => {
            meta_mut(body).insert("namespace".into(), Value::String(ns.to_string()));
            Ok(())
        }
        Some(given) if given == ns => Ok(()),
        Some(given) => Err(ApiError::BadRequest(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
        ))),
    }
}

async fn create_once(
    store: &dyn Store,
    kind: &'static KindInfo,
    body: Value,
    opts: WriteOptions,
) -> Result<Written, ApiError> {
    let (obj, warnings) = check(kind, &body, opts.validation)?;
    create_checked(store, kind, obj, warnings, opts).await
}

/// Stamps and stores the checked new object `obj`.
async fn create_checked(
    store: &dyn Store,
    kind: &'static KindInfo,
    mut obj: Value,
    warnings: Vec<String>,
    opts: WriteOptions,
) -> Result<Written, ApiError> {
    stamp_new(kind, &mut obj, Utc::now());
    let name = object::name(&obj).to_string();
    let key = object_key(kind, object::meta_str(&obj, "namespace"), &name);
    if opts.dry_run {
        if store.get(&key).await?.is_some() {
            return Err(ApiError::AlreadyExists { resource: resource_name(kind), name });
        }
        return Ok(Written { object: WrittenObject::Value(obj), warnings });
    }
    let (stored, splice_at) = object::encode_stored(&obj, 1024);
    let txn = Txn {
        compares: vec![Compare::ModRevision { key: key.clone(), revision: 0 }],
        ops: vec![Op::Put { key: key.clone(), value: stored.clone() }],
    };
    match store.txn(txn).await? {
        TxnOutcome::Committed { revision } => {
            object::set_resource_version(&mut obj, revision);
            Ok(Written { object: stored_written(store, &key, obj, stored, revision, splice_at, true), warnings })
        }
        TxnOutcome::Failed { .. } => Err(ApiError::AlreadyExists { resource: resource_name(kind), name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::FieldValidation;

    #[test]
    fn a_task_prepared_typed_is_the_task_prepared_as_json_and_fails_alike() {
        let tasks = meseta_schemas::registry::by_plural("tasks").unwrap();
        let now = Utc::now();
        let body = json!({"apiVersion": "meseta.io/v1", "kind": "Task",
            "metadata": {"name": "t", "namespace": "r", "labels": {"a": "b"}, "resourceVersion": "7",
                "uid": "given", "generation": 9, "deletionGracePeriodSeconds": 3},
            "spec": {"command": "true", "resources": {"cpus": 0.5, "mem": 64}},
            "status": {"state": "RUNNING", "message": "sent by the client"}});
        let (as_json, _) = prepare_new_at(tasks, &body, FieldValidation::Strict, now).unwrap();
        let mut as_json: Task = serde_json::from_value(as_json).unwrap();
        let typed = prepare_new_task_at(tasks, &body, FieldValidation::Strict, now).unwrap();
        assert_ne!(typed.metadata.uid.as_deref(), Some("given"), "the server picks the uid");
        as_json.metadata.uid.clone_from(&typed.metadata.uid);
        assert_eq!(typed, as_json);
        assert_eq!(typed.state(), TaskState::Pending);

        let unknown = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t"},
            "spec": {"command": "true", "spex": 1}});
        let invalid = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "T_T"},
            "spec": {"command": "", "resources": {"cpus": -1}}});
        for bad in [unknown, invalid] {
            let a = prepare_new_at(tasks, &bad, FieldValidation::Strict, now).unwrap_err();
            let b = prepare_new_task_at(tasks, &bad, FieldValidation::Strict, now).unwrap_err();
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }

    #[test]
    fn uids_are_distinct_random_version_4_uuids() {
        let uids: std::collections::HashSet<String> = (0..1000).map(|_| new_uid()).collect();
        assert_eq!(uids.len(), 1000, "every uid is new");
        for uid in &uids {
            let parsed = uuid::Uuid::parse_str(uid).expect("a uid is a UUID");
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{uid}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{uid}");
            assert_eq!(uid, &parsed.hyphenated().to_string(), "lower-case hyphenated form");
        }
    }
}
