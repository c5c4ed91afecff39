//! Request parsing: query parameters, content types and bodies.
//!
//! Owns the body size limit, JSON/YAML decoding with line/column in errors,
//! and the meaning of each query parameter. It must not touch the store.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Largest accepted request body (3 MiB, like Kubernetes).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The query parameters the resource endpoints understand; others are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    /// `watch=true|1`.
    pub watch: Option<String>,
    /// `resourceVersion=N` (watch start, or list "at least").
    pub resource_version: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit` for a list page.
    pub limit: Option<String>,
    /// `continue` token of the next list page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub allow_watch_bookmarks: Option<String>,
    /// `timeoutSeconds` of a watch.
    pub timeout_seconds: Option<String>,
    /// `dryRun=All`.
    pub dry_run: Option<String>,
    /// `fieldValidation=Strict|Warn|Ignore`.
    pub field_validation: Option<String>,
    /// `propagationPolicy=Background|Foreground|Orphan` of a delete.
    pub propagation_policy: Option<String>,
    /// `fieldManager`: who makes a write (field ownership in `managedFields`).
    pub field_manager: Option<String>,
    /// `force=true`: a server-side apply takes over conflicting fields.
    pub force: Option<String>,
}

/// What to do with fields the kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (the default).
    Strict,
    /// Accept, drop them and answer with a `Warning` header per field.
    Warn,
    /// Accept and drop them silently.
    Ignore,
}

/// How a delete treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now; the garbage collector deletes dependents after.
    Background,
    /// Delete dependents first; the owner waits with `foregroundDeletion`.
    Foreground,
    /// Keep dependents, removing their reference to the owner.
    Orphan,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1"))
}

impl Params {
    /// Parses the query string (absent = all defaults).
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let q = query.unwrap_or_default();
        serde_urlencoded_parse(q)
    }

    /// `watch=true` or `watch=1`.
    pub fn is_watch(&self) -> bool {
        truthy(&self.watch)
    }

    /// `allowWatchBookmarks=true`.
    pub fn bookmarks(&self) -> bool {
        truthy(&self.allow_watch_bookmarks)
    }

    /// `limit`, when positive.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Some(n as usize)),
                Ok(_) => Ok(None),
                Err(_) => Err(ApiError::BadRequest(format!("limit: invalid value \"{s}\": must be an integer"))),
            },
        }
    }

    /// `timeoutSeconds` of a watch.
    pub fn timeout(&self) -> Result<Option<std::time::Duration>, ApiError> {
        match self.timeout_seconds.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s.parse::<u64>().map(|n| Some(std::time::Duration::from_secs(n))).map_err(|_| {
                ApiError::BadRequest(format!("timeoutSeconds: invalid value \"{s}\": must be a non-negative integer"))
            }),
        }
    }

    /// `resourceVersion` as a revision; `None` when absent or `"0"`/empty.
    pub fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.resource_version.as_deref() {
            None | Some("") | Some("0") => Ok(None),
            Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "resourceVersion: invalid value \"{s}\": must be a resourceVersion returned by the server"
                ))
            }),
        }
    }

    /// `dryRun=All` (any other value is refused).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        parse_dry_run(self.dry_run.as_deref())
    }

    /// `fieldValidation`, `Strict` by default.
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Strict") => Ok(FieldValidation::Strict),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation: unsupported value \"{other}\": supported values: \"Strict\", \"Warn\", \"Ignore\""
            ))),
        }
    }

    /// `propagationPolicy`, `Background` by default.
    pub fn propagation(&self) -> Result<Propagation, ApiError> {
        parse_propagation(self.propagation_policy.as_deref())
    }
}

fn serde_urlencoded_parse(q: &str) -> Result<Params, ApiError> {
    let uri: axum::http::Uri =
        format!("/?{q}").parse().map_err(|_| ApiError::BadRequest("the query string is not valid".into()))?;
    axum::extract::Query::<Params>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::BadRequest(format!("invalid query parameters: {e}")))
}

fn parse_dry_run(v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => {
            Err(ApiError::BadRequest(format!("dryRun: unsupported value \"{other}\": supported values: \"All\"")))
        }
    }
}

fn parse_propagation(v: Option<&str>) -> Result<Propagation, ApiError> {
    match v {
        None | Some("") | Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some("Orphan") => Ok(Propagation::Orphan),
        Some(other) => Err(ApiError::BadRequest(format!(
            "propagationPolicy: unsupported value \"{other}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

/// Options of a delete from its (optional) `DeleteOptions` body merged over the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOptions {
    /// How dependents are treated.
    pub propagation: Propagation,
    /// Validate only, write nothing.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Query parameters first, then a JSON/YAML `DeleteOptions` body when one was sent.
    pub fn from_request(params: &Params, body: &Bytes, content_type: Option<&str>) -> Result<Self, ApiError> {
        let mut opts = DeleteOptions { propagation: params.propagation()?, dry_run: params.dry_run()? };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(opts);
        }
        let v = decode_object(body, content_type)?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = parse_propagation(Some(p))?;
        } else if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            opts.propagation = Propagation::Orphan;
        }
        if let Some(list) = v.get("dryRun").and_then(Value::as_array) {
            for item in list {
                opts.dry_run |= parse_dry_run(item.as_str())?;
            }
        }
        Ok(opts)
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] with 413.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::RequestEntityTooLarge(format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(ApiError::BadRequest(format!("could not read the request body: {e}")))
        }
    }
}

/// The media type of the request (`application/json`), without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// Whether the request asks for a minimal answer: `Prefer: return=minimal`
/// (RFC 7240), from a client that does not read back what it wrote.
pub fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split(';').next()?.split_once('='))
        .any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("return") && value.trim().trim_matches('"').eq_ignore_ascii_case("minimal")
        })
}

fn is_yaml(content_type: &str) -> bool {
    matches!(content_type, "application/yaml" | "application/x-yaml" | "text/yaml" | "application/apply-patch+yaml")
}

/// Decodes a JSON or YAML body into a JSON object. Errors name line and column.
pub fn decode_object(body: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty; send a JSON or YAML object".into()));
    }
    let value = decode_any(body, content_type)?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("the request body must be a JSON or YAML object".into()));
    }
    Ok(value)
}

/// Decodes a JSON or YAML body into any JSON value. Errors name line and column.
pub fn decode_any(body: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    match content_type {
        Some(ct) if is_yaml(ct) => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid YAML: {e}"))),
        None | Some(_) => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
    }
}

/// Refuses content types other than JSON and YAML for create and update.
pub fn check_object_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    match content_type {
        None | Some("application/json") => Ok(()),
        Some(ct) if is_yaml(ct) && ct != "application/apply-patch+yaml" => Ok(()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "the content type \"{other}\" is not supported; send application/json or application/yaml"
        ))),
    }
}

/// The kind of a PATCH, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml`: server-side apply, applied as a merge
    /// patch of the submitted fields. Field ownership (managedFields, conflicts
    /// between managers) is not tracked yet.
    Apply,
}

