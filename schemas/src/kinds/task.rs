//! `Task` (namespaced by role): one process run in a container on an agent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resources::Resources;

/// Aurora task states (upper-case on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Waiting for resources.
    #[default]
    Pending,
    /// Waiting out a restart penalty after rapid failures.
    Throttled,
    /// Bound to an agent, not yet seen by it.
    Assigned,
    /// The agent is preparing the sandbox and container.
    Starting,
    /// The process runs.
    Running,
    /// Exited 0.
    Finished,
    /// Exited non-zero, or could not start.
    Failed,
    /// A kill was requested; waiting for the agent.
    Killing,
    /// Killed on request.
    Killed,
    /// The agent lost track of it, or it was stuck in a transient state.
    Lost,
    /// Being killed to make room for a production task.
    Preempting,
    /// Being killed to be started again.
    Restarting,
    /// Being killed because its agent is draining.
    Draining,
    /// Its agent is unreachable (partition-aware frameworks only).
    Partitioned,
}

impl TaskState {
    /// Every state, in declaration order.
    pub const ALL: [TaskState; 14] = [
        TaskState::Pending,
        TaskState::Throttled,
        TaskState::Assigned,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killing,
        TaskState::Killed,
        TaskState::Lost,
        TaskState::Preempting,
        TaskState::Restarting,
        TaskState::Draining,
        TaskState::Partitioned,
    ];

    /// Upper-case wire name, e.g. `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Throttled => "THROTTLED",
            TaskState::Assigned => "ASSIGNED",
            TaskState::Starting => "STARTING",
            TaskState::Running => "RUNNING",
            TaskState::Finished => "FINISHED",
            TaskState::Failed => "FAILED",
            TaskState::Killing => "KILLING",
            TaskState::Killed => "KILLED",
            TaskState::Lost => "LOST",
            TaskState::Preempting => "PREEMPTING",
            TaskState::Restarting => "RESTARTING",
            TaskState::Draining => "DRAINING",
            TaskState::Partitioned => "PARTITIONED",
        }
    }

    /// FINISHED, FAILED, KILLED and LOST never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Killed | TaskState::Lost)
    }

    /// Whether the task holds resources on an agent in this state.
    pub fn holds_resources(self) -> bool {
        !self.is_terminal() && !matches!(self, TaskState::Pending | TaskState::Throttled)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Network mode of a task's container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Share the agent's network namespace.
    #[default]
    Host,
    /// A private network namespace with only loopback.
    None,
}

/// Container settings of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// OCI image reference; without one the task runs on the host filesystem (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Network namespace mode.
    #[serde(default)]
    pub network: NetworkMode,
}

/// A port the task asks for; `port: 0` means any free port from the offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortRequest {
    /// Name, exported to the task as `PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A fixed host port, or 0 for any.
    #[serde(default, skip_serializing_if = "is_any_port")]
    pub port: u16,
}

/// `port: 0` (any port) is left out, so a stored request reads back as written.
fn is_any_port(port: &u16) -> bool {
    *port == 0
}

/// An HTTP health check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Port to connect to; 0 means the task's first assigned port (`$PORT0`).
    pub port: u16,
    /// Path to GET; 2xx and 3xx are healthy. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A TCP health check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    /// Port that must accept a connection; 0 means the task's first assigned port.
    pub port: u16,
}

/// How a task's health is checked (exactly one of command, http, tcp).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Shell command run inside the task's container; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// HTTP GET check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// TCP connect check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Seconds after start during which failures do not count. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// Seconds between checks. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// Seconds before one check counts as failed. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Failures in a row before the task is killed. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
}

/// How a task is killed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KillPolicy {
    /// Seconds between SIGTERM and SIGKILL. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// Desired state of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Owning framework; empty means the role's built-in framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// Agent the task is bound to (set when an offer is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Shell command, run by `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Exec-form argv (used when `command` is absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Resources the task needs (and, once bound, the ports it holds).
    #[serde(default)]
    pub resources: Resources,
    /// Ports the task asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRequest>,
    /// Container settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// User to run as on the host filesystem. Default `nobody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// Runs on revocable resources and may be killed to reclaim them.
    #[serde(default)]
    pub revocable: bool,
    /// Production tasks may preempt non-production ones.
    #[serde(default)]
    pub production: bool,
    /// Priority among non-production tasks (higher wins).
    #[serde(default)]
    pub priority: i32,
    /// Set to request a kill; the task goes KILLING then KILLED.
    #[serde(default)]
    pub kill_requested: bool,
}

/// One entry of a task's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    /// When the transition happened.
    pub timestamp: Time,
    /// The state entered.
    pub state: TaskState,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Measured usage of a task, from its cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskUsage {
    /// CPU time consumed, seconds.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// Current memory usage, MiB.
    #[serde(default)]
    pub mem: f64,
    /// Peak memory usage, MiB.
    #[serde(default)]
    pub mem_peak: f64,
}

/// Observed state of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Aurora state.
    #[serde(default)]
    pub state: TaskState,
    /// Agent the task runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Exit code, once exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Human-readable detail of the current state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// History of transitions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_events: Vec<TaskEvent>,
    /// Host ports assigned, in `spec.ports` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Sandbox directory on the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Measured usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TaskUsage>,
    /// Result of the health check, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Failures of this instance so far (jobs controller).
    #[serde(default)]
    pub failure_count: u32,
}

crate::object_kind!(
    /// One process run in a container on an agent.
    Task, spec: TaskSpec, status: TaskStatus,
    plural: "tasks", singular: "task", short: ["tk"], namespaced: true
);

impl Task {
    /// Current state (PENDING when no status yet).
    pub fn state(&self) -> TaskState {
        self.status.as_ref().map(|s| s.state).unwrap_or_default()
    }
}
