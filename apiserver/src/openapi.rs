//! OpenAPI v3: the index `GET /openapi/v3` and the group document
//! `GET /openapi/v3/apis/meseta.io/v1`, built from the kinds' JSON Schemas
//! (`meseta_schemas::jsonschema::openapi_components`).
//!
//! kubectl reads this document to validate (`apply`, `create`, `edit` under
//! `--validate=strict`), to decide whether the server validates fields itself
//! (a PATCH operation per kind carrying `x-kubernetes-group-version-kind` and
//! a `fieldValidation` query parameter), to choose the patch type for
//! `apply` (so the PATCH body types deliberately leave out strategic merge
//! patch) and for `explain`. `/openapi/v2` is left unserved (404) on purpose:
//! kubectl asks for protobuf there and falls back to v3.
//!
//! It must not know any kind by name: everything comes from the kind table.

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use meseta_schemas::jsonschema::openapi_components;
use meseta_schemas::registry::{kinds, KindInfo};
use meseta_schemas::{API_VERSION, GROUP, VERSION};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The group document's path under `/openapi/v3/`.
pub const GROUP_PATH: &str = "apis/meseta.io/v1";

/// The group document and its hash, built once.
static DOCUMENT: LazyLock<(Value, String)> = LazyLock::new(|| {
    let doc = document();
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    (doc, format!("{:016X}", h.finish()))
});

/// `GET /openapi/v3`: the index of documents, each with a content hash.
pub(crate) async fn index() -> Response {
    axum::Json(index_body()).into_response()
}

fn index_body() -> Value {
    json!({"paths": {GROUP_PATH: {"serverRelativeURL": format!("/openapi/v3/{GROUP_PATH}?hash={}", DOCUMENT.1)}}})
}

/// `GET /openapi/v3/{*path}`: the `meseta.io/v1` document; other paths are 404.
pub(crate) async fn group(Path(path): Path<String>) -> Response {
    if path.trim_end_matches('/') != GROUP_PATH {
        return ApiError::PathNotFound(format!("no OpenAPI document at /openapi/v3/{path}")).into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], axum::Json(&DOCUMENT.0)).into_response()
}

/// The whole `meseta.io/v1` OpenAPI 3.0 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for k in kinds() {
        add_kind_paths(&mut paths, k);
    }
    let mut doc = openapi_components();
    doc["openapi"] = json!("3.0.0");
    doc["info"] = json!({"title": "Meseta", "version": API_VERSION});
    doc["paths"] = Value::Object(paths);
    doc
}

fn schema_ref(kind: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{kind}")})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", "`All` to validate without persisting."),
        query("fieldManager", "Name of the actor making the change."),
        query(
            "fieldValidation",
            "`Strict` (the default) rejects unknown fields, `Warn` accepts them with a warning, `Ignore` drops them.",
        ),
    ]
}

fn ok(kind: &str, code: &str) -> Value {
    json!({code: {"description": "OK", "content": {"application/json": {"schema": schema_ref(kind)}}}})
}

fn operation(k: &KindInfo, action: &str, id: &str, extra: Vec<Value>, body: Option<Value>, code: &str) -> Value {
    let mut op = json!({
        "operationId": format!("{id}MesetaIoV1{}{}", if k.namespaced { "Namespaced" } else { "" }, k.kind),
        "tags": ["mesetaIo_v1"],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": GROUP, "version": VERSION, "kind": k.kind},
        "parameters": extra,
        "responses": ok(k.kind, code),
    });
    if let Some(b) = body {
        op["requestBody"] = json!({"required": true, "content": b});
    }
    op
}

fn add_kind_paths(paths: &mut Map<String, Value>, k: &KindInfo) {
    let base = if k.namespaced {
        format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("/apis/{GROUP}/{VERSION}/{}", k.plural)
    };
    let scope: Vec<Value> = if k.namespaced { vec![path_param("namespace")] } else { Vec::new() };
    let object_body =
        json!({"application/json": {"schema": schema_ref(k.kind)}, "application/yaml": {"schema": schema_ref(k.kind)}});
    // No strategic merge patch: kubectl would pick it for `apply`.
    let patch_body = json!({
        "application/apply-patch+yaml": {"schema": {"type": "object"}},
        "application/json-patch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/merge-patch+json": {"schema": {"type": "object"}},
    });
    let list_params = vec![
        query("labelSelector", "Label selector."),
        query("fieldSelector", "Field selector."),
        query("limit", "Page size."),
        query("continue", "Continue token of the next page."),
        query("resourceVersion", "Watch/list from this resourceVersion."),
        query("watch", "Stream changes."),
    ];
    paths.insert(
        base.clone(),
        json!({
            "parameters": scope,
            "get": operation(k, "list", "list", list_params.clone(), None, "200"),
            "post": operation(k, "post", "create", write_params(), Some(object_body.clone()), "201"),
        }),
    );
    let mut named = scope.clone();
    named.push(path_param("name"));
    paths.insert(
        format!("{base}/{{name}}"),
        json!({
            "parameters": named,
            "get": operation(k, "get", "read", Vec::new(), None, "200"),
            "put": operation(k, "put", "replace", write_params(), Some(object_body.clone()), "200"),
            "patch": operation(k, "patch", "patch", patch_params(), Some(patch_body.clone()), "200"),
            "delete": operation(k, "delete", "delete", vec![query("dryRun", "`All` to validate only."), query("propagationPolicy", "Background, Foreground or Orphan.")], None, "200"),
        }),
    );
    if k.has_status {
        paths.insert(
            format!("{base}/{{name}}/status"),
            json!({
                "parameters": named,
                "get": operation(k, "get", "read", Vec::new(), None, "200"),
                "put": operation(k, "put", "replace", write_params(), Some(object_body), "200"),
                "patch": operation(k, "patch", "patch", patch_params(), Some(patch_body), "200"),
            }),
        );
    }
    if k.namespaced {
        paths.insert(
            format!("/apis/{GROUP}/{VERSION}/{}", k.plural),
            json!({"get": operation(k, "list", "list", list_params, None, "200")}),
        );
    }
}

fn patch_params() -> Vec<Value> {
    let mut p = write_params();
    p.push(query("force", "Server-side apply: take ownership of conflicting fields."));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_with_field_validation_and_no_strategic_merge() {
        let doc = document();
        for k in kinds() {
            let base = if k.namespaced {
                format!("/apis/meseta.io/v1/namespaces/{{namespace}}/{}/{{name}}", k.plural)
            } else {
                format!("/apis/meseta.io/v1/{}/{{name}}", k.plural)
            };
            let patch = &doc["paths"][&base]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], k.kind, "{base}");
            let params = patch["parameters"].as_array().unwrap();
            assert!(params.iter().any(|p| p["name"] == "fieldValidation"), "{base}");
            let types = patch["requestBody"]["content"].as_object().unwrap();
            assert!(!types.keys().any(|t| t.contains("strategic")), "{base}");
            assert!(doc["components"]["schemas"][k.kind]["x-kubernetes-group-version-kind"].is_array());
        }
        assert!(doc["components"]["schemas"]["ObjectMeta"].is_object());
    }

    #[test]
    fn the_index_points_at_the_document_with_its_hash() {
        let url = index_body()["paths"][GROUP_PATH]["serverRelativeURL"].as_str().unwrap().to_string();
        assert!(url.starts_with("/openapi/v3/apis/meseta.io/v1?hash="), "{url}");
        assert!(url.len() > "/openapi/v3/apis/meseta.io/v1?hash=".len());
    }
}
