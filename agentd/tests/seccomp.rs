//! Real containers under the seccomp allow-list: ordinary programs run to a
//! clean exit, refused system calls fail. Needs root, cgroups, namespaces
//! and a kernel with seccomp (CI has them); fails loudly without.

use std::path::Path;
use std::time::{Duration, Instant};

use meseta_agentd::runtime::linux::{seccomp_available, LinuxRuntime};
use meseta_agentd::runtime::{ContainerConfig, ContainerRuntime, ContainerState};
use meseta_schemas::kinds::task::TaskSpec;

const SHIM: &str = env!("CARGO_BIN_EXE_meseta-agentd");

fn runtime(dir: &Path) -> LinuxRuntime {
    assert!(seccomp_available(), "these tests need a kernel with seccomp");
    LinuxRuntime::new(dir, SHIM).unwrap_or_else(|e| panic!("these tests need root, cgroups and namespaces: {e}"))
}

/// Runs `cmd` in a container to its end; returns the exit code, stdout and stderr.
async fn run(rt: &LinuxRuntime, name: &str, user: Option<&str>, cmd: &str) -> (i32, String, String) {
    let spec = TaskSpec { command: Some(cmd.into()), user: user.map(str::to_string), ..Default::default() };
    let c = ContainerConfig::from_task("test", &format!("{name}-{}", std::process::id()), &spec, &[]).unwrap();
    rt.create(&c).await.unwrap();
    rt.start(&c.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        match rt.state(&c.id).await.unwrap() {
            ContainerState::Exited { code, .. } => break code,
            state => assert!(Instant::now() < deadline, "{name} still {state:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let read = |f: &str| std::fs::read_to_string(rt.sandbox_dir(&c.id).join(f)).unwrap();
    let out = (code, read("stdout"), read("stderr"));
    rt.delete(&c.id).await.unwrap();
    out
}

#[tokio::test]
async fn shells_and_coreutils_finish_cleanly_under_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let cmd = "grep '^Seccomp:' /proc/self/status; ls / >/dev/null && cat /etc/hostname >/dev/null && echo ok; \
               sleep 0.1 & wait; printf 'b\\na\\n' | sort | tr -d '\\n'; echo; \
               head -c 16 /dev/urandom | wc -c; date +%Y >/dev/null && mktemp >/dev/null && echo tmp; \
               busybox sh -c 'busybox ls / >/dev/null && echo busybox'";
    let (code, out, err) = run(&rt, "ordinary", None, cmd).await;
    assert_eq!(code, 0, "stdout: {out}; stderr: {err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["Seccomp:", "2", "ok", "ab", "16", "tmp", "busybox"]);
    assert_eq!(err, "");
}

#[tokio::test]
async fn python_with_threads_and_sockets_finishes_cleanly() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().find(|p| Path::new(p).exists())
    else {
        panic!("this test runs python3 from /usr/bin or /usr/local/bin; install python3");
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let script = "import socket, threading, subprocess\n\
                  def serve(s):\n    c, _ = s.accept(); c.sendall(c.recv(5)); c.close()\n\
                  s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
                  t = threading.Thread(target=serve, args=(s,)); t.start()\n\
                  c = socket.create_connection(s.getsockname()); c.sendall(b'hello'); print(c.recv(5).decode())\n\
                  t.join()\n\
                  print(subprocess.run(['true']).returncode)\n";
    let cmd = format!("{python} -c 'import socket,threading; print(1)' && {python} - <<'EOF'\n{script}EOF");
    let (code, out, err) = run(&rt, "python", None, &cmd).await;
    assert_eq!(code, 0, "stdout: {out}; stderr: {err}");
    assert_eq!(out, "1\nhello\n0\n");
}

#[tokio::test]
async fn creating_a_namespace_is_refused_even_to_root_in_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    // The kernel lets any user create a user namespace (no capability needed):
    // only the filter stands in the way, of unshare(2) and of clone(CLONE_NEWUSER | SIGCHLD).
    let clone_nr = if cfg!(target_arch = "aarch64") { 220 } else { 56 };
    let cmd = format!(
        "unshare --version >/dev/null && echo found; unshare -U true; echo unshare=$?; \
         perl -e '$r = syscall({clone_nr}, 0x10000011, 0, 0, 0, 0); exit 0 if $r == 0; \
                  print $r < 0 ? \"clone: $!\\n\" : \"clone: created\\n\"'"
    );
    for (name, user) in [("unshare-nobody", None), ("unshare-root", Some("root"))] {
        let (code, out, err) = run(&rt, name, user, &cmd).await;
        assert_eq!(code, 0, "{user:?}: stderr: {err}");
        assert_eq!(out, "found\nunshare=1\nclone: Operation not permitted\n", "{user:?}: stderr: {err}");
        assert!(err.contains("unshare failed: Operation not permitted"), "{user:?}: {err}");
    }
}

#[tokio::test]
async fn the_filter_is_compiled_once_per_work_dir_and_installed_once_in_each_task() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let compiled: Vec<_> = std::fs::read_dir(dir.path().join("seccomp")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(compiled.len(), 1, "{compiled:?}");

    let spec = TaskSpec { command: Some("true".into()), ..Default::default() };
    let c = ContainerConfig::from_task("test", &format!("bundle-{}", std::process::id()), &spec, &[]).unwrap();
    rt.create(&c).await.unwrap();
    let config = dir.path().join("containers").join(c.id.as_str()).join("bundle/config.json");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    assert!(config["linux"].get("seccomp").is_none(), "libcontainer would compile it again: {}", config["linux"]);
    let named = config["annotations"][meseta_agentd::runtime::seccomp_bpf::ANNOTATION].as_str().unwrap();
    assert_eq!(Path::new(named), compiled[0]);
    rt.delete(&c.id).await.unwrap();

    let (code, out, err) = run(&rt, "filters", None, "grep -E '^Seccomp(_filters)?:' /proc/self/status").await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["Seccomp:", "2", "Seccomp_filters:", "1"]);
}

#[tokio::test]
async fn a_task_whose_filter_is_missing_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let spec = TaskSpec { command: Some("echo ran".into()), ..Default::default() };
    let c = ContainerConfig::from_task("test", &format!("nofilter-{}", std::process::id()), &spec, &[]).unwrap();
    rt.create(&c).await.unwrap();
    std::fs::remove_dir_all(dir.path().join("seccomp")).unwrap();
    rt.start(&c.id).await.unwrap();
    match rt.state(&c.id).await.unwrap() {
        ContainerState::Exited { code, message, .. } => {
            assert_eq!(code, 128, "{message}");
            assert!(message.contains("seccomp filter"), "{message}");
        }
        other => panic!("started without its filter: {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(rt.sandbox_dir(&c.id).join("stdout")).unwrap(), "");
    rt.delete(&c.id).await.unwrap();
}
