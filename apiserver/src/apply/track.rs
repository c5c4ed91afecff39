//! Field ownership of non-apply writes: which fields a create, update or
//! merge/JSON patch changed, and the `managedFields` entry its manager gets
//! for them ([`track_update`]).
//!
//! Every write goes through here, so the common cases take short cuts that
//! give the same entries as the general rule:
//!
//! - the changed fields come from one walk over the stored and the new
//!   object together, allocating only for fields that differ;
//! - a create encodes its `FieldsV1` straight from the object's shape (the
//!   leaves of a tree never have children, so no `"."` markers);
//! - an update whose changed fields all stay set and are owned by the
//!   manager's own `Update` entry and by no other entry keeps the stored
//!   entries as they are and only moves that entry's `time`;
//! - an update whose changed fields all stay set and are owned by no other
//!   entry, with every stored entry as the server writes it, adds them to
//!   the manager's own entry in place instead of decoding and encoding
//!   every entry.
//!
//! It must not know any kind.

use serde_json::{Map, Value};

use super::fields::{self, Entry, FieldPath, FieldSet};
use super::{key_in_scope, subresource};
use crate::object;
use crate::objects::UpdateMode;
use meseta_schemas::API_VERSION;

/// Records a non-apply write by `manager`: `next` is the object about to be
/// written, `current` the stored one (`None` on create).
pub fn track_update(current: Option<&Value>, next: &mut Value, manager: &str, mode: UpdateMode, has_status: bool) {
    // `meta(..).get` rather than `pointer`, which allocates for each step.
    let stored = current.and_then(|c| object::meta(c).get("managedFields"));
    let given = object::meta(next).get("managedFields").filter(|v| !v.is_null());
    if given.is_some() && given != stored {
        return;
    }
    let came_with_entries = given.is_some();
    let sub = subresource(mode);
    let Some(current) = current else {
        let owned = fields::encode_shape(next, |key| key_in_scope(key, mode, has_status));
        if !owned.is_empty() {
            let entry = fields::entry_value(manager, "Update", API_VERSION, &object::now_timestamp(), sub, owned);
            object::meta_mut(next).insert("managedFields".into(), Value::Array(vec![entry]));
        }
        return;
    };
    let changed = changed_fields(current, next, mode, has_status);
    if changed.is_empty() {
        if let Some(s) = stored.filter(|_| !came_with_entries) {
            object::meta_mut(next).insert("managedFields".into(), s.clone());
        }
        return;
    }
    if let Some(mine) =
        stored.and_then(Value::as_array).and_then(|list| owned_alone(list, &changed, next, manager, sub))
    {
        // `next` carries the stored entries already when it came with them
        // (a client sending back what it read): only the time is set there.
        if !came_with_entries {
            object::meta_mut(next).insert("managedFields".into(), stored.cloned().unwrap_or_default());
        }
        let entry = object::meta_mut(next).get_mut("managedFields").and_then(|l| l.get_mut(mine));
        if let Some(e) = entry.and_then(Value::as_object_mut) {
            e.insert("time".into(), Value::String(object::now_timestamp()));
        }
        return;
    }
    if let Some(mine) =
        stored.and_then(Value::as_array).and_then(|list| adds_to_own(list, &changed, next, manager, sub))
    {
        if !came_with_entries {
            object::meta_mut(next).insert("managedFields".into(), stored.cloned().unwrap_or_default());
        }
        let entry = object::meta_mut(next).get_mut("managedFields").and_then(|l| l.get_mut(mine));
        if let Some(e) = entry.and_then(Value::as_object_mut) {
            if let Some(Value::Object(tree)) = e.get_mut("fieldsV1") {
                for path in &changed {
                    fields::insert(tree, path);
                }
            }
            e.insert("time".into(), Value::String(object::now_timestamp()));
        }
        return;
    }
    let mut entries = fields::read(current);
    for e in entries.iter_mut() {
        e.fields.retain(|f| !changed.contains(f));
    }
    let set: FieldSet = changed.into_iter().filter(|p| fields::is_leaf(next, p)).collect();
    match entries.iter_mut().find(|e| e.is(manager, "Update", sub)) {
        Some(e) => {
            e.fields.extend(set);
            e.time = object::now_timestamp();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: API_VERSION.into(),
            time: object::now_timestamp(),
            subresource: sub.map(str::to_string),
            fields: set,
        }),
    }
    fields::write(next, &entries);
}

