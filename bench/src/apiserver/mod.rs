//! Driving a real `meseta-apiserver` process over HTTP for `bench apiserver`.
//!
//! Owns the server process ([`Server`]: start on a temporary data directory,
//! address, RSS, kill on drop) and the load generators in [`load`] and
//! [`watch`], and the etcd peer of the write runs ([`etcd`]). It must not link the apiserver's internals: everything goes
//! through the binary and its HTTP API, as a client would.

pub mod etcd;
pub mod floor;
pub mod load;
pub mod raw;
pub mod watch;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::procstat::ProcCpu;

/// The API group prefix of namespaced collections.
pub const API: &str = "/apis/meseta.io/v1";

/// Finds the release `meseta-apiserver` binary: `explicit` when given, else
/// next to the running bench binary (both live in `target/release`).
pub fn find_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => sibling("meseta-apiserver")?,
    };
    if !path.is_file() {
        bail!(
            "meseta-apiserver not found at {}: build it first with `cargo build --release -p meseta-apiserver` \
             (or pass --apiserver PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// The path of the binary `name` next to the running bench binary, whether
/// or not it exists.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    Ok(exe.parent().context("the bench binary has no parent directory")?.join(name))
}

/// A running apiserver on 127.0.0.1 with its own temporary data directory;
/// killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _data: tempfile::TempDir,
}

impl Server {
    /// Starts `binary` on a free port and waits for its "listening" line.
    pub fn start(binary: &Path) -> anyhow::Result<Server> {
        let data = tempfile::Builder::new().prefix("meseta-bench-apiserver").tempdir().context("temp data dir")?;
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn", "--data-dir"])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("apiserver stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading the apiserver's listening line")?;
        let Some(url) = line.trim().rsplit(' ').next().filter(|u| u.starts_with("http://")) else {
            let _ = child.kill();
            bail!("the apiserver printed {line:?} instead of its listening address");
        };
        Ok(Server { base: url.to_string(), child, _data: data })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size and its peak, in MiB, from `/proc/<pid>/status`.
    pub fn rss_mib(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).context("reading /proc")?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} missing"))?;
            let kib: f64 = line.split_whitespace().nth(1).context("no value")?.parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU seconds (user + system, all threads) the server has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        Ok(ProcCpu::of(&self.pid().to_string())?.own_ms / 1000.0)
    }
}

/// CPU seconds (user + system, all threads) this process has used so far.
pub fn own_cpu_seconds() -> anyhow::Result<f64> {
    Ok(ProcCpu::of("self")?.own_ms / 1000.0)
}

impl Drop for Server {
    /// Stops the server with SIGTERM (so a server run under a profiler such
    /// as `valgrind --tool=callgrind` writes its output), killing it when it
    /// has not exited after 30 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 client holding one keep-alive connection (one per client task).
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// The task collection of namespace `ns`.
pub fn tasks_url(base: &str, ns: &str) -> String {
    format!("{base}{API}/namespaces/{ns}/tasks")
}

/// A valid Task named `name` in `ns`, with optional annotations.
pub fn task(ns: &str, name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "meseta.io/v1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}, "annotations": annotations},
        "spec": {"command": "sleep 3600", "resources": {"cpus": 0.5, "mem": 64}}
    })
}

/// `p` (0..=1) percentile of sorted `samples`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
