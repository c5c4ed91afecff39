//! The three-way JSON merge patch of client-side apply, as kubectl computes
//! it for kinds without a strategic-merge schema.
//!
//! Inputs: `original` (the last applied configuration, from the annotation),
//! `modified` (the manifest now being applied) and `current` (the live
//! object). The patch sets every field of `modified` whose live value
//! differs, and deletes (`null`) every field that was in `original` but is no
//! longer in `modified`. Fields set by others (defaults, controllers) and
//! never in any manifest are left alone. Lists are replaced whole. Numbers
//! compare by value (`1` equals `1.0`). Pure functions, no I/O.

use serde_json::{Map, Value};

/// Annotation holding the last applied configuration.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The merge patch taking `current` to `modified`, deleting what `original`
/// had and `modified` dropped. An empty object means nothing to change.
pub(crate) fn three_way(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let mut patch = additions(current, modified, original).unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(original) = original {
        if let Some(deletions) = deletions(original, modified, current) {
            merge_into(&mut patch, deletions);
        }
    }
    patch
}

/// Whether a patch from [`three_way`] changes nothing.
pub(crate) fn is_empty(patch: &Value) -> bool {
    patch.as_object().is_none_or(Map::is_empty)
}

/// Fields of `modified` that `current` lacks or has with another value.
/// `original` (the same place in the last applied configuration) decides
/// lists: a list the manifest did not change is left alone when the live one
/// still has every field the manifest gives (the server may add defaults
/// inside list items); a list the manifest changed is sent whole.
fn additions(current: &Value, modified: &Value, original: Option<&Value>) -> Option<Value> {
    match (current, modified) {
        (Value::Object(cur), Value::Object(modi)) => {
            let mut out = Map::new();
            for (key, want) in modi {
                let was = original.and_then(|o| o.get(key));
                match cur.get(key) {
                    None | Some(Value::Null) if want.is_null() => {}
                    None => {
                        out.insert(key.clone(), want.clone());
                    }
                    Some(have) => {
                        if let Some(diff) = additions(have, want, was) {
                            out.insert(key.clone(), diff);
                        }
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (have @ Value::Array(_), want @ Value::Array(_)) => {
            let unchanged_since_last_apply = original.is_none_or(|was| same(was, want));
            if (unchanged_since_last_apply && covers(have, want)) || same(have, want) {
                None
            } else {
                Some(want.clone())
            }
        }
        (have, want) if same(have, want) => None,
        (_, want) => Some(want.clone()),
    }
}

/// Whether `live` has everything `wanted` says (extra live fields allowed).
fn covers(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(l), Value::Object(w)) => w.iter().all(|(k, v)| match l.get(k) {
            Some(lv) => covers(lv, v),
            None => v.is_null(),
        }),
        (Value::Array(l), Value::Array(w)) => l.len() == w.len() && l.iter().zip(w).all(|(a, b)| covers(a, b)),
        _ => same(live, wanted),
    }
}

/// `null` for every field of `original` that `modified` no longer has (and
/// `current` still has), recursing through objects present in both.
fn deletions(original: &Value, modified: &Value, current: &Value) -> Option<Value> {
    let (Value::Object(orig), Value::Object(modi)) = (original, modified) else { return None };
    let cur = current.as_object();
    let mut out = Map::new();
    for (key, was) in orig {
        let live = cur.and_then(|c| c.get(key));
        match modi.get(key) {
            None => {
                if live.is_some_and(|v| !v.is_null()) {
                    out.insert(key.clone(), Value::Null);
                }
            }
            Some(now) => {
                if let Some(d) = deletions(was, now, live.unwrap_or(&Value::Null)) {
                    out.insert(key.clone(), d);
                }
            }
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Deep-merges `extra` into `base` (objects merged, anything else replaced).
fn merge_into(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (key, value) in e {
                match b.get_mut(key.as_str()) {
                    Some(existing) if existing.is_object() && value.is_object() => merge_into(existing, value),
                    _ => {
                        b.insert(key, value);
                    }
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

/// Equality where numbers compare by value and objects/arrays recursively.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// `object` with the annotation `LAST_APPLIED` set to `object` itself
/// (without that annotation), as client-side apply stores it.
pub(crate) fn with_last_applied(object: &Value) -> Value {
    let mut clean = object.clone();
    remove_last_applied(&mut clean);
    let text = serde_json::to_string(&clean).expect("JSON values serialise");
    let mut out = clean;
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(LAST_APPLIED.into(), Value::String(text));
        }
    }
    out
}

/// Drops the `LAST_APPLIED` annotation (and an emptied annotations map).
pub(crate) fn remove_last_applied(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let emptied = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
            Some(a) => {
                a.remove(LAST_APPLIED);
                a.is_empty()
            }
            None => false,
        };
        if emptied {
            meta.remove("annotations");
        }
    }
}

/// The last applied configuration stored on a live object, if any.
pub(crate) fn last_applied(live: &Value) -> Option<Value> {
    let text = live.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_manifest_yields_an_empty_patch_even_with_defaults_and_floats() {
        let manifest = json!({"spec": {"resources": {"cpus": 1, "mem": 32}}});
        let live =
            json!({"spec": {"resources": {"cpus": 1.0, "mem": 32.0}, "priority": 0}, "status": {"state": "PENDING"}});
        assert!(is_empty(&three_way(Some(&manifest), &manifest, &live)));
    }

    #[test]
    fn changed_fields_are_set_and_dropped_fields_deleted() {
        let original = json!({"spec": {"command": "a", "env": {"X": "1", "Y": "2"}, "priority": 5}});
        let modified = json!({"spec": {"command": "b", "env": {"X": "1"}}});
        let live = json!({"spec": {"command": "a", "env": {"X": "1", "Y": "2"}, "priority": 5, "revocable": false}});
        let patch = three_way(Some(&original), &modified, &live);
        assert_eq!(patch, json!({"spec": {"command": "b", "env": {"Y": null}, "priority": null}}));
    }

    #[test]
    fn fields_never_applied_are_not_deleted_and_lists_are_replaced() {
        let modified = json!({"spec": {"args": ["x"]}});
        let live = json!({"spec": {"args": ["x", "y"], "agent": "a1"}});
        assert_eq!(three_way(None, &modified, &live), json!({"spec": {"args": ["x"]}}));
    }

    #[test]
    fn list_items_defaulted_by_the_server_are_not_a_change_but_edits_are() {
        let manifest = json!({"spec": {"ports": [{"name": "http"}]}});
        let live = json!({"spec": {"ports": [{"name": "http", "port": 0}]}});
        assert!(is_empty(&three_way(Some(&manifest), &manifest, &live)));
        let original = json!({"spec": {"ports": [{"name": "http", "port": 8080}]}});
        let live = json!({"spec": {"ports": [{"name": "http", "port": 8080}]}});
        assert_eq!(three_way(Some(&original), &manifest, &live), json!({"spec": {"ports": [{"name": "http"}]}}));
    }

    #[test]
    fn fields_already_gone_live_are_not_deleted_again() {
        let original = json!({"spec": {"a": 1}});
        let modified = json!({"spec": {}});
        assert!(is_empty(&three_way(Some(&original), &modified, &json!({"spec": {}}))));
    }

    #[test]
    fn last_applied_round_trips() {
        let obj = json!({"metadata": {"name": "x", "annotations": {"keep": "1"}}, "spec": {"a": 1}});
        let applied = with_last_applied(&obj);
        assert_eq!(applied["metadata"]["annotations"]["keep"], "1");
        assert_eq!(last_applied(&applied).unwrap(), obj);
        let mut again = with_last_applied(&applied);
        remove_last_applied(&mut again);
        assert_eq!(again, obj);
    }
}
