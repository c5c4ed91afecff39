//! `kubectl edit`, `label`, `annotate`, `patch` (main resource and status
//! subresource) and `wait` against a real apiserver.

mod kubectl_support;

use std::os::unix::fs::PermissionsExt;

use kubectl_support::{task_yaml, Kubectl};

async fn with_task(k: &Kubectl, name: &str) {
    let file = k.write(&format!("{name}.yaml"), &task_yaml(name, "0.1"));
    k.run(&["apply", "-f", file.to_str().unwrap()]).await.ok();
}

async fn jsonpath(k: &Kubectl, name: &str, path: &str) -> String {
    k.run(&["get", "task", name, "-o", &format!("jsonpath={path}")]).await.ok().stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_an_editor_script() {
    let k = Kubectl::start().await;
    with_task(&k, "hello").await;
    let editor = k.write("editor.sh", "#!/bin/sh\nsed -i 's/cpus: 0.1/cpus: 0.7/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = k.run_env(&["edit", "task", "hello"], &[("EDITOR", editor.to_str().unwrap())]).await.ok();
    assert_eq!(out.stdout.trim(), "task.meseta.io/hello edited");
    assert_eq!(jsonpath(&k, "hello", "{.spec.resources.cpus}").await, "0.7");
    let managers = jsonpath(&k, "hello", "{.metadata.managedFields[*].manager}").await;
    assert!(managers.split(' ').any(|m| m == "kubectl-edit"), "{managers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_annotate() {
    let k = Kubectl::start().await;
    with_task(&k, "hello").await;
    assert_eq!(k.run(&["label", "task", "hello", "app=web"]).await.ok().stdout.trim(), "task.meseta.io/hello labeled");
    assert_eq!(
        k.run(&["annotate", "task", "hello", "owner=ops"]).await.ok().stdout.trim(),
        "task.meseta.io/hello annotated"
    );
    let selected = k.run(&["get", "tasks", "-l", "app=web", "-o", "name"]).await.ok().stdout;
    assert_eq!(selected.trim(), "task.meseta.io/hello");
    assert_eq!(jsonpath(&k, "hello", "{.metadata.annotations.owner}").await, "ops");
    k.run(&["label", "task", "hello", "app-"]).await.ok();
    assert!(k.run(&["get", "tasks", "-l", "app=web"]).await.stderr.contains("No resources found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_through_the_status_subresource_only() {
    let k = Kubectl::start().await;
    with_task(&k, "hello").await;
    // A new task starts PENDING (the apiserver's initial status).
    assert_eq!(jsonpath(&k, "hello", "{.status.state}").await, "PENDING");
    // Through the main resource, status is ignored (as Kubernetes does for kinds with a status subresource).
    k.run(&["patch", "task", "hello", "--type", "merge", "-p", r#"{"status":{"message":"from the main resource"}}"#])
        .await
        .ok();
    assert_eq!(jsonpath(&k, "hello", "{.status.message}").await, "");
    let out = k
        .run(&[
            "patch",
            "task",
            "hello",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"message":"through the subresource"}}"#,
        ])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "task.meseta.io/hello patched");
    assert_eq!(jsonpath(&k, "hello", "{.status.message}").await, "through the subresource");
    assert_eq!(jsonpath(&k, "hello", "{.status.state}").await, "PENDING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_a_jsonpath_condition() {
    let k = Kubectl::start().await;
    with_task(&k, "hello").await;
    let status = |state: &str| format!(r#"{{"status":{{"state":"{state}","agent":"agent-1"}}}}"#);
    k.run(&["patch", "task", "hello", "--subresource=status", "--type", "merge", "-p", &status("PENDING")]).await.ok();
    let waiter = k.run(&["wait", "task/hello", "--for=jsonpath={.status.state}=RUNNING", "--timeout=30s"]);
    let writer = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // A legal Aurora path to RUNNING.
        for state in ["ASSIGNED", "STARTING", "RUNNING"] {
            k.run(&["patch", "task", "hello", "--subresource=status", "--type", "merge", "-p", &status(state)])
                .await
                .ok();
        }
    };
    let (out, ()) = tokio::join!(waiter, writer);
    assert_eq!(out.ok().stdout.trim(), "task.meseta.io/hello condition met");
    let already = k.run(&["wait", "task/hello", "--for=jsonpath={.status.state}=RUNNING", "--timeout=5s"]).await.ok();
    assert_eq!(already.stdout.trim(), "task.meseta.io/hello condition met");
}
