//! Untyped object helpers: read and write the `metadata` fields the server
//! owns, and convert between stored bytes and wire JSON.
//!
//! The apiserver is shape-agnostic beyond `metadata` and `status`; this module
//! is where that boundary lives. Stored values never carry
//! `metadata.resourceVersion`: it is stamped from the key's `mod_revision` on
//! every read. It must not do I/O.

pub(crate) mod scan;
mod splice;

use serde_json::{Map, Value};

pub use self::splice::{append_spliced, metadata_fields, splice_point, splice_point_of_json};
use crate::error::ApiError;
use crate::store::{KeyValue, Revision};

/// Finalizer the garbage collector holds while deleting dependents first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer the garbage collector holds while orphaning dependents.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// `metadata` of an object (empty when absent or not an object).
pub fn meta(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `metadata` of an object, created when missing. `obj` must be a JSON object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    // `get_mut` rather than indexing, which copies the key for every call.
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).get(field).and_then(Value::as_str)
}

/// `metadata.name` (empty when absent).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

/// `metadata.uid` (empty when absent).
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    string_list(meta(obj).get("finalizers"))
}

/// Sets `metadata.finalizers` (removed when empty).
pub fn set_finalizers(obj: &mut Value, list: Vec<String>) {
    let m = meta_mut(obj);
    if list.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::from(list));
    }
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).get("deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// `(uid, apiVersion, kind, name)` of each `metadata.ownerReferences[]`.
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    let Some(list) = meta(obj).get("ownerReferences").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|r| OwnerRef {
            uid: r.get("uid").and_then(Value::as_str).unwrap_or_default().to_string(),
            kind: r.get("kind").and_then(Value::as_str).unwrap_or_default().to_string(),
            name: r.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
        .collect()
}

/// The parts of an owner reference the garbage collector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// The owner's uid.
    pub uid: String,
    /// The owner's kind (`Job`).
    pub kind: String,
    /// The owner's name.
    pub name: String,
}

/// Removes owner references whose uid is in `uids`; returns whether any was removed.
pub fn remove_owner_refs(obj: &mut Value, uids: &[String]) -> bool {
    let m = meta_mut(obj);
    let Some(list) = m.get_mut("ownerReferences").and_then(Value::as_array_mut) else {
        return false;
    };
    let before = list.len();
    list.retain(|r| !uids.iter().any(|u| r.get("uid").and_then(Value::as_str) == Some(u)));
    let removed = list.len() != before;
    if list.is_empty() {
        m.remove("ownerReferences");
    }
    removed
}

/// `metadata.labels` as a map (non-string values ignored).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    meta(obj)
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// `metadata.resourceVersion` parsed as a revision; `Ok(None)` when absent or empty.
pub fn resource_version(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta(obj).get("resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "metadata.resourceVersion: invalid value \"{s}\": must be a resourceVersion returned by the server"
            ))
        }),
        Some(other) => {
            Err(ApiError::BadRequest(format!("metadata.resourceVersion: invalid value {other}: must be a string")))
        }
    }
}

/// Stamps `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rev: Revision) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

/// The bytes to store for `obj`: its JSON without `metadata.resourceVersion`.
pub fn to_stored(obj: &Value) -> bytes::Bytes {
    if meta(obj).contains_key("resourceVersion") {
        let mut v = obj.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        return bytes::Bytes::from(serde_json::to_vec(&v).expect("a JSON value serialises"));
    }
    // Nothing to remove: serialise without copying the tree.
    bytes::Bytes::from(serde_json::to_vec(obj).expect("a JSON value serialises"))
}

/// [`to_stored`] that also tells where a response splices the revision in
/// (the index right after the `{` of `metadata` and whether that object is
/// empty, as [`splice_point_of_json`] would find it), noted while
/// serialising instead of scanning the bytes again. `capacity` is a guess at
/// the size (the object's stored size before an update). The bytes are those
/// of `serde_json::to_vec(obj)`; the point is `None` when `obj` is not an
/// object with a `metadata` object.
pub fn encode_stored(obj: &Value, capacity: usize) -> (bytes::Bytes, Option<(usize, bool)>) {
    let Some(map) = obj.as_object().filter(|_| !meta(obj).contains_key("resourceVersion")) else {
        return (to_stored(obj), None);
    };
    let mut out = Vec::with_capacity(capacity.max(256));
    let mut point = None;
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).expect("a JSON key serialises");
        out.push(b':');
        if let (true, Some(m)) = (key == "metadata", value.as_object()) {
            point = Some((out.len() + 1, m.is_empty()));
        }
        serde_json::to_writer(&mut out, value).expect("a JSON value serialises");
    }
    out.push(b'}');
    (bytes::Bytes::from(out), point)
}

/// Decodes stored bytes and stamps `resourceVersion = rev`.
pub fn from_stored(value: &[u8], rev: Revision) -> Result<Value, ApiError> {
    let mut obj: Value =
        serde_json::from_slice(value).map_err(|e| ApiError::Internal(format!("stored object is not JSON: {e}")))?;
    if !obj.is_object() {
        return Err(ApiError::Internal("stored object is not a JSON object".into()));
    }
    set_resource_version(&mut obj, rev);
    Ok(obj)
}

