//! Real containers through `LinuxRuntime`. These need root, cgroups and
//! namespaces (CI has them); without them every test fails with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use meseta_agentd::runtime::cgroups::{self, CgroupVersion};
use meseta_agentd::runtime::linux::LinuxRuntime;
use meseta_agentd::runtime::{
    kill_with_grace, ContainerConfig, ContainerId, ContainerRuntime, ContainerState, RuntimeError,
};
use meseta_schemas::kinds::task::{ContainerSpec, NetworkMode, TaskSpec};

const SHIM: &str = env!("CARGO_BIN_EXE_meseta-agentd");

fn runtime(dir: &Path) -> LinuxRuntime {
    LinuxRuntime::new(dir, SHIM).unwrap_or_else(|e| panic!("these tests need root, cgroups and namespaces: {e}"))
}

/// A unique task name per test, so tests running in parallel never share a cgroup.
fn config(name: &str, spec: TaskSpec) -> ContainerConfig {
    let unique = format!("{name}-{}", std::process::id());
    ContainerConfig::from_task("test", &unique, &spec, &[]).unwrap()
}

fn shell(cmd: &str) -> TaskSpec {
    TaskSpec { command: Some(cmd.into()), ..Default::default() }
}

async fn wait_exit(rt: &dyn ContainerRuntime, id: &ContainerId, limit: Duration) -> ContainerState {
    let deadline = Instant::now() + limit;
    loop {
        let state = rt.state(id).await.unwrap();
        if state.is_finished() {
            return state;
        }
        assert!(Instant::now() < deadline, "{id} still {state:?} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_to_exit(rt: &LinuxRuntime, c: &ContainerConfig) -> ContainerState {
    rt.create(c).await.unwrap();
    rt.start(&c.id).await.unwrap();
    wait_exit(rt, &c.id, Duration::from_secs(60)).await
}

fn read(rt: &LinuxRuntime, id: &ContainerId, file: &str) -> String {
    std::fs::read_to_string(rt.sandbox_dir(id).join(file)).unwrap()
}

fn code_of(state: &ContainerState) -> i32 {
    match state {
        ContainerState::Exited { code, .. } => *code,
        other => panic!("not exited: {other:?}"),
    }
}

#[tokio::test]
async fn echo_hello_exits_zero_and_its_output_lands_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("echo", shell("echo hello"));
    let state = run_to_exit(&rt, &c).await;
    assert_eq!(code_of(&state), 0, "{state:?}; stderr: {}", read(&rt, &c.id, "stderr"));
    assert_eq!(read(&rt, &c.id, "stdout"), "hello\n");
    assert_eq!(read(&rt, &c.id, "stderr"), "", "nothing of the runtime leaks into the task's stderr");
    rt.delete(&c.id).await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_non_zero_exit_code_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("exit3", shell("exit 3"));
    assert_eq!(code_of(&run_to_exit(&rt, &c).await), 3);
}

#[tokio::test]
async fn a_missing_command_or_executable_exits_127_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("nocmd", shell("no-such-command-xyz"));
    let state = run_to_exit(&rt, &c).await;
    assert!(
        matches!(&state, ContainerState::Exited { code: 127, message, .. } if message.contains("not found")),
        "{state:?}"
    );

    let c = config("noexe", TaskSpec { args: vec!["/no/such/binary".into()], ..Default::default() });
    let state = run_to_exit(&rt, &c).await;
    assert!(
        matches!(&state, ContainerState::Exited { code: 127, message, .. } if message.contains("/no/such/binary")),
        "{state:?}"
    );
}

#[tokio::test]
async fn a_task_allocating_past_its_memory_is_oom_killed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    // The string doubles until it no longer fits in 32 MiB of anonymous memory.
    let mut spec = shell("awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
    spec.resources.mem = 32.0;
    let c = config("oom", spec);
    let state = run_to_exit(&rt, &c).await;
    assert!(matches!(&state, ContainerState::Exited { oom: true, code: 137, .. }), "{state:?}");
}

