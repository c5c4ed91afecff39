//! The committed JSON Schemas under `schemas/generated/` match what the
//! kinds generate now. `MESETA_UPDATE_SCHEMAS=1` rewrites them instead.

use std::collections::BTreeSet;
use std::path::PathBuf;

use meseta_schemas::jsonschema::{generated_files, kind_schema, openapi_components, REF_PREFIX};
use meseta_schemas::registry::{by_plural, kinds};
use serde_json::Value;

const UPDATE_HINT: &str = "run `MESETA_UPDATE_SCHEMAS=1 cargo test -p meseta-schemas --test generated_fresh` \
                           and commit schemas/generated/";

fn generated_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("generated")
}

fn committed_json_files() -> BTreeSet<String> {
    match std::fs::read_dir(generated_dir()) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn generated_schemas_are_fresh() {
    let dir = generated_dir();
    let want = generated_files();
    if std::env::var_os("MESETA_UPDATE_SCHEMAS").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(&dir).expect("create schemas/generated");
        for stale in committed_json_files().into_iter().filter(|n| !want.contains_key(n)) {
            std::fs::remove_file(dir.join(&stale)).expect("remove a stale schema file");
        }
        for (name, text) in &want {
            std::fs::write(dir.join(name), text).expect("write a schema file");
        }
    }
    let mut problems = Vec::new();
    for (name, text) in &want {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(_) => problems.push(format!("schemas/generated/{name} is out of date")),
            Err(e) => problems.push(format!("schemas/generated/{name} cannot be read: {e}")),
        }
    }
    for stale in committed_json_files().into_iter().filter(|n| !want.contains_key(n)) {
        problems.push(format!("schemas/generated/{stale} belongs to no kind"));
    }
    assert!(problems.is_empty(), "{}\n{UPDATE_HINT}", problems.join("\n"));
}

#[test]
fn one_file_per_kind_plus_components() {
    let files = generated_files();
    assert_eq!(files.len(), kinds().len() + 1);
    for k in kinds() {
        let text = &files[&format!("{}.json", k.plural)];
        assert!(text.ends_with("}\n"), "{} must end in a newline", k.plural);
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, kind_schema(k));
    }
}

/// Every `$ref` in `doc` names an entry of `doc.components.schemas`.
fn assert_refs_resolve(doc: &Value, what: &str) {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    for r in refs {
        let name = r.strip_prefix(REF_PREFIX).unwrap_or_else(|| panic!("{what}: $ref {r} outside {REF_PREFIX}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "{what}: $ref {r} does not resolve");
    }
}

#[test]
fn kind_schemas_are_self_contained_and_tagged() {
    for k in kinds() {
        let s = kind_schema(k);
        assert_refs_resolve(&s, k.plural);
        assert_eq!(s["x-kubernetes-group-version-kind"][0]["group"], "meseta.io");
        assert_eq!(s["x-kubernetes-group-version-kind"][0]["version"], "v1");
        assert_eq!(s["x-kubernetes-group-version-kind"][0]["kind"], k.kind);
        assert_eq!(s["type"], "object", "{}", k.kind);
        for field in ["apiVersion", "kind", "metadata"] {
            assert!(s["properties"].get(field).is_some(), "{} has no {field}", k.kind);
        }
    }
}

#[test]
fn components_hold_every_kind_and_object_meta() {
    let doc = openapi_components();
    assert_refs_resolve(&doc, "components");
    let schemas = &doc["components"]["schemas"];
    for k in kinds() {
        assert_eq!(schemas[k.kind]["x-kubernetes-group-version-kind"][0]["kind"], k.kind, "{}", k.kind);
        assert_eq!(schemas[k.kind]["properties"]["metadata"]["allOf"][0]["$ref"], format!("{REF_PREFIX}ObjectMeta"));
    }
    assert_eq!(schemas["ObjectMeta"]["type"], "object");
    assert!(schemas["ObjectMeta"]["properties"].get("resourceVersion").is_some());
    // Only kinds are tagged: kubectl maps a group/version/kind to exactly one schema.
    let tagged = schemas.as_object().unwrap().values().filter(|s| s.get("x-kubernetes-group-version-kind").is_some());
    assert_eq!(tagged.count(), kinds().len());
}

#[test]
fn task_schema_describes_the_wire_shape() {
    let s = kind_schema(by_plural("tasks").unwrap());
    let defs = &s["components"]["schemas"];
    assert_eq!(defs["TaskState"]["type"], "string");
    let states = defs["TaskState"]["enum"].as_array().expect("TaskState is an enum of strings");
    assert_eq!(states.len(), 14);
    assert!(defs["TaskState"]["description"].as_str().unwrap().contains("- `LOST`: "));
    // Optional references read like kube-openapi's: allOf + nullable.
    assert_eq!(s["properties"]["status"]["allOf"][0]["$ref"], "#/components/schemas/TaskStatus");
    assert_eq!(s["properties"]["status"]["nullable"], true);
    assert!(states.contains(&Value::from("RUNNING")));
    assert!(states.contains(&Value::from("PARTITIONED")));
    assert!(defs["TaskSpec"]["properties"].get("command").is_some());
    assert!(defs["Resources"]["properties"].get("cpus").is_some());
    // OpenAPI 3.0 has no `null` type: optional fields say `nullable`.
    let text = s.to_string();
    assert!(!text.contains("[null]") && !text.contains("anyOf"), "OpenAPI 3.0 output must not use null / anyOf");
}
