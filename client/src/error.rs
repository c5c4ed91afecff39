//! The client's error type and the server's `Status` body.
//!
//! Owns [`Error`] (what any request can fail with) and [`StatusBody`] (the
//! Kubernetes `Status` object the apiserver sends on failure). It must not
//! retry or log: callers decide what an error means for them.

use serde::{Deserialize, Serialize};

/// Result of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes `Status` object: what the apiserver sends with every failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusBody {
    /// `v1` (or empty when the body was not a Status).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Status`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// What went wrong, for a person.
    #[serde(default)]
    pub message: String,
    /// Machine-readable cause: `NotFound`, `AlreadyExists`, `Conflict`,
    /// `Invalid`, `Expired`, `Gone`, `Forbidden`, ...
    #[serde(default)]
    pub reason: String,
    /// The HTTP status code.
    #[serde(default)]
    pub code: u16,
    /// Which object, and per-field causes for `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

/// `Status.details`: the object concerned and the individual causes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// Name of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind (or plural) of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Uid of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// One entry per violated rule, e.g. per invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// When to retry, for `TooManyRequests` and friends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// One cause in `Status.details.causes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    /// Machine-readable cause, e.g. `FieldValueRequired`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What is wrong, for a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field concerned, e.g. `spec.resources.cpus`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusBody {
    /// A Status for a failure the server described only by its HTTP code and
    /// a (non-JSON) body, e.g. a proxy's error page.
    pub fn from_http(code: u16, body: &str) -> Self {
        let reason = http::StatusCode::from_u16(code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Unknown")
            .replace(' ', "");
        let body = body.trim();
        let message = if body.is_empty() { format!("the server answered HTTP {code}") } else { body.to_string() };
        StatusBody { status: "Failure".into(), message, reason, code, ..Default::default() }
    }

    /// The message followed by every cause (`field: message`), for display.
    pub fn describe(&self) -> String {
        let mut out = self.message.clone();
        if let Some(details) = &self.details {
            for cause in &details.causes {
                // The server usually folds the causes into the message already.
                let line = if cause.field.is_empty() {
                    cause.message.clone()
                } else {
                    format!("{}: {}", cause.field, cause.message)
                };
                if !line.is_empty() && !out.contains(&line) {
                    out.push_str("; ");
                    out.push_str(&line);
                }
            }
        }
        out
    }
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused the request and said why.
    #[error("{} ({code}): {}", .status.reason, .status.describe())]
    Api {
        /// The server's Status object.
        status: Box<StatusBody>,
        /// The HTTP status code.
        code: u16,
    },
    /// The request never got an answer: connection refused, reset, timeout.
    #[error("{method} {url} failed: {source} (is the apiserver running and reachable?)")]
    Transport {
        /// HTTP method.
        method: String,
        /// The full URL.
        url: String,
        /// The underlying failure.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a body this client cannot read.
    #[error("cannot decode {what} from the server: {source}")]
    Decode {
        /// What was being decoded, e.g. `Task` or `watch event`.
        what: String,
        /// Where and why decoding failed.
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    /// The request cannot be built as asked (wrong scope, bad URL, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Error {
    /// The server's Status, if the server answered with an error.
    pub fn status(&self) -> Option<&StatusBody> {
        match self {
            Error::Api { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The HTTP code of a server error.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn reason_is(&self, reason: &str, code: u16) -> bool {
        match self {
            Error::Api { status, code: c } => *c == code || status.reason == reason,
            _ => false,
        }
    }

    /// 404 / `NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.reason_is("NotFound", 404)
    }

    /// 409 / `Conflict`: a stale resourceVersion, retry on a fresh read.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { status, code: 409 } if status.reason != "AlreadyExists")
            || matches!(self, Error::Api { status, .. } if status.reason == "Conflict")
    }

    /// 409 / `AlreadyExists`: create of a name that is taken.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Api { status, .. } if status.reason == "AlreadyExists")
    }

    /// 410 / `Expired` / `Gone`: the resourceVersion was compacted; re-list.
    pub fn is_gone(&self) -> bool {
        matches!(self, Error::Api { status, code } if *code == 410 || status.code == 410
            || status.reason == "Expired" || status.reason == "Gone")
    }

    /// Whether retrying the same request later may succeed (transport
    /// failures, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { code, .. } => *code == 429 || *code >= 500,
            _ => false,
        }
    }

    pub(crate) fn api(status: StatusBody, code: u16) -> Self {
        Error::Api { status: Box::new(status), code }
    }

    /// Builds the error for a non-success answer from its code and body.
    pub(crate) fn from_response(code: u16, body: &[u8]) -> Self {
        let status = match serde_json::from_slice::<StatusBody>(body) {
            Ok(s) if s.kind == "Status" || !s.reason.is_empty() || !s.message.is_empty() => {
                StatusBody { code: if s.code == 0 { code } else { s.code }, ..s }
            }
            _ => StatusBody::from_http(code, &String::from_utf8_lossy(body)),
        };
        Error::api(status, code)
    }
}

/// Decodes `bytes` as `T`, naming the failing field path on error.
///
/// The bytes are decoded plainly first; only what fails is decoded again
/// while tracking the path (which costs on every field), to name it.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|source| Error::Decode { what: what.to_string(), source })
}

/// Decodes a JSON value as `T`, naming the failing field path on error.
pub(crate) fn decode_value<T: serde::de::DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|source| Error::Decode { what: what.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_is_parsed_and_classified() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"tasks \"a\" not found","reason":"NotFound","code":404,"details":{"name":"a","kind":"tasks"}}"#;
        let err = Error::from_response(404, body);
        assert!(err.is_not_found());
        assert!(!err.is_conflict());
        assert_eq!(err.to_string(), "NotFound (404): tasks \"a\" not found");
    }

    #[test]
    fn conflict_and_already_exists_are_told_apart() {
        let exists =
            Error::from_response(409, br#"{"kind":"Status","reason":"AlreadyExists","message":"x","code":409}"#);
        let conflict = Error::from_response(409, br#"{"kind":"Status","reason":"Conflict","message":"x","code":409}"#);
        assert!(exists.is_already_exists() && !exists.is_conflict());
        assert!(conflict.is_conflict() && !conflict.is_already_exists());
    }

    #[test]
    fn non_json_body_becomes_a_status() {
        let err = Error::from_response(502, b"upstream down");
        let status = err.status().unwrap();
        assert_eq!(status.reason, "BadGateway");
        assert_eq!(status.message, "upstream down");
        assert!(err.is_transient());
    }

    #[test]
    fn causes_are_listed_when_not_in_the_message() {
        let body = br#"{"kind":"Status","reason":"Invalid","message":"Task \"a\" is invalid","code":422,
            "details":{"causes":[{"field":"spec.resources.cpus","message":"must be positive"}]}}"#;
        let err = Error::from_response(422, body);
        assert_eq!(err.to_string(), "Invalid (422): Task \"a\" is invalid; spec.resources.cpus: must be positive");
    }

    #[test]
    fn gone_is_recognised_by_code_or_reason() {
        assert!(Error::from_response(410, b"{}").is_gone());
        let expired = Error::api(StatusBody { reason: "Expired".into(), code: 410, ..Default::default() }, 200);
        assert!(expired.is_gone());
    }
}
