//! Small imperative commands that patch one field: `kill task NAME`
//! (`spec.killRequested: true`), `drain AGENT` (`spec.unschedulable: true`,
//! then a kill request for every live task bound to the agent) and
//! `uncordon AGENT` (`spec.unschedulable: false`).

use clap::Args;
use serde_json::{json, Value};

use crate::conn::{Conn, Scope, MERGE_PATCH};
use crate::failure::Usage;
use crate::kinds::{self, qualified};

/// Arguments of `meseta kill`.
#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// `task` (the only kind that can be killed).
    pub(crate) kind: String,
    /// Names of the tasks.
    #[arg(required = true)]
    pub(crate) names: Vec<String>,
    /// Namespace (role) [default: default].
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
}

/// Arguments of `meseta drain`.
#[derive(Debug, Args)]
pub(crate) struct DrainArgs {
    /// The agent.
    pub(crate) agent: String,
    /// Only mark the agent unschedulable; leave its tasks running.
    #[arg(long)]
    pub(crate) keep_tasks: bool,
}

/// Arguments of `meseta uncordon`.
#[derive(Debug, Args)]
pub(crate) struct UncordonArgs {
    /// The agent.
    pub(crate) agent: String,
}

/// Runs `meseta kill task NAME...`.
pub(crate) async fn kill(conn: &Conn, args: &KillArgs) -> anyhow::Result<()> {
    let kind = kinds::resolve(&args.kind)?;
    if kind.kind != "Task" {
        return Err(
            Usage(format!("only tasks can be killed, not {}; delete a job to stop its tasks", kind.plural)).into()
        );
    }
    let ns = args.namespace.as_deref().unwrap_or(crate::cli::DEFAULT_NAMESPACE);
    for name in &args.names {
        request_kill(conn, kind, ns, name).await?;
    }
    Ok(())
}

async fn request_kill(
    conn: &Conn,
    kind: &'static meseta_schemas::registry::KindInfo,
    ns: &str,
    name: &str,
) -> anyhow::Result<()> {
    let patch = json!({"spec": {"killRequested": true}});
    conn.patch(Scope::new(kind, Some(ns)), name, &patch, MERGE_PATCH, false).await?;
    println!("{}/{name} kill requested", qualified(kind));
    Ok(())
}

/// Runs `meseta drain AGENT`.
pub(crate) async fn drain(conn: &Conn, args: &DrainArgs) -> anyhow::Result<()> {
    let agent = kinds::resolve("Agent")?;
    set_unschedulable(conn, agent, &args.agent, true).await?;
    println!("{}/{} cordoned", qualified(agent), args.agent);
    if args.keep_tasks {
        return Ok(());
    }
    let task = kinds::resolve("Task")?;
    let bound = conn.list(Scope::new(task, None), None, Some(&format!("spec.agent={}", args.agent))).await?;
    for t in &bound.items {
        let state = t.pointer("/status/state").and_then(Value::as_str).unwrap_or("PENDING");
        let terminal = matches!(state, "FINISHED" | "FAILED" | "KILLED" | "LOST");
        let already = t.pointer("/spec/killRequested") == Some(&Value::Bool(true));
        if terminal || already {
            continue;
        }
        let ns = t.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let name = t.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        request_kill(conn, task, ns, name).await?;
    }
    println!("{}/{} drained", qualified(agent), args.agent);
    Ok(())
}

/// Runs `meseta uncordon AGENT`.
pub(crate) async fn uncordon(conn: &Conn, args: &UncordonArgs) -> anyhow::Result<()> {
    let agent = kinds::resolve("Agent")?;
    set_unschedulable(conn, agent, &args.agent, false).await?;
    println!("{}/{} uncordoned", qualified(agent), args.agent);
    Ok(())
}

async fn set_unschedulable(
    conn: &Conn,
    kind: &'static meseta_schemas::registry::KindInfo,
    name: &str,
    value: bool,
) -> anyhow::Result<()> {
    let patch = json!({"spec": {"unschedulable": value}});
    conn.patch(Scope::new(kind, None), name, &patch, MERGE_PATCH, false).await?;
    Ok(())
}
