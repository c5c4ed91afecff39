//! Where a container's files live under the agent's work dir, and the small
//! JSON records through which the agent and the shims share state.
//!
//! ```text
//! <work>/sandboxes/<ns>/<task>/      the task's sandbox: stdout, stderr, its files
//! <work>/containers/<id>/checkpoint.json  written by `create` (config, user, cgroup)
//! <work>/containers/<id>/bundle/     OCI bundle: config.json
//! <work>/rootfs/                     the host-filesystem root every container shares: mount
//!                                    points only, filled in each container's own mount namespace
//! <work>/containers/<id>/shim.json   written by the shim once the process runs
//! <work>/containers/<id>/exit.json   written by the shim once the process exited
//! <work>/containers/<id>/shim.log    the shim's own log
//! <work>/run/                        libcontainer's state root (per work dir)
//! <work>/fork-server.log             the shim fork server's own log (see `forkserver`)
//! <work>/seccomp/<hash>.bpf          the tasks' seccomp filter, compiled once (see `seccomp_bpf`)
//! <work>/cgroups.lock                held shared while a shim places a container in
//!                                    the agent's cgroup scope, exclusively while the
//!                                    empty scope is removed
//! ```
//!
//! Records are written atomically (temporary file, then rename), so a
//! reader never sees half a record.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ContainerConfig, ContainerId, RuntimeError};

/// Paths under one work dir.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    pub(crate) fn sandbox(&self, id: &ContainerId) -> PathBuf {
        self.root.join("sandboxes").join(id.namespace()).join(id.name())
    }
    pub(crate) fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub(crate) fn container(&self, id: &ContainerId) -> PathBuf {
        self.containers().join(id.as_str())
    }
    pub(crate) fn checkpoint(&self, id: &ContainerId) -> PathBuf {
        self.container(id).join("checkpoint.json")
    }
    pub(crate) fn bundle(&self, id: &ContainerId) -> PathBuf {
        self.container(id).join("bundle")
    }
    pub(crate) fn shim_record(&self, id: &ContainerId) -> PathBuf {
        self.container(id).join("shim.json")
    }
    pub(crate) fn exit_record(&self, id: &ContainerId) -> PathBuf {
        self.container(id).join("exit.json")
    }
    pub(crate) fn shim_log(&self, id: &ContainerId) -> PathBuf {
        self.container(id).join("shim.log")
    }
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    pub(crate) fn libcontainer_root(&self) -> PathBuf {
        self.root.join("run")
    }
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn fork_server_log(&self) -> PathBuf {
        self.root.join("fork-server.log")
    }
    pub(crate) fn seccomp(&self) -> PathBuf {
        self.root.join("seccomp")
    }
    pub(crate) fn cgroup_lock(&self) -> PathBuf {
        self.root.join("cgroups.lock")
    }
}

/// Takes the work dir's cgroup lock (see the module docs): shared while a
/// container is placed in the scope, exclusive while the scope is removed.
/// Released when dropped.
pub(crate) fn lock_cgroups(layout: &Layout, exclusive: bool) -> Result<nix::fcntl::Flock<std::fs::File>, RuntimeError> {
    let path = layout.cgroup_lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RuntimeError::io(&path, e))?;
    let arg = if exclusive { nix::fcntl::FlockArg::LockExclusive } else { nix::fcntl::FlockArg::LockShared };
    nix::fcntl::Flock::lock(file, arg).map_err(|(_, errno)| RuntimeError::io(&path, errno.into()))
}

/// What `create` decided, everything the shim and a restarted agent need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) config: ContainerConfig,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The OCI `cgroupsPath`.
    pub(crate) cgroups_path: String,
    /// The compiled seccomp filter the shim installs (see `seccomp_bpf`);
    /// `None`: libcontainer installs the profile of `config.json`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seccomp_bpf: Option<PathBuf>,
}

/// Written by the shim when the container's process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimRecord {
    pub(crate) shim_pid: u32,
    /// The shim's start time (clock ticks after boot), to tell it from a reused pid.
    pub(crate) shim_start_time: u64,
    pub(crate) init_pid: u32,
}

/// Written by the shim when the container's process exited.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub(crate) code: i32,
    pub(crate) oom: bool,
    pub(crate) message: String,
}

/// Writes `value` as JSON to `path` atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::io(path, std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(|e| RuntimeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io(path, e))
}

/// Reads a JSON record; `None` if the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RuntimeError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io(path, e)),
    }
}

/// Start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/<pid>/stat`); `None` if there is no such process.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}
