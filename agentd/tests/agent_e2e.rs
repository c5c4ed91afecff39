//! The real `meseta-agentd` binary, real containers and a real apiserver.
//! Needs root and a cgroup filesystem (CI runs as root); fails loudly without.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meseta_apiserver::testing::TestServer;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Agent, HealthCheck, KillPolicy, Lease, Task, TaskSpec, TaskState, TaskStatus};
use meseta_schemas::resources::Resources;

struct AgentProc {
    child: Child,
    port: u16,
    work: std::path::PathBuf,
    name: String,
    server: String,
}

impl AgentProc {
    fn start(server: &str, work: &std::path::Path, name: &str, port: Option<u16>) -> AgentProc {
        assert!(nix::unistd::geteuid().is_root(), "these tests run real containers and must run as root");
        let port =
            port.unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        let child = Command::new(env!("CARGO_BIN_EXE_meseta-agentd"))
            .args(["--server", server, "--listen", &format!("127.0.0.1:{port}"), "--name", name])
            .arg("--work-dir")
            .arg(work)
            .args(["--resources", "cpus:2;mem:2048;disk:1000", "--attributes", "rack:a", "--usage-interval", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .expect("start meseta-agentd");
        AgentProc { child, port, work: work.to_path_buf(), name: name.into(), server: server.into() }
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.sigkill();
        *self = AgentProc::start(&self.server, &self.work.clone(), &self.name.clone(), Some(self.port));
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

async fn bind(client: &Client, ns: &str, name: &str, agent: &str, spec: TaskSpec) -> Task {
    let api: Api<Task> = Api::namespaced(client.clone(), ns);
    let spec = TaskSpec { agent: Some(agent.to_string()), ..spec };
    let mut task = api.create(&Task::new(name, spec).in_namespace(ns)).await.unwrap();
    let status = meseta_schemas::state_machine::transition(
        &task.status.clone().unwrap_or_default(),
        TaskState::Assigned,
        "",
        chrono::Utc::now(),
    )
    .unwrap();
    task.status = Some(TaskStatus { agent: Some(agent.to_string()), ..status });
    api.replace_status(&task).await.unwrap()
}

async fn wait_for(client: &Client, ns: &str, name: &str, want: TaskState, secs: u64) -> Task {
    let api: Api<Task> = Api::namespaced(client.clone(), ns);
    for _ in 0..secs * 10 {
        if let Ok(t) = api.get(name).await {
            if t.state() == want {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ns}/{name} never reached {want}: {:?}", api.get(name).await.map(|t| t.status));
}

fn shell(cmd: &str) -> TaskSpec {
    TaskSpec { command: Some(cmd.into()), resources: Resources::scalars(0.5, 64.0, 0.0, 0.0), ..Default::default() }
}

async fn agent_ready(client: &Client, name: &str) -> Agent {
    let api: Api<Agent> = Api::all(client.clone());
    for _ in 0..100 {
        if let Ok(Some(a)) = api.get_opt(name).await {
            if a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            {
                return a;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent {name} never became Ready");
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_run_fail_are_killed_and_their_logs_are_served() {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(server.url(), work.path(), "e2e-a", None);
    let obj = agent_ready(&client, "e2e-a").await;
    assert_eq!(obj.spec.resources.cpus, 2.0);
    assert_eq!(obj.spec.attributes["rack"], "a");
    assert_eq!(obj.spec.address, format!("http://127.0.0.1:{}", agent.port));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "meseta-system");
    let first = leases.get("agent-e2e-a").await.unwrap().spec.renew_time.unwrap();

    bind(&client, "web", "hello", "e2e-a", shell("echo hello")).await;
    bind(&client, "web", "three", "e2e-a", shell("exit 3")).await;
    bind(
        &client,
        "web",
        "nocmd",
        "e2e-a",
        TaskSpec { command: None, args: vec!["/no/such/binary".into()], ..shell("") },
    )
    .await;
    let mut hog = shell("head -c 200000000 /dev/zero | tail > /dev/null");
    hog.resources.mem = 32.0;
    bind(&client, "web", "hog", "e2e-a", hog).await;
    let mut sleeper = shell("sleep 600");
    sleeper.kill_policy = Some(KillPolicy { grace_period_seconds: Some(1) });
    bind(&client, "web", "sleeper", "e2e-a", sleeper).await;
    let mut sick = shell("sleep 600");
    sick.health_check = Some(HealthCheck {
        command: Some("exit 1".into()),
        interval_seconds: Some(1),
        consecutive_failures: Some(2),
        ..Default::default()
    });
    bind(&client, "web", "sick", "e2e-a", sick).await;

    let hello = wait_for(&client, "web", "hello", TaskState::Finished, 60).await;
    assert_eq!(hello.status.unwrap().exit_code, Some(0));
    let log = Api::<Task>::namespaced(client.clone(), "web").get_subresource_text("hello", "log", &[]).await.unwrap();
    assert_eq!(log, "hello\n");

    let three = wait_for(&client, "web", "three", TaskState::Failed, 60).await.status.unwrap();
    assert_eq!(three.exit_code, Some(3));
    assert_eq!(three.message, "exited with code 3");

    let nocmd = wait_for(&client, "web", "nocmd", TaskState::Failed, 60).await.status.unwrap();
    assert!(nocmd.message.contains("not found"), "{}", nocmd.message);

    let hog = wait_for(&client, "web", "hog", TaskState::Failed, 60).await.status.unwrap();
    assert!(hog.message.contains("out of memory"), "{}", hog.message);

    let running = wait_for(&client, "web", "sleeper", TaskState::Running, 60).await;
    let sandbox = running.status.as_ref().unwrap().sandbox.clone().expect("a running task reports its sandbox");
    assert!(sandbox.starts_with(&work.path().display().to_string()), "{sandbox}");
    let pids: Vec<u32> = std::fs::read_to_string(format!("{}/containers/web_sleeper/shim.json", work.path().display()))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["init_pid"].as_u64())
        .map(|p| vec![p as u32])
        .unwrap_or_default();
    assert_eq!(pids.len(), 1, "the shim records the task's pid");
    let tasks: Api<Task> = Api::namespaced(client.clone(), "web");
    let mut usage = None;
    for _ in 0..50 {
        usage = tasks.get("sleeper").await.unwrap().status.and_then(|s| s.usage);
        if usage.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage = usage.expect("a running task's usage is published (every second here)");
    assert!(usage.mem > 0.0, "{usage:?}");
    tasks.patch_merge("sleeper", &serde_json::json!({"spec": {"killRequested": true}})).await.unwrap();
    let killed = wait_for(&client, "web", "sleeper", TaskState::Killed, 30).await.status.unwrap();
    assert_eq!(killed.message, "killed as requested");
    assert!(!pid_alive(pids[0]), "the killed task's process is gone");

    let sick = wait_for(&client, "web", "sick", TaskState::Failed, 60).await.status.unwrap();
    assert!(sick.message.starts_with("health check failed 2 times"), "{}", sick.message);

    // Logs: a path out of the sandbox is refused, by the agent and through the apiserver.
    let http = reqwest::Client::new();
    for path in
        ["/tasks/web/..%2F..%2Fetc/log", "/tasks/..%2F..%2F/passwd/log", "/tasks/web/hello/log?stream=..%2Fshim.json"]
    {
        let resp = http.get(format!("http://127.0.0.1:{}{path}", agent.port)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{path}");
    }
    let pending = tasks.create(&Task::new("unbound", shell("true")).in_namespace("web")).await.unwrap();
    let err = tasks.get_subresource_text(&pending.metadata.name, "log", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(400), "{err}");

    let metrics =
        http.get(format!("http://127.0.0.1:{}/metrics", agent.port)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meseta_agent_container_starts_total"), "{metrics}");
    assert!(metrics.contains("meseta_agent_status_update_queue_depth 0"), "{metrics}");

    let mut renewed = false;
    for _ in 0..100 {
        if leases.get("agent-e2e-a").await.unwrap().spec.renew_time.unwrap() > first {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the lease is renewed within 10 s (every 3 s by default)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_agent_re_adopts_its_tasks_and_reports_exits_the_apiserver_missed() {
    let mut server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut agent = AgentProc::start(server.url(), work.path(), "e2e-b", None);
    agent_ready(&client, "e2e-b").await;

    bind(&client, "web", "survivor", "e2e-b", shell("sleep 4")).await;
    wait_for(&client, "web", "survivor", TaskState::Running, 60).await;
    let shim = format!("{}/containers/web_survivor/shim.json", work.path().display());
    let pid_of = || {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&shim).unwrap()).unwrap()["init_pid"]
            .as_u64()
    };
    let pid = pid_of();
    agent.restart();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = wait_for(&client, "web", "survivor", TaskState::Running, 30).await;
    assert_eq!(pid_of(), pid, "the same container, not a new one");
    assert!(pid_alive(pid.unwrap() as u32));
    let finished = wait_for(&client, "web", "survivor", TaskState::Finished, 60).await.status.unwrap();
    let runs = finished.task_events.iter().filter(|e| e.state == TaskState::Running).count();
    assert_eq!(runs, 1, "no duplicate start: {:?}", finished.task_events);
    drop(t);

    // The apiserver is down while a task finishes: the report arrives after it returns.
    bind(&client, "web", "quiet", "e2e-b", shell("sleep 2")).await;
    wait_for(&client, "web", "quiet", TaskState::Running, 60).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.restart().await;
    let quiet = wait_for(&client, "web", "quiet", TaskState::Finished, 60).await.status.unwrap();
    assert_eq!(quiet.exit_code, Some(0));
}
