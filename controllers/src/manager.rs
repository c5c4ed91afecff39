//! Runs every controller loop in one process, under leader election, and
//! serves the process' `/metrics` and `/healthz`.
//!
//! Owns start-up and shutdown order only; each loop owns its own logic. It
//! must not hold state of its own: a manager that loses its lease stops its
//! loops, and whichever candidate leads next starts them from the store.
//!
//! # Guarantees
//! - With leader election on, loops run only while this process holds the
//!   `meseta-system/meseta-controllers` lease; losing it cancels them before
//!   campaigning again, so two managers never drive the cluster at once for
//!   longer than a lease duration.
//! - Cancelling `cancel` stops every loop, waits for them, and releases the
//!   lease so another candidate takes over at once.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use meseta_client::{leader::LeaderElector, Api, Client};
use meseta_schemas::Lease;
use tokio_util::sync::CancellationToken;

use crate::allocator::{self, AllocatorConfig};
use crate::jobs::{self, JobsConfig};
use crate::liveness::{self, LivenessConfig};
use crate::tasks::{self, TasksConfig};
use crate::watches::Watches;

/// Namespace of the controllers' leader lease.
pub const LEASE_NAMESPACE: &str = "meseta-system";
/// Name of the controllers' leader lease.
pub const LEASE_NAME: &str = "meseta-controllers";

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// This candidate's identity (unique per process).
    pub identity: String,
    /// How long a lease holds without renewal. Default 15 s.
    pub lease_duration: Duration,
}

/// Settings of every loop the manager runs.
#[derive(Clone, Default)]
pub struct ManagerConfig {
    /// The allocator (offers, reservations, framework / role / quota status).
    pub allocator: AllocatorConfig,
    /// The tasks controller (kills, timeouts, garbage collection).
    pub tasks: TasksConfig,
    /// The agent liveness controller.
    pub liveness: LivenessConfig,
    /// The jobs controller (the built-in framework).
    pub jobs: JobsConfig,
    /// `None` runs the loops unconditionally (one manager only, e.g. `meseta up`).
    pub leader_election: Option<LeaderElection>,
}

impl ManagerConfig {
    /// Registers the loops' metrics in `registry`.
    pub fn with_registry(mut self, registry: &prometheus::Registry) -> Self {
        self.allocator.registry = Some(registry.clone());
        self.tasks.registry = Some(registry.clone());
        self
    }
}

/// Runs every loop until `cancel`, campaigning for leadership first when
/// configured.
pub async fn run_all(client: Client, config: ManagerConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let Some(election) = config.leader_election.clone() else {
        return run_loops(client, config, cancel).await;
    };
    loop {
        let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
        let handle = LeaderElector::new(leases, LEASE_NAME, &election.identity, election.lease_duration).spawn();
        tokio::select! {
            _ = handle.wait_until_leader() => {}
            _ = cancel.cancelled() => {
                handle.step_down().await;
                return Ok(());
            }
        }
        tracing::info!(identity = %election.identity, "leading: starting controllers");
        let term = cancel.child_token();
        let mut leading = handle.subscribe();
        let loops = tokio::spawn(run_loops(client.clone(), config.clone(), term.clone()));
        tokio::select! {
            _ = leading.wait_for(|l| !*l) => tracing::warn!("lost leadership: stopping controllers"),
            _ = cancel.cancelled() => {}
        }
        term.cancel();
        let result = loops.await.context("controller loops panicked")?;
        handle.step_down().await;
        if cancel.is_cancelled() {
            return result;
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "controller loops failed; campaigning again");
        }
    }
}

async fn run_loops(client: Client, config: ManagerConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let guard = cancel.clone().drop_guard();
    // One Task watch for every loop.
    let watches = Watches::new(client.clone(), cancel.clone());
    let result = tokio::try_join!(
        allocator::run_shared(client.clone(), config.allocator, &watches, cancel.clone()),
        tasks::run_shared(client.clone(), config.tasks, &watches, cancel.clone()),
        liveness::run_shared(client.clone(), config.liveness, &watches, cancel.clone()),
        jobs::run_shared(client, config.jobs, &watches, cancel.clone()),
    );
    drop(guard);
    result.map(|_| ())
}

/// Serves `/metrics` (Prometheus text from `registry`) and `/healthz` on
/// `listener` until `cancel`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    registry: prometheus::Registry,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    use axum::{routing::get, Router};
    let app = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut out = String::new();
                let encoder = prometheus::TextEncoder::new();
                match encoder.encode_utf8(&registry.gather(), &mut out) {
                    Ok(()) => (axum::http::StatusCode::OK, out),
                    Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
        }),
    );
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "serving controller metrics");
    axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await?;
    Ok(())
}
