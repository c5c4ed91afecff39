//! `Event` (namespaced): what happened to which object. Shaped like
//! Kubernetes' core/v1 Event so `kubectl describe` can render it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ObjectReference;
use crate::meta::{ObjectMeta, Time};

/// Who reported an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// Component, e.g. `jobs-controller`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// Host, e.g. an agent name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// What happened to which object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `meseta.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// Always `Event`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object the event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// CamelCase reason, e.g. `Preempted`.
    #[serde(default)]
    pub reason: String,
    /// Human-readable description.
    #[serde(default)]
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// How many times it happened.
    #[serde(default)]
    pub count: u32,
    /// First occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Time>,
    /// Last occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Time>,
    /// Who reported it.
    #[serde(default)]
    pub source: EventSource,
}

impl crate::resource::Resource for Event {
    const KIND: &'static str = "Event";
    const PLURAL: &'static str = "events";
    const SINGULAR: &'static str = "event";
    const SHORT_NAMES: &'static [&'static str] = &["ev"];
    const NAMESPACED: bool = true;
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