impl PatchKind {
    /// Maps the request's content type; anything else is 415.
    pub fn from_content_type(content_type: Option<&str>) -> Result<PatchKind, ApiError> {
        match content_type {
            Some("application/merge-patch+json") => Ok(PatchKind::Merge),
            Some("application/json-patch+json") => Ok(PatchKind::Json),
            Some("application/apply-patch+yaml") => Ok(PatchKind::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the patch content type {} is not supported; use application/merge-patch+json, \
                 application/json-patch+json or application/apply-patch+yaml",
                other.map(|o| format!("\"{o}\"")).unwrap_or_else(|| "(none)".into())
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_answer_is_asked_for_by_the_return_preference_alone() {
        let prefers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("prefer", v.parse().unwrap());
            }
            prefers_minimal(&h)
        };
        assert!(prefers(&["return=minimal"]));
        assert!(prefers(&["respond-async, Return = \"Minimal\"; foo=bar"]));
        assert!(prefers(&["wait=10", "return=minimal"]), "any of several headers");
        assert!(!prefers(&[]));
        assert!(!prefers(&["return=representation"]));
        assert!(!prefers(&["handling=strict; return=minimal"]), "a parameter, not a preference");
        assert!(!prefers(&["minimal"]));
    }

    #[test]
    fn params_parse_and_validate() {
        let p = Params::parse(Some("watch=1&resourceVersion=5&limit=10&continue=abc&dryRun=All")).unwrap();
        assert!(p.is_watch());
        assert_eq!(p.resource_version().unwrap(), Some(5));
        assert_eq!(p.limit().unwrap(), Some(10));
        assert_eq!(p.continue_token.as_deref(), Some("abc"));
        assert!(p.dry_run().unwrap());
        assert!(Params::parse(Some("dryRun=Some")).unwrap().dry_run().is_err());
        assert!(Params::parse(Some("fieldValidation=Loose")).unwrap().field_validation().is_err());
        assert_eq!(Params::parse(None).unwrap().field_validation().unwrap(), FieldValidation::Strict);
    }

    #[test]
    fn decode_errors_name_line_and_column() {
        let e = decode_object(b"{\n  \"a\": ,\n}", Some("application/json")).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = decode_object(b"a: [1,\nb: }", Some("application/yaml")).unwrap_err().to_string();
        assert!(e.contains("line"), "{e}");
        assert_eq!(decode_object(b"a: 1", Some("application/yaml")).unwrap()["a"], 1);
    }

    #[test]
    fn patch_content_types() {
        assert_eq!(PatchKind::from_content_type(Some("application/json-patch+json")).unwrap(), PatchKind::Json);
        let e = PatchKind::from_content_type(Some("text/plain")).unwrap_err();
        assert_eq!(e.code(), 415);
    }
}
