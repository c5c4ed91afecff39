//! `kubectl get` (table, wide, all namespaces, yaml/json/jsonpath, watch),
//! `describe`, `delete`, `api-resources` and `explain` against a real apiserver.

mod kubectl_support;

use kubectl_support::{line_with, task_yaml, Kubectl};

async fn with_task(k: &Kubectl, name: &str, cpus: &str) {
    let file = k.write(&format!("{name}.yaml"), &task_yaml(name, cpus));
    k.run(&["apply", "-f", file.to_str().unwrap()]).await.ok();
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_lists_every_kind_with_short_names() {
    let k = Kubectl::start().await;
    let out = k.run(&["api-resources", "--api-group=meseta.io"]).await.ok().stdout;
    for kind in meseta_schemas::registry::kinds() {
        let line = out
            .lines()
            .find(|l| words(l).first() == Some(&kind.plural))
            .unwrap_or_else(|| panic!("{} missing from:\n{out}", kind.plural));
        let w = words(line);
        assert_eq!(w.last(), Some(&kind.kind), "{line}");
        assert!(w.contains(&if kind.namespaced { "true" } else { "false" }), "{line}");
        for short in kind.short_names {
            assert!(w.contains(short), "{short} missing in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_per_kind_columns_wide_and_all_namespaces() {
    let k = Kubectl::start().await;
    with_task(&k, "hello", "0.5").await;
    let out = k.run(&["get", "tasks"]).await.ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(words(lines[0]), ["NAME", "STATE", "AGENT", "CPUS", "MEM", "AGE"], "{out}");
    assert_eq!(&words(lines[1])[..5], ["hello", "PENDING", "<none>", "0.5", "32"], "{out}");
    let wide = k.run(&["get", "tk", "-o", "wide"]).await.ok().stdout;
    assert!(wide.lines().next().unwrap().contains("FRAMEWORK"), "{wide}");
    let all = k.run(&["get", "tasks", "-A", "--show-labels"]).await.ok().stdout;
    assert_eq!(&words(all.lines().next().unwrap())[..2], ["NAMESPACE", "NAME"], "{all}");
    assert!(all.lines().nth(1).unwrap().starts_with("default"), "{all}");
    let one = k.run(&["get", "task", "hello"]).await.ok().stdout;
    assert_eq!(one.lines().count(), 2, "{one}");
    let roles = k.run(&["get", "roles"]).await;
    assert!(roles.stderr.contains("No resources found"), "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_yaml_json_and_jsonpath() {
    let k = Kubectl::start().await;
    with_task(&k, "hello", "0.5").await;
    let yaml = k.run(&["get", "task", "hello", "-o", "yaml"]).await.ok().stdout;
    assert!(yaml.contains("kind: Task") && yaml.contains("cpus: 0.5"), "{yaml}");
    let json: serde_json::Value =
        serde_json::from_str(&k.run(&["get", "tasks", "-o", "json"]).await.ok().stdout).expect("JSON output");
    assert_eq!(json["items"][0]["metadata"]["name"], "hello");
    let cmd = k.run(&["get", "task", "hello", "-o", "jsonpath={.spec.command}"]).await.ok().stdout;
    assert_eq!(cmd, "echo hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_a_row_when_an_object_is_created() {
    let k = Kubectl::start().await;
    with_task(&k, "first", "0.1").await;
    let (mut child, mut lines) = k.spawn(&["get", "tasks", "-w"]);
    assert_eq!(words(&line_with(&mut lines, "NAME").await)[..2], ["NAME", "STATE"]);
    line_with(&mut lines, "first").await;
    with_task(&k, "second", "0.2").await;
    let row = line_with(&mut lines, "second").await;
    assert_eq!(words(&row)[3], "0.2", "{row}");
    assert_eq!(child.try_wait().expect("poll kubectl"), None, "the watch stays open");
    child.kill().await.expect("stop kubectl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_renders_the_object_and_its_events() {
    let k = Kubectl::start().await;
    with_task(&k, "hello", "0.5").await;
    let event = k.write(
        "event.yaml",
        "apiVersion: meseta.io/v1\nkind: Event\nmetadata:\n  name: hello.1\n  namespace: default\ninvolvedObject:\n  kind: Task\n  name: hello\n  namespace: default\nreason: Scheduled\nmessage: placed on agent-1\ntype: Normal\ncount: 1\nsource:\n  component: allocator\n",
    );
    k.run(&["apply", "-f", event.to_str().unwrap()]).await.ok();
    let out = k.run(&["describe", "task", "hello"]).await.ok().stdout;
    assert!(out.contains("Name:         hello"), "{out}");
    assert!(out.contains("Kind:         Task"), "{out}");
    assert!(out.contains("Cpus:"), "{out}");
    // The object's own section (the status' "Task Events:" comes before it).
    let events = out.split("\nEvents:").nth(1).unwrap_or_else(|| panic!("no Events section:\n{out}"));
    assert!(events.contains("Scheduled") && events.contains("placed on agent-1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_prints_deleted_and_the_object_is_gone() {
    let k = Kubectl::start().await;
    with_task(&k, "hello", "0.5").await;
    let out = k.run(&["delete", "task", "hello"]).await.ok().stdout;
    assert_eq!(out.trim(), "task.meseta.io \"hello\" deleted");
    let gone = k.run(&["get", "task", "hello"]).await;
    assert!(gone.stderr.contains("NotFound"), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_describes_fields_from_the_schemas() {
    let k = Kubectl::start().await;
    let out = k.run(&["explain", "task.spec.resources"]).await.ok().stdout;
    assert!(out.contains("KIND:       Task"), "{out}");
    assert!(out.contains("cpus\t<number>"), "{out}");
    assert!(out.contains("CPU cores"), "{out}");
    let agent = k.run(&["explain", "agents"]).await.ok().stdout;
    assert!(agent.contains("KIND:       Agent") && agent.contains("spec"), "{agent}");
}
