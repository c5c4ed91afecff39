//! The container runtime layer: one small trait, [`ContainerRuntime`], that the
//! agent drives for every task, and its two implementations.
//!
//! Owns: container identity ([`ContainerId`]), what a container should be
//! ([`ContainerConfig`]), what it is ([`ContainerState`]), and the kill
//! protocol ([`kill_with_grace`]). It must not talk to the apiserver or know
//! about task states: mapping container states to Aurora states belongs to
//! the agent loop built on top of it.
//!
//! # Implementations
//! - [`linux::LinuxRuntime`]: real Linux containers through youki's
//!   `libcontainer`, one shim process per container (see [`crate::shim`]).
//! - [`fake::FakeRuntime`]: in memory, with configurable delays and exit
//!   codes, for simulated agents in scale tests.
//!
//! # Lifecycle
//! `create` (sandbox and bundle on disk) → `start` (the process runs) →
//! `kill` (signals) → the process exits → `delete` (everything but the
//! sandbox is removed). `list` and `state` work from what is on disk, so an
//! agent that restarts re-adopts what it started before.

mod attach_primer;
pub mod cgroups;
pub mod config;
pub mod fake;
pub mod forkserver;
mod host;
pub(crate) mod layout;
pub mod linux;
mod seccomp;
pub mod seccomp_bpf;
mod spec;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use config::{ContainerConfig, DEFAULT_PIDS_LIMIT, SANDBOX_MOUNT};
pub use nix::sys::signal::Signal;

/// The OCI `linux.seccomp` profile every task runs under (see
/// [`seccomp_bpf`] for how it is installed), for peers that run a task's
/// `config.json` with another runtime.
pub fn seccomp_profile() -> serde_json::Value {
    seccomp::profile()
}

/// Identity of a container: `<namespace>_<task>`.
///
/// Task and namespace names are DNS labels or subdomains, which never hold
/// `_`, so the id is unambiguous and also a valid libcontainer id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// The id of task `name` in namespace `namespace`.
    pub fn new(namespace: &str, name: &str) -> Result<Self, RuntimeError> {
        for (field, value) in [("namespace", namespace), ("name", name)] {
            let ok = !value.is_empty()
                && value.len() <= 253
                && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !value.starts_with('.');
            if !ok {
                return Err(RuntimeError::InvalidConfig {
                    field,
                    reason: format!("{value:?} is not a DNS subdomain (lower-case letters, digits, '-', '.')"),
                });
            }
        }
        Ok(ContainerId(format!("{namespace}_{name}")))
    }

    /// Parses an id read back from disk.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('_')?;
        ContainerId::new(ns, name).ok()
    }

    /// The namespace part.
    pub fn namespace(&self) -> &str {
        self.0.split_once('_').map(|(ns, _)| ns).unwrap_or_default()
    }

    /// The task name part.
    pub fn name(&self) -> &str {
        self.0.split_once('_').map(|(_, n)| n).unwrap_or_default()
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a container is doing, as far as the runtime can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created (sandbox and bundle ready), not started.
    Created,
    /// Its process runs.
    Running {
        /// Host pid of the container's first process.
        pid: u32,
    },
    /// Its process ended.
    Exited {
        /// Exit code; `128 + n` when killed by signal `n`.
        code: i32,
        /// Whether the kernel's OOM killer killed a process of the container.
        oom: bool,
        /// What a person should know, e.g. "command not found"; empty if nothing.
        message: String,
    },
    /// The runtime lost track of it (its shim died without a record).
    Unknown,
}

impl ContainerState {
    /// Whether the container's process has ended (or is beyond knowing).
    pub fn is_finished(&self) -> bool {
        matches!(self, ContainerState::Exited { .. } | ContainerState::Unknown)
    }
}

/// Resource usage of a running container, from its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time used, in seconds.
    pub cpu_seconds: f64,
    /// Memory in use now, MiB.
    pub mem_mib: f64,
    /// Highest memory use seen, MiB (0 when the kernel does not track it).
    pub mem_peak_mib: f64,
}

