//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/meseta.io`,
//! `/apis/meseta.io/v1`, shaped as Kubernetes clients expect.
//!
//! `/api` and `/apis` answer in two shapes, chosen by the `Accept` header:
//! aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2,
//! sent with its exact media type, which kubectl requires) when the client
//! offers it, else the plain `APIVersions` / `APIGroupList`, after which
//! clients read `/apis/meseta.io/v1`.
//!
//! Built from the kind table in `meseta_schemas::registry`; it must not
//! know any kind by name. OpenAPI and Table output live elsewhere.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meseta_schemas::registry::{kinds, KindInfo};
use meseta_schemas::{API_VERSION, GROUP, VERSION};
use serde_json::{json, Value};

/// Verbs of every main resource.
const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Verbs of the `status` subresource.
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];
/// Categories every kind belongs to (`kubectl get meseta`).
const CATEGORIES: [&str; 2] = ["all", "meseta"];
/// The media type of an aggregated discovery answer; kubectl reads the body
/// as aggregated only under exactly this type.
pub(crate) const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes minor version Meseta answers like (kubectl picks its
/// behaviour from it).
pub(crate) const KUBERNETES_MINOR: &str = "32";

/// `GET /version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-meseta.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// Whether the request offers aggregated discovery v2 in `Accept`.
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let params: Vec<String> = t.split(';').map(|p| p.trim().replace(' ', "")).collect();
        params.iter().any(|p| p == "as=APIGroupDiscoveryList")
            && params.iter().any(|p| p == "v=v2")
            && params.iter().any(|p| p == "g=apidiscovery.k8s.io")
    })
}

fn aggregated(items: Vec<Value>) -> Response {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    ([(header::CONTENT_TYPE, AGGREGATED_V2)], Json(body)).into_response()
}

/// `GET /api`: Meseta serves no core (`v1`) resources in discovery.
pub(crate) async fn core_versions(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(Vec::new());
    }
    Json(json!({"kind": "APIVersions", "versions": [], "serverAddressByClientCIDRs": []})).into_response()
}

fn group() -> Value {
    let gv = json!({"groupVersion": API_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub(crate) async fn groups(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(vec![group_discovery(kinds())]);
    }
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group()]})).into_response()
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
            "categories": CATEGORIES,
        }));
        if k.has_status {
            resources.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION, "resources": resources})
}

/// The `APIGroupDiscovery` of `meseta.io` (aggregated discovery v2).
fn group_discovery(kinds: &[KindInfo]) -> Value {
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let response_kind = json!({"group": GROUP, "version": VERSION, "kind": k.kind});
            let mut r = json!({
                "resource": k.plural,
                "responseKind": response_kind,
                "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": k.singular,
                "verbs": VERBS,
                "shortNames": k.short_names,
                "categories": CATEGORIES,
            });
            if k.has_status {
                r["subresources"] =
                    json!([{"subresource": "status", "responseKind": response_kind, "verbs": STATUS_VERBS}]);
            }
            r
        })
        .collect();
    json!({
        "metadata": {"name": GROUP},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}],
    })
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

    #[test]
    fn aggregated_discovery_is_offered_only_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_aggregated(&h));
        h.insert(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json".parse().unwrap(),
        );
        assert!(wants_aggregated(&h));
        let g = group_discovery(kinds());
        let tasks = g["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "tasks");
        let tasks = tasks.expect("tasks listed");
        assert_eq!(tasks["scope"], "Namespaced");
        assert_eq!(tasks["subresources"][0]["subresource"], "status");
    }
}
