//! Kubernetes-style object metadata shared by every kind.
//!
//! Owns the shape of `metadata`, owner references and timestamps. It must not
//! know about storage or HTTP: the apiserver fills the server-owned fields
//! (uid, resourceVersion, generation, timestamps).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Meseta kind.
pub const GROUP: &str = "meseta.io";
/// API version of every Meseta kind.
pub const VERSION: &str = "v1";
/// `apiVersion` value of every Meseta kind.
pub const API_VERSION: &str = "meseta.io/v1";

/// A point in time, serialised as RFC 3339 in UTC.
pub type Time = chrono::DateTime<chrono::Utc>;

/// A string-to-string map kept as a vector sorted by key: `metadata.labels`
/// and `metadata.annotations`.
///
/// It reads, writes and iterates like a `BTreeMap` (sorted keys, the last of
/// duplicate keys wins), but holds an object's few entries in one small
/// allocation instead of a B-tree node of room for eleven. Every decoded
/// copy of an object carries two of them, so that room adds up over a
/// cluster's tasks.
pub type StringMap = litemap::LiteMap<String, String>;

/// Standard object metadata (`metadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name, unique within its namespace (or the cluster for cluster kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix for a server-generated name, used when `name` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace (= Mesos role) of namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Server-assigned unique id, never reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Store revision of the last write; opaque to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Bumped by the server whenever the desired state (not status) changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Identifying labels, matched by label selectors.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub labels: StringMap,
    /// Non-identifying annotations.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub annotations: StringMap,
    /// Objects this one depends on; it is deleted when they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Keys that must be removed before the object is really deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// When the object was created (server-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    /// When deletion was requested; set while finalizers remain (server-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    /// Grace period recorded with the deletion request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Server-side apply field ownership, kept opaque.
    // Read as `None` inside `skipping_managed_fields`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "managed_fields_unless_skipped")]
    pub managed_fields: Option<Vec<serde_json::Value>>,
}

/// What a decode does with the `metadata.managedFields` it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManagedFieldsMode {
    /// Builds them into `Value` trees (the default).
    Decode,
    /// Skips over them and leaves `None` ([`skipping_managed_fields`]).
    Skip,
    /// Keeps their JSON text aside and leaves `None`
    /// ([`managed_fields_as_text`]).
    Text,
}

std::thread_local! {
    /// What a decode on this thread does with `metadata.managedFields`.
    static MANAGED_FIELDS_MODE: std::cell::Cell<ManagedFieldsMode> =
        const { std::cell::Cell::new(ManagedFieldsMode::Decode) };
    /// The texts kept by a decode in [`ManagedFieldsMode::Text`].
    static MANAGED_FIELDS_TEXT: std::cell::RefCell<Vec<Box<serde_json::value::RawValue>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `decode` (a synchronous decode) with every `metadata.managedFields`
/// it meets, when `skip`, skipped over rather than built into `Value` trees,
/// and left `None`: client-go's informers strip them the same way. For readers that
/// never look at field ownership (controllers' caches, agents' task
/// watches), the entries are most of an object's decode; an update sent
/// without them keeps the stored ones (the server's rule, as Kubernetes').
/// serde has no way to hand a setting to a nested field's decoder, so it
/// is a thread-local switch held for exactly this call.
pub fn skipping_managed_fields<T>(skip: bool, decode: impl FnOnce() -> T) -> T {
    let mode = if skip { ManagedFieldsMode::Skip } else { ManagedFieldsMode::Decode };
    with_managed_fields_mode(mode, decode)
}

/// Runs `decode` (a synchronous JSON decode) with every `metadata.managedFields`
/// it meets kept as its JSON text instead of `Value` trees, and left
/// `None`; returns what `decode` gave and the texts, in the order met. A
/// server that receives back the entries it sent compares the text with
/// what it stored rather than building the same trees again. The decoder
/// must pass serde_json's raw values through (serde_json's own does).
pub fn managed_fields_as_text<T>(decode: impl FnOnce() -> T) -> (T, Vec<Box<serde_json::value::RawValue>>) {
    MANAGED_FIELDS_TEXT.with(|texts| texts.borrow_mut().clear());
    let decoded = with_managed_fields_mode(ManagedFieldsMode::Text, decode);
    (decoded, MANAGED_FIELDS_TEXT.with(|texts| std::mem::take(&mut *texts.borrow_mut())))
}

fn with_managed_fields_mode<T>(mode: ManagedFieldsMode, decode: impl FnOnce() -> T) -> T {
    struct Restore(ManagedFieldsMode);
    impl Drop for Restore {
        fn drop(&mut self) {
            MANAGED_FIELDS_MODE.with(|mode| mode.set(self.0));
        }
    }
    let _restore = Restore(MANAGED_FIELDS_MODE.with(|current| current.replace(mode)));
    decode()
}

fn managed_fields_unless_skipped<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Vec<serde_json::Value>>, D::Error> {
    match MANAGED_FIELDS_MODE.with(std::cell::Cell::get) {
        ManagedFieldsMode::Decode => Option::deserialize(de),
        ManagedFieldsMode::Skip => {
            serde::de::IgnoredAny::deserialize(de)?;
            Ok(None)
        }
        ManagedFieldsMode::Text => {
            if let Some(text) = Option::<Box<serde_json::value::RawValue>>::deserialize(de)? {
                MANAGED_FIELDS_TEXT.with(|texts| texts.borrow_mut().push(text));
            }
            Ok(None)
        }
    }
}

/// A reference from a dependent to its owner (`metadata.ownerReferences[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// Owner's apiVersion.
    pub api_version: String,
    /// Owner's kind.
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// Owner's uid; the dependent is collected when no object has it.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether the owner's foreground deletion waits for this dependent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// Metadata of a list response (`metadata` of `TaskList` and friends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// Store revision the list was read at; watch from here to miss nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Token for the next page, when `limit` cut the list short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#continue: Option<String>,
    /// Objects left after this page, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
}

