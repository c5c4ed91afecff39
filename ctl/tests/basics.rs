//! Exit codes, configuration, `version`, `completion` and `meseta up`.

mod common;

use std::process::Stdio;

use common::*;
use meseta_apiserver::testing::TestServer;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn version_prints_client_and_server_versions() {
    let server = TestServer::start().await;
    let run = meseta(&server, &["version"]).await;
    run.expect_code(0);
    assert!(run.stdout.contains(&format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))), "{}", run.stdout);
    assert!(run.stdout.contains("Server Version: v1."), "{}", run.stdout);
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let run = run_at(None, &["frobnicate"], None).await;
    run.expect_code(2);
    assert!(run.stderr.contains("frobnicate"), "{}", run.stderr);
    run_at(None, &["get"], None).await.expect_code(2);
    run_at(None, &["apply"], None).await.expect_code(2);
    run_at(None, &["get", "tasks", "-o", "xml"], None).await.expect_code(2);
    run_at(None, &["get", "tasks", "-n", "a", "-A"], None).await.expect_code(2);
    let help = run_at(None, &["--help"], None).await;
    help.expect_code(0);
    assert!(help.stdout.contains("apply") && help.stdout.contains("describe"));
}

#[tokio::test]
async fn connection_refused_exits_1_with_a_hint() {
    // Bind then drop a listener so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let run = run_at(Some(&url), &["get", "tasks"], None).await;
    run.expect_code(1);
    assert!(run.stderr.starts_with("error: cannot connect to "), "{}", run.stderr);
    assert!(run.stderr.contains("hint: is the apiserver running? start one with `meseta up`"), "{}", run.stderr);
}

#[tokio::test]
async fn the_server_comes_from_flag_environment_or_config_file() {
    let server = TestServer::start().await;
    let config_home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(config_home.path().join("meseta")).unwrap();
    std::fs::write(config_home.path().join("meseta/config.yaml"), format!("server: {}\n", server.url())).unwrap();
    let out = command(None, config_home.path()).args(["get", "roles"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The flag wins over the config file (and the environment).
    let out = command(Some(server.url()), config_home.path())
        .args(["--server", "http://127.0.0.1:1", "get", "roles"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}

#[tokio::test]
async fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let run = run_at(None, &["completion", shell], None).await;
        run.expect_code(0);
        assert!(run.stdout.contains("meseta") && run.stdout.contains("apply"), "{shell}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn up_serves_writes_a_working_kubeconfig_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let config_home = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("cluster");
    let mut child = command(None, config_home.path())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The timeout guards against a hang; it is not a speed requirement.
    let first =
        tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = first.strip_prefix("apiserver listening on ").expect(&first).to_string();

    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert!(health.status().is_success());

    let kubeconfig: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(data_dir.join("kubeconfig")).unwrap()).unwrap();
    let server = kubeconfig["clusters"][0]["cluster"]["server"].as_str().unwrap().to_string();
    assert_eq!(server, url);
    let tasks = reqwest::get(format!("{server}/apis/meseta.io/v1/tasks")).await.unwrap();
    assert!(tasks.status().is_success());
    let run = run_at(Some(&server), &["get", "tasks", "-A"], None).await;
    run.expect_code(0);

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert_eq!(rest.last().map(String::as_str), Some("stopped"), "{rest:?}");
}
