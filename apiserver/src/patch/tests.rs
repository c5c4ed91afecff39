use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

#[test]
fn merge_patch_rfc7386_examples() {
    // (target, patch, result), from RFC 7386 appendix A.
    let table = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
        (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
        (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
    ];
    for (target, patch, want) in table {
        let mut doc = target.clone();
        merge_patch(&mut doc, &patch);
        assert_eq!(doc, want, "{target} + {patch}");
    }
}

#[test]
fn json_patch_operations() {
    let base = json!({"spec": {"x": 1, "list": ["a", "b"]}, "meta": {"a/b": "slash", "t~": "tilde"}});
    let table = [
        (json!([{"op": "add", "path": "/spec/y", "value": 2}]), json!({"x": 1, "y": 2, "list": ["a", "b"]})),
        (json!([{"op": "add", "path": "/spec/list/1", "value": "z"}]), json!({"x": 1, "list": ["a", "z", "b"]})),
        (json!([{"op": "add", "path": "/spec/list/-", "value": "c"}]), json!({"x": 1, "list": ["a", "b", "c"]})),
        (json!([{"op": "remove", "path": "/spec/x"}]), json!({"list": ["a", "b"]})),
        (json!([{"op": "remove", "path": "/spec/list/0"}]), json!({"x": 1, "list": ["b"]})),
        (json!([{"op": "replace", "path": "/spec/x", "value": {"n": 1}}]), json!({"x": {"n": 1}, "list": ["a", "b"]})),
        (json!([{"op": "move", "from": "/spec/x", "path": "/spec/z"}]), json!({"z": 1, "list": ["a", "b"]})),
        (json!([{"op": "copy", "from": "/spec/x", "path": "/spec/list/0"}]), json!({"x": 1, "list": [1, "a", "b"]})),
        (
            json!([{"op": "test", "path": "/spec/x", "value": 1}, {"op": "replace", "path": "/spec/x", "value": 5}]),
            json!({"x": 5, "list": ["a", "b"]}),
        ),
        (json!([]), json!({"x": 1, "list": ["a", "b"]})),
    ];
    for (patch, want_spec) in table {
        let mut doc = base.clone();
        json_patch(&mut doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
        assert_eq!(doc["spec"], want_spec, "{patch}");
        assert_eq!(doc["meta"], base["meta"], "{patch}");
    }
    let mut doc = base.clone();
    json_patch(
        &mut doc,
        &json!([{"op": "replace", "path": "/meta/a~1b", "value": 1}, {"op": "remove", "path": "/meta/t~0"}]),
    )
    .unwrap();
    assert_eq!(doc["meta"], json!({"a/b": 1}));
}

#[test]
fn json_patch_errors_name_operation_path_and_reason() {
    let base = json!({"spec": {"x": 1, "list": ["a", "b"], "s": "str"}});
    let table = [
        (json!({"op": "add"}), "a JSON patch must be an array of operations, not an object"),
        (json!("x"), "a JSON patch must be an array of operations, not a string"),
        (json!([1]), "operation 0: must be an object with \"op\" and \"path\", not a number"),
        (json!([{"path": "/a"}]), "operation 0: missing \"op\""),
        (json!([{"op": "frob", "path": "/a"}]), "operation 0: unknown op \"frob\""),
        (json!([{"op": 3, "path": "/a"}]), "operation 0: \"op\" must be a string, not a number"),
        (json!([{"op": "add", "path": "spec"}]), "operation 0: \"path\" \"spec\" is not a JSON pointer"),
        (json!([{"op": "add", "path": 7}]), "operation 0: \"path\" must be a string, not a number"),
        (json!([{"op": "add", "path": "/spec/y"}]), "operation 0: missing field `value`"),
        (json!([{"op": "move", "path": "/spec/y"}]), "operation 0: missing field `from`"),
        (
            json!([{"op": "test", "path": "/spec/x", "value": 1}, {"op": "replace", "path": "/spec/nope", "value": 1}]),
            "operation 1 (replace /spec/nope): path not found",
        ),
        (json!([{"op": "replace", "path": "/nope/x", "value": 1}]), "path not found: /nope does not exist"),
        (json!([{"op": "remove", "path": "/spec/list/2"}]), "array index 2 is out of bounds at /spec/list (length 2)"),
        (json!([{"op": "remove", "path": "/spec/list/x"}]), "'x' is not an array index at /spec/list"),
        (json!([{"op": "remove", "path": "/spec/list/-"}]), "'-' is not an array index at /spec/list"),
        (json!([{"op": "remove", "path": ""}]), "operation 0 (remove \"\"): cannot remove the whole document"),
        (json!([{"op": "add", "path": "/spec/list/3", "value": 1}]), "array index 3 is out of bounds"),
        (json!([{"op": "add", "path": "/spec/s/k", "value": 1}]), "/spec/s is a string, not an object or array"),
        (
            json!([{"op": "add", "path": "/a/b/c", "value": 1}]),
            "operation 0 (add /a/b/c): path not found: /a does not exist",
        ),
        (
            json!([{"op": "test", "path": "/spec/x", "value": 2}]),
            "operation 0 (test /spec/x): test failed: found 1, expected 2",
        ),
        (json!([{"op": "test", "path": "/spec/q", "value": 2}]), "operation 0 (test /spec/q): path not found"),
        (
            json!([{"op": "move", "from": "/spec/q", "path": "/spec/y"}]),
            "operation 0 (move /spec/q -> /spec/y): \"from\" path not found",
        ),
        (
            json!([{"op": "copy", "from": "/spec/x", "path": "/n/y"}]),
            "operation 0 (copy /spec/x -> /n/y): path not found: /n does not exist",
        ),
        (
            json!([{"op": "move", "from": "/spec/x", "path": "/n/y"}]),
            "operation 0 (move /spec/x -> /n/y): path not found: /n does not exist",
        ),
        (
            json!([{"op": "move", "from": "/spec", "path": "/spec/in"}]),
            "cannot move a value into one of its own children",
        ),
    ];
    for (patch, want) in table {
        let mut doc = base.clone();
        let err = json_patch(&mut doc, &patch).expect_err(&patch.to_string()).to_string();
        assert!(err.contains(want), "{patch}: got {err:?}, want it to contain {want:?}");
        assert_eq!(doc, base, "{patch}: document changed by a failed patch");
    }
}

#[test]
fn continue_token_refuses_garbage() {
    let table = ["", "!!!", "bm90IGpzb24", "e30", "eyJ2IjoyLCJydiI6MSwic3RhcnQiOiJrIn0"];
    for input in table {
        let err = ContinueToken::decode(input).expect_err(input);
        assert!(matches!(err, PatchError::InvalidContinue { .. }), "{input}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("restart the list without the continue parameter"), "{input}: {msg}");
    }
    let v2 = ContinueToken::decode("eyJ2IjoyLCJydiI6MSwic3RhcnQiOiJrIn0").unwrap_err().to_string();
    assert!(v2.contains("unsupported version 2"), "{v2}");
    let t = ContinueToken { key: "/tasks/ops/t1".to_owned(), revision: 42 };
    let s = t.encode();
    assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{s} is not URL-safe");
    assert_eq!(ContinueToken::decode(&s).unwrap(), t);
    // A padded token (some clients re-encode) reads the same.
    assert_eq!(ContinueToken::decode(&format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4))).unwrap(), t);
}

/// Small JSON values: scalars, arrays and nested objects over a few keys, no nulls inside objects
/// (a merge patch cannot express a member whose value is null).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    btree_map("[a-d]", json_value(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The merge patch turning `source` into `target` (both objects).
fn merge_diff(source: &Value, target: &Value) -> Value {
    match (source, target) {
        (Value::Object(s), Value::Object(t)) => {
            let mut patch = Map::new();
            for key in s.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, tv) in t {
                match s.get(key) {
                    Some(sv) if sv == tv => {}
                    Some(sv) => {
                        patch.insert(key.clone(), merge_diff(sv, tv));
                    }
                    None => {
                        patch.insert(key.clone(), merge_diff(&Value::Null, tv));
                    }
                }
            }
            Value::Object(patch)
        }
        (_, Value::Object(_)) => merge_diff(&Value::Object(Map::new()), target),
        _ => target.clone(),
    }
}

