//! The per-container shim: what the runtime's fork server runs in each child
//! it forks (see [`crate::runtime::forkserver`]), and what `meseta-agentd
//! shim --work-dir W --id ID` runs on its own. It owns one container from
//! `build` to `delete` so the agent's multi-threaded tokio process never
//! forks through libcontainer.
//!
//! # Expected flow
//! 1. Leaves the agent's session (`setsid`) and becomes a child subreaper,
//!    so it outlives an agent restart and reaps the container's process.
//! 2. Builds and starts the container from the bundle `create` wrote, with
//!    the sandbox's `stdout` / `stderr` files as the process' output.
//! 3. Writes `shim.json` (its pid, the container's pid) and prints one line
//!    to the agent: `started <pid>`, or `exited` when the process could not
//!    be started (the reason is in `exit.json`).
//! 4. Waits for the process, reads the OOM counter of its cgroup and prints
//!    `ended <exit record as JSON>`, so the agent can report the end at once.
//! 5. Deletes the container (killing leftovers, removing the cgroup, and the
//!    agent's scope cgroup if no other container is left in it), writes
//!    `exit.json` and prints `exited`, so the agent need not poll for it (an
//!    agent restarted since has no pipe and polls `exit.json`). The
//!    container's cgroup is the one its checkpoint names
//!    (`/meseta/<scope>/<id>`, see [`crate::runtime::cgroups`]).
//!
//! # Guarantees
//! `exit.json` is written exactly once and only after the container's
//! cgroup is gone (or its removal failed, which the message says), so a
//! reader that sees it knows no process of the container is left.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use meseta_schemas::kinds::task::NetworkMode;
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::runtime::cgroups::{ScopeCgroups, TaskCgroup};
use crate::runtime::layout::{self, Checkpoint, ExitRecord, Layout, ShimRecord};
use crate::runtime::seccomp_bpf::{self, FilterExecutor};
use crate::runtime::{ContainerId, RuntimeError};

/// Runs the shim for container `id` under `work_dir`; returns the shim's
/// exit status (0 when the container ran, whatever its own exit code).
pub fn run(work_dir: &Path, id: &str) -> i32 {
    let Some(id) = ContainerId::parse(id) else {
        eprintln!("shim: invalid container id {id:?}");
        return 2;
    };
    match Shim::new(Layout::new(work_dir), id).and_then(|s| s.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shim: {e}");
            1
        }
    }
}

struct Shim {
    layout: Layout,
    id: ContainerId,
    cp: Checkpoint,
}

impl Shim {
    fn new(layout: Layout, id: ContainerId) -> Result<Self, RuntimeError> {
        // Own session: signals to the agent's process group or terminal do not reach us.
        let _ = nix::unistd::setsid();
        // Orphans of the container (if any escape its pid namespace) are reaped here.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        init_logging(&layout.shim_log(&id));
        let cp: Checkpoint =
            layout::read_json(&layout.checkpoint(&id))?.ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        Ok(Shim { layout, id, cp })
    }

    fn run(self) -> Result<(), RuntimeError> {
        let init_pid = match self.create_and_start() {
            Ok(pid) => pid,
            Err(message) => {
                tracing::error!(id = %self.id, %message, "container did not start");
                let (code, message) = classify_start_error(&self.cp.config.argv[0], &message);
                self.cleanup(false);
                layout::write_json(&self.layout.exit_record(&self.id), &ExitRecord { code, oom: false, message })?;
                report("exited");
                return Ok(());
            }
        };
        let shim_pid = std::process::id();
        let record = ShimRecord {
            shim_pid,
            shim_start_time: layout::process_start_time(shim_pid).unwrap_or_default(),
            init_pid,
        };
        layout::write_json(&self.layout.shim_record(&self.id), &record)?;
        report(&format!("started {init_pid}"));

        let (code, signal) = wait_for(init_pid);
        let oom = TaskCgroup::of(&self.cp.cgroups_path).is_some_and(|cg| cg.oom_killed());
        let mut message = match (signal, code, oom) {
            (_, _, true) => "memory limit exceeded: killed by the OOM killer".to_string(),
            (Some(sig), _, _) => format!("killed by signal {}", sig.as_str().trim_start_matches("SIG")),
            (None, 127, _) => "command not found (exit 127); see the task's stderr".to_string(),
            (None, 126, _) => "command not executable (exit 126); see the task's stderr".to_string(),
            _ => String::new(),
        };
        // The agent can report the end now; the cleanup below takes a few milliseconds.
        if let Ok(record) = serde_json::to_string(&ExitRecord { code, oom, message: message.clone() }) {
            report(&format!("ended {record}"));
        }
        if !self.cleanup(true) {
            message = format!(
                "{message}{}processes of the container were left behind",
                if message.is_empty() { "" } else { "; " }
            );
        }
        layout::write_json(&self.layout.exit_record(&self.id), &ExitRecord { code, oom, message })?;
        // The agent that started us may be gone (its pipe with it): the write then fails, harmlessly.
        report("exited");
        Ok(())
    }

