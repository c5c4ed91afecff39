//! The shim fork server with real containers: shims it forks belong to it,
//! leave its session, outlive it and the runtime that started it, and report
//! their container's exit to a runtime started afterwards. Needs root,
//! cgroups and namespaces (CI has them); fails loudly without.

use std::path::Path;
use std::time::{Duration, Instant};

use meseta_agentd::runtime::linux::LinuxRuntime;
use meseta_agentd::runtime::{ContainerConfig, ContainerId, ContainerRuntime, ContainerState};
use meseta_schemas::kinds::task::TaskSpec;

const SHIM: &str = env!("CARGO_BIN_EXE_meseta-agentd");

fn runtime(dir: &Path) -> LinuxRuntime {
    LinuxRuntime::new(dir, SHIM).unwrap_or_else(|e| panic!("these tests need root, cgroups and namespaces: {e}"))
}

fn config(name: &str, cmd: &str) -> ContainerConfig {
    let spec = TaskSpec { command: Some(cmd.into()), ..Default::default() };
    ContainerConfig::from_task("test", &format!("{name}-{}", std::process::id()), &spec, &[]).unwrap()
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, session.
fn stat(pid: u32) -> Option<(String, u32, u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?.to_string();
    let mut num = || f.next()?.parse::<u32>().ok();
    Some((state, num()?, num()?, num()?))
}

fn shim_pid(dir: &Path, id: &ContainerId) -> u32 {
    let record = std::fs::read(dir.join("containers").join(id.as_str()).join("shim.json")).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    record["shim_pid"].as_u64().unwrap() as u32
}

async fn wait_exit(rt: &LinuxRuntime, id: &ContainerId) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rt.state(id).await.unwrap() {
            ContainerState::Exited { code, .. } => return code,
            state => assert!(Instant::now() < deadline, "{id} still {state:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn forked_shims_outlive_the_fork_server_and_report_to_a_restarted_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (config("forked-a", "exit 3"), config("forked-b", "sleep 2; exit 6"));
    let (server, shim, pid) = {
        let first = runtime(dir.path());
        for c in [&a, &b] {
            first.create(c).await.unwrap();
            first.start(&c.id).await.unwrap();
        }
        assert_eq!(wait_exit(&first, &a.id).await, 3, "a container started by a forked shim runs");
        first.delete(&a.id).await.unwrap();
        let pid = match first.state(&b.id).await.unwrap() {
            ContainerState::Running { pid } => pid,
            other => panic!("{other:?}"),
        };
        let shim = shim_pid(dir.path(), &b.id);
        let (_, server, _, session) = stat(shim).expect("the shim runs");
        assert_eq!(session, shim, "the shim leads its own session");
        let (_, agent, _, _) = stat(server).unwrap();
        assert_eq!(agent, std::process::id(), "the shim's parent is the fork server, this process' child");
        let cmdline = std::fs::read_to_string(format!("/proc/{server}/cmdline")).unwrap();
        assert!(cmdline.contains("fork-server"), "{cmdline:?}");
        (server, shim, pid)
    };
    // The runtime is gone: its fork server exits, leaving the shim running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(server).is_some() {
        assert!(Instant::now() < deadline, "the fork server outlived its runtime");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (state, parent, _, _) = stat(shim).expect("the shim outlived the fork server");
    assert_ne!(state, "Z");
    assert_ne!(parent, server);

    let second = runtime(dir.path());
    assert_eq!(second.list().await.unwrap(), vec![b.id.clone()]);
    assert_eq!(second.state(&b.id).await.unwrap(), ContainerState::Running { pid });
    assert_eq!(wait_exit(&second, &b.id).await, 6);
    second.delete(&b.id).await.unwrap();
}

#[tokio::test]
async fn a_killed_fork_server_is_replaced_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let (a, b) = (config("first", "exit 0"), config("second", "exit 7"));
    rt.create(&a).await.unwrap();
    rt.start(&a.id).await.unwrap();
    assert_eq!(wait_exit(&rt, &a.id).await, 0);
    let server = fork_server_of(dir.path()).expect("a fork server runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    rt.delete(&a.id).await.unwrap();
    rt.create(&b).await.unwrap();
    rt.start(&b.id).await.unwrap();
    assert_eq!(wait_exit(&rt, &b.id).await, 7);
    let replacement = fork_server_of(dir.path()).expect("a new fork server runs");
    assert_ne!(replacement, server);
    rt.delete(&b.id).await.unwrap();
}

/// The fork server of the runtime on work dir `dir`: a child of this
/// process whose command line names the fork server and `dir`.
fn fork_server_of(dir: &Path) -> Option<u32> {
    let me = std::process::id();
    let dir = dir.to_str()?;
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let (state, parent, _, _) = stat(pid)?;
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
        let named = cmdline.contains("fork-server") && cmdline.split('\0').any(|a| a == dir);
        (parent == me && state != "Z" && named).then_some(pid)
    })
}