fn pointer_into(doc: &Value) -> impl Strategy<Value = String> {
    let keys: Vec<String> = doc.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    prop_oneof![
        prop::sample::select(if keys.is_empty() { vec!["k".to_owned()] } else { keys }),
        "[a-e]".prop_map(String::from),
    ]
    .prop_map(|k| format!("/{k}"))
}

proptest! {
    #[test]
    fn merge_patch_of_a_diff_reproduces_the_target(source in json_object(), target in json_object()) {
        let patch = merge_diff(&source, &target);
        let mut doc = source.clone();
        merge_patch(&mut doc, &patch);
        prop_assert_eq!(doc, target);
    }

    #[test]
    fn json_patch_is_atomic(
        (doc, paths) in json_object().prop_flat_map(|d| { let p = vec(pointer_into(&d), 1..5); (Just(d), p) }),
        values in vec(json_value(), 5),
    ) {
        let mut ops: Vec<Value> = paths
            .iter()
            .zip(values)
            .map(|(p, v)| json!({"op": "add", "path": p, "value": v}))
            .collect();
        ops.push(json!({"op": "remove", "path": format!("{}/missing/deep", paths[0])}));
        let mut patched = doc.clone();
        let err = json_patch(&mut patched, &Value::Array(ops.clone()));
        prop_assert!(err.is_err(), "the last operation must fail: {:?}", ops);
        prop_assert_eq!(patched, doc);
    }

    #[test]
    fn continue_token_round_trips(key in ".*", revision in any::<u64>()) {
        let token = ContinueToken { key, revision };
        let text = token.encode();
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(ContinueToken::decode(&text).unwrap(), token);
    }
}
