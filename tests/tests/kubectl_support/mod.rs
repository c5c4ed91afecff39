//! Runs the real `kubectl` against a real apiserver: a [`TestServer`], a
//! kubeconfig pointing at it in a temporary directory, and a fresh
//! `--cache-dir` per test (kubectl caches discovery on disk).
//!
//! A missing `kubectl` fails the test loudly: these tests exist to prove
//! kubectl works, and must never pass without running it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use meseta_apiserver::testing::TestServer;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// What one kubectl run printed.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status code.
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl Output {
    /// Panics (with everything printed) unless kubectl exited 0.
    pub(crate) fn ok(self) -> Output {
        assert_eq!(self.code, 0, "kubectl failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

/// An apiserver and a kubectl configured for it.
pub(crate) struct Kubectl {
    /// The server (kept running for the test's life).
    pub(crate) server: TestServer,
    dir: TempDir,
}

impl Kubectl {
    /// Starts a server and writes the kubeconfig; panics when kubectl is missing.
    pub(crate) async fn start() -> Kubectl {
        let found = Command::new("kubectl").arg("version").arg("--client").output().await;
        assert!(
            found.as_ref().is_ok_and(|o| o.status.success()),
            "these tests run the real kubectl, which is not installed or does not run: {found:?}"
        );
        let server = TestServer::start().await;
        let dir = tempfile::Builder::new().prefix("meseta-kubectl-").tempdir().expect("temp dir");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: meseta\n  cluster:\n    server: {}\nusers:\n- name: me\n  user: {{}}\ncontexts:\n- name: meseta\n  context:\n    cluster: meseta\n    user: me\n    namespace: default\ncurrent-context: meseta\n",
            server.url()
        );
        std::fs::write(dir.path().join("kubeconfig"), config).expect("write the kubeconfig");
        Kubectl { server, dir }
    }

    /// The temporary directory (for manifests and scripts).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` in the temporary directory.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write a file");
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl with `args` and returns what it printed.
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[]).await
    }

    /// Runs kubectl with `args` and extra environment variables.
    pub(crate) async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60s"))
            .expect("run kubectl");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose stdout is read line by line.
    pub(crate) fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child =
            self.command(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn kubectl");
        let stdout = child.stdout.take().expect("piped stdout");
        (child, BufReader::new(stdout).lines())
    }
}

/// Reads lines until one contains `needle`; panics after 30 seconds or at end of output.
pub(crate) async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read kubectl output") {
            if line.contains(needle) {
                return Some(line);
            }
            seen.push(line);
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("kubectl ended without printing {needle:?}; it printed {seen:?}"),
        Err(_) => panic!("kubectl printed no {needle:?} within 30s; it printed {seen:?}"),
    }
}

/// A task manifest named `name` asking for `cpus`.
pub(crate) fn task_yaml(name: &str, cpus: &str) -> String {
    format!(
        "apiVersion: meseta.io/v1\nkind: Task\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  command: echo hi\n  resources:\n    cpus: {cpus}\n    mem: 32\n"
    )
}

/// The repository's `manifests/` folder.
pub(crate) fn manifests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}