#[tokio::test]
async fn the_cgroup_holds_the_cpu_quota_and_memory_limit_of_the_resources() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut spec = shell("sleep 600");
    spec.resources.cpus = 0.5;
    spec.resources.mem = 64.0;
    let c = config("limits", spec);
    rt.create(&c).await.unwrap();
    rt.start(&c.id).await.unwrap();
    let cg = rt.cgroup(&c.id);
    let (quota, mem) = match cg.version() {
        CgroupVersion::V1 => (
            format!("{} {}", cg.read("cpu", "cpu.cfs_quota_us").unwrap(), cg.read("cpu", "cpu.cfs_period_us").unwrap()),
            cg.read("memory", "memory.limit_in_bytes").unwrap(),
        ),
        CgroupVersion::V2 => (cg.read("", "cpu.max").unwrap(), cg.read("", "memory.max").unwrap()),
    };
    assert_eq!(quota, "50000 100000");
    assert_eq!(mem, (64 * 1024 * 1024).to_string());
    assert!(rt.usage(&c.id).is_some(), "usage is read from the cgroup");
    kill_with_grace(&rt, &c.id, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_sigterm_ignoring_task_is_killed_after_the_grace_period_leaving_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    // SIGTERM is ignored by the shell and, inherited, by sleep.
    let c = config("grace", shell("trap '' TERM; sleep 600"));
    rt.create(&c).await.unwrap();
    rt.start(&c.id).await.unwrap();
    let cg = rt.cgroup(&c.id);
    assert!(!cg.procs().is_empty(), "the task runs in its cgroup");
    let grace = Duration::from_secs(1);
    let before = Instant::now();
    let state = kill_with_grace(&rt, &c.id, grace).await.unwrap();
    let took = before.elapsed();
    assert!(matches!(state, ContainerState::Exited { code: 137, .. }), "{state:?}");
    // Exit by SIGKILL, not before the grace period: SIGTERM was sent, ignored, and waited out.
    assert!(took >= grace, "took {took:?}");
    println!("SIGTERM-ignoring task gone {took:?} after kill_with_grace({grace:?})");
    assert!(cg.procs().is_empty(), "no process left in the cgroup");
    rt.delete(&c.id).await.unwrap();
    assert!(!cg.exists(), "cgroup removed");
}

#[tokio::test]
async fn a_restarted_agent_re_adopts_a_running_container_and_reads_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let c = config("adopt", shell("sleep 2; exit 5"));
    let pid = {
        let first = runtime(dir.path());
        first.create(&c).await.unwrap();
        first.start(&c.id).await.unwrap();
        match first.state(&c.id).await.unwrap() {
            ContainerState::Running { pid } => pid,
            other => panic!("{other:?}"),
        }
    };
    let second = runtime(dir.path());
    assert_eq!(second.list().await.unwrap(), vec![c.id.clone()]);
    assert_eq!(second.state(&c.id).await.unwrap(), ContainerState::Running { pid });
    assert_eq!(code_of(&wait_exit(&second, &c.id, Duration::from_secs(30)).await), 5);
}

#[tokio::test]
async fn a_shim_outlives_the_killed_process_that_started_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("orphan", shell("sleep 2; exit 4"));
    rt.create(&c).await.unwrap();
    // A stand-in agent: a shell that runs the shim, as `start` would, and is then SIGKILLed.
    let cmd =
        format!("{SHIM} shim --work-dir {} --id {} </dev/null >/dev/null 2>&1 & wait", dir.path().display(), c.id);
    let mut agent = std::process::Command::new("/bin/sh").arg("-c").arg(cmd).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let ContainerState::Running { pid } = rt.state(&c.id).await.unwrap() {
            break pid;
        }
        assert!(Instant::now() < deadline, "the container never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    agent.kill().unwrap();
    agent.wait().unwrap();

    let restarted = runtime(dir.path());
    assert_eq!(restarted.list().await.unwrap(), vec![c.id.clone()]);
    assert_eq!(restarted.state(&c.id).await.unwrap(), ContainerState::Running { pid });
    assert_eq!(code_of(&wait_exit(&restarted, &c.id, Duration::from_secs(30)).await), 4);
}

#[tokio::test]
async fn a_task_cannot_read_shadow_nor_write_outside_its_sandbox_and_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let cmd = "cat /etc/shadow >/dev/null 2>&1 && echo shadow-read; \
               touch /etc/x 2>/dev/null && echo etc-written; \
               touch /usr/x 2>/dev/null && echo usr-written; \
               touch \"$MESETA_SANDBOX/x\" && echo sandbox-ok; touch /tmp/x && echo tmp-ok; id -u";
    let c = config("confined", shell(cmd));
    let state = run_to_exit(&rt, &c).await;
    assert_eq!(code_of(&state), 0, "stderr: {}", read(&rt, &c.id, "stderr"));
    assert_eq!(read(&rt, &c.id, "stdout"), "sandbox-ok\ntmp-ok\n65534\n");
    assert!(rt.sandbox_dir(&c.id).join("x").exists());
    assert!(!Path::new("/etc/x").exists());
}

#[tokio::test]
async fn network_none_leaves_only_loopback_and_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut spec = shell("ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
    spec.container = Some(ContainerSpec { image: None, network: NetworkMode::None });
    let c = config("netnone", spec);
    let state = run_to_exit(&rt, &c).await;
    assert_eq!(code_of(&state), 0, "stderr: {}", read(&rt, &c.id, "stderr"));
    let out = read(&rt, &c.id, "stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP set on lo: {out}");
}

