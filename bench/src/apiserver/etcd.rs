//! The peer of the write runs: a real etcd, the store Kubernetes keeps its
//! objects in, run on the same machine and disk and driven by the same
//! closed-loop clients.
//!
//! Owns the etcd process ([`Etcd`]: start on free ports and a temporary data
//! directory, health wait, CPU, stop on drop) and the request bodies that
//! mirror the apiserver's writes the way kube-apiserver issues them: a create
//! is a transaction "create revision of the key is 0, then put", an update is
//! "mod revision of the key is N, then put". The requests go through etcd's
//! HTTP/JSON gateway (`/v3/kv/txn`) over the same HTTP/1.1 connections as the
//! apiserver's, so both sides pay for HTTP and JSON; etcd acknowledges a
//! write once its WAL is fsynced, as the apiserver does once its store has
//! flushed. It must not be used for anything but the bench's own runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;

use super::raw;
use crate::procstat::ProcCpu;

/// Finds the `etcd` binary: `explicit` when given (it must exist), else the
/// first `etcd` on `PATH`; `None` when there is none.
pub fn find_binary(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("etcd not found at {}", path.display());
        }
        return Ok(Some(path.to_path_buf()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path).map(|dir| dir.join("etcd")).find(|p| p.is_file()))
}

/// A running single-member etcd on 127.0.0.1 with its own temporary data
/// directory; stopped when dropped.
pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT`, the client URL.
    pub base: String,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// Starts `binary` and waits (up to 20 s) until `/health` says so.
    pub async fn start(binary: &Path) -> anyhow::Result<Etcd> {
        let data = tempfile::Builder::new().prefix("meseta-bench-etcd").tempdir().context("temp data dir")?;
        let (client, peer) = (free_port()?, free_port()?);
        let base = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--name", "bench", "--listen-client-urls", &base, "--advertise-client-urls", &base])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let etcd = Etcd { child, base, _data: data };
        let http = super::client()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let healthy = match http.get(format!("{}/health", etcd.base)).send().await {
                Ok(resp) => resp.text().await.unwrap_or_default().contains("\"health\":\"true\""),
                Err(_) => false,
            };
            if healthy {
                return Ok(etcd);
            }
            if Instant::now() > deadline {
                bail!("etcd at {} did not report healthy within 20 s", etcd.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU seconds (user + system, all threads) etcd has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        Ok(ProcCpu::of(&self.child.id().to_string())?.own_ms / 1000.0)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the kernel's pick for port 0).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The path of etcd's transaction endpoint.
pub const TXN_PATH: &str = "/v3/kv/txn";

/// Stand for the key (twice: the compare's and the put's) and the compared
/// revision in the templates; base64 and digits need no JSON escaping.
pub const KEY_SLOT: &str = "KEY-SLOT";
pub const KEY_SLOT_AGAIN: &str = "KEY-AGAIN-SLOT";
pub const REVISION_SLOT: &str = "REVISION-SLOT";

/// The key a Task named `name` in `ns` would have under Kubernetes' layout.
pub fn key(ns: &str, name: &str) -> String {
    format!("/registry/meseta.io/tasks/{ns}/{name}")
}

/// Appends `bytes` base64-encoded (etcd's JSON gateway carries keys and
/// values so).
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The create body: put `value` at the key in [`KEY_SLOT`] and
/// [`KEY_SLOT_AGAIN`] (both the same key) only if it does not exist.
pub fn create_template(value: &[u8]) -> anyhow::Result<raw::Template> {
    let body = serde_json::json!({
        "compare": [{"key": KEY_SLOT, "target": "CREATE", "create_revision": "0"}],
        "success": [{"request_put": {"key": KEY_SLOT_AGAIN, "value": encode(value)}}],
    });
    raw::Template::new(&body.to_string(), &[KEY_SLOT, KEY_SLOT_AGAIN])
}

/// The update body: put `value` at `key` only if its mod revision is the one
/// in [`REVISION_SLOT`].
pub fn update_template(key: &str, value: &[u8]) -> anyhow::Result<raw::Template> {
    let key = encode(key.as_bytes());
    let body = serde_json::json!({
        "compare": [{"key": key, "target": "MOD", "mod_revision": REVISION_SLOT}],
        "success": [{"request_put": {"key": key, "value": encode(value)}}],
    });
    raw::Template::new(&body.to_string(), &[REVISION_SLOT])
}

/// The revision of a transaction's answer when it succeeded (the first
/// `"revision"` member, the header's: the put's new mod revision); an error
/// naming the answer when its compare failed.
pub fn succeeded(body: &[u8]) -> anyhow::Result<String> {
    const SUCCEEDED: &[u8] = b"\"succeeded\":true";
    if !body.windows(SUCCEEDED.len()).any(|w| w == SUCCEEDED) {
        bail!("etcd's transaction failed its compare: {}", String::from_utf8_lossy(body));
    }
    const KEY: &[u8] = b"\"revision\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY).context("no revision in etcd's answer")? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"').context("unterminated revision")?;
    Ok(std::str::from_utf8(&body[start..start + len])?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_succeeded_answer_gives_its_header_revision() {
        let answer = br#"{"header":{"cluster_id":"1","member_id":"2","revision":"17","raft_term":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"17"}}}]}"#;
        assert_eq!(succeeded(answer).unwrap(), "17");
    }

    #[test]
    fn a_failed_compare_is_an_error() {
        let answer = br#"{"header":{"cluster_id":"1","member_id":"2","revision":"17","raft_term":"2"}}"#;
        let err = succeeded(answer).unwrap_err().to_string();
        assert!(err.contains("failed its compare"), "{err}");
    }

    #[test]
    fn templates_render_keys_in_base64() {
        let template = create_template(b"{}").unwrap();
        let mut key = Vec::new();
        encode_into(b"/registry/x", &mut key);
        let mut out = Vec::new();
        template.render(&mut out, &[&key, &key]);
        let body: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(body["compare"][0]["key"], "L3JlZ2lzdHJ5L3g=");
        assert_eq!(body["success"][0]["request_put"]["key"], "L3JlZ2lzdHJ5L3g=");
        assert_eq!(body["success"][0]["request_put"]["value"], "e30=");
    }
}
