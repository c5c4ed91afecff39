//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/meseta.io`,
//! `/apis/meseta.io/v1`, shaped as Kubernetes clients expect.
//!
//! Built from the kind table in `meseta_schemas::registry`; it must not
//! know any kind by name. OpenAPI and Table output live elsewhere.

use axum::Json;
use meseta_schemas::registry::{kinds, KindInfo};
use meseta_schemas::{API_VERSION, GROUP, VERSION};
use serde_json::{json, Value};

/// Verbs of every main resource.
const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `GET /version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "31",
        "gitVersion": format!("v1.31.0+meseta-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// `GET /api`: Meseta serves no core (`v1`) resources.
pub(crate) async fn core_versions() -> Json<Value> {
    Json(json!({"kind": "APIVersions", "versions": [], "serverAddressByClientCIDRs": []}))
}

fn group() -> Value {
    let gv = json!({"groupVersion": API_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub(crate) async fn groups() -> Json<Value> {
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group()]}))
}

/// `GET /apis/meseta.io`.
pub(crate) async fn meseta_group() -> Json<Value> {
    let mut g = group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Json(g)
}

/// `GET /apis/meseta.io/v1`.
pub(crate) async fn resources() -> Json<Value> {
    Json(resource_list(kinds()))
}

fn resource_list(kinds: &[KindInfo]) -> Value {
    let mut resources = Vec::new();
    for k in kinds {
        resources.push(json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
            "shortNames": k.short_names,
            "categories": ["all", "meseta"],
        }));
        if k.has_status {
            resources.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_status_subresource_is_listed() {
        let list = resource_list(kinds());
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"tasks"));
        assert!(names.contains(&"tasks/status"));
        assert!(!names.contains(&"leases/status"));
    }
}
