//! The Meseta apiserver: a Kubernetes-style REST API over a durable store.
//!
//! # Layout
//!
//! - [`store`]: the storage contract and its sled implementation.

pub mod store;
