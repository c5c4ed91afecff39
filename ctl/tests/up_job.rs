//! `meseta up` is a whole cluster: the example job applied to it runs in
//! real containers to completion, and its output can be read back.
//! Needs root, like every real-container test (CI runs as root).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn up_runs_the_example_job_to_completion_in_real_containers() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs real containers through `meseta up` and must run as root (CI does)"
    );
    let data = tempfile::tempdir().unwrap();
    let config_home = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("cluster");
    let mut child = command(None, config_home.path())
        .args(["up", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"])
        .args(["--agent-resources", "cpus:2;mem:2048", "--data-dir", data_dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Timeouts here guard against hangs; they are not speed requirements.
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = first.strip_prefix("apiserver listening on ").expect(&first).to_string();

    // The example job, in a namespace of its own so no other test's containers share its names.
    let manifest = std::fs::read_to_string(repo_manifests().join("hello-job.yaml"))
        .unwrap()
        .replace("namespace: default", "namespace: up-e2e");
    let file = write(data.path(), "hello-job.yaml", &manifest);
    run_at(Some(&url), &["apply", "-f", &file], None).await.expect_code(0);

    let mut finished = Vec::new();
    for _ in 0..240 {
        let run =
            run_at(Some(&url), &["get", "tasks", "-n", "up-e2e", "-l", "meseta.io/job=hello", "-o", "json"], None)
                .await;
        run.expect_code(0);
        let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        finished = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"]["state"] == "FINISHED")
            .map(|t| t["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        if finished.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(finished.len(), 3, "the three instances of the example job finish: {finished:?}");

    let logs = run_at(Some(&url), &["logs", "-n", "up-e2e", &finished[0]], None).await;
    logs.expect_code(0);
    assert!(logs.stdout.contains(&format!("instance of up-e2e/{} says hello", finished[0])), "{}", logs.stdout);

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
