//! The release `meseta-agentd` binary as a child process: found next to
//! the bench binary, started on a temporary work dir, killed when dropped.
//! It must not configure the agent beyond its command-line flags.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use meseta_client::{Api, Client};
use meseta_schemas::kinds::Agent;

/// Finds the release `meseta-agentd`: `explicit` when given, else next to
/// the running bench binary in `target/release`.
pub fn find_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let exe = std::env::current_exe().context("locating the bench binary")?;
            exe.parent().context("the bench binary has no parent directory")?.join("meseta-agentd")
        }
    };
    if !path.is_file() {
        bail!(
            "meseta-agentd not found at {}: build it first with `cargo build --release -p meseta-agentd` \
             (or pass --agentd PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// A running agent; killed (SIGKILL) when dropped. Its tasks' containers are
/// deleted by the time they are reported finished, so nothing is left behind.
pub struct AgentProc {
    child: Child,
    /// The agent's name (its `Agent` object).
    pub name: String,
    /// Its work dir.
    pub work_dir: PathBuf,
}

impl AgentProc {
    /// Starts `binary` against `server` advertising `resources` (flag syntax).
    pub fn start(binary: &Path, server: &str, work_dir: &Path, name: &str, resources: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(work_dir.with_extension("log")).context("creating the agent's log file")?;
        let child = Command::new(binary)
            .args(["--server", server, "--listen", &format!("127.0.0.1:{port}"), "--name", name])
            .arg("--work-dir")
            .arg(work_dir)
            .args(["--resources", resources, "--usage-interval", "3600"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(AgentProc { child, name: name.into(), work_dir: work_dir.into() })
    }

    /// CPU of the agent, and of its shims and containers, so far: the
    /// agent's own and its waited-for children's, plus those of its children
    /// still running (its shim fork server, which reaps the shims it forked,
    /// is reaped by the agent only when it ends).
    pub fn cpu(&self) -> anyhow::Result<crate::procstat::ProcCpu> {
        let pid = self.child.id().to_string();
        let mut cpu = crate::procstat::ProcCpu::of(&pid)?;
        for child in live_children(&pid) {
            // A child may end between the listing and the read: it then counts once it is reaped.
            if let Ok(c) = crate::procstat::ProcCpu::of(&child) {
                cpu.children_ms += c.total_ms();
            }
        }
        Ok(cpu)
    }

    /// Waits until the `Agent` object says Ready (or the process ended).
    pub async fn ready(&mut self, client: &Client) -> anyhow::Result<()> {
        let api: Api<Agent> = Api::all(client.clone());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                bail!("meseta-agentd exited with {status}; see {}", self.work_dir.with_extension("log").display());
            }
            if let Ok(Some(a)) = api.get_opt(&self.name).await {
                let ready =
                    a.status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("agent {} did not become Ready within 30 s", self.name)
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids of process `pid`'s running children, from each of its threads'
/// `/proc/<pid>/task/<tid>/children`.
fn live_children(pid: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}
