//! The `meseta-agentd` binary. For now only its hidden `shim` subcommand,
//! which the container runtime runs once per container.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "meseta-agentd", version, about = "Meseta node agent: runs tasks in Linux containers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Shim { work_dir, id } => std::process::exit(meseta_agentd::shim::run(&work_dir, &id)),
    }
}
