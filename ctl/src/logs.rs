//! `meseta logs TASK [-f] [--tail N] [--stderr]`: a task's output, streamed
//! from `GET .../tasks/{name}/log` (the apiserver proxies it from the
//! task's agent).

use std::io::Write;

use clap::Args;
use futures::StreamExt;

use crate::conn::{Conn, Scope};
use crate::kinds;

/// Arguments of `meseta logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The task.
    pub(crate) task: String,
    /// Namespace (role) [default: default].
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub(crate) tail: Option<u64>,
    /// Standard error instead of standard output.
    #[arg(long)]
    pub(crate) stderr: bool,
}

/// Runs `meseta logs`.
pub(crate) async fn run(conn: &Conn, args: &LogsArgs) -> anyhow::Result<()> {
    let task = kinds::resolve("Task")?;
    let (_, name) = kinds::split_kind_name(&args.task);
    let name = name.unwrap_or(&args.task);
    let scope = Scope::new(task, Some(args.namespace.as_deref().unwrap_or(crate::cli::DEFAULT_NAMESPACE)));
    let mut query = vec![("stream", if args.stderr { "stderr" } else { "stdout" }.to_string())];
    if args.follow {
        query.push(("follow", "true".into()));
    }
    if let Some(n) = args.tail {
        query.push(("tailLines", n.to_string()));
    }
    // The server says why when there is nothing to read: no such task, a
    // task not on an agent yet, or an agent that cannot be reached.
    let mut body = conn.stream(&scope.object(name, Some("log")), &query).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if stdout.write_all(&chunk).and_then(|()| stdout.flush()).is_err() {
            break; // the reader went away (e.g. `| head`)
        }
    }
    Ok(())
}
