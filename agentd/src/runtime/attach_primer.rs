//! Starts the kernel's cgroup attach grace period as soon as a container is
//! about to be created, so that the container's own attach, a few
//! milliseconds later, waits only for what is left of it.
//!
//! # Why
//! Writing a pid into `cgroup.procs` (libcontainer does it for every new
//! container, v1 and v2 alike) takes the kernel's global cgroup threadgroup
//! lock. When no attach happened within about the last RCU grace period,
//! that lock's first writer waits a full grace period (about 10 ms on a
//! 2-vCPU VM, the largest single wait of a container start), holding the
//! cgroup mutex meanwhile; writers within about one grace period after it
//! do not wait. A container's attach comes 5–6 ms after the agent decides
//! to create it (sandbox, bundle, shim fork, libcontainer's own set-up), so
//! the runtime asks this module's thread, at the start of `create`, to write
//! the agent's own pid into the cgroup the agent is already in: a move to
//! where it is, which changes nothing but starts the grace period early.
//!
//! # Must not
//! Move any process anywhere but where it is, or block its caller: requests
//! are handed to one thread, and a request made while one is pending is
//! dropped (the pending one serves both).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use super::cgroups::CgroupVersion;

/// Root of the cgroup filesystem.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Hands prime requests to the primer thread.
#[derive(Debug, Clone)]
pub(crate) struct AttachPrimer {
    requests: SyncSender<()>,
}

impl AttachPrimer {
    /// Starts the primer thread for hosts with cgroups of `version`.
    pub(crate) fn start(version: CgroupVersion) -> std::io::Result<AttachPrimer> {
        let (requests, pending) = sync_channel::<()>(1);
        std::thread::Builder::new().name("cgroup-primer".into()).spawn(move || {
            let mut warned = false;
            while pending.recv().is_ok() {
                if let Err(e) = prime_once(version) {
                    if !warned {
                        tracing::warn!(error = %e, "cannot prime the cgroup attach lock; container starts wait for it");
                        warned = true;
                    }
                }
            }
        })?;
        Ok(AttachPrimer { requests })
    }

    /// Asks for the grace period to be started now; returns at once.
    pub(crate) fn prime(&self) {
        match self.requests.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => tracing::debug!("the cgroup primer thread is gone"),
        }
    }
}

/// Writes this process' pid into the `cgroup.procs` of the cgroup it is in.
pub(crate) fn prime_once(version: CgroupVersion) -> std::io::Result<()> {
    let membership = std::fs::read_to_string("/proc/self/cgroup")?;
    let procs = procs_file(Path::new(CGROUP_ROOT), &membership, version, |p| p.exists()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no cgroup.procs of this process' own cgroup")
    })?;
    std::fs::write(&procs, std::process::id().to_string())
}

/// The `cgroup.procs` file of the cgroup a process is in, from its
/// `/proc/<pid>/cgroup` text (`hierarchy-id:controllers:path` lines): on v2
/// the `0::` line; on v1 the first controller hierarchy whose file `exists`
/// (a named hierarchy such as `name=systemd` is not mounted by controller).
/// Pure but for `exists`.
pub(crate) fn procs_file(
    root: &Path,
    membership: &str,
    version: CgroupVersion,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    membership.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        let dir = match version {
            CgroupVersion::V2 if id == "0" && controllers.is_empty() => root.join(rel),
            CgroupVersion::V1 if !controllers.is_empty() && !controllers.starts_with("name=") => {
                // A co-mounted hierarchy ("cpu,cpuacct") is mounted under its joined name.
                root.join(controllers).join(rel)
            }
            _ => return None,
        };
        let file = dir.join("cgroup.procs");
        exists(&file).then_some(file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "9:name=systemd:/user.slice\n8:pids:/agents/a\n7:cpu,cpuacct:/agents/a\n0::/user.slice\n";

    #[test]
    fn v1_takes_the_first_controller_hierarchy_that_is_mounted() {
        let root = Path::new("/sys/fs/cgroup");
        let all = procs_file(root, V1, CgroupVersion::V1, |_| true);
        assert_eq!(all, Some(PathBuf::from("/sys/fs/cgroup/pids/agents/a/cgroup.procs")));
        let no_pids = procs_file(root, V1, CgroupVersion::V1, |p| !p.starts_with("/sys/fs/cgroup/pids"));
        assert_eq!(no_pids, Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/agents/a/cgroup.procs")));
        assert_eq!(procs_file(root, V1, CgroupVersion::V1, |_| false), None);
    }

    #[test]
    fn v2_takes_the_unified_line() {
        let root = Path::new("/sys/fs/cgroup");
        let file = procs_file(root, "0::/system.slice/meseta-agentd.service\n", CgroupVersion::V2, |_| true);
        assert_eq!(file, Some(PathBuf::from("/sys/fs/cgroup/system.slice/meseta-agentd.service/cgroup.procs")));
        assert_eq!(procs_file(root, "0::/\n", CgroupVersion::V2, |_| true), Some(root.join("cgroup.procs")));
        assert_eq!(procs_file(root, V1.replace("0::/user.slice\n", "").as_str(), CgroupVersion::V2, |_| true), None);
    }

    /// Needs root and a cgroup filesystem (CI runs agentd's tests as root).
    #[test]
    fn priming_leaves_this_process_where_it_was() {
        let version = super::super::cgroups::detect().expect("a cgroup filesystem under /sys/fs/cgroup");
        assert!(nix::unistd::geteuid().is_root(), "this test writes cgroup.procs and must run as root");
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        prime_once(version).expect("writing our own pid where it is");
        assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), before);
    }
}
