//! Every example manifest under `manifests/` is a valid object of its kind:
//! it decodes with no unknown field and passes validation.

use std::path::PathBuf;

use meseta_schemas::registry;
use serde::Deserialize;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn documents() -> Vec<(String, usize, serde_json::Value)> {
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(manifest_dir()).expect("manifests/ exists").flatten().collect();
    files.sort_by_key(|e| e.path());
    for entry in files {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = serde_json::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} document {}: not YAML: {e}", path.display(), i + 1));
            docs.push((path.file_name().unwrap().to_string_lossy().into_owned(), i + 1, value));
        }
    }
    docs
}

#[test]
fn every_manifest_is_a_valid_object_with_no_unknown_field() {
    let docs = documents();
    assert!(docs.len() >= 7, "expected the example manifests, found {}", docs.len());
    for (file, n, doc) in docs {
        let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file} document {n}: no kind"));
        let info = registry::by_kind(kind).unwrap_or_else(|| panic!("{file} document {n}: unknown kind {kind}"));
        let checked = (info.check)(&doc);
        assert!(checked.unknown_fields.is_empty(), "{file} document {n}: unknown fields {:?}", checked.unknown_fields);
        assert!(checked.errors.is_empty(), "{file} document {n}: {:?}", checked.errors);
    }
}

#[test]
fn a_manifest_with_a_typo_is_caught() {
    // The same check must reject what a person gets wrong, or the test above proves nothing.
    let doc: serde_json::Value = serde_yaml::from_str(
        "apiVersion: meseta.io/v1\nkind: Task\nmetadata: {name: Bad_Name}\nspec: {comand: echo, resources: {cpus: -1}}\n",
    )
    .unwrap();
    let checked = (registry::by_kind("Task").unwrap().check)(&doc);
    assert_eq!(checked.unknown_fields, vec!["spec.comand".to_string()]);
    let fields: Vec<&str> = checked.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"metadata.name"), "{fields:?}");
    assert!(fields.contains(&"spec.command"), "{fields:?}");
    assert!(fields.contains(&"spec.resources.cpus"), "{fields:?}");
}
