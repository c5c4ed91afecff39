//! HTTP handlers of `/apis/meseta.io/v1/...`: one entry point that parses the
//! path and dispatches on (collection or object, subresource, method).
//!
//! Owns the mapping from HTTP verbs to object operations and the response
//! shapes (objects, minimal answers to writes, `<Kind>List`, `Warning`
//! headers). The rules of each
//! operation live in [`crate::objects`]; watches in [`crate::watch`].
//!
//! Subresources: `status` is served here. Subresources with their own verbs
//! (`accept`, `decline`, `log`) get one arm each in [`dispatch`], next to
//! `status`.

mod log;
mod offers;
mod read;
mod write;

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::objects::WrittenObject;
use crate::path::Target;
use crate::request::Params;
use crate::state::AppState;

/// `ANY /apis/meseta.io/v1/{*rest}`.
pub(crate) async fn resource(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match dispatch(state, method, &rest, query.as_deref(), headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A request to one resource path, as parsed.
pub(crate) struct Call {
    pub(crate) state: AppState,
    pub(crate) target: Target,
    pub(crate) params: Params,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

async fn dispatch(
    state: AppState,
    method: Method,
    rest: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = Target::parse(rest)?;
    let params = Params::parse(query)?;
    let has_status = target.kind.has_status;
    let is_object = target.name.is_some();
    let sub = target.subresource.clone();
    let call = Call { state, target, params, headers, body };
    match (is_object, sub.as_deref(), &method) {
        (false, None, &Method::GET) if call.params.is_watch() => crate::watch::serve(call).await,
        (false, None, &Method::GET) => read::list(call).await,
        (false, None, &Method::POST) => write::create(call).await,
        (false, None, &Method::DELETE) => write::delete_collection(call).await,
        (true, None, &Method::GET) if call.params.is_watch() => crate::watch::serve(call).await,
        (true, None, &Method::GET) => read::get(call).await,
        (true, None, &Method::PUT) => write::replace(call, crate::objects::UpdateMode::Main).await,
        (true, None, &Method::PATCH) => write::patch(call, crate::objects::UpdateMode::Main).await,
        (true, None, &Method::DELETE) => write::delete(call).await,
        (true, Some("status"), &Method::GET) if has_status => read::get(call).await,
        (true, Some("status"), &Method::PUT) if has_status => {
            write::replace(call, crate::objects::UpdateMode::Status).await
        }
        (true, Some("status"), &Method::PATCH) if has_status => {
            write::patch(call, crate::objects::UpdateMode::Status).await
        }
        (true, Some("status"), _) if has_status => Err(not_allowed(&method, rest)),
        (true, Some("log"), &Method::GET) => log::serve(call, query).await,
        (true, Some("accept"), &Method::POST) if call.target.kind.plural == "offers" => offers::accept(call).await,
        (true, Some("decline"), &Method::POST) if call.target.kind.plural == "offers" => offers::decline(call).await,
        (true, Some(other), _) => {
            Err(ApiError::PathNotFound(format!("{} have no subresource \"{other}\"", call.target.kind.plural)))
        }
        _ => Err(not_allowed(&method, rest)),
    }
}

fn not_allowed(method: &Method, rest: &str) -> ApiError {
    ApiError::MethodNotAllowed(format!("the server does not allow {method} on /apis/meseta.io/v1/{rest}"))
}

/// The response to a write: the object as written, with `Warning` headers.
/// When the write stored bytes, the body is those bytes with the revision
/// spliced in (the same JSON object as serialising the written object,
/// without serialising it again; the write serialised them, so they are
/// well-formed).
pub(crate) fn respond_written(code: StatusCode, written: &crate::objects::Written) -> Response {
    let (bytes, revision, splice_at) = match &written.object {
        WrittenObject::Value(object) => return respond(code, object, &written.warnings),
        WrittenObject::Stored { bytes, revision, splice_at } => (bytes, *revision, *splice_at),
    };
    let Some(point) = splice_at.or_else(|| crate::object::splice_point_of_json(bytes)) else {
        // Stored bytes without a `metadata` object: decoded and stamped.
        return match crate::object::from_stored(bytes, revision) {
            Ok(object) => respond(code, &object, &written.warnings),
            Err(err) => err.into_response(),
        };
    };
    let mut body = Vec::with_capacity(bytes.len() + 40);
    crate::object::append_spliced(&mut body, bytes, point, revision);
    let mut resp = (code, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    add_warnings(&mut resp, &written.warnings);
    resp
}

/// The answer to a write on `headers`' request: [`respond_written`], or to
/// a client that prefers a minimal answer (`Prefer: return=minimal`, RFC
/// 7240) the object's apiVersion, kind, name, namespace, uid and
/// resourceVersion alone, with `Preference-Applied: return=minimal`: what a
/// writer needs to write again or to match a watch event, without sending
/// back the object it has just sent.
pub(crate) fn answer_written(
    headers: &HeaderMap,
    code: StatusCode,
    kind: &meseta_schemas::registry::KindInfo,
    written: &crate::objects::Written,
) -> Response {
    if !crate::request::prefers_minimal(headers) {
        return respond_written(code, written);
    }
    let minimal = match &written.object {
        WrittenObject::Stored { bytes, revision, .. } => MinimalObject::of_stored(kind.kind, bytes, *revision),
        WrittenObject::Value(object) => {
            let meta = crate::object::meta(object);
            let text = |field: &str| meta.get(field).and_then(Value::as_str).map(Cow::Borrowed);
            Some(MinimalObject::new(kind.kind, text("name"), text("namespace"), text("uid"), text("resourceVersion")))
        }
    };
    let Some(minimal) = minimal else { return respond_written(code, written) };
    let mut resp = (code, [("preference-applied", "return=minimal")], axum::Json(minimal)).into_response();
    add_warnings(&mut resp, &written.warnings);
    resp
}

/// An object by its identity and revision alone: a minimal answer.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MinimalObject<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MinimalMeta<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MinimalMeta<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<Cow<'a, str>>,
}

impl<'a> MinimalObject<'a> {
    /// The minimal form of an object of `kind` with these fields.
    pub(crate) fn new(
        kind: &'static str,
        name: Option<Cow<'a, str>>,
        namespace: Option<Cow<'a, str>>,
        uid: Option<Cow<'a, str>>,
        resource_version: Option<Cow<'a, str>>,
    ) -> Self {
        let metadata = MinimalMeta { name: name.unwrap_or_default(), namespace, uid, resource_version };
        MinimalObject { api_version: meseta_schemas::API_VERSION, kind, metadata }
    }

    /// The minimal form of the stored bytes of an object at `revision`, its
    /// metadata read in place; `None` when the bytes cannot be read so.
    fn of_stored(kind: &'static str, stored: &[u8], revision: crate::store::Revision) -> Option<Self> {
        let (mut name, mut namespace, mut uid, mut readable) = (None, None, None, true);
        crate::object::metadata_fields(stored, |key, raw| {
            let slot = match key {
                b"name" => &mut name,
                b"namespace" => &mut namespace,
                b"uid" => &mut uid,
                _ => return,
            };
            match serde_json::from_slice::<Option<String>>(raw) {
                Ok(text) => *slot = text.map(Cow::Owned),
                Err(_) => readable = false,
            }
        })?;
        readable.then(|| MinimalObject::new(kind, name, namespace, uid, Some(Cow::Owned(revision.to_string()))))
    }
}

/// A JSON response with `Warning` headers.
pub(crate) fn respond(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, axum::Json(body)).into_response();
    add_warnings(&mut resp, warnings);
    resp
}

fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("warning", v);
        }
    }
}
