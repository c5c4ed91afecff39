//! Field sets and `managedFields` entries: which leaf fields an object sets,
//! their `FieldsV1` encoding (`{"f:spec":{"f:cpus":{}}}`), and reading and
//! writing `metadata.managedFields`.
//!
//! Lists are atomic (a list is one field, owned as a whole), maps are
//! granular (each key is its own field). Pure functions over JSON values.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field: the keys from the object's root to it.
pub type FieldPath = Vec<String>;
/// A set of fields.
pub type FieldSet = BTreeSet<FieldPath>;

/// Metadata the server owns or that names the object: nobody owns these.
const UNOWNED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "generateName",
];

/// Whether `key` of `metadata` can be owned (see [`UNOWNED_METADATA`]).
pub(super) fn is_owned_metadata(key: &str) -> bool {
    !UNOWNED_METADATA.contains(&key)
}

/// Every leaf field `obj` sets (scalars, lists, empty maps), leaving out
/// `apiVersion`, `kind` and server-owned metadata.
pub(super) fn leaves(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(root) = obj.as_object() else { return out };
    for (k, v) in root {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                for (mk, mv) in m.iter().filter(|(mk, _)| !UNOWNED_METADATA.contains(&mk.as_str())) {
                    collect(mv, vec!["metadata".into(), mk.clone()], &mut out);
                }
            }
            continue;
        }
        collect(v, vec![k.clone()], &mut out);
    }
    out
}

fn collect(v: &Value, path: FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at `path`, if any.
pub(super) fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |cur, k| cur.get(k.as_str()))
}

/// Whether `path` is a leaf field of `obj` (one [`leaves`] would list,
/// metadata filters aside): set, and not a non-empty map.
pub(super) fn is_leaf(obj: &Value, path: &[String]) -> bool {
    value_at(obj, path).is_some_and(|v| v.as_object().is_none_or(Map::is_empty))
}

/// `FieldsV1` of every leaf field of `obj` whose top-level key `keep`
/// accepts: `encode(&leaves(obj))` filtered, built in one walk.
pub(super) fn encode_shape(obj: &Value, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(root) = obj.as_object() else { return out };
    for (k, v) in root {
        if k == "apiVersion" || k == "kind" || !keep(k) {
            continue;
        }
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                let node: Map<String, Value> = m
                    .iter()
                    .filter(|(mk, _)| is_owned_metadata(mk))
                    .map(|(mk, mv)| (field_key(mk), shape(mv)))
                    .collect();
                if !node.is_empty() {
                    out.insert("f:metadata".into(), Value::Object(node));
                }
            }
            continue;
        }
        out.insert(field_key(k), shape(v));
    }
    out
}

/// The `FieldsV1` node of a value all of whose leaves are owned.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, c)| (field_key(k), shape(c))).collect()),
        _ => Value::Object(Map::new()),
    }
}

/// `f:<key>`, the `FieldsV1` key of a field (without the formatting machinery).
fn field_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push_str("f:");
    out.push_str(key);
    out
}

/// Whether the `FieldsV1` value `fields` holds the field `path` (as
/// [`decode`] would list it), without decoding it.
pub(super) fn owns(fields: &Value, path: &[String]) -> bool {
    let mut node = fields;
    let mut key = String::new();
    for k in path {
        let Some(m) = node.as_object() else { return false };
        key.clear();
        key.push_str("f:");
        key.push_str(k);
        match m.get(&key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    match node.as_object() {
        None => !path.is_empty(),
        Some(m) => !path.is_empty() && (m.is_empty() || m.keys().any(|k| k == "." || !k.starts_with("f:"))),
    }
}

/// Whether two values are the same, numbers compared by value (`32` and
/// `32.0` are the same: stored objects are normalized).
pub(super) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(Some(p), Some(q)))
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.len() == y.len() && x.iter().all(|(k, v)| same(Some(v), y.get(k)))
        }
        (a, b) => a == b,
    }
}

