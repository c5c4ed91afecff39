//! `meseta apply`, `diff` and `--prune` against a real apiserver.

mod common;

use common::*;
use meseta_apiserver::testing::TestServer;

#[tokio::test]
async fn the_repository_manifests_apply_cleanly_and_a_second_apply_changes_nothing() {
    let server = TestServer::start().await;
    let dir = repo_manifests();
    let dir = dir.to_str().unwrap();
    let first = meseta(&server, &["apply", "-f", dir]).await;
    first.expect_code(0);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert!(lines.len() >= 7, "{}", first.stdout);
    assert!(lines.iter().all(|l| l.ends_with(" created")), "{}", first.stdout);
    assert!(lines.contains(&"task.meseta.io/hello created"), "{}", first.stdout);
    assert!(lines.contains(&"role.meseta.io/web created"), "{}", first.stdout);

    let second = meseta(&server, &["apply", "-f", dir]).await;
    second.expect_code(0);
    let again: Vec<&str> = second.stdout.lines().collect();
    assert_eq!(again.len(), lines.len());
    assert!(again.iter().all(|l| l.ends_with(" unchanged")), "{}", second.stdout);
}

#[tokio::test]
async fn a_changed_field_is_configured_and_a_removed_field_is_removed() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = "apiVersion: meseta.io/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  command: \"true\"\n  env: {A: \"1\", B: \"2\"}\n  resources: {cpus: 1, mem: 32}\n";
    let file = write(dir.path(), "t.yaml", v1);
    meseta(&server, &["apply", "-f", &file]).await.expect_code(0);
    // A field set by someone else (not in any manifest) must survive the apply.
    merge_patch(
        &server,
        "/apis/meseta.io/v1/namespaces/default/tasks/t",
        &serde_json::json!({"spec": {"priority": 7}}),
    )
    .await;

    let v2 = "apiVersion: meseta.io/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  command: \"true\"\n  env: {A: \"1\"}\n  resources: {cpus: 2, mem: 32}\n";
    write(dir.path(), "t.yaml", v2);
    let run = meseta(&server, &["apply", "-f", &file]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/t configured\n");
    let live = task(&server, "t").await.unwrap();
    assert_eq!(live["spec"]["resources"]["cpus"], 2.0);
    assert_eq!(live["spec"]["env"], serde_json::json!({"A": "1"}), "B was dropped from the manifest");
    assert_eq!(live["spec"]["priority"], 7, "fields never applied are left alone");

    let run = meseta(&server, &["apply", "-f", &file]).await;
    assert_eq!(run.stdout, "task.meseta.io/t unchanged\n");
}

#[tokio::test]
async fn server_dry_run_writes_nothing() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.yaml", &task_yaml("dry", "default", ""));
    let run = meseta(&server, &["apply", "-f", &file, "--dry-run=server"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/dry created (server dry run)\n");
    assert!(task(&server, "dry").await.is_none());
}

#[tokio::test]
async fn stdin_and_server_side_apply_work() {
    let server = TestServer::start().await;
    let run =
        run_at(Some(server.url()), &["apply", "-f", "-", "--server-side"], Some(&task_yaml("ss", "default", ""))).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/ss created\n");
    assert_eq!(task(&server, "ss").await.unwrap()["spec"]["resources"]["mem"], 64.0);
    let run =
        run_at(Some(server.url()), &["apply", "-f", "-", "--server-side"], Some(&task_yaml("ss", "default", ""))).await;
    assert_eq!(run.stdout, "task.meseta.io/ss unchanged\n");
}

#[tokio::test]
async fn an_invalid_manifest_names_file_document_and_field() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}---\napiVersion: meseta.io/v1\nkind: Task\nmetadata: {{name: bad}}\nspec:\n  command: \"true\"\n  resources: {{cpus: -1}}\n",
        task_yaml("ok", "default", "")
    );
    let file = write(dir.path(), "x.yaml", &text);
    let run = meseta(&server, &["apply", "-f", &file]).await;
    run.expect_code(1);
    assert!(run.stdout.contains("task.meseta.io/ok created"), "the valid document is still applied");
    let expected = format!("{file} document 2 (Task bad): spec.resources.cpus: Invalid value: -1");
    assert!(run.stderr.contains(&expected), "stderr: {}", run.stderr);
    assert!(task(&server, "bad").await.is_none());
}

#[tokio::test]
async fn diff_exits_0_when_in_sync_and_1_with_the_change_shown() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.yaml", &task_yaml("d", "default", ""));
    let run = meseta(&server, &["diff", "-f", &file]).await;
    run.expect_code(1);
    assert!(run.stdout.contains("+++ merged/task.meseta.io/default/d"), "{}", run.stdout);
    assert!(task(&server, "d").await.is_none(), "diff writes nothing");

    meseta(&server, &["apply", "-f", &file]).await.expect_code(0);
    let run = meseta(&server, &["diff", "-f", &file]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "");

    write(dir.path(), "t.yaml", &task_yaml("d", "default", "").replace("mem: 64", "mem: 128"));
    let run = meseta(&server, &["diff", "-f", &file]).await;
    run.expect_code(1);
    assert!(run.stdout.contains("-    mem: 64.0") && run.stdout.contains("+    mem: 128.0"), "{}", run.stdout);
    assert_eq!(task(&server, "d").await.unwrap()["spec"]["resources"]["mem"], 64.0);
}

#[tokio::test]
async fn prune_deletes_applied_objects_no_longer_in_the_manifests() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let both = format!("{}---\n{}", task_yaml("keep", "default", "app: x"), task_yaml("drop", "default", "app: x"));
    let file = write(dir.path(), "t.yaml", &both);
    meseta(&server, &["apply", "-f", &file]).await.expect_code(0);
    // Not applied (no last-applied annotation) and another label: both kept.
    meseta(&server, &["apply", "-f", &write(dir.path(), "o.yaml", &task_yaml("other", "default", "app: y"))])
        .await
        .expect_code(0);

    write(dir.path(), "t.yaml", &task_yaml("keep", "default", "app: x"));
    let run = meseta(&server, &["apply", "-f", &file, "--prune", "-l", "app=x"]).await;
    run.expect_code(0);
    assert_eq!(run.stdout, "task.meseta.io/keep unchanged\ntask.meseta.io/drop pruned\n");
    assert!(task(&server, "drop").await.is_none());
    assert!(task(&server, "keep").await.is_some());
    assert!(task(&server, "other").await.is_some());
}
