//! The table of every kind, and generic decoding of untyped JSON into a
//! checked, normalized object.
//!
//! Owns what the apiserver needs to serve a kind without knowing its Rust
//! type: names, scope, a `check` function and a JSON Schema. It must not do
//! I/O.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::kinds::*;
use crate::meta::API_VERSION;
use crate::resource::Resource;
use crate::validation::{FieldError, FieldErrorKind, Validate};

/// The outcome of checking a submitted object against its kind.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// The object re-serialised from its typed form: defaults applied,
    /// unknown fields dropped. `Value::Null` when it could not be decoded.
    pub object: Value,
    /// Dotted paths of fields the kind does not have (`spec.spex`).
    pub unknown_fields: Vec<String>,
    /// Type and validation errors; empty when the object is acceptable.
    pub errors: Vec<FieldError>,
}

/// Static facts and functions of one kind.
#[derive(Clone, Copy)]
pub struct KindInfo {
    /// `Task`.
    pub kind: &'static str,
    /// `tasks`.
    pub plural: &'static str,
    /// `task`.
    pub singular: &'static str,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether the kind has a `status` written through the subresource.
    pub has_status: bool,
    /// Decode, normalize and validate an object of this kind.
    pub check: fn(&Value) -> Checked,
    /// JSON Schema of the kind.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

impl std::fmt::Debug for KindInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindInfo").field("kind", &self.kind).field("plural", &self.plural).finish()
    }
}

/// [`Checked`] with the typed object in place of its JSON.
#[derive(Debug)]
pub struct CheckedAs<K> {
    /// The decoded object; `None` when it could not be decoded.
    pub object: Option<K>,
    /// Dotted paths of fields the kind does not have (`spec.spex`).
    pub unknown_fields: Vec<String>,
    /// Type and validation errors; empty when the object is acceptable.
    pub errors: Vec<FieldError>,
}

/// Decode `value` as `K`, collecting unknown fields and every error.
pub fn check_as<K: Resource + Validate>(value: &Value) -> Checked {
    let checked = check_typed::<K>(value);
    Checked {
        object: checked.object.map_or(Value::Null, |obj| serde_json::to_value(&obj).unwrap_or(Value::Null)),
        unknown_fields: checked.unknown_fields,
        errors: checked.errors,
    }
}

/// [`check_as`] without turning the object back into JSON, for callers
/// that go on with the typed object.
pub fn check_typed<K: Resource + Validate>(value: &Value) -> CheckedAs<K> {
    let mut unknown = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(crate::validation::ignored_field_path(&path));
    // Most objects decode: tracking the path of an error costs on every
    // field, so it is only paid again when the plain decode failed.
    let fast: Result<K, _> = K::deserialize(serde_ignored::Deserializer::new(value, &mut on_unknown));
    let typed = match fast {
        Ok(obj) => Ok(obj),
        Err(_) => {
            unknown.clear();
            let mut on_unknown =
                |path: serde_ignored::Path<'_>| unknown.push(crate::validation::ignored_field_path(&path));
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut on_unknown))
        }
    };
    match typed {
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner().to_string();
            CheckedAs {
                object: None,
                unknown_fields: unknown,
                errors: vec![FieldError {
                    field: if field == "." { String::new() } else { field },
                    kind: FieldErrorKind::TypeInvalid,
                    value: String::new(),
                    detail: crate::validation::humanize_type_error(&inner),
                }],
            }
        }
        Ok(obj) => {
            let mut errors = Vec::new();
            match value.get("apiVersion").and_then(Value::as_str) {
                Some(API_VERSION) => {}
                Some(other) => errors.push(FieldError::invalid(
                    "apiVersion",
                    format!("\"{other}\""),
                    format!("must be \"{API_VERSION}\""),
                )),
                None => errors.push(FieldError::required("apiVersion", format!("must be \"{API_VERSION}\""))),
            }
            match value.get("kind").and_then(Value::as_str) {
                Some(k) if k == K::KIND => {}
                Some(other) => errors.push(FieldError::invalid(
                    "kind",
                    format!("\"{other}\""),
                    format!("must be \"{}\" at this path", K::KIND),
                )),
                None => errors.push(FieldError::required("kind", format!("must be \"{}\"", K::KIND))),
            }
            errors.extend(obj.validate());
            let unknown_fields = unknown.into_iter().filter(|p| !p.is_empty()).collect();
            CheckedAs { object: Some(obj), unknown_fields, errors }
        }
    }
}

fn info<K: Resource + Validate + JsonSchema>(has_status: bool) -> KindInfo {
    KindInfo {
        kind: K::KIND,
        plural: K::PLURAL,
        singular: K::SINGULAR,
        short_names: K::SHORT_NAMES,
        namespaced: K::NAMESPACED,
        has_status,
        check: check_as::<K>,
        schema: |g| g.subschema_for::<K>(),
    }
}

/// Every kind of `meseta.io/v1`.
pub fn kinds() -> &'static [KindInfo] {
    static KINDS: once_cell::sync::Lazy<Vec<KindInfo>> = once_cell::sync::Lazy::new(|| {
        vec![
            info::<Role>(true),
            info::<Agent>(true),
            info::<Lease>(false),
            info::<Framework>(true),
            info::<Offer>(true),
            info::<Task>(true),
            info::<Job>(true),
            info::<Reservation>(true),
            info::<Quota>(true),
            info::<Event>(false),
        ]
    });
    &KINDS
}

/// The kind served under `plural`, if any.
pub fn by_plural(plural: &str) -> Option<&'static KindInfo> {
    kinds().iter().find(|k| k.plural == plural)
}

/// The kind named `kind` (e.g. `Task`), if any.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    kinds().iter().find(|k| k.kind == kind)
}
