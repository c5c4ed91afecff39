//! `meseta-agentd`: the node agent that runs a Meseta cluster's tasks.
//!
//! # Layout
//! - [`runtime`]: the container runtime trait and its implementations: real
//!   Linux containers ([`runtime::linux::LinuxRuntime`]) and an in-memory
//!   fake ([`runtime::fake::FakeRuntime`]) for simulated agents; cgroup
//!   usage; the SIGTERM-then-SIGKILL kill protocol.
//! - [`flags`]: parsers of the `--resources`, `--reserve` and `--attributes` values.
//! - [`shim`]: the per-container process behind the `shim` subcommand,
//!   which creates, starts, waits for and deletes one container.

pub mod flags;
pub mod runtime;
pub mod shim;
