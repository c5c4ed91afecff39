//! Health checks of running tasks: the pure bookkeeping
//! ([`HealthTracker`]: grace period, interval, consecutive failures) and
//! the probes themselves ([`probe`]).
//!
//! A `command` check runs on the host, through `/bin/sh -c`, as the task's
//! user (default `nobody`) with the task's sandbox as working directory and
//! the task's `PORT*` variables; it does not enter the task's namespaces.
//! `http` and `tcp` checks connect to `127.0.0.1:<port>` (port 0 = the
//! task's first assigned port); an HTTP check passes on a 2xx or 3xx answer.

use std::path::PathBuf;
use std::time::Duration;

use meseta_schemas::kinds::HealthCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Defaults of a health check's timing fields.
const DEFAULT_INTERVAL_S: u32 = 10;
const DEFAULT_TIMEOUT_S: u32 = 20;
const DEFAULT_FAILURES: u32 = 3;

/// What happened after a probe.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthVerdict {
    /// The task is healthy (first success or back to healthy).
    Healthy,
    /// A failure below the threshold; `healthy` turned false.
    Unhealthy {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// The threshold is reached: kill the task with this message.
    Kill {
        /// What to say on the task.
        message: String,
    },
    /// Nothing changed.
    Unchanged,
}

/// The consecutive-failure bookkeeping of one task's health check.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    grace_until: Instant,
    interval: Duration,
    timeout: Duration,
    threshold: u32,
    next_at: Instant,
    failures: u32,
    healthy: Option<bool>,
}

impl HealthTracker {
    /// A tracker for `check` of a task that started at `started`.
    pub fn new(check: &HealthCheck, started: Instant) -> Self {
        let grace = Duration::from_secs(check.grace_period_seconds.unwrap_or(0).into());
        let interval = Duration::from_secs(check.interval_seconds.unwrap_or(DEFAULT_INTERVAL_S).max(1).into());
        HealthTracker {
            grace_until: started + grace,
            interval,
            timeout: Duration::from_secs(check.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_S).max(1).into()),
            threshold: check.consecutive_failures.unwrap_or(DEFAULT_FAILURES).max(1),
            next_at: started + grace,
            failures: 0,
            healthy: None,
        }
    }

    /// Whether a probe is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_at
    }

    /// How long one probe may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records a probe's result at `now`.
    pub fn record(&mut self, now: Instant, result: Result<(), String>) -> HealthVerdict {
        self.next_at = now + self.interval;
        match result {
            Ok(()) => {
                self.failures = 0;
                let changed = self.healthy != Some(true);
                self.healthy = Some(true);
                if changed {
                    HealthVerdict::Healthy
                } else {
                    HealthVerdict::Unchanged
                }
            }
            // Failures during the grace period do not count.
            Err(_) if now < self.grace_until => HealthVerdict::Unchanged,
            Err(error) => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    return HealthVerdict::Kill {
                        message: format!("health check failed {} times: {error}", self.failures),
                    };
                }
                let changed = self.healthy != Some(false);
                self.healthy = Some(false);
                if changed {
                    HealthVerdict::Unhealthy { failures: self.failures }
                } else {
                    HealthVerdict::Unchanged
                }
            }
        }
    }
}

/// Where a probe runs.
#[derive(Debug, Clone, Default)]
pub struct ProbeTarget {
    /// The task's assigned ports.
    pub ports: Vec<u16>,
    /// The sandbox (working directory of command checks).
    pub sandbox: Option<PathBuf>,
    /// User of command checks (`None`: nobody).
    pub user: Option<String>,
}

/// Runs one probe of `check`, bounded by `timeout`.
pub async fn probe(check: &HealthCheck, target: &ProbeTarget, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, probe_inner(check, target)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}s", timeout.as_secs())),
    }
}

fn port_of(port: u16, target: &ProbeTarget) -> Result<u16, String> {
    if port != 0 {
        return Ok(port);
    }
    target.ports.first().copied().ok_or_else(|| "port 0 means the first assigned port, but the task has none".into())
}