/// Errors of the runtime layer.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A field of the task cannot be run as asked.
    #[error("invalid container config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field, e.g. `args`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The task asks for an OCI image; only the host filesystem is supported.
    #[error("container.image {image:?}: images are not supported yet; leave container.image empty to run on the host filesystem")]
    ImagesNotSupported {
        /// The image asked for.
        image: String,
    },
    /// No container with this id.
    #[error("container {0} not found")]
    NotFound(ContainerId),
    /// A container with this id exists already.
    #[error("container {0} already exists")]
    AlreadyExists(ContainerId),
    /// The operation does not apply in the container's current state.
    #[error("container {id}: cannot {op} while {state}")]
    InvalidState {
        /// The container.
        id: ContainerId,
        /// The operation tried.
        op: &'static str,
        /// The state it was in.
        state: String,
    },
    /// This host cannot run containers (not root, no cgroups, ...).
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
    /// A file of the runtime could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The shim or libcontainer failed.
    #[error("container {id}: {message}")]
    Container {
        /// The container.
        id: ContainerId,
        /// What failed.
        message: String,
    },
}

impl RuntimeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { path: path.into(), source }
    }
}

/// Runs containers. Every method is safe to call again after a crash: state
/// is kept where [`list`](ContainerRuntime::list) and
/// [`state`](ContainerRuntime::state) find it.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Prepares the container (sandbox, bundle) without running anything.
    async fn create(&self, config: &ContainerConfig) -> Result<(), RuntimeError>;
    /// Starts a created container. A process that cannot be executed is not
    /// an error here: the container goes `Exited` with a message.
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// Sends `signal` to every process of the container; a no-op once exited.
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError>;
    /// Removes the container (its process must have exited); the sandbox stays.
    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// The container's current state.
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError>;
    /// Every container this runtime knows, for recovery after a restart.
    async fn list(&self) -> Result<Vec<ContainerId>, RuntimeError>;
    /// Resolves once the container's process has probably ended, when the
    /// runtime learns it without polling: with the process' end when the
    /// runtime was told it (an `Exited` state, final even though the
    /// container may still be being cleaned up), or `None` as a hint to read
    /// [`state`](ContainerRuntime::state). The default never resolves,
    /// leaving callers to poll.
    async fn exited(&self, _id: &ContainerId) -> Option<ContainerState> {
        std::future::pending::<Option<ContainerState>>().await
    }
    /// Resource usage of a running container; `None` when unknown (the
    /// default: runtimes without cgroups).
    async fn usage(&self, _id: &ContainerId) -> Option<Usage> {
        None
    }
}

/// How often [`kill_with_grace`] looks at the state while waiting.
const KILL_POLL: Duration = Duration::from_millis(20);
/// How long [`kill_with_grace`] waits after SIGKILL before giving up.
const SIGKILL_WAIT: Duration = Duration::from_secs(30);

/// Kills a container the polite way: SIGTERM, up to `grace` for it to exit,
/// then SIGKILL, and waits for the exit. Returns the final state.
///
/// With [`linux::LinuxRuntime`] an `Exited` state means the shim has also
/// killed every leftover process and removed the container's cgroup.
pub async fn kill_with_grace(
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    grace: Duration,
) -> Result<ContainerState, RuntimeError> {
    let state = runtime.state(id).await?;
    if state.is_finished() {
        return Ok(state);
    }
    runtime.kill(id, Signal::SIGTERM).await?;
    if let Some(state) = wait_finished(runtime, id, grace).await? {
        return Ok(state);
    }
    tracing::info!(%id, ?grace, "grace period over, sending SIGKILL");
    runtime.kill(id, Signal::SIGKILL).await?;
    match wait_finished(runtime, id, SIGKILL_WAIT).await? {
        Some(state) => Ok(state),
        None => Err(RuntimeError::Container {
            id: id.clone(),
            message: format!("still running {SIGKILL_WAIT:?} after SIGKILL"),
        }),
    }
}

async fn wait_finished(
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    limit: Duration,
) -> Result<Option<ContainerState>, RuntimeError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = runtime.state(id).await?;
        if state.is_finished() {
            return Ok(Some(state));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(KILL_POLL).await;
    }
}