/// A typed list of objects (`{"kind":"TaskList","items":[...]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList<K> {
    /// `meseta.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `<Kind>List`.
    #[serde(default)]
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default = "Vec::new")]
    pub items: Vec<K>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        serde_json::from_str(r#"{"name": "t", "managedFields": [{"manager": "m"}], "labels": {"a": "b"}}"#).unwrap()
    }

    #[test]
    fn managed_fields_kept_as_text_are_the_input_text_and_only_inside_the_call() {
        let body = r#"{"name": "t", "managedFields": [ {"manager": "m", "n": 1.50} ], "labels": {"a": "b"}}"#;
        let (decoded, texts) = managed_fields_as_text(|| serde_json::from_str::<ObjectMeta>(body).unwrap());
        assert_eq!(decoded.managed_fields, None);
        assert_eq!(decoded.labels.get("a").map(String::as_str), Some("b"));
        let texts: Vec<&str> = texts.iter().map(|t| t.get()).collect();
        assert_eq!(texts, vec![r#"[ {"manager": "m", "n": 1.50} ]"#]);
        let (_, none) = managed_fields_as_text(|| serde_json::from_str::<ObjectMeta>(r#"{"managedFields": null}"#));
        assert!(none.is_empty(), "null keeps no text");
        assert_eq!(meta().managed_fields.map(|m| m.len()), Some(1), "decoded again after the call");
    }

    #[test]
    fn managed_fields_are_skipped_only_inside_the_call() {
        assert_eq!(meta().managed_fields.map(|m| m.len()), Some(1));
        let (inside, nested) = skipping_managed_fields(true, || (meta(), skipping_managed_fields(true, meta)));
        assert_eq!((inside.managed_fields, nested.managed_fields), (None, None));
        assert!(skipping_managed_fields(false, meta).managed_fields.is_some(), "kept when not asked to skip");
        assert_eq!(inside.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(meta().managed_fields.map(|m| m.len()), Some(1), "the switch is off again");
        // Also after a decode that panicked.
        let _ = std::panic::catch_unwind(|| skipping_managed_fields(true, || panic!("a decoder failed")));
        assert!(meta().managed_fields.is_some());
    }

    proptest::proptest! {
        /// Labels and annotations read and write exactly as a `BTreeMap`
        /// would: keys in order, the last of duplicate keys kept, whatever
        /// order the input gives them in.
        #[test]
        fn string_maps_read_and_write_as_a_btree_map(
            pairs in proptest::collection::vec(("[a-d/.]{0,3}", "[a-z]{0,2}"), 0..12),
        ) {
            let body: String = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::json!(k), serde_json::json!(v)))
                .collect::<Vec<_>>()
                .join(",");
            let body = format!(r#"{{"labels": {{{body}}}, "annotations": {{{body}}}}}"#);
            let meta: ObjectMeta = serde_json::from_str(&body).unwrap();
            let btree: BTreeMap<String, String> = pairs.iter().cloned().collect();
            let read: Vec<(&String, &String)> = meta.labels.iter().collect();
            proptest::prop_assert_eq!(read, btree.iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(&meta.labels, &meta.annotations);
            let written = serde_json::to_value(&meta).unwrap();
            let expected = if btree.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({"labels": btree, "annotations": btree})
            };
            proptest::prop_assert_eq!(written, expected);
            let mut built = StringMap::new();
            for (k, v) in &pairs {
                built.insert(k.clone(), v.clone());
            }
            proptest::prop_assert_eq!(&built, &meta.labels);
        }
    }

    #[test]
    fn string_maps_keep_the_schema_of_a_map_of_strings() {
        let schema = serde_json::to_value(schemars::schema_for!(ObjectMeta)).unwrap();
        for field in ["labels", "annotations"] {
            let s = &schema["properties"][field];
            assert_eq!(s["type"], "object", "{field}: {s}");
            assert_eq!(s["additionalProperties"]["type"], "string", "{field}: {s}");
        }
    }
}
