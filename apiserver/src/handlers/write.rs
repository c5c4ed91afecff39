//! Writes: POST (create), PUT (replace), PATCH, DELETE and deletecollection.

use axum::http::StatusCode;
use axum::response::Response;
use meseta_schemas::FieldError;
use serde_json::Value;

use super::read::list_body;
use super::{answer_written, respond, Call};
use crate::error::ApiError;
use crate::object;
use crate::objects::{self, Filter, ListPage, NewObject, UpdateMode, WriteOptions};
use crate::patch::{self as patching, PatchError};
use crate::request::{self, DeleteOptions, PatchKind};

fn write_options(call: &Call) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        dry_run: call.params.dry_run()?,
        validation: call.params.field_validation()?,
        prechecked: false,
        precondition: None,
    })
}

/// `POST .../{plural}`. A plain JSON body is decoded straight into its
/// kind's type ([`objects::check_json`]); anything else is decoded as JSON or
/// YAML and checked from there.
pub(super) async fn create(mut call: Call) -> Result<Response, ApiError> {
    let opts = write_options(&call)?;
    let ct = request::content_type(&call.headers);
    request::check_object_content_type(ct.as_deref())?;
    let bytes = request::read_body(&call.headers, std::mem::take(&mut call.body)).await?;
    let (kind, namespace) = (call.target.kind, call.target.namespace.as_deref());
    let checked = match ct.as_deref() {
        None | Some("application/json") => objects::check_json(kind, &bytes, namespace),
        Some(_) => None,
    };
    let body = match checked {
        Some(checked) => NewObject::Checked(checked.into_value()?),
        None => NewObject::Decoded(request::decode_object(&bytes, ct.as_deref())?),
    };
    let manager = crate::apply::manager(&call.params, &call.headers);
    let track = |obj: &mut Value| crate::apply::track_update(None, obj, &manager, UpdateMode::Main, kind.has_status);
    let store = call.state.store().clone();
    let written = objects::create_tracked(store.as_ref(), kind, namespace, body, opts, track).await?;
    Ok(answer_written(&call.headers, StatusCode::CREATED, kind, &written))
}

/// `PUT .../{name}` and `.../{name}/status`. A plain JSON body is decoded
/// straight into its kind's type and checked once, not on every attempt.
pub(super) async fn replace(mut call: Call, mode: UpdateMode) -> Result<Response, ApiError> {
    let mut opts = write_options(&call)?;
    let ct = request::content_type(&call.headers);
    request::check_object_content_type(ct.as_deref())?;
    let bytes = request::read_body(&call.headers, std::mem::take(&mut call.body)).await?;
    let kind = call.target.kind;
    let json = matches!(ct.as_deref(), None | Some("application/json"));
    if json && mode == UpdateMode::Status {
        if let Some((task, precondition)) = typed_status(&call, &bytes) {
            drop(bytes);
            opts.prechecked = true;
            opts.precondition = precondition;
            let (store, t) = (call.state.store().clone(), &call.target);
            let written = objects::update_task_status(store.as_ref(), kind, &t.key(), t.name(), opts, task).await?;
            return Ok(answer_written(&call.headers, StatusCode::OK, kind, &written));
        }
    }
    let checked = match json {
        true => objects::check_json(kind, &bytes, call.target.namespace.as_deref()),
        false => None,
    };
    opts.prechecked = checked.is_some();
    let body = match checked {
        Some(checked) => Body::Checked(checked),
        None => Body::Decoded(request::decode_object(&bytes, ct.as_deref())?),
    };
    drop(bytes);
    let manager = crate::apply::manager(&call.params, &call.headers);
    let store = call.state.store().clone();
    // With a resourceVersion the desired object is computed once (a race is
    // a conflict, never a retry), so the body is moved rather than copied.
    opts.precondition = body.resource_version().ok().flatten();
    let once = opts.precondition.is_some();
    let mut spare = Some(body);
    let written =
        objects::update(store.as_ref(), kind, &call.target.key(), call.target.name(), mode, opts, |current| {
            let mut next = match (once, spare.as_ref()) {
                (true, Some(_)) => spare.take().expect("the body is there").into_value(current)?,
                (false, Some(body)) => body.value(current)?,
                (_, None) => return Err(ApiError::Internal("the update body was already used".into())),
            };
            track(current, &mut next, &manager, mode, kind.has_status);
            Ok(next)
        })
        .await?;
    Ok(answer_written(&call.headers, StatusCode::OK, call.target.kind, &written))
}

/// A Task status write's body the typed way takes (`objects::update_task_status`),
/// and the revision its `resourceVersion` names: a Task the short way checks,
/// named as the path names it. Any other body goes the general way, which
/// words every error.
fn typed_status(call: &Call, bytes: &[u8]) -> Option<(meseta_schemas::kinds::Task, Option<u64>)> {
    let task = objects::check_task(call.target.kind, bytes, call.target.namespace.as_deref())?;
    if task.metadata.name != call.target.name() {
        return None;
    }
    let precondition = match task.metadata.resource_version.as_deref() {
        None | Some("") => None,
        Some(rv) => Some(rv.parse().ok()?),
    };
    Some((task, precondition))
}

/// A PUT's body: checked the short way, or decoded to be checked by the update.
enum Body {
    Checked(objects::Checked),
    Decoded(Value),
}

