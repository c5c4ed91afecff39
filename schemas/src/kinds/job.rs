//! `Job` (namespaced by role): a service, adhoc or cron job run by the
//! built-in framework.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;
use super::task::TaskSpec;
use crate::meta::Time;

/// Kind of job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// Long-running: every instance that ends is replaced.
    #[default]
    Service,
    /// Runs to completion once, retrying failures.
    Adhoc,
    /// Runs on a schedule.
    Cron,
}

/// Placement constraint operator (Marathon / Aurora).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConstraintOperator {
    /// At most one instance per distinct value of the attribute.
    Unique,
    /// Only on agents whose attribute equals `value`.
    Equals,
    /// Only on agents whose attribute matches the regex `value`.
    Like,
    /// Only on agents whose attribute does not match the regex `value`.
    Unlike,
    /// At most `value` instances per distinct value of the attribute.
    MaxPer,
}

/// A placement constraint; `attribute: hostname` means the agent's hostname.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Constraint {
    /// Agent attribute name, or `hostname`.
    pub attribute: String,
    /// The operator.
    pub operator: ConstraintOperator,
    /// Operand (value, regex or count), when the operator needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What a cron job does when the previous run is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollisionPolicy {
    /// Kill the running instance, then start the new one.
    #[default]
    KillExisting,
    /// Skip the new run.
    CancelNew,
    /// Run both.
    RunOverlap,
}

/// Cron schedule of a cron job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronSpec {
    /// Five-field cron expression, e.g. `*/5 * * * *` (UTC).
    pub schedule: String,
    /// Collision policy. Default KILL_EXISTING.
    #[serde(default)]
    pub collision_policy: CollisionPolicy,
}

/// How template changes are rolled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Instances replaced per batch. Default 1.
    #[serde(default = "one")]
    pub batch_size: u32,
    /// Percent of instances that must stay healthy during the update. Default 100.
    #[serde(default = "hundred")]
    pub minimum_healthy_percent: u32,
}

fn one() -> u32 {
    1
}
fn hundred() -> u32 {
    100
}
fn default_instances() -> u32 {
    1
}
fn default_max_failures() -> i32 {
    1
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy { batch_size: 1, minimum_healthy_percent: 100 }
    }
}

/// Desired state of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// service, adhoc or cron.
    #[serde(default, rename = "type")]
    pub type_: JobType,
    /// Number of instances. Default 1.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// The task every instance runs.
    #[serde(default)]
    pub template: TaskSpec,
    /// Production jobs may preempt non-production tasks.
    #[serde(default)]
    pub production: bool,
    /// Priority among jobs of the role (higher first).
    #[serde(default)]
    pub priority: i32,
    /// Failures tolerated per instance before the job fails; -1 unlimited. Default 1.
    #[serde(default = "default_max_failures")]
    pub max_task_failures: i32,
    /// Placement constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Schedule, for cron jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSpec>,
    /// Rollout of template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            type_: JobType::Service,
            instances: 1,
            template: TaskSpec::default(),
            production: false,
            priority: 0,
            max_task_failures: 1,
            constraints: Vec::new(),
            cron: None,
            update_strategy: None,
        }
    }
}

/// Observed state of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Generation of the spec this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Instances waiting for resources (current task PENDING).
    #[serde(default)]
    pub pending: u32,
    /// Instances waiting out a restart penalty (current task THROTTLED).
    #[serde(default)]
    pub throttled: u32,
    /// Instances bound or starting (current task ASSIGNED or STARTING).
    #[serde(default)]
    pub starting: u32,
    /// Instances running.
    #[serde(default)]
    pub running: u32,
    /// Instances finished successfully.
    #[serde(default)]
    pub finished: u32,
    /// Instances whose current task is LOST (not yet replaced) or
    /// PARTITIONED (its agent is unreachable).
    #[serde(default)]
    pub lost: u32,
    /// Tasks of the job still being stopped (KILLING, PREEMPTING, RESTARTING,
    /// DRAINING), whether an instance's current task, one it superseded, or
    /// one of an instance scaled away.
    #[serde(default)]
    pub killing: u32,
    /// Failed task runs so far.
    #[serde(default)]
    pub failures: u32,
    /// Available, Progressing, Failed, Complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Mean time to assign (PENDING→ASSIGNED), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtta_seconds: Option<f64>,
    /// Mean time to running (PENDING→RUNNING), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mttr_seconds: Option<f64>,
    /// Last cron run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
}

crate::object_kind!(
    /// A job of the built-in framework.
    Job, spec: JobSpec, status: JobStatus,
    plural: "jobs", singular: "job", short: ["jb"], namespaced: true
);
