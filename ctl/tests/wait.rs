//! `meseta wait` against a real apiserver: field values, conditions, deletion,
//! timeouts and bad `--for` expressions.

mod common;

use std::process::Stdio;

use common::*;
use meseta_apiserver::testing::TestServer;
use serde_json::{json, Value};

const TASKS: &str = "/apis/meseta.io/v1/namespaces/default/tasks";
const AGENT: &str = "apiVersion: meseta.io/v1\nkind: Agent\nmetadata: {name: a1}\nspec:\n  address: 10.0.0.1:5051\n  resources: {cpus: 4, mem: 8192}\n";

/// Starts `meseta ARGS` in the background; its output is read when it ends.
fn spawn(server: &TestServer, args: &[&str], config_home: &std::path::Path) -> tokio::process::Child {
    let mut cmd = command(Some(server.url()), config_home);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("start the meseta binary")
}

async fn finish(child: tokio::process::Child) -> Run {
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("meseta wait ends")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn apply(server: &TestServer, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    meseta(server, &["apply", "-f", &write(dir.path(), "m.yaml", text)]).await.expect_code(0);
}

/// Moves a task's `status.state` through `states` by the status subresource.
async fn walk_states(server: &TestServer, name: &str, states: &[&str]) {
    for state in states {
        let status: Value = json!({"status": {"state": state, "agent": "a1"}});
        merge_patch(server, &format!("{TASKS}/{name}/status"), &status).await;
    }
}

#[tokio::test]
async fn waits_for_a_state_written_through_the_status_subresource() {
    let server = TestServer::start().await;
    apply(&server, &format!("{}---\n{}", task_yaml("w1", "default", "app: w"), task_yaml("w2", "default", "app: w")))
        .await;
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &server,
        &["wait", "task", "w1", "w2", "--for=jsonpath={.status.state}=RUNNING", "--timeout", "50s"],
        home.path(),
    );
    walk_states(&server, "w1", &["ASSIGNED", "STARTING", "RUNNING"]).await;
    walk_states(&server, "w2", &["ASSIGNED", "STARTING"]).await;
    // Not yet: w2 is STARTING. Then it runs too.
    assert_eq!(task(&server, "w2").await.unwrap()["status"]["state"], "STARTING");
    assert!(child.try_wait().unwrap().is_none(), "wait ended before w2 was RUNNING");
    walk_states(&server, "w2", &["RUNNING"]).await;
    let run = finish(child).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/w1 condition met\ntask.meseta.io/w2 condition met\n");

    // Already met: a selector ends at once.
    let run = meseta(&server, &["wait", "tasks", "-l", "app=w", "--for=jsonpath={.status.state}=RUNNING"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 2);
}

#[tokio::test]
async fn waits_for_deletion_and_absent_objects_count_as_deleted() {
    let server = TestServer::start().await;
    apply(&server, &task_yaml("gone", "default", "")).await;
    let home = tempfile::tempdir().unwrap();
    let child = spawn(&server, &["wait", "task/gone", "--for=delete", "--timeout=50s"], home.path());
    meseta(&server, &["delete", "task", "gone"]).await.expect_code(0);
    let run = finish(child).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/gone condition met\n");

    let run = meseta(&server, &["wait", "task", "never-was", "--for=delete"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/never-was condition met\n");
}

#[tokio::test]
async fn waits_for_a_status_condition() {
    let server = TestServer::start().await;
    apply(&server, AGENT).await;
    let home = tempfile::tempdir().unwrap();
    let child = spawn(&server, &["wait", "agent", "a1", "--for=condition=Ready", "--timeout", "50s"], home.path());
    let path = "/apis/meseta.io/v1/agents/a1/status";
    merge_patch(&server, path, &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})).await;
    merge_patch(&server, path, &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})).await;
    let run = finish(child).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "agent.meseta.io/a1 condition met\n");

    let run = meseta(&server, &["wait", "agent", "a1", "--for=condition=ready=false", "--timeout", "300ms"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("timed out waiting for the condition on agents/a1 (condition ready is True, want false)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn timing_out_exits_1_and_says_what_the_value_is() {
    let server = TestServer::start().await;
    apply(&server, &task_yaml("slow", "default", "")).await;
    walk_states(&server, "slow", &["ASSIGNED"]).await;
    let run =
        meseta(&server, &["wait", "task", "slow", "--for=jsonpath={.status.state}=RUNNING", "--timeout", "500ms"])
            .await;
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "error: timed out waiting for the condition on tasks/slow ({.status.state} is \"ASSIGNED\", want \"RUNNING\")"
        ),
        "{}",
        run.stderr
    );

    let run = meseta(&server, &["wait", "task", "slow", "--for=delete", "--timeout", "200ms"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("on tasks/slow (still exists)"), "{}", run.stderr);

    let run = meseta(&server, &["wait", "tasks", "-l", "app=none", "--for=condition=Ready", "--timeout", "1s"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("no matching tasks found"), "{}", run.stderr);
}

#[tokio::test]
async fn bad_for_and_timeout_are_usage_errors() {
    let server = TestServer::start().await;
    let run = meseta(&server, &["wait", "task", "x", "--for=jsonpath={.items[*].name}=a"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("unsupported JSONPath {.items[*].name}"), "{}", run.stderr);
    let run = meseta(&server, &["wait", "task", "x", "--for=ready"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("--for=ready is not supported"), "{}", run.stderr);
    meseta(&server, &["wait", "task", "x", "--for=delete", "--timeout", "soon"]).await.expect_code(2);
    meseta(&server, &["wait", "task", "--for=delete"]).await.expect_code(2);
    meseta(&server, &["wait", "task", "x"]).await.expect_code(2);
}
