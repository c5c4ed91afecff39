//! `meseta-controllers`: every reconciler of the cluster in one process.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use meseta_controllers::manager::{self, LeaderElection, ManagerConfig};
use tokio_util::sync::CancellationToken;

/// Runs the allocator, tasks, liveness and jobs controllers against an apiserver.
#[derive(Parser, Debug)]
#[command(name = "meseta-controllers", version)]
struct Args {
    /// Apiserver URL.
    #[arg(long, env = "MESETA_SERVER", default_value = "http://127.0.0.1:5050")]
    server: String,
    /// Bearer token for the apiserver.
    #[arg(long, env = "MESETA_TOKEN")]
    token: Option<String>,
    /// Address of /metrics and /healthz.
    #[arg(long, default_value = "127.0.0.1:5052")]
    listen: String,
    /// Longest time between allocation cycles.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    allocation_interval: Duration,
    /// How long an offer stands before it is rescinded.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    offer_timeout: Duration,
    /// How long a task may stay ASSIGNED or STARTING before it is LOST.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    transient_timeout: Duration,
    /// How long finished tasks not owned by a Job are kept.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    task_retention: Duration,
    /// How long a production task waits PENDING before it may preempt.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    preemption_delay: Duration,
    /// Unreachable agents whose tasks may be declared LOST per second, one at
    /// a time (`inf` for no limit).
    #[arg(long, default_value_t = 0.1)]
    lost_agents_per_second: f64,
    /// When more than this fraction of the agents is unreachable at once, no
    /// task is declared LOST (the control plane's view is suspect).
    #[arg(long, default_value_t = 0.55)]
    max_unreachable_fraction: f64,
    /// Run without leader election (only when exactly one manager runs).
    #[arg(long)]
    no_leader_elect: bool,
    /// Identity in leader election. Default: hostname and pid.
    #[arg(long)]
    identity: Option<String>,
    /// Log filter, e.g. `info` or `meseta_controllers=debug`.
    #[arg(long, env = "MESETA_LOG", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level)).init();

    let mut client = meseta_client::Client::new(&args.server).context("--server")?;
    if let Some(t) = &args.token {
        client = client.with_token(t);
    }
    let registry = prometheus::Registry::new();
    let mut config = ManagerConfig::default().with_registry(&registry);
    config.allocator.interval = args.allocation_interval;
    config.allocator.offer_timeout = args.offer_timeout;
    config.tasks.transient_timeout = args.transient_timeout;
    config.tasks.retention = args.task_retention;
    config.jobs.preemption_delay = args.preemption_delay;
    anyhow::ensure!(
        args.lost_agents_per_second >= 0.0,
        "--lost-agents-per-second must be 0 or more (0 never declares tasks lost, inf has no limit)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.max_unreachable_fraction),
        "--max-unreachable-fraction must be between 0 and 1"
    );
    config.liveness.lost_agents_per_second = args.lost_agents_per_second;
    config.liveness.max_unreachable_fraction = args.max_unreachable_fraction;
    if !args.no_leader_elect {
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        config.leader_election = Some(LeaderElection { identity, lease_duration: Duration::from_secs(15) });
    }

    let cancel = CancellationToken::new();
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    let metrics = tokio::spawn(manager::serve_metrics(listener, registry, cancel.clone()));
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    tracing::info!(server = %args.server, "meseta-controllers starting");
    let result = manager::run_all(client, config, cancel.clone()).await;
    cancel.cancel();
    metrics.await.context("metrics server panicked")??;
    result
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "controllers".into());
    format!("{}-{}", host.trim(), std::process::id())
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    cancel.cancel();
}
