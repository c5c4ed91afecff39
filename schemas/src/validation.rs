//! Field-level validation errors and the checks shared by every kind.
//!
//! Owns `FieldError` (a field path, a kind of failure, a message a person can
//! act on) and the `Validate` trait. Validation returns every violation, not
//! the first. It must not do I/O nor look at other objects.

use std::fmt;

use once_cell::sync::Lazy;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// What is wrong with a field, in Kubernetes' vocabulary (`causes[].reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldErrorKind {
    /// `FieldValueInvalid`: the value is not acceptable.
    Invalid,
    /// `FieldValueRequired`: the field is missing or empty.
    Required,
    /// `FieldValueNotSupported`: the value is not one of the allowed ones.
    NotSupported,
    /// `FieldValueDuplicate`: the value appears twice.
    Duplicate,
    /// `FieldValueForbidden`: the field may not be set or changed.
    Forbidden,
    /// `FieldValueTypeInvalid`: the value has the wrong JSON type.
    TypeInvalid,
    /// `FieldValueUnknown`: the field is not part of the schema.
    Unknown,
}

impl FieldErrorKind {
    /// The `reason` string Kubernetes uses in `Status.details.causes`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::Unknown => "FieldValueUnknown",
        }
    }
}

/// One violation: which field, what kind, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted path, e.g. `spec.resources.cpus` or `spec.env[0].name`.
    pub field: String,
    /// What kind of failure.
    pub kind: FieldErrorKind,
    /// The offending value, rendered for people (may be empty).
    pub value: String,
    /// Why it is wrong, phrased so the reader knows what to do.
    pub detail: String,
}

impl FieldError {
    /// `Invalid value` error.
    pub fn invalid(field: impl Into<String>, value: impl fmt::Display, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: value.to_string(),
            detail: detail.into(),
        }
    }
    /// `Required value` error.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), kind: FieldErrorKind::Required, value: String::new(), detail: detail.into() }
    }
    /// `Unsupported value` error listing what is allowed.
    pub fn not_supported(field: impl Into<String>, value: impl fmt::Display, allowed: &[&str]) -> Self {
        let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::NotSupported,
            value: value.to_string(),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }
    /// `Forbidden` error.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), kind: FieldErrorKind::Forbidden, value: String::new(), detail: detail.into() }
    }
    /// `Duplicate value` error.
    pub fn duplicate(field: impl Into<String>, value: impl fmt::Display) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Duplicate,
            value: value.to_string(),
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    /// Renders like Kubernetes: `spec.resources.cpus: Invalid value: -1: must be >= 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.kind {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::Unknown => "Unknown field",
        };
        write!(f, "{}: {label}", self.field)?;
        if !self.value.is_empty() {
            write!(f, ": {}", self.value)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Checks an object (or part of one) and returns every violation found.
pub trait Validate {
    /// Push every violation under the path prefix `path` into `errs`.
    fn validate_into(&self, path: &str, errs: &mut Vec<FieldError>);

    /// Every violation, with paths from the object root.
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        self.validate_into("", &mut errs);
        errs
    }
}

/// Join a path prefix and a field name: `join("spec", "cpus") == "spec.cpus"`.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

static DNS1123_LABEL: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap());
static DNS1123_SUBDOMAIN: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").unwrap());

/// Problems with `name` as a DNS-1123 subdomain (object names), empty if fine.
pub fn dns1123_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if !DNS1123_SUBDOMAIN.is_match(name) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com')"
                .into(),
        );
    }
    None
}

/// Problems with `name` as a DNS-1123 label (namespaces, roles), empty if fine.
pub fn dns1123_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !DNS1123_LABEL.is_match(name) {
        return Some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name')"
                .into(),
        );
    }
    None
}

/// Checks `metadata` of a user-submitted object: name (or generateName) and
/// namespace syntax. `namespaced` says whether the kind has a namespace.
pub fn validate_meta(meta: &ObjectMeta, namespaced: bool, errs: &mut Vec<FieldError>) {
    if meta.name.is_empty() {
        if meta.generate_name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        }
    } else if let Some(why) = dns1123_subdomain(&meta.name) {
        errs.push(FieldError::invalid("metadata.name", format!("\"{}\"", meta.name), why));
    }
    if namespaced {
        if let Some(ns) = meta.namespace.as_deref() {
            if let Some(why) = dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", format!("\"{ns}\""), why));
            }
        }
    }
    for (i, f) in meta.finalizers.iter().enumerate() {
        if f.is_empty() {
            errs.push(FieldError::required(format!("metadata.finalizers[{i}]"), "a finalizer may not be empty"));
        }
    }
}

/// Checks a non-negative, finite scalar.
pub fn non_negative(path: &str, v: f64, errs: &mut Vec<FieldError>) {
    if v.is_nan() || v.is_infinite() {
        errs.push(FieldError::invalid(path, v, "must be a finite number"));
    } else if v < 0.0 {
        errs.push(FieldError::invalid(path, v, "must be >= 0"));
    }
}