/// The index of `manager`'s `Update` entry in the stored entries when
/// moving its time is all the write changes: every changed field is still
/// set in `next` and owned by that entry and by no other. `None` otherwise.
fn owned_alone(list: &[Value], changed: &FieldSet, next: &Value, manager: &str, sub: Option<&str>) -> Option<usize> {
    let mine = list.iter().position(|e| fields::entry_is(e, manager, "Update", sub))?;
    for path in changed {
        if !fields::is_leaf(next, path) {
            return None;
        }
        for (i, e) in list.iter().enumerate() {
            let owns = e.get("fieldsV1").is_some_and(|f| fields::owns(f, path));
            if owns != (i == mine) {
                return None;
            }
        }
    }
    Some(mine)
}

/// The index of `manager`'s `Update` entry in the stored entries when the
/// write only adds fields to it: every changed field is still set in
/// `next`, no other entry owns one, and every entry is as [`fields::write`]
/// writes it (so editing that entry in place gives what decoding all
/// entries, moving the fields and encoding them again gives). `None`
/// otherwise.
fn adds_to_own(list: &[Value], changed: &FieldSet, next: &Value, manager: &str, sub: Option<&str>) -> Option<usize> {
    let mine = list.iter().position(|e| fields::entry_is(e, manager, "Update", sub))?;
    if !list.iter().all(fields::is_as_written) || !changed.iter().all(|p| fields::is_leaf(next, p)) {
        return None;
    }
    for (_, e) in list.iter().enumerate().filter(|(i, _)| *i != mine) {
        let tree = e.get("fieldsV1")?;
        if changed.iter().any(|p| fields::owns(tree, p)) {
            return None;
        }
    }
    Some(mine)
}

/// The fields whose value differs between `current` and `next` (each a
/// leaf of one of them: a scalar, a list or an empty map), in `mode`'s
/// scope, leaving out `apiVersion`, `kind` and server-owned metadata.
/// The same set as comparing the two objects' leaves one by one.
pub(super) fn changed_fields(current: &Value, next: &Value, mode: UpdateMode, has_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let empty = Map::new();
    let a = current.as_object().unwrap_or(&empty);
    let b = next.as_object().unwrap_or(&empty);
    // Borrowed keys: a path is copied only for a field that changed.
    let mut path: Vec<&str> = Vec::new();
    for key in union(a, b) {
        if key == "apiVersion" || key == "kind" || !key_in_scope(key, mode, has_status) {
            continue;
        }
        path.push(key);
        if key == "metadata" {
            let ma = a.get(key).and_then(Value::as_object).unwrap_or(&empty);
            let mb = b.get(key).and_then(Value::as_object).unwrap_or(&empty);
            for mk in union(ma, mb).filter(|k| fields::is_owned_metadata(k)) {
                path.push(mk);
                diff(ma.get(mk), mb.get(mk), &mut path, &mut out);
                path.pop();
            }
        } else {
            diff(a.get(key), b.get(key), &mut path, &mut out);
        }
        path.pop();
    }
    out
}

/// The keys of `a`, then those of `b` that `a` lacks.
fn union<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> impl Iterator<Item = &'a str> {
    a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).map(String::as_str)
}

fn owned(path: &[&str]) -> FieldPath {
    path.iter().map(|k| k.to_string()).collect()
}

/// Adds the leaves under `path` whose values differ between `a` and `b`.
fn diff<'a>(a: Option<&'a Value>, b: Option<&'a Value>, path: &mut Vec<&'a str>, out: &mut FieldSet) {
    match (non_empty_map(a), non_empty_map(b)) {
        (Some(x), Some(y)) => {
            for k in union(x, y) {
                path.push(k);
                diff(x.get(k), y.get(k), path, out);
                path.pop();
            }
        }
        // A map on one side only: all its leaves changed, and so did the
        // other side's leaf here, if any.
        (Some(x), None) | (None, Some(x)) => {
            leaves_under(x, path, out);
            if a.is_some() && b.is_some() {
                out.insert(owned(path));
            }
        }
        (None, None) => {
            if !fields::same(a, b) {
                out.insert(owned(path));
            }
        }
    }
}

fn non_empty_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object).filter(|m| !m.is_empty())
}