impl Body {
    fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self {
            Body::Checked(checked) => object::resource_version(checked.object()),
            Body::Decoded(value) => object::resource_version(value),
        }
    }

    /// The desired object for an update of `current`.
    fn value(&self, current: &Value) -> Result<Value, ApiError> {
        match self {
            Body::Checked(checked) => checked.value_against(current),
            Body::Decoded(value) => Ok(value.clone()),
        }
    }

    /// [`Body::value`], consuming the body.
    fn into_value(self, current: &Value) -> Result<Value, ApiError> {
        match self {
            Body::Checked(checked) => checked.into_value_against(current),
            Body::Decoded(value) => Ok(value),
        }
    }
}

/// `PATCH .../{name}` and `.../{name}/status`: merge, JSON or apply patches.
pub(super) async fn patch(mut call: Call, mode: UpdateMode) -> Result<Response, ApiError> {
    let opts = write_options(&call)?;
    let ct = request::content_type(&call.headers);
    let kind = PatchKind::from_content_type(ct.as_deref())?;
    let bytes = request::read_body(&call.headers, std::mem::take(&mut call.body)).await?;
    let patch = match kind {
        PatchKind::Apply => request::decode_object(&bytes, Some("application/yaml"))?,
        PatchKind::Merge => request::decode_object(&bytes, Some("application/json"))?,
        PatchKind::Json => request::decode_any(&bytes, Some("application/json"))?,
    };
    let store = call.state.store().clone();
    let target = &call.target;
    let manager = crate::apply::manager(&call.params, &call.headers);
    if kind == PatchKind::Apply {
        if call.params.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::BadRequest("fieldManager: Required value: is required for apply patch".into()));
        }
        let force = matches!(call.params.force.as_deref(), Some("true") | Some("1"));
        let req =
            crate::apply::ApplyRequest { store: store.as_ref(), target, config: patch, manager, force, mode, opts };
        return Ok(match crate::apply::serve(req).await {
            Ok((code, written)) => answer_written(&call.headers, code, target.kind, &written),
            Err(resp) => resp,
        });
    }
    let result = objects::update(store.as_ref(), target.kind, &target.key(), target.name(), mode, opts, |current| {
        let mut next = current.clone();
        match kind {
            PatchKind::Merge | PatchKind::Apply => patching::merge_patch(&mut next, &patch),
            PatchKind::Json => patching::json_patch(&mut next, &patch).map_err(|e| patch_error(target, e))?,
        }
        // A resourceVersion the patch did not change is no precondition: the
        // patch applies to whatever is current (re-read on a race).
        if object::meta_str(&next, "resourceVersion") == object::meta_str(current, "resourceVersion") {
            object::meta_mut(&mut next).remove("resourceVersion");
        }
        track(current, &mut next, &manager, mode, target.kind.has_status);
        Ok(next)
    })
    .await;
    let written = result?;
    Ok(answer_written(&call.headers, StatusCode::OK, call.target.kind, &written))
}

/// Records the field ownership of an update of `current` to `next`. A write
/// through the `status` subresource keeps the stored metadata, its
/// `managedFields` included ([`objects::update`] takes only the status of
/// what is computed here), so there is nothing to record for it.
fn track(current: &Value, next: &mut Value, manager: &str, mode: UpdateMode, has_status: bool) {
    if mode == UpdateMode::Main {
        crate::apply::track_update(Some(current), next, manager, mode, has_status);
    }
}

fn patch_error(target: &crate::path::Target, e: PatchError) -> ApiError {
    match e {
        PatchError::Failed { ref path, .. } => ApiError::Invalid {
            kind: target.kind.kind.to_string(),
            name: target.name().to_string(),
            causes: vec![FieldError::invalid(path.clone(), "", format!("the JSON patch could not be applied: {e}"))],
        },
        other => ApiError::BadRequest(format!("invalid JSON patch: {other}")),
    }
}

async fn delete_options(call: &mut Call) -> Result<DeleteOptions, ApiError> {
    let ct = request::content_type(&call.headers);
    let bytes = request::read_body(&call.headers, std::mem::take(&mut call.body)).await?;
    DeleteOptions::from_request(&call.params, &bytes, ct.as_deref())
}

/// `DELETE .../{name}`: 200 with the deleted object, or with the object marked
/// for deletion while finalizers remain.
pub(super) async fn delete(mut call: Call) -> Result<Response, ApiError> {
    let opts = delete_options(&mut call).await?;
    let store = call.state.store().clone();
    let t = &call.target;
    let obj = objects::delete(store.as_ref(), t.kind, &t.key(), t.name(), opts).await?;
    Ok(respond(StatusCode::OK, &obj, &[]))
}

/// `DELETE .../{plural}`: deletes every object matching the selectors;
/// answers with the list of what was deleted (or marked).
pub(super) async fn delete_collection(mut call: Call) -> Result<Response, ApiError> {
    let opts = delete_options(&mut call).await?;
    let filter = Filter::from_params(&call.params)?;
    let store = call.state.store().clone();
    let t = &call.target;
    let page = objects::list(store.as_ref(), &t.prefix(), &filter, None, None).await?;
    let mut deleted = Vec::with_capacity(page.items.len());
    for item in &page.items {
        let name = object::name(item).to_string();
        let key = crate::path::object_key(t.kind, object::meta_str(item, "namespace"), &name);
        match objects::delete(store.as_ref(), t.kind, &key, &name, opts).await {
            Ok(obj) => deleted.push(obj),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let page = ListPage { items: deleted, revision: store.revision(), continue_token: None };
    Ok(respond(StatusCode::OK, &list_body(t.kind.kind, page), &[]))
}