/// Decodes a store entry for the wire.
pub fn from_kv(kv: &KeyValue) -> Result<Value, ApiError> {
    from_stored(&kv.value, kv.mod_revision)
}

/// The object with `metadata` and `status` removed: what `generation` tracks.
pub fn desired_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Whether `a` and `b` agree outside `metadata` and `status`
/// (`desired_part(a) == desired_part(b)`, without copying either).
pub fn same_desired_part(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let outside = |(k, _): &(&String, &Value)| k.as_str() != "metadata" && k.as_str() != "status";
            a.iter().filter(outside).eq(b.iter().filter(outside))
        }
        _ => desired_part(a) == desired_part(b),
    }
}

/// Now, as Kubernetes writes timestamps (RFC 3339, UTC, seconds).
pub fn now_timestamp() -> String {
    // Every write stamps one or two of these, and they change once a second:
    // each thread formats a second once.
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    LAST.with_borrow_mut(|(second, text)| {
        if *second != now.timestamp() {
            *second = now.timestamp();
            *text = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_seconds_in_utc() {
        let before = chrono::Utc::now().timestamp();
        let stamp = now_timestamp();
        let parsed = chrono::DateTime::parse_from_rfc3339(&stamp).expect("RFC 3339");
        assert!(stamp.ends_with('Z') && stamp.len() == 20, "{stamp}");
        assert!(parsed.timestamp() >= before && parsed.timestamp() <= chrono::Utc::now().timestamp());
    }

    #[test]
    fn stored_form_has_no_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {}});
        let stored = to_stored(&obj);
        assert!(!String::from_utf8_lossy(&stored).contains("resourceVersion"));
        let back = from_stored(&stored, 9).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "9");
    }

    proptest::proptest! {
        /// What the store's memo rests on: the object a write stamps and
        /// keeps is the object its stored bytes decode to at that revision,
        /// floats to the bit included.
        #[test]
        fn a_written_object_is_what_its_stored_bytes_decode_to(
            fields in proptest::collection::btree_map("[a-z]{1,8}", scan::tests::json_value(), 0..6),
            meta in proptest::collection::btree_map("[a-z]{1,8}", scan::tests::json_value(), 0..4),
            rev in 1u64..u64::MAX,
        ) {
            let mut obj = Value::Object(fields.into_iter().collect());
            obj["metadata"] = Value::Object(meta.into_iter().collect());
            let (bytes, _) = encode_stored(&obj, 0);
            set_resource_version(&mut obj, rev);
            proptest::prop_assert_eq!(from_stored(&bytes, rev).unwrap(), obj);
        }
    }

    #[test]
    fn encoded_stored_bytes_are_the_plain_ones_with_the_scanned_splice_point() {
        for obj in [
            json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "a", "labels": {"x": "}{"}},
                   "spec": {"a": [1, {"b": "\"metadata\":{"}], "c": null}, "z\"q": 1}),
            json!({"a": {"metadata": {"deep": true}}, "metadata": {}, "z": 1.5e3}),
            json!({"metadata": 1}),
            json!([1]),
        ] {
            let (bytes, point) = encode_stored(&obj, 0);
            assert_eq!(bytes, to_stored(&obj), "{obj}");
            assert_eq!(point, splice_point_of_json(&bytes), "{obj}");
        }
        let with_rv = json!({"metadata": {"name": "a", "resourceVersion": "3"}});
        assert_eq!(encode_stored(&with_rv, 0), (to_stored(&with_rv), None));
    }

    #[test]
    fn desired_part_comparison_ignores_metadata_and_status() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}});
        let c = json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"s": 1}});
        let d = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "extra": true});
        assert!(same_desired_part(&a, &b));
        assert!(!same_desired_part(&a, &c));
        assert!(!same_desired_part(&a, &d) && !same_desired_part(&d, &a));
        assert!(same_desired_part(&json!(1), &json!(1)) && !same_desired_part(&json!(1), &json!(2)));
    }

    #[test]
    fn owner_refs_are_read_and_removed() {
        let mut obj = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "kind": "Job", "name": "j", "apiVersion": "meseta.io/v1"},
            {"uid": "u2", "kind": "Job", "name": "k", "apiVersion": "meseta.io/v1"}]}});
        assert_eq!(owner_refs(&obj).len(), 2);
        assert!(remove_owner_refs(&mut obj, &["u1".into()]));
        assert_eq!(owner_refs(&obj)[0].uid, "u2");
        assert!(remove_owner_refs(&mut obj, &["u2".into()]));
        assert!(meta(&obj).get("ownerReferences").is_none());
    }

    #[test]
    fn resource_version_parsing_names_the_field() {
        assert_eq!(resource_version(&json!({"metadata": {"resourceVersion": "12"}})).unwrap(), Some(12));
        assert_eq!(resource_version(&json!({"metadata": {}})).unwrap(), None);
        let err = resource_version(&json!({"metadata": {"resourceVersion": "x"}})).unwrap_err();
        assert!(err.to_string().contains("metadata.resourceVersion"));
    }
}
