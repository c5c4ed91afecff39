//! [`ObjectRef`]: the identity of one object of a known kind (namespace + name).
//!
//! Owns the key the reflector store and the controller's work queue use. It
//! must not carry object state: reconcilers read the latest state from the
//! store when they run.

use std::fmt;

use meseta_schemas::Resource;

/// Namespace and name of an object; the kind is implied by the context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Namespace, `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to the cluster-scoped object `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ObjectRef { namespace: None, name: name.into() }
    }

    /// The same reference inside namespace `ns`.
    pub fn within(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// The reference of `obj`.
    pub fn from_obj<K: Resource>(obj: &K) -> Self {
        ObjectRef { namespace: obj.namespace().map(str::to_string), name: obj.name().to_string() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
