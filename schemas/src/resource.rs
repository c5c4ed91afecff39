//! The `Resource` trait every API kind implements, and the macro that
//! declares a spec/status kind.
//!
//! Owns the static facts of a kind (kind name, plural, scope). It must not do
//! I/O; the client and apiserver build paths from these facts.

use serde::{de::DeserializeOwned, Serialize};

use crate::meta::ObjectMeta;

/// Static description of an API kind plus access to its metadata.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// `Task`, `Agent`, ...
    const KIND: &'static str;
    /// URL segment: `tasks`, `agents`, ...
    const PLURAL: &'static str;
    /// Lower-case singular: `task`.
    const SINGULAR: &'static str;
    /// kubectl short names.
    const SHORT_NAMES: &'static [&'static str];
    /// Namespaced (role-scoped) or cluster-scoped.
    const NAMESPACED: bool;

    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
    /// The object's metadata, mutably.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// The object's name.
    fn name(&self) -> &str {
        &self.meta().name
    }
    /// The object's namespace, if namespaced.
    fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }
    /// The object's resourceVersion parsed as a store revision (0 if unset).
    fn revision(&self) -> u64 {
        self.meta().resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// Declares a kind with `spec` and optional `status`, its `Resource` impl and
/// a `new(name, spec)` constructor.
#[macro_export]
macro_rules! object_kind {
    (
        $(#[$doc:meta])*
        $kind:ident, spec: $spec:ty, status: $status:ty,
        plural: $plural:literal, singular: $singular:literal,
        short: [$($short:literal),*], namespaced: $ns:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $kind {
            /// Always `meseta.io/v1`.
            #[serde(default)]
            pub api_version: String,
            #[doc = concat!("Always `", stringify!($kind), "`.")]
            #[serde(default)]
            pub kind: String,
            /// Standard object metadata.
            #[serde(default)]
            pub metadata: $crate::meta::ObjectMeta,
            /// Desired state, written by users.
            #[serde(default)]
            pub spec: $spec,
            /// Observed state, written by controllers via the `status` subresource.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $kind {
            /// A new object with the given name and spec, no status.
            pub fn new(name: impl Into<String>, spec: $spec) -> Self {
                Self {
                    api_version: $crate::meta::API_VERSION.to_string(),
                    kind: stringify!($kind).to_string(),
                    metadata: $crate::meta::ObjectMeta { name: name.into(), ..Default::default() },
                    spec,
                    status: None,
                }
            }

            /// The same object placed in a namespace.
            pub fn in_namespace(mut self, ns: impl Into<String>) -> Self {
                self.metadata.namespace = Some(ns.into());
                self
            }
        }

        impl $crate::resource::Resource for $kind {
            const KIND: &'static str = stringify!($kind);
            const PLURAL: &'static str = $plural;
            const SINGULAR: &'static str = $singular;
            const SHORT_NAMES: &'static [&'static str] = &[$($short),*];
            const NAMESPACED: bool = $ns;
            fn meta(&self) -> &$crate::meta::ObjectMeta { &self.metadata }
            fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta { &mut self.metadata }
        }
    };
}
