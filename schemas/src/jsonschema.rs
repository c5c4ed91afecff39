//! JSON Schemas of every kind, in the OpenAPI 3.0 dialect, generated from
//! the kinds' `schemars` derives.
//!
//! Owns the shape of what `schemas/generated/` holds and what the apiserver
//! serves under `/openapi/v3`: one self-contained schema per kind, and one
//! `components.schemas` map of every kind and the types they use, each kind
//! tagged with `x-kubernetes-group-version-kind` so kubectl can find it. It
//! must not do I/O: writing the files is the job of the `generated_fresh`
//! test (`MESETA_UPDATE_SCHEMAS=1 cargo test -p meseta-schemas --test
//! generated_fresh`).
//!
//! Output is canonical: object keys sorted at every level, pretty-printed,
//! ending in a newline. So the committed files do not depend on whether
//! `serde_json` keeps insertion order in a given build.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::meta::{GROUP, VERSION};
use crate::registry::{kinds, KindInfo};

/// Where `$ref`s point: `#/components/schemas/<Name>`.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// File name (under `schemas/generated/`) of [`openapi_components`].
pub const COMPONENTS_FILE: &str = "openapi-components.json";

/// `[{group: meseta.io, version: v1, kind: <Kind>}]`, the value of the
/// `x-kubernetes-group-version-kind` extension kubectl reads.
pub fn group_version_kind(kind: &str) -> Value {
    json!([{ "group": GROUP, "version": VERSION, "kind": kind }])
}

/// Definitions generated for `kinds` with OpenAPI 3.0 settings, and the
/// definition name each kind got, in the order of `kinds`.
fn definitions(kinds: &[KindInfo]) -> (Map<String, Value>, Vec<String>) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let names = kinds
        .iter()
        .map(|k| {
            let reference = (k.schema)(&mut generator);
            reference
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
                .unwrap_or(k.kind)
                .to_string()
        })
        .collect();
    let mut defs = generator.take_definitions(true);
    defs.values_mut().for_each(simplify);
    (defs, names)
}

/// Rewrites two shapes schemars emits into the ones Kubernetes tools read:
///
/// - an optional reference, `anyOf: [{$ref}, {enum: [null], nullable: true}]`,
///   becomes `allOf: [{$ref}], nullable: true` (kube-openapi's form);
/// - a string enum whose variants are documented, `oneOf: [{type: string,
///   enum: [A], description}, ...]`, becomes `type: string, enum: [A, ...]`
///   with the variant descriptions listed in `description`.
fn simplify(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            obj.values_mut().for_each(simplify);
            simplify_optional(obj);
            simplify_string_enum(obj);
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

fn is_null_branch(v: &Value) -> bool {
    v.get("enum").is_some_and(|e| e == &json!([null]))
}

fn simplify_optional(obj: &mut Map<String, Value>) {
    let Some(Value::Array(branches)) = obj.get("anyOf") else { return };
    let [a, b] = branches.as_slice() else { return };
    let other = match (is_null_branch(a), is_null_branch(b)) {
        (true, false) => b.clone(),
        (false, true) => a.clone(),
        _ => return,
    };
    obj.remove("anyOf");
    match other {
        Value::Object(o) if o.len() == 1 && o.contains_key("$ref") => {
            obj.insert("allOf".into(), json!([o]));
        }
        Value::Object(o) => {
            for (k, v) in o {
                obj.entry(k).or_insert(v);
            }
        }
        _ => {}
    }
    obj.insert("nullable".into(), Value::Bool(true));
}

fn simplify_string_enum(obj: &mut Map<String, Value>) {
    let Some(Value::Array(branches)) = obj.get("oneOf") else { return };
    let mut values = Vec::new();
    let mut lines = Vec::new();
    for b in branches {
        let single = b.get("enum").and_then(Value::as_array).filter(|e| e.len() == 1).and_then(|e| e[0].as_str());
        let only_known_keys =
            b.as_object().is_some_and(|o| o.keys().all(|k| ["enum", "type", "description"].contains(&k.as_str())));
        match (single, b.get("type").and_then(Value::as_str), only_known_keys) {
            (Some(v), Some("string"), true) => {
                values.push(Value::String(v.to_string()));
                if let Some(d) = b.get("description").and_then(Value::as_str) {
                    lines.push(format!("- `{v}`: {d}"));
                }
            }
            _ => return,
        }
    }
    obj.remove("oneOf");
    obj.insert("type".into(), Value::String("string".into()));
    obj.insert("enum".into(), Value::Array(values));
    if !lines.is_empty() {
        let head = obj.get("description").and_then(Value::as_str).unwrap_or_default();
        let text = if head.is_empty() { lines.join("\n") } else { format!("{head}\n\n{}", lines.join("\n")) };
        obj.insert("description".into(), Value::String(text));
    }
}

fn tag_kind(schema: &mut Value, kind: &str) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("x-kubernetes-group-version-kind".into(), group_version_kind(kind));
    }
}

/// A self-contained schema of one kind: the kind's object schema, tagged
/// with its group/version/kind, with every type it uses under
/// `components.schemas` (so `$ref`s resolve within the document, as in a
/// schemars OpenAPI 3.0 root schema).
pub fn kind_schema(kind: &KindInfo) -> Value {
    let (mut defs, names) = definitions(std::slice::from_ref(kind));
    let mut root = defs.remove(&names[0]).unwrap_or_else(|| json!({}));
    tag_kind(&mut root, kind.kind);
    if let Some(obj) = root.as_object_mut() {
        obj.insert("$schema".into(), Value::String(schemars::consts::meta_schemas::OPENAPI3.into()));
        obj.entry("title").or_insert_with(|| Value::String(kind.kind.into()));
        if !defs.is_empty() {
            obj.insert("components".into(), json!({ "schemas": defs }));
        }
    }
    canonical(&root)
}

/// Schemas of every kind and every type they use (ObjectMeta included) as
/// `{"components": {"schemas": {...}}}`, `$ref`s pointing at
/// `#/components/schemas/...`. Each kind's schema carries
/// `x-kubernetes-group-version-kind`. The apiserver's `/openapi/v3`
/// document is this plus `openapi`, `info` and `paths`.
pub fn openapi_components() -> Value {
    let all = kinds();
    let (mut defs, names) = definitions(all);
    for (k, name) in all.iter().zip(&names) {
        if let Some(schema) = defs.get_mut(name) {
            tag_kind(schema, k.kind);
        }
    }
    canonical(&json!({ "components": { "schemas": defs } }))
}

/// Every file of `schemas/generated/`: file name → contents
/// (`<plural>.json` per kind, and [`COMPONENTS_FILE`]).
pub fn generated_files() -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> =
        kinds().iter().map(|k| (format!("{}.json", k.plural), pretty(&kind_schema(k)))).collect();
    files.insert(COMPONENTS_FILE.to_string(), pretty(&openapi_components()));
    files
}

/// `value` with object keys sorted at every level.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(obj) => {
            let sorted: BTreeMap<&String, Value> = obj.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Canonical pretty JSON with a trailing newline, as committed.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&canonical(value)).unwrap_or_default();
    text.push('\n');
    text
}
