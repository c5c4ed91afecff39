//! Field-level validation errors and the checks shared by every kind.
//!
//! Owns `FieldError` (a field path, a kind of failure, a message a person can
//! act on) and the `Validate` trait, plus the checks several kinds share:
//! DNS-1123 names, metadata, non-negative amounts, cron schedules, and the
//! rendering of decode problems (unknown-field paths, type errors) in the
//! same vocabulary. Validation returns every violation, not the first. It
//! must not do I/O nor look at other objects.

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
        return Some(format!("must be no more than 253 characters (it has {})", name.len()));
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
        return Some(format!("must be no more than 63 characters (it has {})", name.len()));
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
        errs.push(FieldError::invalid(path, v, "must be a finite number, e.g. 0.5"));
    } else if v < 0.0 {
        errs.push(FieldError::invalid(path, v, "must be >= 0; an amount cannot be negative"));
    }
}

/// Renders the path of a field `serde_ignored` reports the way
/// [`FieldError::field`] is written: `spec.resources.ports[0].x`. `Option`
/// and newtype levels add nothing (serde_ignored's own rendering shows them
/// as `?`).
pub fn ignored_field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_field_path(parent)),
        Path::Map { parent, key } => join(&ignored_field_path(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_field_path(parent)
        }
    }
}

/// Rewrites a serde type error for people: Rust type names become words
/// (`expected u16` → `expected a whole number from 0 to 65535`).
pub fn humanize_type_error(detail: &str) -> String {
    const TYPES: [(&str, &str); 10] = [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected usize", "expected a whole number >= 0"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut out = detail.to_string();
    for (rust, words) in TYPES {
        out = out.replace(rust, words);
    }
    out
}

/// The five fields of a cron schedule: name, lowest and highest value.
const CRON_FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)];
const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Problems with a five-field cron expression (`minute hour day-of-month
/// month day-of-week`, UTC), `None` if fine. Each field is `*`, a value, a
/// range `a-b`, any of these with a step `/n`, or a comma-separated list of
/// them; months and weekdays may be named (`JAN`, `MON`).
pub fn cron_schedule(expr: &str) -> Option<String> {
    const SHAPE: &str = "a schedule is five fields, minute hour day-of-month month day-of-week, e.g. \"*/5 * * * *\"";
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!("has {} fields; {SHAPE}", fields.len()));
    }
    for (i, (field, (name, lo, hi))) in fields.iter().zip(CRON_FIELDS).enumerate() {
        let names: &[&str] = match i {
            3 => &MONTHS,
            4 => &WEEKDAYS,
            _ => &[],
        };
        for item in field.split(',') {
            if let Err(why) = cron_item(item, lo, hi, names) {
                return Some(format!("{name} field {field:?}: {why}; {SHAPE}"));
            }
        }
    }
    None
}

fn cron_item(item: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(), String> {
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (item, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n >= 1 => {}
            _ => return Err(format!("step {step:?} must be a whole number >= 1")),
        }
    }
    if base == "*" {
        return Ok(());
    }
    let value = |v: &str| -> Result<u32, String> {
        let first = names.iter().position(|n| n.eq_ignore_ascii_case(v)).map(|p| p as u32 + lo);
        match first.or_else(|| v.parse::<u32>().ok()) {
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            Some(n) => Err(format!("{n} is outside {lo}-{hi}")),
            None if v.is_empty() => Err("empty value".to_string()),
            None => Err(format!("{v:?} is not a number")),
        }
    };
    match base.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("range {a}-{b} runs backwards"));
            }
        }
        None => {
            value(base)?;
        }
    }
    Ok(())
}
