//! Prometheus metrics of the apiserver, and the store wrapper that times
//! every storage operation.
//!
//! Owns the metric names and labels:
//! `apiserver_request_total{verb,resource,code}`,
//! `apiserver_request_duration_seconds{verb,resource}`,
//! `apiserver_storage_duration_seconds{op}`,
//! `apiserver_storage_txn_total{resource,outcome}`,
//! `apiserver_registered_watchers{resource}`. Each server has its own
//! registry, so several servers can live in one process (tests).

use std::sync::Arc;

use async_trait::async_trait;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::store::{
    IndexedWatch, KeyMemo, KeyValue, ListResult, Revision, Store, StoreError, Txn, TxnOutcome, WatchStream,
};

/// The apiserver's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by verb, resource and HTTP code.
    pub requests: IntCounterVec,
    /// Request latency by verb and resource.
    pub request_duration: HistogramVec,
    /// Store operation latency by operation.
    pub storage_duration: HistogramVec,
    /// Store transactions by outcome (`committed`, or `failed`: a compare
    /// did not hold, so the caller retries or answers a conflict) and by the
    /// resource of the key that decided it (the failed compare's, else the
    /// first write's).
    pub txns: IntCounterVec,
    /// Open watches by resource.
    pub watchers: IntGaugeVec,
}

impl Metrics {
    /// Fresh metrics in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("apiserver_request_total", "Requests by verb, resource and HTTP status code."),
            &["verb", "resource", "code"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new("apiserver_request_duration_seconds", "Request latency in seconds.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0]),
            &["verb", "resource"],
        )
        .expect("valid metric");
        let storage_duration = HistogramVec::new(
            HistogramOpts::new("apiserver_storage_duration_seconds", "Store operation latency in seconds.")
                .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            &["op"],
        )
        .expect("valid metric");
        let txns = IntCounterVec::new(
            Opts::new(
                "apiserver_storage_txn_total",
                "Store transactions by outcome and by the resource of the deciding key.",
            ),
            &["resource", "outcome"],
        )
        .expect("valid metric");
        let watchers =
            IntGaugeVec::new(Opts::new("apiserver_registered_watchers", "Open watches by resource."), &["resource"])
                .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(storage_duration.clone()),
            Box::new(txns.clone()),
            Box::new(watchers.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics { registry, requests, request_duration, storage_duration, txns, watchers }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A [`Store`] that records `apiserver_storage_duration_seconds` around each call.
pub(crate) struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub(crate) fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> MeteredStore {
        MeteredStore { inner, metrics }
    }

    fn timer(&self, op: &str) -> prometheus::HistogramTimer {
        self.metrics.storage_duration.with_label_values(&[op]).start_timer()
    }
}

/// The resource a store key belongs to (`/registry/tasks/ns/a` is `tasks`);
/// `other` for keys of no registered kind.
fn resource_of(key: &str) -> &'static str {
    crate::path::kind_of_key(key).map_or("other", |kind| kind.plural)
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let _t = self.timer("get");
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        let _t = self.timer("list");
        self.inner.list(prefix, start_after, limit).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let _t = self.timer("txn");
        let written = txn.ops.first().map_or("other", |op| resource_of(op.key()));
        let compared: Vec<&'static str> = txn.compares.iter().map(|c| resource_of(c.key())).collect();
        let outcome = self.inner.txn(txn).await?;
        let (resource, label) = match &outcome {
            TxnOutcome::Committed { .. } => (written, "committed"),
            TxnOutcome::Failed { compare, .. } => (compared.get(*compare).copied().unwrap_or(written), "failed"),
        };
        self.metrics.txns.with_label_values(&[resource, label]).inc();
        Ok(outcome)
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let _t = self.timer("watch");
        self.inner.watch(prefix, from)
    }

    fn watch_indexed(&self, prefix: &str, from: Revision, narrow: IndexedWatch<'_>) -> Result<WatchStream, StoreError> {
        let _t = self.timer("watch");
        self.inner.watch_indexed(prefix, from, narrow)
    }

    fn revision(&self) -> Revision {
        self.inner.revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.inner.compacted_revision()
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let _t = self.timer("compact");
        self.inner.compact(revision).await
    }

    fn memo(&self) -> Option<&KeyMemo> {
        self.inner.memo()
    }
}
