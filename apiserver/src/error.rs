//! The one error type of the HTTP layer, rendered as a Kubernetes `Status`.
//!
//! Owns the mapping from failures to status codes, reasons and messages a
//! person can act on. It must not leak internals: `InternalError` details are
//! logged and replaced by a generic message on the wire.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meseta_schemas::{FieldError, GROUP};
use serde_json::{json, Value};

use crate::store::StoreError;

/// A failed request, rendered as a `Status` object (`kind: Status`, `apiVersion: v1`).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the object (or path) does not exist. `resource` is e.g. `tasks.meseta.io`.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// `tasks.meseta.io`.
        resource: String,
        /// The missing object's name.
        name: String,
    },
    /// 404 for a path that names no resource.
    #[error("{0}")]
    PathNotFound(String),
    /// 409: create of a name that is taken.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// `tasks.meseta.io`.
        resource: String,
        /// The taken name.
        name: String,
    },
    /// 409: a precondition (resourceVersion, uid) did not hold.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {reason}")]
    Conflict {
        /// `tasks.meseta.io`.
        resource: String,
        /// The object's name.
        name: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// 422: the object failed validation; every cause is listed.
    #[error("{}", invalid_message(kind, name, causes))]
    Invalid {
        /// `Task`.
        kind: String,
        /// The object's name (may be empty).
        name: String,
        /// Every violation.
        causes: Vec<FieldError>,
    },
    /// 400: the request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 410: the requested resourceVersion was compacted away.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// What the client asked for.
        requested: u64,
        /// The oldest revision still available.
        oldest: u64,
    },
    /// 410: the object existed but is no longer usable (an offer already
    /// accepted, declined, rescinded or expired).
    #[error("{0}")]
    Gone(String),
    /// 405: the verb is not supported on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 415: the content type is not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: the request body is larger than the limit.
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// 500: something broke inside; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

fn invalid_message(kind: &str, name: &str, causes: &[FieldError]) -> String {
    let rendered: Vec<String> = causes.iter().map(ToString::to_string).collect();
    let body = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
    format!("{kind}.{GROUP} \"{name}\" is invalid: {body}")
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::PathNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Expired { .. } | ApiError::Gone(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestEntityTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Kubernetes `reason` (`NotFound`, `Conflict`, `Invalid`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::PathNotFound(_) => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Expired { .. } => "Expired",
            ApiError::Gone(_) => "Gone",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object for this error (also carried by watch `ERROR` events).
    pub fn status(&self) -> Value {
        let message = match self {
            ApiError::Internal(_) => "an internal error occurred; see the apiserver log".to_string(),
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    fn details(&self) -> Option<Value> {
        let plural = |resource: &str| resource.split('.').next().unwrap_or_default().to_string();
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                Some(json!({"name": name, "group": GROUP, "kind": plural(resource)}))
            }
            ApiError::Invalid { kind, name, causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| {
                        let message = c.to_string();
                        let message = message.strip_prefix(&format!("{}: ", c.field)).unwrap_or(&message).to_string();
                        json!({"reason": c.kind.reason(), "message": message, "field": c.field})
                    })
                    .collect();
                Some(json!({"name": name, "group": GROUP, "kind": kind, "causes": causes}))
            }
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted { requested, oldest } => ApiError::Expired { requested, oldest },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        (self.code(), axum::Json(self.status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use meseta_schemas::FieldError;

    use super::*;

    #[test]
    fn invalid_message_joins_causes_like_kubernetes() {
        let one = ApiError::Invalid {
            kind: "Task".into(),
            name: "bad".into(),
            causes: vec![FieldError::invalid("spec.resources.cpus", -1, "must be >= 0")],
        };
        assert_eq!(
            one.to_string(),
            "Task.meseta.io \"bad\" is invalid: spec.resources.cpus: Invalid value: -1: must be >= 0"
        );
        let two = ApiError::Invalid {
            kind: "Task".into(),
            name: "bad".into(),
            causes: vec![
                FieldError::invalid("spec.resources.cpus", -1, "must be >= 0"),
                FieldError::invalid("spec.resources.mem", -2, "must be >= 0"),
            ],
        };
        assert!(two.to_string().ends_with("is invalid: [spec.resources.cpus: Invalid value: -1: must be >= 0, spec.resources.mem: Invalid value: -2: must be >= 0]"));
        let status = two.status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][1]["field"], "spec.resources.mem");
        assert_eq!(status["details"]["causes"][1]["message"], "Invalid value: -2: must be >= 0");
    }

    #[test]
    fn internal_errors_are_not_sent() {
        let status = ApiError::Internal("disk on fire at /secret/path".into()).status();
        assert!(!status["message"].as_str().unwrap().contains("secret"));
        assert_eq!(status["reason"], "InternalError");
    }
}
