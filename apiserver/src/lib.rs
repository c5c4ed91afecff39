//! The Meseta apiserver: a Kubernetes-style REST API over a durable store.
//!
//! # Layout
//!
//! - [`age`]: object ages in kubectl's short form.
//! - [`patch`]: merge patches, JSON patches and list continue tokens.
//! - [`selector`]: label and field selectors.
//! - [`store`]: the storage contract and its sled implementation.

pub mod age;
pub mod patch;
pub mod selector;
pub mod store;
