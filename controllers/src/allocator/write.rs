//! Applying a [`CyclePlan`] through the API with bounded concurrency, and
//! the allocator's metrics.
//!
//! Owns the HTTP side of a cycle: creates, deletes, status replacements
//! (conditioned on the cached `resourceVersion`, so a lost race is a 409
//! that the next cycle resolves) and kill requests. It must not decide what
//! to write.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use meseta_client::{Api, Client, DeleteParams, ObjectRef};
use meseta_schemas::kinds::Offer;
use meseta_schemas::Resource;
use prometheus::{Histogram, HistogramOpts, IntCounter};
use serde_json::json;

use super::CyclePlan;

/// The allocator's Prometheus metrics.
pub(super) struct Metrics {
    cycles: Histogram,
    offers_created: IntCounter,
    offers_rescinded: IntCounter,
    write_errors: IntCounter,
}

impl Metrics {
    pub(super) fn new(registry: Option<&prometheus::Registry>) -> Metrics {
        let m = Metrics {
            cycles: Histogram::with_opts(HistogramOpts::new(
                "meseta_allocator_cycle_seconds",
                "Duration of one allocation cycle, writes included.",
            ))
            .expect("valid histogram"),
            offers_created: IntCounter::new("meseta_allocator_offers_created_total", "Offers created.")
                .expect("valid counter"),
            offers_rescinded: IntCounter::new("meseta_allocator_offers_rescinded_total", "Offers rescinded.")
                .expect("valid counter"),
            write_errors: IntCounter::new("meseta_allocator_write_errors_total", "Allocator writes that failed.")
                .expect("valid counter"),
        };
        if let Some(r) = registry {
            for c in [
                Box::new(m.cycles.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(m.offers_created.clone()),
                Box::new(m.offers_rescinded.clone()),
                Box::new(m.write_errors.clone()),
            ] {
                if let Err(e) = r.register(c) {
                    tracing::warn!(error = %e, "allocator metric not registered");
                }
            }
        }
        m
    }

    pub(super) fn cycle(&self, took: Duration) {
        self.cycles.observe(took.as_secs_f64());
    }
}

fn ns_api<K: Resource>(client: &Client, ns: Option<&str>) -> Api<K> {
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

type Write<'a> = BoxFuture<'a, Result<(), (Option<ObjectRef>, String)>>;

fn status_write<K: Resource + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>(
    client: &Client,
    obj: K,
    what: &'static str,
) -> Write<'static> {
    let client = client.clone();
    async move {
        let meta = obj.meta();
        let api: Api<K> = ns_api(&client, meta.namespace.as_deref());
        match api.replace_status(&obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(()),
            Err(e) => Err((None, format!("{what} {} status: {e}", obj.meta().name))),
        }
    }
    .boxed()
}

/// Applies `plan`; returns the offers whose creation failed.
pub(super) async fn apply(client: &Client, plan: CyclePlan, concurrency: usize, m: &Metrics) -> Vec<ObjectRef> {
    let mut writes: Vec<Write<'static>> = Vec::new();
    for (ns, name, why) in plan.rescind {
        let api: Api<Offer> = Api::namespaced(client.clone(), &ns);
        m.offers_rescinded.inc();
        writes.push(
            async move {
                tracing::debug!(offer = %name, namespace = %ns, reason = %why, "rescinding offer");
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err((None, format!("rescinding offer {ns}/{name}: {e}"))),
                }
            }
            .boxed(),
        );
    }
    for r in plan.reservations {
        writes.push(status_write(client, r, "reservation"));
    }
    for offer in plan.create {
        let api: Api<Offer> = ns_api(client, offer.metadata.namespace.as_deref());
        m.offers_created.inc();
        writes.push(
            async move {
                let k = ObjectRef { namespace: offer.metadata.namespace.clone(), name: offer.metadata.name.clone() };
                api.create(&offer).await.map(|_| ()).map_err(|e| (Some(k), format!("creating offer: {e}")))
            }
            .boxed(),
        );
    }
    for (ns, name) in plan.kill {
        let api: Api<meseta_schemas::kinds::Task> = Api::namespaced(client.clone(), &ns);
        writes.push(
            async move {
                tracing::info!(task = %name, namespace = %ns, "framework past its failover timeout: killing task");
                match api.patch_merge(&name, &json!({"spec": {"killRequested": true}})).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err((None, format!("killing task {ns}/{name}: {e}"))),
                }
            }
            .boxed(),
        );
    }
    for f in plan.frameworks {
        writes.push(status_write(client, f, "framework"));
    }
    for r in plan.roles {
        writes.push(status_write(client, r, "role"));
    }
    for q in plan.quotas {
        writes.push(status_write(client, q, "quota"));
    }
    let results: Vec<_> = futures::stream::iter(writes).buffer_unordered(concurrency.max(1)).collect().await;
    let mut failed = Vec::new();
    for r in results {
        if let Err((k, e)) = r {
            m.write_errors.inc();
            tracing::warn!(error = %e, "allocator write failed; the next cycle retries");
            failed.extend(k);
        }
    }
    failed
}