async fn probe_inner(check: &HealthCheck, target: &ProbeTarget) -> Result<(), String> {
    if let Some(cmd) = &check.command {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c").arg(cmd).stdin(std::process::Stdio::null()).kill_on_drop(true);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        if let Some(dir) = target.sandbox.as_ref().filter(|d| d.is_dir()) {
            c.current_dir(dir);
        }
        for (i, p) in target.ports.iter().enumerate() {
            c.env(format!("PORT{i}"), p.to_string());
        }
        if nix::unistd::geteuid().is_root() {
            let name = target.user.as_deref().unwrap_or("nobody");
            let (uid, gid) = match nix::unistd::User::from_name(name) {
                Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
                _ => (65534, 65534),
            };
            c.uid(uid).gid(gid);
        }
        let out = c.output().await.map_err(|e| format!("command could not run: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().chars().take(200).collect::<String>();
        let code = out.status.code().map_or("a signal".to_string(), |c| format!("code {c}"));
        return Err(if stderr.is_empty() {
            format!("command exited with {code}")
        } else {
            format!("command exited with {code}: {stderr}")
        });
    }
    if let Some(http) = &check.http {
        let port = port_of(http.port, target)?;
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("http://127.0.0.1:{port}{path}: {e}"))?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: meseta-agentd\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| format!("http://127.0.0.1:{port}{path}: {e}"))?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| format!("http://127.0.0.1:{port}{path}: {e}"))?;
        let line = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("http://127.0.0.1:{port}{path} answered {code}"))
        };
    }
    if let Some(tcp) = &check.tcp {
        let port = port_of(tcp.port, target)?;
        return tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|_| ())
            .map_err(|e| format!("tcp 127.0.0.1:{port}: {e}"));
    }
    Err("the health check names no command, http or tcp probe".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(grace: u32, failures: u32) -> HealthCheck {
        HealthCheck {
            command: Some("false".into()),
            grace_period_seconds: Some(grace),
            interval_seconds: Some(1),
            consecutive_failures: Some(failures),
            ..Default::default()
        }
    }

    #[test]
    fn failures_in_the_grace_period_do_not_count() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&check(10, 1), t0);
        assert!(!h.due(t0 + Duration::from_secs(5)));
        assert_eq!(h.record(t0 + Duration::from_secs(5), Err("x".into())), HealthVerdict::Unchanged);
        assert!(matches!(h.record(t0 + Duration::from_secs(11), Err("x".into())), HealthVerdict::Kill { .. }));
    }

    #[test]
    fn the_threshold_of_consecutive_failures_kills_and_a_success_resets_it() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&check(0, 3), t0);
        assert_eq!(h.record(t0, Ok(())), HealthVerdict::Healthy);
        assert_eq!(h.record(t0, Err("e".into())), HealthVerdict::Unhealthy { failures: 1 });
        assert_eq!(h.record(t0, Err("e".into())), HealthVerdict::Unchanged);
        assert_eq!(h.record(t0, Ok(())), HealthVerdict::Healthy);
        h.record(t0, Err("e".into()));
        h.record(t0, Err("e".into()));
        let v = h.record(t0, Err("connection refused".into()));
        assert_eq!(v, HealthVerdict::Kill { message: "health check failed 3 times: connection refused".into() });
    }

    #[tokio::test]
    async fn probes_report_what_failed() {
        let t = ProbeTarget::default();
        let ok = HealthCheck { command: Some("true".into()), ..Default::default() };
        assert_eq!(probe(&ok, &t, Duration::from_secs(5)).await, Ok(()));
        let bad = HealthCheck { command: Some("echo nope >&2; exit 2".into()), ..Default::default() };
        let err = probe(&bad, &t, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("code 2") && err.contains("nope"), "{err}");
        let tcp = HealthCheck { tcp: Some(meseta_schemas::kinds::TcpCheck { port: 0 }), ..Default::default() };
        let err = probe(&tcp, &t, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("first assigned port"), "{err}");
    }
}
