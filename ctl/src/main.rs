//! `meseta`: the command-line client of a Meseta cluster, and `meseta up`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap) and dispatch to one module per command family.
//! - [`config`]: which server and token to use (flag, environment, config file).
//! - [`conn`]: untyped HTTP access to the apiserver by kind, with the server's `Status` errors.
//! - [`kinds`]: kind names as users type them (`tk`, `tasks`, `Task`).
//! - [`manifest`]: reading YAML manifests from files, directories and stdin.
//! - [`merge`]: the three-way merge patch of client-side apply (pure).
//! - [`apply`], [`diff`], [`get`], [`describe`], [`delete`], [`actions`], [`logs`], [`top`],
//!   [`info`], [`up`], [`wait`]: the commands.
//! - [`output`]: tables, colours, YAML/JSON/name printing.
//! - [`failure`]: turning errors into `error: ...` lines, hints and exit codes.

mod actions;
mod apply;
mod cli;
mod config;
mod conn;
mod delete;
mod describe;
mod diff;
mod failure;
mod get;
mod info;
mod kinds;
mod logs;
mod manifest;
mod merge;
mod output;
mod top;
mod up;
mod wait;
mod watch_lines;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { failure::EXIT_USAGE } else { failure::EXIT_OK });
        }
    };
    if let cli::Command::Shim { work_dir, id } = &cli.command {
        // The shim must start before any async runtime threads exist.
        std::process::exit(meseta_agentd::shim::run(work_dir, id));
    }
    if let cli::Command::ForkServer { work_dir } = &cli.command {
        // Single-threaded: no runtime, no logger (see the agent's fork server).
        std::process::exit(meseta_agentd::runtime::forkserver::serve(work_dir));
    }
    init_tracing(&cli.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(failure::EXIT_ERROR);
        }
    };
    let result = runtime.block_on(cli::run(cli));
    // Do not wait for streams still open (e.g. a watch ended by a broken pipe).
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => ExitCode::from(failure::report(&err)),
    }
}

/// Logs go to stderr, quiet by default (`--log-level` or `MESETA_LOG` to change).
fn init_tracing(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
