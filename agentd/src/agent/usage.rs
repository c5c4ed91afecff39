//! Usage publishing: every interval, each running task's cgroup usage (cpu
//! time, memory, peak) goes to its `status.usage`, and the sums (memory,
//! cpu rate over the interval) with the allocated resources go to the
//! `Agent`'s `status.usage` / `status.allocated`. Best effort: a failed write
//! is retried at the next interval. It must not change task states.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meseta_client::Api;
use meseta_schemas::kinds::{Agent, Task, TaskUsage};
use meseta_schemas::resources::Resources;
use serde_json::json;

use super::Shared;
use crate::runtime::ContainerId;

pub(crate) async fn run(shared: Arc<Shared>, interval: Duration) {
    let mut last_cpu: HashMap<ContainerId, f64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.cancel.cancelled() => return,
        }
        let runners: Vec<_> = shared
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, h)| (id.clone(), h.task.clone()))
            .collect();
        let mut allocated = Resources::default();
        let mut used = Resources::default();
        let mut seen = HashMap::new();
        for (id, task) in &runners {
            allocated = allocated.add(&task.spec.resources);
            let Some(u) = shared.runtime.usage(id).await else { continue };
            let prev = last_cpu.get(id).copied().unwrap_or(u.cpu_seconds);
            used.cpus += ((u.cpu_seconds - prev) / interval.as_secs_f64()).max(0.0);
            used.mem += u.mem_mib;
            seen.insert(id.clone(), u.cpu_seconds);
            let usage = TaskUsage { cpu_seconds: u.cpu_seconds, mem: u.mem_mib, mem_peak: u.mem_peak_mib };
            let api: Api<Task> = Api::namespaced(shared.client.clone(), id.namespace());
            if let Err(e) = api.patch_status_merge(id.name(), &json!({"status": {"usage": usage}})).await {
                tracing::debug!(%id, error = %e, "cannot publish task usage");
            }
        }
        last_cpu = seen;
        used.cpus = meseta_schemas::resources::round_scalar(used.cpus);
        used.mem = meseta_schemas::resources::round_scalar(used.mem);
        let api: Api<Agent> = Api::all(shared.client.clone());
        let patch = json!({"status": {"usage": full(&used), "allocated": full(&allocated)}});
        if let Err(e) = api.patch_status_merge(&shared.config.name, &patch).await {
            tracing::debug!(error = %e, "cannot publish agent usage");
        }
    }
}

/// Every field spelled out, so a merge patch also resets values to zero.
fn full(r: &Resources) -> serde_json::Value {
    json!({"cpus": r.cpus, "mem": r.mem, "disk": r.disk, "gpus": r.gpus, "ports": r.ports})
}