#[tokio::test]
async fn env_vars_and_ports_are_visible_to_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut spec = shell("echo \"$GREETING $PORT0 $PORTS $MESETA_TASK_ID\"; pwd");
    spec.env.insert("GREETING".into(), "hi".into());
    let name = format!("env-{}", std::process::id());
    let c = ContainerConfig::from_task("test", &name, &spec, &[31000, 31001]).unwrap();
    assert_eq!(code_of(&run_to_exit(&rt, &c).await), 0);
    assert_eq!(read(&rt, &c.id, "stdout"), format!("hi 31000 31000,31001 test/{name}\n/mnt/sandbox\n"));
}

#[tokio::test]
async fn a_task_with_an_image_is_refused_until_images_are_supported() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut spec = shell("true");
    spec.container = Some(ContainerSpec { image: Some("alpine:3".into()), network: NetworkMode::Host });
    let err = rt.create(&config("image", spec)).await.unwrap_err();
    assert!(err.to_string().contains("images are not supported yet"), "{err}");
}

async fn running_pid(rt: &LinuxRuntime, id: &ContainerId) -> u32 {
    match rt.state(id).await.unwrap() {
        ContainerState::Running { pid } => pid,
        other => panic!("{id} is not running: {other:?}"),
    }
}

#[tokio::test]
async fn two_runtimes_on_two_work_dirs_never_see_nor_touch_each_others_containers() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (runtime(dir_a.path()), runtime(dir_b.path()));
    assert_ne!(a.scope(), b.scope(), "each work dir has its own cgroup scope");
    assert_eq!(a.scope(), cgroups::scope_of(dir_a.path()).unwrap());

    // The same task id on both agents, plus one only B runs.
    let shared = config("scoped", shell("sleep 600"));
    let only_b = config("only-b", shell("sleep 600"));
    for (rt, c) in [(&a, &shared), (&b, &shared), (&b, &only_b)] {
        rt.create(c).await.unwrap();
        rt.start(&c.id).await.unwrap();
    }
    let (cg_a, cg_b) = (a.cgroup(&shared.id), b.cgroup(&shared.id));
    assert_ne!(cg_a.dir("pids"), cg_b.dir("pids"));
    assert!(cg_a.dir("pids").starts_with(a.scope_cgroups().dir("pids")), "{:?}", cg_a.dir("pids"));
    assert!(cg_b.dir("pids").starts_with(b.scope_cgroups().dir("pids")), "{:?}", cg_b.dir("pids"));
    let pid_b = running_pid(&b, &shared.id).await;
    assert!(cg_b.procs().contains(&pid_b), "B's process is in B's cgroup");
    assert!(!cg_a.procs().contains(&pid_b), "and not in A's");

    assert_eq!(a.list().await.unwrap(), vec![shared.id.clone()]);
    assert_eq!(a.scope_cgroups().containers(), vec![shared.id.clone()], "A's scope holds only A's cgroups");
    let mut b_ids = vec![shared.id.clone(), only_b.id.clone()];
    b_ids.sort();
    assert_eq!(b.list().await.unwrap(), b_ids);

    // A kills and deletes its container; a restarted A sweeps its scope for leftovers.
    kill_with_grace(&a, &shared.id, Duration::from_secs(1)).await.unwrap();
    a.delete(&shared.id).await.unwrap();
    let a_again = runtime(dir_a.path());
    assert!(a_again.list().await.unwrap().is_empty());
    assert!(!a.scope_cgroups().dir("pids").exists(), "A's empty scope is removed");

    // B's containers and cgroups are untouched.
    assert_eq!(running_pid(&b, &shared.id).await, pid_b);
    assert!(cg_b.procs().contains(&pid_b), "B's container still runs in its cgroup");
    assert_eq!(b.scope_cgroups().containers(), b_ids);
    assert!(b.scope_cgroups().dir("pids").parent().unwrap().is_dir(), "the shared /meseta parent stays");

    for c in [&shared, &only_b] {
        kill_with_grace(&b, &c.id, Duration::from_secs(1)).await.unwrap();
        b.delete(&c.id).await.unwrap();
    }
    assert!(!b.scope_cgroups().dir("pids").exists(), "B's scope is removed with its last container");
}

