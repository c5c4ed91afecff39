//! `meseta get` and `describe` against a real apiserver.

mod common;

use common::*;
use meseta_apiserver::testing::TestServer;
use serde_json::{json, Value};

async fn with_tasks() -> (TestServer, tempfile::TempDir) {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}---\n{}---\n{}",
        task_yaml("alpha", "default", "app: a"),
        task_yaml("beta", "default", "app: b"),
        task_yaml("gamma", "web", "app: a")
    );
    meseta(&server, &["apply", "-f", &write(dir.path(), "t.yaml", &text)]).await.expect_code(0);
    (server, dir)
}

#[tokio::test]
async fn get_tasks_prints_an_aligned_table_of_the_namespace() {
    let (server, _dir) = with_tasks().await;
    let run = meseta(&server, &["get", "tasks"]).await;
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "AGENT", "CPUS", "MEM", "AGE"]);
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let alpha: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&alpha[..5], ["alpha", "PENDING", "<none>", "0.5", "64Mi"]);
    // Aligned: every column starts at the same offset on every line.
    let state_col = lines[0].find("STATE").unwrap();
    assert!(lines[1..].iter().all(|l| l[state_col..].starts_with("PENDING")), "{}", run.stdout);
    assert!(!run.stdout.contains("gamma"), "other namespaces are not listed");
    assert!(!run.stdout.contains('\x1b'), "no colour when stdout is not a terminal");
}

#[tokio::test]
async fn short_names_all_namespaces_labels_and_wide() {
    let (server, _dir) = with_tasks().await;
    let run = meseta(&server, &["get", "tk", "-A", "-l", "app=a", "-o", "wide"]).await;
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "STATE", "AGENT", "CPUS", "MEM", "AGE", "EXIT", "MESSAGE"]);
    let rows: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    assert_eq!(rows, [("default", "alpha"), ("web", "gamma")]);

    let run = meseta(&server, &["get", "Task", "-n", "web"]).await;
    assert!(run.stdout.contains("gamma") && !run.stdout.contains("alpha"), "{}", run.stdout);
    let run = meseta(&server, &["get", "tasks", "--field-selector", "metadata.name=beta", "-o", "name"]).await;
    assert_eq!(run.stdout, "task.meseta.io/beta\n");
}

#[tokio::test]
async fn yaml_json_and_name_output() {
    let (server, _dir) = with_tasks().await;
    let run = meseta(&server, &["get", "task", "alpha", "-o", "yaml"]).await;
    run.expect_code(0);
    let obj: Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(obj["kind"], "Task");
    assert_eq!(obj["metadata"]["name"], "alpha");

    let run = meseta(&server, &["get", "tasks", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"]);

    let run = meseta(&server, &["get", "task/beta", "-o", "name"]).await;
    assert_eq!(run.stdout, "task.meseta.io/beta\n");
}

#[tokio::test]
async fn a_missing_object_or_kind_is_an_error_with_the_servers_message() {
    let (server, _dir) = with_tasks().await;
    let run = meseta(&server, &["get", "task", "nope"]).await;
    run.expect_code(1);
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("\"nope\" not found"), "{}", run.stderr);
    let run = meseta(&server, &["get", "pods"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("resource type \"pods\""), "{}", run.stderr);
    let run = meseta(&server, &["get", "jobs"]).await;
    run.expect_code(0);
    assert!(run.stderr.contains("No resources found in default namespace."), "{}", run.stderr);
}

#[tokio::test]
async fn describe_task_shows_spec_status_timeline_and_events() {
    let (server, dir) = with_tasks().await;
    // The history the create started (PENDING, "created"), then a placement and a start.
    let created = task(&server, "alpha").await.expect("alpha exists")["status"]["taskEvents"][0].clone();
    assert_eq!(created["state"], "PENDING", "{created}");
    let now = chrono::Utc::now().to_rfc3339();
    let status = json!({"status": {"state": "RUNNING", "agent": "a1", "taskEvents": [created,
        {"timestamp": now, "state": "ASSIGNED", "message": "placed on a1"},
        {"timestamp": now, "state": "RUNNING", "message": "started"}]}});
    merge_patch(&server, "/apis/meseta.io/v1/namespaces/default/tasks/alpha/status", &status).await;
    let event = "apiVersion: meseta.io/v1\nkind: Event\nmetadata: {name: alpha.1}\ninvolvedObject: {kind: Task, name: alpha, namespace: default}\nreason: Started\nmessage: container started\ntype: Normal\nsource: {component: agentd}\n";
    meseta(&server, &["apply", "-f", &write(dir.path(), "e.yaml", event)]).await.expect_code(0);

    let run = meseta(&server, &["describe", "task", "alpha"]).await;
    run.expect_code(0);
    let out = &run.stdout;
    assert!(out.contains("Name:         alpha\n") && out.contains("Namespace:    default\n"), "{out}");
    assert!(out.contains("Labels:       app=a\n"), "{out}");
    assert!(out.contains("Spec:\n  command: 'true'\n"), "{out}");
    assert!(out.contains("  state: RUNNING\n"), "{out}");
    let timeline = out.split("Task events:\n").nth(1).expect("a timeline section");
    let states: Vec<&str> =
        timeline.lines().skip(1).take(3).map(|l| l.split_whitespace().nth(1).unwrap_or_default()).collect();
    assert_eq!(states, ["PENDING", "ASSIGNED", "RUNNING"], "{out}");
    assert!(timeline.contains("placed on a1"), "{out}");
    let events = out.split("Events:").nth(1).unwrap();
    assert!(events.contains("Started") && events.contains("agentd") && events.contains("container started"), "{out}");
}

#[tokio::test]
async fn watch_streams_new_rows() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (server, dir) = with_tasks().await;
    let config_home = tempfile::tempdir().unwrap();
    let mut child = command(Some(server.url()), config_home.path())
        .args(["get", "tasks", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The timeout guards against a hang; it is not a speed requirement.
    macro_rules! next {
        () => {
            tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap()
        };
    }
    assert!(next!().starts_with("NAME"));
    assert!(next!().starts_with("alpha"));
    assert!(next!().starts_with("beta"));
    meseta(&server, &["apply", "-f", &write(dir.path(), "d.yaml", &task_yaml("delta", "default", ""))])
        .await
        .expect_code(0);
    let row = next!();
    assert!(row.starts_with("delta") && row.contains("PENDING"), "{row}");
    meseta(&server, &["delete", "task", "beta"]).await.expect_code(0);
    assert!(next!().starts_with("beta"));
    child.kill().await.unwrap();
}