/// Removes the field at `path` (nothing when absent).
pub(super) fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = obj;
    for k in parents {
        match cur.get_mut(k.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// `.spec.resources.cpus`, as conflicts name fields.
pub(super) fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// `FieldsV1` of a set: nested `f:<key>` maps; `"."` marks a field that also has children.
pub(super) fn encode(set: &FieldSet) -> Value {
    let paths: Vec<&FieldPath> = set.iter().collect();
    Value::Object(encode_level(&paths, 0))
}

/// The `FieldsV1` node at `depth` of `paths`, which all agree on their first
/// `depth` keys, are longer than `depth` and are sorted (so a field comes
/// right before the fields under it).
fn encode_level(paths: &[&FieldPath], depth: usize) -> Map<String, Value> {
    let mut node = Map::new();
    let mut start = 0;
    while start < paths.len() {
        let key = &paths[start][depth];
        let end = start + paths[start..].iter().take_while(|p| &p[depth] == key).count();
        let is_field = paths[start].len() == depth + 1;
        let under = if is_field { &paths[start + 1..end] } else { &paths[start..end] };
        let mut child = encode_level(under, depth + 1);
        if is_field && !child.is_empty() {
            child.insert(".".into(), Value::Object(Map::new()));
        }
        node.insert(field_key(key), Value::Object(child));
        start = end;
    }
    node
}

/// The set a `FieldsV1` value describes. Keys other than `f:` (list items,
/// set values) make their container one atomic field.
pub(super) fn decode(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = fields.as_object() {
        walk(m, &mut Vec::new(), &mut out);
    }
    out
}

fn walk(node: &Map<String, Value>, path: &mut FieldPath, out: &mut FieldSet) {
    let is_field = node.is_empty() || node.contains_key(".") || node.keys().any(|k| k != "." && !k.starts_with("f:"));
    if is_field && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in node {
        let Some(key) = k.strip_prefix("f:") else { continue };
        path.push(key.to_string());
        match child.as_object() {
            Some(c) => walk(c, path, out),
            None => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

/// Adds the field `path` to the `FieldsV1` tree `tree` in place. With a
/// tree as [`encode`] makes it, the result is what encoding the decoded set
/// plus `path` gives: a field that gains children gets its `"."` marker.
pub(super) fn insert(tree: &mut Map<String, Value>, path: &[String]) {
    let mut node = tree;
    for (i, k) in path.iter().enumerate() {
        let key = field_key(k);
        let existed = node.contains_key(&key);
        let Value::Object(child) = node.entry(key).or_insert_with(|| Value::Object(Map::new())) else {
            return;
        };
        let marked = child.contains_key(".");
        let last = i + 1 == path.len();
        // An existing empty node is a leaf field about to gain children; an
        // existing node with children but no marker becomes a field here.
        if existed && !marked && ((!last && child.is_empty()) || (last && !child.is_empty())) {
            child.insert(".".into(), Value::Object(Map::new()));
        }
        node = child;
    }
}

/// Whether the stored entry `e` is exactly what [`write`] would write for
/// it as [`read`] reads it: the six keys (and a non-empty `subresource`),
/// strings where strings go, and a non-empty `FieldsV1` tree of `f:` keys
/// and `"."` markers (each beside a field's children) only.
pub(super) fn is_as_written(e: &Value) -> bool {
    let Some(m) = e.as_object() else { return false };
    let string = |k: &str| m.get(k).is_some_and(Value::is_string);
    let sub = match m.get("subresource") {
        None => 0,
        Some(Value::String(s)) if !s.is_empty() => 1,
        Some(_) => return false,
    };
    m.len() == 6 + sub
        && ["manager", "operation", "apiVersion", "time"].into_iter().all(string)
        && m.get("fieldsType").and_then(Value::as_str) == Some("FieldsV1")
        && m.get("fieldsV1").and_then(Value::as_object).is_some_and(|t| !t.is_empty() && tree_as_encoded(t, true))
}

fn tree_as_encoded(node: &Map<String, Value>, root: bool) -> bool {
    if node.contains_key(".") && (root || node.len() < 2) {
        return false;
    }
    node.iter().all(|(k, v)| match (k.as_str(), v.as_object()) {
        (".", Some(marker)) => marker.is_empty(),
        (k, Some(child)) => k.starts_with("f:") && tree_as_encoded(child, false),
        _ => false,
    })
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The field manager (`kubectl`, `kubectl-client-side-apply`, ...).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `meseta.io/v1`.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// The fields it owns.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this entry is `manager`'s entry for `operation` (and `subresource`).
    pub fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }

    fn to_value(&self) -> Value {
        let Value::Object(fields) = encode(&self.fields) else { unreachable!("encode makes a map") };
        entry_value(&self.manager, &self.operation, &self.api_version, &self.time, self.subresource.as_deref(), fields)
    }
}

/// One `managedFields` entry as JSON.
pub(super) fn entry_value(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
    fields: Map<String, Value>,
) -> Value {
    let mut v = Map::new();
    v.insert("manager".into(), manager.into());
    v.insert("operation".into(), operation.into());
    v.insert("apiVersion".into(), api_version.into());
    v.insert("time".into(), time.into());
    v.insert("fieldsType".into(), "FieldsV1".into());
    v.insert("fieldsV1".into(), Value::Object(fields));
    if let Some(s) = subresource {
        v.insert("subresource".into(), s.into());
    }
    Value::Object(v)
}

/// Whether the stored entry `e` is `manager`'s entry for `operation` and
/// `subresource`, read as [`read`] reads it.
pub(super) fn entry_is(e: &Value, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    s("manager") == Some(manager)
        && s("operation").unwrap_or("Update") == operation
        && s("subresource").filter(|x| !x.is_empty()) == subresource
}

/// The object's `managedFields` entries (malformed entries are skipped).
pub(super) fn read(obj: &Value) -> Vec<Entry> {
    let Some(list) = crate::object::meta(obj).get("managedFields").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(Entry {
                manager: s("manager")?,
                operation: s("operation").unwrap_or_else(|| "Update".into()),
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource: s("subresource").filter(|x| !x.is_empty()),
                fields: e.get("fieldsV1").map(decode).unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `entries` (those owning nothing dropped) as the object's `managedFields`.
pub(super) fn write(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries.iter().filter(|e| !e.fields.is_empty()).map(Entry::to_value).collect();
    let meta = crate::object::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_skip_identity_and_treat_lists_as_atomic() {
        let obj = json!({"apiVersion": "v", "kind": "Task", "metadata": {"name": "t", "labels": {"a": "1"}, "annotations": {}},
            "spec": {"resources": {"cpus": 1, "ports": [{"begin": 1}]}}});
        let set = leaves(&obj);
        let want: FieldSet =
            ["metadata.labels.a", "metadata.annotations", "spec.resources.cpus", "spec.resources.ports"]
                .iter()
                .map(|s| p(s))
                .collect();
        assert_eq!(set, want);
    }

    #[test]
    fn fields_v1_marks_fields_that_have_children() {
        let set: FieldSet =
            ["spec.a", "spec.a.b", "spec.a.c.d", "spec.ab", "metadata.labels.x"].iter().map(|s| p(s)).collect();
        let want = json!({"f:metadata": {"f:labels": {"f:x": {}}},
            "f:spec": {"f:a": {".": {}, "f:b": {}, "f:c": {"f:d": {}}}, "f:ab": {}}});
        assert_eq!(encode(&set), want);
        assert_eq!(decode(&want), set);
        assert_eq!(encode(&FieldSet::new()), json!({}));
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: FieldSet = ["spec.a", "spec.b.c", "metadata.labels.x"].iter().map(|s| p(s)).collect();
        let enc = encode(&set);
        assert_eq!(enc["f:spec"]["f:b"]["f:c"], json!({}));
        assert_eq!(decode(&enc), set);
        let k8s = json!({"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}}, "f:x": {}}});
        let got = decode(&k8s);
        assert!(got.contains(&p("spec.ports")) && got.contains(&p("spec.x")));
    }
}