fn leaves_under<'a>(map: &'a Map<String, Value>, path: &mut Vec<&'a str>, out: &mut FieldSet) {
    for (k, v) in map {
        path.push(k);
        match v.as_object().filter(|m| !m.is_empty()) {
            Some(m) => leaves_under(m, path, out),
            None => {
                out.insert(owned(path));
            }
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The general rule: compare every leaf of either object.
    fn changed_by_leaves(a: &Value, b: &Value) -> FieldSet {
        let (la, lb) = (fields::leaves(a), fields::leaves(b));
        la.union(&lb)
            .filter(|p| super::super::in_scope(p, UpdateMode::Main, true))
            .filter(|p| !fields::same(fields::value_at(a, p), fields::value_at(b, p)))
            .cloned()
            .collect()
    }

    #[test]
    fn the_walk_finds_what_comparing_leaves_finds() {
        let a = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a", "labels": {"x": "1", "y": "2"},
            "annotations": {}}, "spec": {"a": {"b": 1, "c": [1, 2]}, "d": 3, "e": {"f": 1}, "g": {}, "h": 2.0},
            "status": {"s": 1}});
        let b = json!({"apiVersion": "w", "kind": "K", "metadata": {"name": "b", "labels": {"x": "1", "z": "3"},
            "annotations": {"n": "1"}}, "spec": {"a": {"b": 1, "c": [1, 3]}, "d": {"q": 1}, "e": 5, "g": {}, "h": 2,
            "i": {"j": {"k": true}}}, "status": {"s": 2}});
        let want = changed_by_leaves(&a, &b);
        assert_eq!(changed_fields(&a, &b, UpdateMode::Main, true), want);
        assert_eq!(changed_fields(&b, &a, UpdateMode::Main, true), changed_by_leaves(&b, &a));
        assert!(
            want.contains(&vec!["spec".to_string(), "d".into()]) && want.contains(&vec!["spec".into(), "e".into()])
        );
        assert!(changed_fields(&a, &a, UpdateMode::Main, true).is_empty());
    }

    /// The general rule for an update's entries: decode them all, take the
    /// changed fields from every entry, give those still set to `manager`'s.
    fn by_the_general_rule(current: &Value, next: &Value, manager: &str) -> Value {
        let mut next = next.clone();
        let changed = changed_fields(current, &next, UpdateMode::Main, true);
        let mut entries = fields::read(current);
        for e in entries.iter_mut() {
            e.fields.retain(|f| !changed.contains(f));
        }
        let set: FieldSet = changed.into_iter().filter(|p| fields::is_leaf(&next, p)).collect();
        match entries.iter_mut().find(|e| e.is(manager, "Update", None)) {
            Some(e) => e.fields.extend(set),
            None => panic!("the cases have an entry for {manager}"),
        }
        fields::write(&mut next, &entries);
        next
    }

    fn timeless(mut v: Value) -> Value {
        for e in v["metadata"]["managedFields"].as_array_mut().into_iter().flatten() {
            e["time"] = json!("t");
        }
        v
    }

    #[test]
    fn adding_fields_to_the_own_entry_in_place_follows_the_general_rule() {
        let entry = |manager: &str, tree: Value| {
            json!({"manager": manager, "operation": "Update", "apiVersion": "meseta.io/v1", "time": "2000-01-01T00:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": tree})
        };
        let object = |entries: Value, a: Value| {
            json!({"metadata": {"name": "t", "annotations": {"n": "1"}, "managedFields": entries},
                "spec": {"a": a, "x": 1}})
        };
        let mine = json!({"f:metadata": {"f:annotations": {"f:n": {}}}, "f:spec": {"f:x": {}}});
        let other = json!({"f:spec": {"f:a": {"f:b": {}}}});
        // (stored, next, whether the in-place way applies)
        type Case = (Value, fn(&mut Value), bool);
        let cases: [Case; 9] = [
            // A new annotation: owned by nobody yet.
            (
                object(json!([entry("m", mine.clone())]), json!(1)),
                |v: &mut Value| v["metadata"]["annotations"]["z"] = json!("2"),
                true,
            ),
            // A field of another entry's parent: both keep theirs.
            (
                object(json!([entry("m", mine.clone()), entry("o", other.clone())]), json!({"b": 1})),
                |v: &mut Value| v["spec"]["a"]["c"] = json!(2),
                true,
            ),
            // A leaf field of the own entry gains children.
            (
                object(json!([entry("m", json!({"f:spec": {"f:a": {}}}))]), json!({"b": 1})),
                |v: &mut Value| v["spec"]["a"]["b"] = json!(2),
                true,
            ),
            // A node with children of the own entry becomes a field.
            (
                object(json!([entry("m", json!({"f:spec": {"f:a": {"f:b": {}}}}))]), json!(5)),
                |v: &mut Value| v["spec"]["a"] = json!(6),
                true,
            ),
            // Another entry owns it: the general way.
            (
                object(json!([entry("m", mine.clone()), entry("o", other.clone())]), json!({"b": 1})),
                |v: &mut Value| v["spec"]["a"]["b"] = json!(2),
                false,
            ),
            // Not as the server writes entries: the general way.
            (
                object(json!([entry("m", json!({"f:spec": {"f:a": {"k:{\"x\":1}": {}}}}))]), json!(1)),
                |v: &mut Value| v["spec"]["x"] = json!(2),
                false,
            ),
            (
                object(json!([entry("m", json!({".": {}, "f:spec": {"f:x": {}}}))]), json!(1)),
                |v: &mut Value| v["spec"]["a"] = json!(2),
                false,
            ),
            (
                object(json!([entry("m", mine.clone()), {"manager": "o", "fieldsV1": other.clone()}]), json!(1)),
                |v: &mut Value| v["spec"]["a"] = json!(2),
                false,
            ),
            // A field removed: the general way.
            (
                object(json!([entry("m", mine.clone())]), json!({"b": 1})),
                |v: &mut Value| v["spec"]["a"] = json!({}),
                false,
            ),
        ];
        for (current, edit, in_place) in cases {
            let mut next = current.clone();
            edit(&mut next);
            next["metadata"].as_object_mut().unwrap().remove("managedFields");
            let changed = changed_fields(&current, &next, UpdateMode::Main, true);
            let list = current["metadata"]["managedFields"].as_array().unwrap();
            assert_eq!(adds_to_own(list, &changed, &next, "m", None).is_some(), in_place, "{next}");
            let want = by_the_general_rule(&current, &next, "m");
            let mut got = next.clone();
            track_update(Some(&current), &mut got, "m", UpdateMode::Main, true);
            assert_eq!(timeless(got), timeless(want), "{next}");
        }
    }

    #[test]
    fn a_create_owns_the_fields_the_general_rule_gives() {
        let task = json!({"apiVersion": "meseta.io/v1", "kind": "Task", "metadata": {"name": "t", "namespace": "n",
            "labels": {"a": "b"}, "annotations": {}}, "spec": {"command": "x", "resources": {"cpus": 1, "mem": 2}},
            "status": {"state": "PENDING"}});
        let mut next = task.clone();
        track_update(None, &mut next, "m", UpdateMode::Main, true);
        let entries = fields::read(&next);
        assert_eq!(entries.len(), 1);
        let want: FieldSet = fields::leaves(&task).into_iter().filter(|p| p[0] != "status").collect();
        assert_eq!(entries[0].fields, want);
        assert_eq!(next["metadata"]["managedFields"][0]["fieldsV1"], fields::encode(&want));
    }

    #[test]
    fn an_update_of_fields_the_manager_owns_alone_only_moves_its_time() {
        let mut created = json!({"metadata": {"name": "t", "annotations": {"n": "1"}}, "spec": {"x": 1}});
        track_update(None, &mut created, "m", UpdateMode::Main, false);
        created["metadata"]["managedFields"][0]["time"] = json!("2000-01-01T00:00:00Z");
        let mut next = created.clone();
        next["metadata"]["annotations"]["n"] = json!("2");
        track_update(Some(&created), &mut next, "m", UpdateMode::Main, false);
        let (before, after) = (&created["metadata"]["managedFields"][0], &next["metadata"]["managedFields"][0]);
        assert_eq!(before["fieldsV1"], after["fieldsV1"]);
        assert_ne!(after["time"], "2000-01-01T00:00:00Z");
        // A client that leaves managedFields out keeps the stored entries too.
        let mut bare = created.clone();
        bare["metadata"].as_object_mut().unwrap().remove("managedFields");
        bare["metadata"]["annotations"]["n"] = json!("2");
        track_update(Some(&created), &mut bare, "m", UpdateMode::Main, false);
        assert_eq!(bare["metadata"]["managedFields"][0]["fieldsV1"], before["fieldsV1"]);
        assert_ne!(bare["metadata"]["managedFields"][0]["time"], "2000-01-01T00:00:00Z");
        // Another manager's change takes the field over.
        let mut other = next.clone();
        other["metadata"]["annotations"]["n"] = json!("3");
        track_update(Some(&next), &mut other, "o", UpdateMode::Main, false);
        let entries = fields::read(&other);
        let n = vec!["metadata".to_string(), "annotations".into(), "n".into()];
        assert!(entries.iter().any(|e| e.manager == "o" && e.fields.contains(&n)));
        assert!(entries.iter().all(|e| e.manager == "o" || !e.fields.contains(&n)));
    }
}
