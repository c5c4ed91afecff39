//! `meseta-agentd`: the node agent that runs a Meseta cluster's tasks.
//!
//! # Layout
//! - [`agent`]: the library entry point, [`agent::Agent`] +
//!   [`agent::AgentConfig`]: joins the cluster (Agent object, Lease), watches
//!   its tasks, runs them through a runtime, reports durable status
//!   updates, health checks, usage and metrics. Simulated agents use it
//!   with [`runtime::fake::FakeRuntime`].
//! - [`runtime`]: the container runtime trait and its implementations: real
//!   Linux containers ([`runtime::linux::LinuxRuntime`]) and an in-memory
//!   fake ([`runtime::fake::FakeRuntime`]) for simulated agents; cgroup
//!   usage; the SIGTERM-then-SIGKILL kill protocol.
//! - [`logs`]: which log files a request may read, and tails.
//! - `http`: the agent's HTTP server (logs, metrics, health).
//! - [`flags`]: parsers of the `--resources`, `--reserve` and `--attributes` values.
//! - [`shim`]: the per-container process behind the `shim` subcommand,
//!   which creates, starts, waits for and deletes one container.

pub mod agent;
pub mod flags;
mod http;
pub mod logs;
pub mod runtime;
pub mod shim;

pub use agent::{Agent, AgentConfig, AgentError};
