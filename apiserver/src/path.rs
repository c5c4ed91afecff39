//! Resource addressing: URL paths under `/apis/meseta.io/v1/` to a kind,
//! namespace, name and subresource, and those to store keys.
//!
//! Owns the store key layout (`/registry/{plural}/{ns}/{name}` for namespaced
//! kinds, `/registry/{plural}/{name}` for cluster kinds). It must not touch
//! the store or decode bodies.

use meseta_schemas::registry::{self, KindInfo};
use meseta_schemas::GROUP;

use crate::error::ApiError;

/// Root of every object key in the store.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// What a request path under `/apis/meseta.io/v1/` addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The kind served at the path.
    pub kind: &'static KindInfo,
    /// The namespace in the path (`None` for cluster kinds and all-namespace collections).
    pub namespace: Option<String>,
    /// The object name (`None` for the collection).
    pub name: Option<String>,
    /// The subresource (`status`, and later `accept`, `decline`, `log`).
    pub subresource: Option<String>,
}

impl Target {
    /// Parses the part of the path after `/apis/meseta.io/v1/`.
    pub fn parse(rest: &str) -> Result<Target, ApiError> {
        let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(not_found(rest));
        }
        let (namespace, tail) = match segs.as_slice() {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
            tail => (None, tail),
        };
        let (plural, name, subresource) = match tail {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(name.to_string()), None),
            [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
            _ => return Err(not_found(rest)),
        };
        let kind = registry::by_plural(plural).ok_or_else(|| not_found(rest))?;
        if kind.namespaced && namespace.is_none() && name.is_some() {
            return Err(ApiError::PathNotFound(format!(
                "{plural} are namespaced: use /apis/{GROUP}/v1/namespaces/{{namespace}}/{plural}/{{name}}"
            )));
        }
        if !kind.namespaced && namespace.is_some() {
            return Err(ApiError::PathNotFound(format!(
                "{plural} are cluster-scoped: use /apis/{GROUP}/v1/{plural}[/{{name}}]"
            )));
        }
        Ok(Target { kind, namespace, name, subresource })
    }

    /// `tasks.meseta.io`, as used in error messages.
    pub fn resource(&self) -> String {
        resource_name(self.kind)
    }

    /// The store key of the named object. Panics if the target is a collection.
    pub fn key(&self) -> String {
        object_key(self.kind, self.namespace.as_deref(), self.name.as_deref().unwrap_or_default())
    }

    /// The store prefix of the collection (one namespace, or all).
    pub fn prefix(&self) -> String {
        collection_prefix(self.kind, self.namespace.as_deref())
    }

    /// The object name, or empty for a collection.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

fn not_found(rest: &str) -> ApiError {
    ApiError::PathNotFound(format!("the server could not find the requested resource (/apis/{GROUP}/v1/{rest})"))
}

/// `tasks.meseta.io`.
pub fn resource_name(kind: &KindInfo) -> String {
    format!("{}.{GROUP}", kind.plural)
}

/// The store key of an object.
pub fn object_key(kind: &KindInfo, namespace: Option<&str>, name: &str) -> String {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => format!("{REGISTRY_PREFIX}{}/{ns}/{name}", kind.plural),
        _ => format!("{REGISTRY_PREFIX}{}/{name}", kind.plural),
    }
}

/// The store prefix of a collection: one namespace, or all of them.
pub fn collection_prefix(kind: &KindInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced => format!("{REGISTRY_PREFIX}{}/{ns}/", kind.plural),
        _ => format!("{REGISTRY_PREFIX}{}/", kind.plural),
    }
}

/// The kind stored under `key`, from its plural segment.
pub fn kind_of_key(key: &str) -> Option<&'static KindInfo> {
    let plural = key.strip_prefix(REGISTRY_PREFIX)?.split('/').next()?;
    registry::by_plural(plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_and_cluster_paths() {
        let t = Target::parse("namespaces/web/tasks/t1/status").unwrap();
        assert_eq!(t.kind.kind, "Task");
        assert_eq!(t.namespace.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(t.key(), "/registry/tasks/web/t1");
        let all = Target::parse("tasks").unwrap();
        assert_eq!(all.prefix(), "/registry/tasks/");
        let role = Target::parse("roles/web").unwrap();
        assert_eq!(role.key(), "/registry/roles/web");
        assert_eq!(kind_of_key("/registry/roles/web").unwrap().kind, "Role");
    }

    #[test]
    fn rejects_wrong_scope_and_unknown_plurals() {
        assert!(Target::parse("tasks/t1").is_err());
        assert!(Target::parse("namespaces/web/roles/r").is_err());
        assert!(Target::parse("widgets").is_err());
        assert!(Target::parse("tasks/a/b/c").is_err());
    }
}
