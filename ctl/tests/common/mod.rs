//! Shared fixture of the CLI tests: runs the built `meseta` binary against a
//! real apiserver ([`TestServer`]) and reads objects back over HTTP.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Stdio;

use meseta_apiserver::testing::TestServer;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// What one run of the binary did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// A command for the binary with a clean environment: no config file, no colour.
pub(crate) fn command(server: Option<&str>, config_home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meseta"));
    cmd.env_remove("MESETA_SERVER")
        .env_remove("MESETA_TOKEN")
        .env_remove("MESETA_LOG")
        .env("XDG_CONFIG_HOME", config_home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(server) = server {
        cmd.env("MESETA_SERVER", server);
    }
    cmd
}

/// Runs `meseta ARGS` against `url` (stdin from `input`, if any).
pub(crate) async fn run_at(url: Option<&str>, args: &[&str], input: Option<&str>) -> Run {
    let config_home = tempfile::tempdir().unwrap();
    let mut cmd = command(url, config_home.path());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("start the meseta binary");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
    }
    let out = child.wait_with_output().await.expect("wait for meseta");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `meseta ARGS` against `server`.
pub(crate) async fn meseta(server: &TestServer, args: &[&str]) -> Run {
    run_at(Some(server.url()), args, None).await
}

/// The repository's `manifests/` directory.
pub(crate) fn repo_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// GET of a path on the server as JSON, `None` on 404.
pub(crate) async fn get_json(server: &TestServer, path: &str) -> Option<Value> {
    let resp = reqwest::get(format!("{}{path}", server.url())).await.unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    Some(resp.json().await.unwrap())
}

/// A task in `default` as JSON.
pub(crate) async fn task(server: &TestServer, name: &str) -> Option<Value> {
    get_json(server, &format!("/apis/meseta.io/v1/namespaces/default/tasks/{name}")).await
}

/// Merge-patches `path` on the server.
pub(crate) async fn merge_patch(server: &TestServer, path: &str, patch: &Value) {
    let resp = reqwest::Client::new()
        .patch(format!("{}{path}", server.url()))
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    let code = resp.status();
    assert!(code.is_success(), "PATCH {path}: {code}: {}", resp.text().await.unwrap());
}

/// A minimal task manifest.
pub(crate) fn task_yaml(name: &str, namespace: &str, labels: &str) -> String {
    format!(
        "apiVersion: meseta.io/v1\nkind: Task\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{{labels}}}\nspec:\n  command: \"true\"\n  resources: {{cpus: 0.5, mem: 64}}\n"
    )
}
