//! `delete`, `kill`, `drain`/`uncordon`, `offers`, `top` and `logs` against a real apiserver.

mod common;

use common::*;
use meseta_apiserver::testing::TestServer;
use serde_json::json;

const AGENT: &str = "apiVersion: meseta.io/v1\nkind: Agent\nmetadata: {name: a1}\nspec:\n  address: 10.0.0.1:5051\n  resources: {cpus: 4, mem: 8192}\n";

#[tokio::test]
async fn delete_by_name_by_selector_and_by_manifest() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}---\n{}---\n{}",
        task_yaml("a", "default", "app: x"),
        task_yaml("b", "default", "app: x"),
        task_yaml("c", "default", "app: y")
    );
    let file = write(dir.path(), "t.yaml", &text);
    meseta(&server, &["apply", "-f", &file]).await.expect_code(0);

    let run = meseta(&server, &["delete", "task", "c"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io \"c\" deleted\n");
    assert!(task(&server, "c").await.is_none());

    let run = meseta(&server, &["delete", "tasks", "-l", "app=x"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io \"a\" deleted\ntask.meseta.io \"b\" deleted\n");
    assert!(task(&server, "a").await.is_none() && task(&server, "b").await.is_none());

    let run = meseta(&server, &["delete", "task", "a"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("\"a\" not found"), "{}", run.stderr);
    meseta(&server, &["delete", "task", "a", "--ignore-not-found"]).await.expect_code(0);

    meseta(&server, &["apply", "-f", &file]).await.expect_code(0);
    let run = meseta(&server, &["delete", "-f", &file]).await;
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 3);
    assert!(task(&server, "b").await.is_none());

    meseta(&server, &["delete", "tasks"]).await.expect_code(2);
}

#[tokio::test]
async fn kill_task_sets_kill_requested() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    meseta(&server, &["apply", "-f", &write(dir.path(), "t.yaml", &task_yaml("k", "default", ""))])
        .await
        .expect_code(0);
    let run = meseta(&server, &["kill", "task", "k"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/k kill requested\n");
    assert_eq!(task(&server, "k").await.unwrap()["spec"]["killRequested"], true);
    meseta(&server, &["kill", "job", "k"]).await.expect_code(2);
    meseta(&server, &["kill", "task", "missing"]).await.expect_code(1);
}

#[tokio::test]
async fn drain_cordons_the_agent_and_kills_its_tasks_and_uncordon_reverts() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bound = task_yaml("on-a1", "web", "").replace("spec:\n", "spec:\n  agent: a1\n");
    let text = format!("{AGENT}---\n{bound}---\n{}", task_yaml("elsewhere", "default", ""));
    meseta(&server, &["apply", "-f", &write(dir.path(), "a.yaml", &text)]).await.expect_code(0);
    let agent_path = "/apis/meseta.io/v1/agents/a1";

    let run = meseta(&server, &["drain", "a1"]).await;
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "agent.meseta.io/a1 cordoned\ntask.meseta.io/on-a1 kill requested\nagent.meseta.io/a1 drained\n"
    );
    assert_eq!(get_json(&server, agent_path).await.unwrap()["spec"]["unschedulable"], true);
    let on_a1 = get_json(&server, "/apis/meseta.io/v1/namespaces/web/tasks/on-a1").await.unwrap();
    assert_eq!(on_a1["spec"]["killRequested"], true);
    assert_eq!(task(&server, "elsewhere").await.unwrap()["spec"]["killRequested"], false);

    let run = meseta(&server, &["get", "agents"]).await;
    assert!(run.stdout.contains("SchedulingDisabled"), "{}", run.stdout);

    let run = meseta(&server, &["uncordon", "a1"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "agent.meseta.io/a1 uncordoned\n");
    assert_eq!(get_json(&server, agent_path).await.unwrap()["spec"]["unschedulable"], false);
}

#[tokio::test]
async fn top_agents_roles_and_frameworks_read_statuses() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    meseta(&server, &["apply", "-f", &write(dir.path(), "a.yaml", AGENT)]).await.expect_code(0);
    meseta(&server, &["apply", "-f", repo_manifests().to_str().unwrap()]).await.expect_code(0);
    let status = json!({"status": {"allocated": {"cpus": 1.0, "mem": 2048.0}, "usage": {"cpus": 0.5, "mem": 512.0}}});
    merge_patch(&server, "/apis/meseta.io/v1/agents/a1/status", &status).await;
    merge_patch(&server, "/apis/meseta.io/v1/roles/batch/status", &json!({"status": {"dominantShare": 0.25}})).await;

    let run = meseta(&server, &["top", "agents"]).await;
    run.expect_code(0);
    let row: Vec<&str> = run.stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["a1", "1/4", "25%", "0.5", "2Gi/8Gi", "25%", "512Mi"]);

    let run = meseta(&server, &["top", "roles"]).await;
    run.expect_code(0);
    let first: Vec<&str> = run.stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&first[..2], ["batch", "1"], "{}", run.stdout);
    assert!(first.contains(&"25.0%"), "{}", run.stdout);

    let run = meseta(&server, &["top", "frameworks"]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("analytics") && run.stdout.contains("spark"), "{}", run.stdout);
}

#[tokio::test]
async fn offers_lists_offer_objects() {
    let server = TestServer::start().await;
    let run = meseta(&server, &["offers", "-A"]).await;
    run.expect_code(0);
    assert!(run.stderr.contains("No resources found"), "{}", run.stderr);
}

#[tokio::test]
async fn logs_say_clearly_why_there_is_nothing_to_read() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    meseta(&server, &["apply", "-f", &write(dir.path(), "t.yaml", &task_yaml("l", "default", ""))])
        .await
        .expect_code(0);
    let run = meseta(&server, &["logs", "l", "--tail", "5"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("is not on an agent yet"), "{}", run.stderr);
    let run = meseta(&server, &["logs", "missing"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("\"missing\" not found"), "{}", run.stderr);
}
