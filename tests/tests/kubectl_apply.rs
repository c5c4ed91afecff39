//! `kubectl apply` (client-side and server-side), `diff`, and the errors
//! kubectl prints for bad manifests, against a real apiserver.

mod kubectl_support;

use kubectl_support::{manifests_dir, task_yaml, Kubectl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_configures_then_leaves_unchanged() {
    let k = Kubectl::start().await;
    let file = k.write("hello.yaml", &task_yaml("hello", "0.1"));
    let f = file.to_str().unwrap();
    assert_eq!(k.run(&["apply", "-f", f]).await.ok().stdout.trim(), "task.meseta.io/hello created");
    k.write("hello.yaml", &task_yaml("hello", "0.2"));
    assert_eq!(k.run(&["apply", "-f", f]).await.ok().stdout.trim(), "task.meseta.io/hello configured");
    assert_eq!(k.run(&["apply", "-f", f]).await.ok().stdout.trim(), "task.meseta.io/hello unchanged");
    let cpus = k.run(&["get", "task", "hello", "-o", "jsonpath={.spec.resources.cpus}"]).await.ok().stdout;
    assert_eq!(cpus, "0.2");
    let annotation = k
        .run(&[
            "get",
            "task",
            "hello",
            "-o",
            "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
        ])
        .await
        .ok()
        .stdout;
    assert!(annotation.contains("\"cpus\":0.2"), "{annotation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_applies_with_kubectl() {
    let k = Kubectl::start().await;
    let dir = manifests_dir();
    let out = k.run(&["apply", "-f", dir.to_str().unwrap()]).await.ok();
    let mut expected = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.path().extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = v["kind"].as_str().unwrap().to_lowercase();
            expected.push(format!("{kind}.meseta.io/{} created", v["metadata"]["name"].as_str().unwrap()));
        }
    }
    assert!(expected.len() >= 7, "{expected:?}");
    for line in &expected {
        assert!(out.stdout.lines().any(|l| l == line), "missing {line:?} in:\n{}", out.stdout);
    }
    // Applying again changes nothing.
    let again = k.run(&["apply", "-f", dir.to_str().unwrap()]).await.ok();
    assert_eq!(again.stdout.lines().filter(|l| l.ends_with(" unchanged")).count(), expected.len(), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_get_kubernetes_style_errors() {
    let k = Kubectl::start().await;
    let bad = k.write("bad.yaml", &task_yaml("bad", "-1"));
    let out = k.run(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("The Task \"bad\" is invalid: spec.resources.cpus: Invalid value: -1"),
        "{}",
        out.stderr
    );
    let typo = k.write("typo.yaml", &task_yaml("typo", "1").replace("command:", "comand:"));
    let out = k.run(&["apply", "-f", typo.to_str().unwrap()]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("strict decoding error: unknown field \"spec.comand\""), "{}", out.stderr);
    let out = k.run(&["get", "task", "nope"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Error from server (NotFound): tasks.meseta.io \"nope\" not found"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_exits_one_with_a_diff_and_zero_when_same() {
    let k = Kubectl::start().await;
    let file = k.write("hello.yaml", &task_yaml("hello", "0.1"));
    let f = file.to_str().unwrap();
    let new = k.run(&["diff", "-f", f]).await;
    assert_eq!(new.code, 1, "a new object is a difference: {new:?}");
    assert!(new.stdout.contains("+  name: hello"), "{}", new.stdout);
    k.run(&["apply", "-f", f]).await.ok();
    let same = k.run(&["diff", "-f", f]).await;
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.is_empty(), "{}", same.stdout);
    k.write("hello.yaml", &task_yaml("hello", "0.5"));
    let changed = k.run(&["diff", "-f", f]).await;
    assert_eq!(changed.code, 1, "{changed:?}");
    assert!(
        changed.stdout.contains("-    cpus: 0.1") && changed.stdout.contains("+    cpus: 0.5"),
        "{}",
        changed.stdout
    );
    // diff is a dry run: nothing changed.
    let cpus = k.run(&["get", "task", "hello", "-o", "jsonpath={.spec.resources.cpus}"]).await.ok().stdout;
    assert_eq!(cpus, "0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_reports_conflicts_and_force_wins() {
    let k = Kubectl::start().await;
    let file = k.write("hello.yaml", &task_yaml("hello", "0.1"));
    let f = file.to_str().unwrap();
    let out = k.run(&["apply", "--server-side", "-f", f]).await.ok();
    assert_eq!(out.stdout.trim(), "task.meseta.io/hello serverside-applied");
    assert_eq!(
        k.run(&["apply", "--server-side", "-f", f]).await.ok().stdout.trim(),
        "task.meseta.io/hello serverside-applied"
    );
    // A client-side change of a field the server-side apply owns.
    k.run(&["apply", "-f", k.write("other.yaml", &task_yaml("hello", "0.3")).to_str().unwrap()]).await.ok();
    let conflict = k.run(&["apply", "--server-side", "-f", f]).await;
    assert_ne!(conflict.code, 0);
    assert!(
        conflict.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using meseta.io/v1: .spec.resources.cpus"
        ),
        "{}",
        conflict.stderr
    );
    assert!(conflict.stderr.contains("--force-conflicts"), "{}", conflict.stderr);
    let cpus = k.run(&["get", "task", "hello", "-o", "jsonpath={.spec.resources.cpus}"]).await.ok().stdout;
    assert_eq!(cpus, "0.3", "a conflicting apply writes nothing");
    k.run(&["apply", "--server-side", "--force-conflicts", "-f", f]).await.ok();
    let cpus = k.run(&["get", "task", "hello", "-o", "jsonpath={.spec.resources.cpus}"]).await.ok().stdout;
    assert_eq!(cpus, "0.1");
    let managers =
        k.run(&["get", "task", "hello", "-o", "jsonpath={.metadata.managedFields[*].manager}"]).await.ok().stdout;
    assert!(managers.split(' ').any(|m| m == "kubectl"), "{managers}");
}
