//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and field
//! ownership in `metadata.managedFields`.
//!
//! # Rules
//!
//! - Every write records who changed which fields: creates, updates and
//!   merge/JSON patches give their `fieldManager` (default: the client's
//!   user agent up to `/`) an `Update` entry owning the fields it changed,
//!   and take those fields away from other entries ([`track_update`]).
//!   A request that sets `managedFields` itself is taken as given; one that
//!   leaves it out keeps the stored entries.
//! - An apply by manager M owns exactly the fields of its configuration
//!   (M's `Apply` entry is replaced). A field it sets to a value different
//!   from the live one while another entry owns it is a conflict: 409 with
//!   `Apply failed with N conflict(s): conflict with "<manager>" using
//!   meseta.io/v1: .spec.x` and one `FieldManagerConflict` cause per field.
//!   `force=true` takes the fields over instead. A manager's own `Update`
//!   entry never conflicts with its applies.
//! - Fields M applied before, left out now and owned by nobody else are
//!   removed from the object.
//! - Lists are atomic; maps are merged key by key.
//!
//! It must not know any kind; validation and the write itself go through
//! [`crate::objects`].

mod fields;
mod track;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meseta_schemas::API_VERSION;
use serde_json::{json, Value};

pub use fields::{Entry, FieldPath, FieldSet};
pub use track::track_update;

use crate::error::ApiError;
use crate::object;
use crate::objects::{self, UpdateMode, WriteOptions};
use crate::path::Target;
use crate::request::Params;
use crate::store::Store;

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager.
    pub manager: String,
    /// The field, e.g. `.spec.resources.cpus`.
    pub field: String,
}

/// The manager of a write: `fieldManager`, else the user agent's name.
pub fn manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(m) = params.field_manager.as_deref().filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn subresource(mode: UpdateMode) -> Option<&'static str> {
    match mode {
        UpdateMode::Main => None,
        UpdateMode::Status => Some("status"),
    }
}

/// Whether a write in `mode` can change the field at `path`.
fn in_scope(path: &[String], mode: UpdateMode, has_status: bool) -> bool {
    key_in_scope(path.first().map_or("", String::as_str), mode, has_status)
}

/// Whether a write in `mode` can change fields under the top-level `key`.
fn key_in_scope(key: &str, mode: UpdateMode, has_status: bool) -> bool {
    let status = key == "status";
    match mode {
        UpdateMode::Main => !(status && has_status),
        UpdateMode::Status => status,
    }
}

/// The object an apply of `config` by `manager` makes of `current`, or the conflicts.
pub fn apply_to(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    mode: UpdateMode,
    has_status: bool,
) -> Result<Value, Vec<Conflict>> {
    let sub = subresource(mode);
    let mut entries = fields::read(current);
    let applied: FieldSet = fields::leaves(config).into_iter().filter(|p| in_scope(p, mode, has_status)).collect();
    let mut conflicts = Vec::new();
    // A manager never conflicts with itself (its own `Update` entry).
    for e in entries.iter_mut().filter(|e| e.manager != manager) {
        let lost: Vec<FieldPath> = e
            .fields
            .intersection(&applied)
            .filter(|p| !fields::same(fields::value_at(config, p), fields::value_at(current, p)))
            .cloned()
            .collect();
        for p in lost {
            if force {
                e.fields.remove(&p);
            } else {
                conflicts.push(Conflict { manager: e.manager.clone(), field: fields::display(&p) });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous = entries.iter().find(|e| e.is(manager, "Apply", sub)).map(|e| e.fields.clone()).unwrap_or_default();
    let mut next = current.clone();
    let mut patch = config.clone();
    object::meta_mut(&mut patch).remove("managedFields");
    crate::patch::merge_patch(&mut next, &patch);
    for gone in previous.difference(&applied) {
        let owned_elsewhere = entries.iter().any(|e| !e.is(manager, "Apply", sub) && e.fields.contains(gone));
        if !owned_elsewhere {
            fields::remove_at(&mut next, gone);
        }
    }
    entries.retain(|e| !e.is(manager, "Apply", sub));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: API_VERSION.into(),
        time: object::now_timestamp(),
        subresource: sub.map(str::to_string),
        fields: applied,
    });
    fields::write(&mut next, &entries);
    Ok(next)
}

/// The 409 of an apply that conflicts, as Kubernetes words it.
pub fn conflict_status(target: &Target, conflicts: &[Conflict]) -> Value {
    let n = conflicts.len();
    let body = if n == 1 {
        format!("conflict with \"{}\" using {API_VERSION}: {}", conflicts[0].manager, conflicts[0].field)
    } else {
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.dedup();
        managers.sort_unstable();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with \"{m}\" using {API_VERSION}:"));
            lines.extend(conflicts.iter().filter(|c| c.manager == m).map(|c| format!("- {}", c.field)));
        }
        lines.join("\n")
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {API_VERSION}", c.manager), "field": c.field})
        })
        .collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("Apply failed with {n} conflict{}: {body}", if n == 1 { "" } else { "s" }),
        "reason": "Conflict",
        "details": {"name": target.name(), "group": meseta_schemas::GROUP, "kind": target.kind.plural, "causes": causes},
        "code": 409,
    })
}

/// One server-side apply request, decoded.
pub(crate) struct ApplyRequest<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The object addressed.
    pub target: &'a Target,
    /// The applied configuration.
    pub config: Value,
    /// `fieldManager`.
    pub manager: String,
    /// `force=true`.
    pub force: bool,
    /// Main resource or `status`.
    pub mode: UpdateMode,
    /// Dry run and field validation.
    pub opts: WriteOptions,
}

/// Serves an apply: creates the object (201) when missing, else applies (200).
pub(crate) async fn serve(req: ApplyRequest<'_>) -> Result<(StatusCode, objects::Written), Response> {
    let ApplyRequest { store, target, config, manager, force, mode, opts } = req;
    let kind = target.kind;
    let mut conflicts = None;
    let result = objects::update(store, kind, &target.key(), target.name(), mode, opts, |current| {
        // What the last call found is the answer: an update may call again.
        conflicts = None;
        let mut next = apply_to(current, &config, &manager, force, mode, kind.has_status).map_err(|c| {
            conflicts = Some(c);
            ApiError::BadRequest("apply conflict".into())
        })?;
        object::meta_mut(&mut next).remove("resourceVersion");
        Ok(next)
    })
    .await;
    if let Some(c) = conflicts {
        return Err((StatusCode::CONFLICT, axum::Json(conflict_status(target, &c))).into_response());
    }
    match result {
        Ok(w) => Ok((StatusCode::OK, w)),
        Err(ApiError::NotFound { .. }) if mode == UpdateMode::Main => {
            let mut body = config.clone();
            if object::name(&body).is_empty() {
                object::meta_mut(&mut body).insert("name".into(), Value::String(target.name().to_string()));
            }
            let applied: FieldSet = fields::leaves(&body);
            let entry = Entry {
                manager,
                operation: "Apply".into(),
                api_version: API_VERSION.into(),
                time: object::now_timestamp(),
                subresource: None,
                fields: applied.into_iter().filter(|p| in_scope(p, mode, kind.has_status)).collect(),
            };
            fields::write(&mut body, &[entry]);
            objects::create(store, kind, target.namespace.as_deref(), body, opts)
                .await
                .map(|w| (StatusCode::CREATED, w))
                .map_err(IntoResponse::into_response)
        }
        Err(e) => Err(e.into_response()),
    }
}

#[cfg(test)]
mod tests;
