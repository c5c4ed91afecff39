//! The `meseta-agentd` binary: flags → [`meseta_agentd::AgentConfig`] →
//! [`meseta_agentd::Agent`] on the real Linux runtime, stopped gracefully on
//! SIGTERM / ctrl-c; plus two hidden subcommands: `fork-server`, which the
//! runtime starts once and which forks a shim per container, and `shim`,
//! the same shim run on its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meseta_agentd::agent::join;
use meseta_agentd::runtime::linux::{seccomp_available, LinuxRuntime};
use meseta_agentd::{flags, Agent, AgentConfig};

#[derive(Parser)]
#[command(name = "meseta-agentd", version, about = "Meseta node agent: runs tasks in Linux containers")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The apiserver's URL.
    #[arg(long, env = "MESETA_SERVER", default_value = "http://127.0.0.1:5050")]
    server: String,
    /// Bearer token for the apiserver.
    #[arg(long, env = "MESETA_TOKEN")]
    token: Option<String>,
    /// Address of the agent's HTTP server (logs, metrics).
    #[arg(long, default_value = "127.0.0.1:5051")]
    listen: SocketAddr,
    /// Address written to the Agent object (default: http://<listen>).
    #[arg(long)]
    advertise: Option<String>,
    /// Work dir: sandboxes, containers, pending status updates.
    #[arg(long, default_value = "/var/lib/meseta-agentd")]
    work_dir: PathBuf,
    /// Agent name (default: the hostname, lower-cased).
    #[arg(long)]
    name: Option<String>,
    /// Hostname presented on the Agent object, used by `hostname`
    /// constraints (default: this machine's hostname); lets several agents on
    /// one machine present distinct hostnames.
    #[arg(long, value_parser = parse_hostname)]
    hostname: Option<String>,
    /// Resources to advertise instead of detected ones, e.g. 'cpus:4;mem:8192;ports:[31000-32000]'.
    #[arg(long)]
    resources: Option<String>,
    /// Static reservation 'ROLE:cpus:1;mem:512' (repeatable).
    #[arg(long)]
    reserve: Vec<String>,
    /// Attributes 'rack:a;zone:z1'.
    #[arg(long, default_value = "")]
    attributes: String,
    /// What the agent keeps for itself out of detected resources, e.g. 'cpus:0.5;mem:512'.
    #[arg(long, default_value = "cpus:0.5;mem:512")]
    keep: String,
    /// Kill running tasks when the agent stops (default: they keep running).
    #[arg(long)]
    kill_tasks_on_shutdown: bool,
    /// Seconds between usage reports.
    #[arg(long, default_value_t = 10)]
    usage_interval: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Owns one container from creation to deletion (run by the agent itself).
    #[command(hide = true)]
    Shim {
        /// The agent's work dir.
        #[arg(long)]
        work_dir: PathBuf,
        /// The container's id.
        #[arg(long)]
        id: String,
    },
    /// Forks a shim per container on request (run by the agent itself).
    #[command(hide = true, name = meseta_agentd::runtime::forkserver::SUBCOMMAND)]
    ForkServer {
        /// The agent's work dir.
        #[arg(long)]
        work_dir: PathBuf,
    },
}

/// `--hostname`: a DNS-1123 hostname.
fn parse_hostname(s: &str) -> Result<String, String> {
    join::validate_hostname(s).map(|()| s.to_string())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Shim { work_dir, id }) => std::process::exit(meseta_agentd::shim::run(&work_dir, &id)),
        // Single-threaded from here on: no runtime, no logger (see `forkserver`).
        Some(Command::ForkServer { work_dir }) => {
            std::process::exit(meseta_agentd::runtime::forkserver::serve(&work_dir))
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    tokio::runtime::Runtime::new()?.block_on(run(cli.run))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work_dir).with_context(|| format!("creating {}", args.work_dir.display()))?;
    let work_dir = std::path::absolute(&args.work_dir)?;
    let detected = join::detect_resources(&work_dir);
    let keep = flags::parse_resources(&args.keep).context("--keep")?;
    let overrides = args.resources.as_deref().map(flags::parse_resources).transpose().context("--resources")?;
    let resources = join::advertised(&detected, &keep, overrides.as_ref());
    let mut reservations = BTreeMap::new();
    for r in &args.reserve {
        let (role, res) = flags::parse_reserve(r).context("--reserve")?;
        reservations.insert(role, res);
    }
    let attributes = flags::parse_attributes(&args.attributes).context("--attributes")?;
    let name = args.name.unwrap_or_else(join::default_name);

    let runtime = LinuxRuntime::new(&work_dir, "/proc/self/exe").context("starting the container runtime")?;
    let mut client = meseta_client::Client::new(&args.server)?;
    if let Some(t) = args.token {
        client = client.with_token(t);
    }
    let mut config = AgentConfig::new(name, resources);
    config.hostname = args.hostname;
    config.address = args.advertise.unwrap_or_else(|| format!("http://{}", args.listen));
    config.listen = Some(args.listen);
    config.work_dir = Some(work_dir);
    config.reservations = reservations;
    config.attributes = attributes;
    config.usage_interval = Some(Duration::from_secs(args.usage_interval.max(1)));
    config.kill_tasks_on_shutdown = args.kill_tasks_on_shutdown;
    config.seccomp = seccomp_available();
    tracing::info!(name = %config.name, resources = ?config.resources, "starting");
    let agent = Agent::new(client, config, Arc::new(runtime))?;

    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received; stopping (tasks keep running)");
        stop.cancel();
    });
    agent.run(cancel).await
}
