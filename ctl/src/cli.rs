//! The command line: global options, the command tree, and dispatch.
//!
//! Owns argument shapes shared by every command and which module runs which
//! command. It must not talk to the server itself: each command's module does.

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::{actions, apply, delete, describe, diff, get, info, logs, top, up, wait};

/// Operate a Meseta cluster.
#[derive(Debug, Parser)]
#[command(name = "meseta", version, about, propagate_version = true, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Apiserver URL [default: from ~/.config/meseta/config.yaml, else http://127.0.0.1:5050].
    #[arg(long, global = true, env = "MESETA_SERVER")]
    pub(crate) server: Option<String>,
    /// Bearer token sent to the apiserver.
    #[arg(long, global = true, env = "MESETA_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Log filter for diagnostics on stderr, e.g. `debug`.
    #[arg(long, global = true, env = "MESETA_LOG", default_value = "warn")]
    pub(crate) log_level: String,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or update objects from YAML manifests (idempotent).
    Apply(apply::ApplyArgs),
    /// Show how applying manifests would change live objects (exit 1 when it would).
    Diff(diff::DiffArgs),
    /// List objects, or show one, as a table, YAML, JSON or names.
    Get(get::GetArgs),
    /// Show one object in detail: spec, status, task events and related Events.
    Describe(describe::DescribeArgs),
    /// Delete objects by name, by manifest or by label selector.
    Delete(delete::DeleteArgs),
    /// Ask for a task to be killed.
    Kill(actions::KillArgs),
    /// Mark an agent unschedulable and kill the tasks running on it.
    Drain(actions::DrainArgs),
    /// Mark an agent schedulable again.
    Uncordon(actions::UncordonArgs),
    /// Print a task's output.
    Logs(logs::LogsArgs),
    /// Wait until objects meet a condition (a field value, a status condition, or deletion).
    Wait(wait::WaitArgs),
    /// Show resource use of agents, roles or frameworks.
    Top(top::TopArgs),
    /// List outstanding offers.
    Offers(get::OffersArgs),
    /// Print a shell completion script.
    Completion(info::CompletionArgs),
    /// Print the client's and the server's versions.
    Version,
    /// Run a whole single-machine cluster in the foreground.
    Up(up::UpArgs),
    /// Owns one container from creation to deletion (run by `meseta up`'s agent).
    #[command(hide = true)]
    Shim {
        /// The agent's work dir.
        #[arg(long)]
        work_dir: std::path::PathBuf,
        /// The container's id.
        #[arg(long)]
        id: String,
    },
    /// Forks a shim per container on request (run by `meseta up`'s agent).
    #[command(hide = true, name = meseta_agentd::runtime::forkserver::SUBCOMMAND)]
    ForkServer {
        /// The agent's work dir.
        #[arg(long)]
        work_dir: std::path::PathBuf,
    },
}

/// Runs the command; the result is the process exit code.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Command::Completion(args) = &cli.command {
        info::completion(args);
        return Ok(0);
    }
    if let Command::Up(args) = &cli.command {
        return up::run(args, cli.global.token.as_deref()).await.map(|()| 0);
    }
    let settings = Settings::resolve(&cli.global)?;
    let conn = settings.connect()?;
    match cli.command {
        Command::Apply(args) => apply::run(&conn, &args).await,
        Command::Diff(args) => diff::run(&conn, &args).await,
        Command::Get(args) => get::run(&conn, &args).await.map(|()| 0),
        Command::Describe(args) => describe::run(&conn, &args).await.map(|()| 0),
        Command::Delete(args) => delete::run(&conn, &args).await,
        Command::Kill(args) => actions::kill(&conn, &args).await.map(|()| 0),
        Command::Drain(args) => actions::drain(&conn, &args).await.map(|()| 0),
        Command::Uncordon(args) => actions::uncordon(&conn, &args).await.map(|()| 0),
        Command::Logs(args) => logs::run(&conn, &args).await.map(|()| 0),
        Command::Wait(args) => wait::run(&conn, &args).await,
        Command::Top(args) => top::run(&conn, &args).await.map(|()| 0),
        Command::Offers(args) => get::offers(&conn, &args).await.map(|()| 0),
        Command::Version => info::version(&conn).await.map(|()| 0),
        Command::Completion(_) | Command::Up(_) | Command::Shim { .. } | Command::ForkServer { .. } => {
            unreachable!("handled above")
        }
    }
}

/// Where a command looks: one namespace, or all of them.
#[derive(Debug, Clone, Args)]
pub(crate) struct NamespaceArgs {
    /// Namespace (role) to use [default: default].
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub(crate) namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub(crate) all_namespaces: bool,
}

impl NamespaceArgs {
    /// The namespace to address, `None` for all of them.
    pub(crate) fn scope(&self) -> Option<&str> {
        if self.all_namespaces {
            None
        } else {
            Some(self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE))
        }
    }
}

/// The namespace used when none is given.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";