#[tokio::test]
async fn a_restarted_runtime_removes_leftover_cgroups_of_its_scope_only() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (runtime(dir_a.path()), runtime(dir_b.path()));
    // A cgroup with no container on disk in each scope, as a shim killed mid-cleanup leaves.
    let id = ContainerId::new("test", &format!("leftover-{}", std::process::id())).unwrap();
    let (left_a, left_b) = (a.scope_cgroups().task(&id).dir("pids"), b.scope_cgroups().task(&id).dir("pids"));
    std::fs::create_dir_all(&left_a).unwrap();
    std::fs::create_dir_all(&left_b).unwrap();
    let _a_again = runtime(dir_a.path());
    assert!(!left_a.exists(), "A's leftover is removed");
    assert!(left_b.exists(), "B's is not A's to remove");
    let _b_again = runtime(dir_b.path());
    assert!(!left_b.exists());
}

#[tokio::test]
async fn a_task_gets_the_default_sigpipe_action() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("sigpipe", shell("yes | head -1; grep '^SigIgn:' /proc/self/status"));
    assert_eq!(code_of(&run_to_exit(&rt, &c).await), 0);
    assert_eq!(read(&rt, &c.id, "stderr"), "", "yes ends by SIGPIPE, quietly");
    let out = read(&rt, &c.id, "stdout");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("y"));
    let ignored = u64::from_str_radix(lines.next().unwrap().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE is not ignored: {out}");
}

#[tokio::test]
async fn the_shim_tells_the_runtime_that_the_process_exited_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let c = config("exited", shell("sleep 1; exit 3"));
    rt.create(&c).await.unwrap();
    rt.start(&c.id).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), rt.exited(&c.id)).await.expect("the exit is reported");
    // The shim says how the process ended before it cleans up.
    assert_eq!(code_of(&ended.expect("the end comes with the report")), 3);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rt.exited(&c.id)).await.is_err(),
        "the hint is given once"
    );
    let other = ContainerId::new("test", "never-started").unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(10), rt.exited(&other)).await.is_err());
    // Deleting right away waits for the shim's cleanup instead of finding the container still there.
    let cgroup = rt.cgroup(&c.id);
    rt.delete(&c.id).await.unwrap();
    assert!(matches!(rt.state(&c.id).await, Err(RuntimeError::NotFound(_))));
    assert!(!cgroup.exists(), "the container's cgroup is gone");
}

/// Prints the figure; asserts only that every run succeeds.
#[tokio::test]
async fn create_to_exit_latency_of_bin_true() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut times = Vec::new();
    for i in 0..10 {
        let c = config(&format!("true{i}"), TaskSpec { args: vec!["/bin/true".into()], ..Default::default() });
        let before = Instant::now();
        assert_eq!(code_of(&run_to_exit(&rt, &c).await), 0);
        times.push(before.elapsed());
        rt.delete(&c.id).await.unwrap();
    }
    times.sort();
    println!("bench agentd.container.true.create_to_exit.median {:.1} ms", times[5].as_secs_f64() * 1e3);
}

#[tokio::test]
async fn containers_share_one_rootfs_yet_see_only_their_own_tmp_and_leave_nothing_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let writer = config("rootfs-writer", shell("echo a > /tmp/mine && sleep 1 && cat /tmp/mine"));
    let reader = config("rootfs-reader", shell("sleep 0.3; ls -A /tmp; test ! -e /tmp/mine"));
    for c in [&writer, &reader] {
        rt.create(c).await.unwrap();
    }
    for c in [&writer, &reader] {
        rt.start(&c.id).await.unwrap();
    }
    assert_eq!(code_of(&wait_exit(&rt, &writer.id, Duration::from_secs(60)).await), 0);
    assert_eq!(
        code_of(&wait_exit(&rt, &reader.id, Duration::from_secs(60)).await),
        0,
        "{}",
        read(&rt, &reader.id, "stderr")
    );
    assert_eq!(read(&rt, &writer.id, "stdout"), "a\n");
    assert_eq!(read(&rt, &reader.id, "stdout"), "", "the other container's /tmp is not seen");

    let rootfs = dir.path().canonicalize().unwrap().join("rootfs");
    for c in [&writer, &reader] {
        let bundle = dir.path().join("containers").join(c.id.as_str()).join("bundle/config.json");
        let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
        assert_eq!(Path::new(spec["root"]["path"].as_str().unwrap()).canonicalize().unwrap(), rootfs);
    }
    for c in [&writer, &reader] {
        rt.delete(&c.id).await.unwrap();
    }
    // Only mount points (the sandbox's is nested) and the host's top-level symlinks: nothing was written through.
    let mut dirs = vec![rootfs.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                assert_eq!(d, rootfs, "only top-level symlinks: {:?}", entry.path());
                assert!(
                    Path::new("/").join(entry.file_name()).is_symlink(),
                    "{:?} copies a host symlink",
                    entry.path()
                );
            } else {
                assert!(kind.is_dir(), "{:?} is a mount point, not a file", entry.path());
                dirs.push(entry.path());
            }
        }
    }
}