    /// Builds and starts the container; returns its pid or why not.
    fn create_and_start(&self) -> Result<u32, String> {
        let sandbox = self.layout.sandbox(&self.id);
        let open = |name: &str| {
            OpenOptions::new().append(true).create(true).open(sandbox.join(name)).map_err(|e| format!("{name}: {e}"))
        };
        let stdout = open("stdout")?;
        let stderr = open("stderr")?;
        let stdin = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        // Never run the task unfiltered: a filter that cannot be read fails the start.
        let bpf = self.cp.seccomp_bpf.as_deref().map(seccomp_bpf::read).transpose()?.map(std::sync::Arc::new);
        // The scope's cgroup dirs must not be removed while the container's is created in them.
        let scope_lock = layout::lock_cgroups(&self.layout, false).map_err(|e| e.to_string())?;
        // The container's processes are forked in `build`: they get the default SIGPIPE action.
        sigpipe(SigHandler::SigDfl);
        let built = ContainerBuilder::new(self.id.to_string(), SyscallType::Linux)
            .with_root_path(self.layout.libcontainer_root())
            .map_err(|e| e.to_string())?
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr)
            .with_executor(FilterExecutor { bpf })
            .validate_id()
            .map_err(|e| e.to_string())?
            .as_init(self.layout.bundle(&self.id))
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| e.to_string());
        sigpipe(SigHandler::SigIgn);
        let mut container = built?;
        drop(scope_lock);
        let pid = container.pid().ok_or("container has no pid after create")?.as_raw() as u32;
        if self.cp.config.network == NetworkMode::None {
            loopback_up(pid).map_err(|e| format!("bringing up lo: {e}"))?;
        }
        container.start().map_err(|e| e.to_string())?;
        Ok(pid)
    }

    /// Deletes the container and its cgroup; returns whether nothing is left.
    ///
    /// Once the container's first process has exited (`exited`), the kernel
    /// has killed the rest of its pid namespace: removing the cgroup (killing
    /// any straggler) and libcontainer's state dir is all there is to do, and
    /// costs far less than libcontainer's `delete` (which finds every
    /// controller's mount again; the spec has no hooks to run). Otherwise
    /// libcontainer deletes it, killing a created but not started process.
    fn cleanup(&self, exited: bool) -> bool {
        let root = self.layout.libcontainer_root().join(self.id.as_str());
        if exited {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(id = %self.id, error = %e, "cannot remove the container's state");
                }
            }
        } else if root.exists() {
            match Container::load(root) {
                Ok(mut c) => {
                    if let Err(e) = c.delete(true) {
                        tracing::warn!(id = %self.id, error = %e, "libcontainer delete failed");
                    }
                }
                Err(e) => tracing::warn!(id = %self.id, error = %e, "cannot load container state"),
            }
        }
        let Some(cg) = TaskCgroup::of(&self.cp.cgroups_path) else { return true };
        let gone = cg.kill_all_and_remove();
        if let Some(scope) = ScopeCgroups::containing(cg.version(), &self.cp.cgroups_path) {
            if let Ok(_lock) = layout::lock_cgroups(&self.layout, true) {
                scope.remove_if_empty();
            }
        }
        gone
    }
}

/// Logs to `shim.log` through its own descriptor, never fd 2: the
/// container's process inherits the logger, and its fd 2 is the task's
/// stderr. Only errors of libcontainer are logged, for the same reason.
fn init_logging(path: &Path) {
    if let Ok(file) = OpenOptions::new().append(true).create(true).open(path) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("MESETA_SHIM_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,meseta_agentd=info")),
            )
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    }
}

/// Maps a build/start failure to an exit code and a message a person can act on.
fn classify_start_error(argv0: &str, error: &str) -> (i32, String) {
    if error.contains("not found") {
        (127, format!("cannot execute {argv0:?}: not found ({error})"))
    } else if error.contains("permission") {
        (126, format!("cannot execute {argv0:?}: not executable ({error})"))
    } else {
        (128, format!("container failed to start: {error}"))
    }
}

/// Sets the shim's SIGPIPE action. Rust programs start with SIGPIPE
/// ignored, and an ignored signal stays ignored across `execve`: a task
/// forked meanwhile would run with it ignored (`yes | head -1` would report
/// "Broken pipe" instead of ending quietly). So the action is the default
/// while the container's processes are forked, and ignored otherwise, so
/// that the shim survives writing to the pipe of an agent that is gone.
#[allow(unsafe_code)]
fn sigpipe(handler: SigHandler) {
    debug_assert!(matches!(handler, SigHandler::SigDfl | SigHandler::SigIgn));
    // SAFETY: only SIG_DFL or SIG_IGN is installed, no handler function, so no
    // async-signal-safety requirement arises; the shim's only other thread
    // (the loopback helper) does not exist yet or any more.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, handler) };
}

/// One line to the agent on stdout.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reaps children until `pid` exits; returns its exit code (`128 + n` for
/// signal `n`) and the signal, if one ended it.
fn wait_for(pid: u32) -> (i32, Option<Signal>) {
    let target = Pid::from_raw(pid as i32);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == target => return (code, None),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == target => return (128 + sig as i32, Some(sig)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "waitpid failed");
                return (128, None);
            }
        }
    }
}

/// Brings `lo` up in the network namespace of process `pid`, from a thread
/// that joins that namespace (the shim's other threads stay where they are).
fn loopback_up(pid: u32) -> Result<(), String> {
    let ns: PathBuf = format!("/proc/{pid}/ns/net").into();
    std::thread::spawn(move || -> Result<(), String> {
        use libcontainer::network::link::LinkClient;
        let fd = File::open(&ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let mut client =
            LinkClient::new(libcontainer::network::wrapper::create_network_client()).map_err(|e| e.to_string())?;
        let lo = client.get_by_name("lo").map_err(|e| e.to_string())?;
        client.set_up(lo.header.index).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_executable_reads_as_command_not_found() {
        let (code, msg) = classify_start_error("nope", "executable 'nope' not found in $PATH");
        assert_eq!(code, 127);
        assert!(msg.contains("\"nope\""), "{msg}");
    }
}
