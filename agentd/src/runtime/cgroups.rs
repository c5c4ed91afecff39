//! The cgroups of containers: where they are (v1 or v2), what they use, and
//! whether the OOM killer visited them. Reads and cleans up; it must not set
//! limits (libcontainer writes those from the OCI spec).
//!
//! # Placement
//! A container's cgroup is `/meseta/<scope>/<ns>_<task>` under every
//! hierarchy (v1: under each controller's mount; v2: in the one unified
//! tree), where `<scope>` belongs to one agent instance on the host: see
//! [`scope_of`]. Two agents with different work dirs (or two test runs, each
//! with its own temporary work dir) therefore never see, kill nor remove
//! each other's cgroups, while an agent restarted on the same work dir finds
//! its own again. The shared `/meseta` parent itself is never removed.

use std::path::{Path, PathBuf};

use super::{ContainerId, Usage};

/// Root of the cgroup filesystem.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (under every hierarchy) that holds every agent's scope.
pub const PARENT: &str = "meseta";
/// v1 controllers a container's cgroup is created in (those that exist).
const V1_CONTROLLERS: [&str; 9] =
    ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio", "hugetlb"];

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller (also "hybrid" hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Detects the host's cgroup version; `None` if no usable cgroup fs is mounted.
pub fn detect() -> Option<CgroupVersion> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        Some(CgroupVersion::V2)
    } else if root.join("memory").join("memory.limit_in_bytes").exists() {
        Some(CgroupVersion::V1)
    } else {
        None
    }
}

/// Whether v1 memory+swap limits can be set (the kernel accounts swap).
pub fn memsw_available() -> bool {
    Path::new(CGROUP_ROOT).join("memory/memory.memsw.limit_in_bytes").exists()
}

/// The cgroup scope of the agent whose work dir is `work_dir`: `agent-`
/// followed by the 16 hex digits of the 64-bit FNV-1a hash of the work
/// dir's canonical path (symlinks resolved, so two spellings of one dir
/// share a scope). The dir must exist.
///
/// The hash is stable across builds and restarts (unlike std's hasher), so
/// an agent restarted on the same work dir re-adopts its containers; a
/// container created earlier also keeps the `cgroupsPath` its checkpoint
/// recorded, whatever the scope is now.
pub fn scope_of(work_dir: &Path) -> std::io::Result<String> {
    Ok(scope_of_canonical(&std::fs::canonicalize(work_dir)?))
}

/// [`scope_of`] of a path already canonical (pure).
pub fn scope_of_canonical(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("agent-{hash:016x}")
}

/// The OCI `cgroupsPath` of container `id` of the agent with scope `scope`:
/// `/meseta/<scope>/<id>`.
pub fn cgroups_path(scope: &str, id: &ContainerId) -> String {
    format!("/{PARENT}/{scope}/{id}")
}

/// The directory of cgroup `rel` (relative to a hierarchy's root) holding
/// `controller`'s files (v2: the one directory).
fn dir_of(version: CgroupVersion, rel: &str, controller: &str) -> PathBuf {
    match version {
        CgroupVersion::V1 => Path::new(CGROUP_ROOT).join(controller).join(rel),
        CgroupVersion::V2 => Path::new(CGROUP_ROOT).join(rel),
    }
}

/// Every directory of cgroup `rel`, existing or not: one per v1 controller,
/// or the one v2 directory.
fn all_dirs_of(version: CgroupVersion, rel: &str) -> Vec<PathBuf> {
    match version {
        CgroupVersion::V1 => V1_CONTROLLERS.iter().map(|c| dir_of(version, rel, c)).collect(),
        CgroupVersion::V2 => vec![dir_of(version, rel, "")],
    }
}

/// The cgroups of one agent's scope: `/meseta/<scope>` in every hierarchy.
#[derive(Debug, Clone)]
pub struct ScopeCgroups {
    version: CgroupVersion,
    rel: String,
}

impl ScopeCgroups {
    /// The cgroups of scope `scope` (see [`scope_of`]) under `version`.
    pub fn new(version: CgroupVersion, scope: &str) -> Self {
        ScopeCgroups { version, rel: format!("{PARENT}/{scope}") }
    }

    /// The scope holding the container cgroup at OCI `cgroups_path`, when
    /// that path has the form `/meseta/<scope>/<id>`; `None` otherwise (so
    /// `/meseta` itself is never taken for a scope).
    pub fn containing(version: CgroupVersion, cgroups_path: &str) -> Option<Self> {
        let rel = cgroups_path.trim_start_matches('/');
        let (parent, scope, id) = match rel.split('/').collect::<Vec<_>>()[..] {
            [parent, scope, id] => (parent, scope, id),
            _ => return None,
        };
        (parent == PARENT && !scope.is_empty() && ContainerId::parse(id).is_some())
            .then(|| ScopeCgroups::new(version, scope))
    }

    /// The scope's directory in `controller`'s hierarchy (v2: the one directory).
    pub fn dir(&self, controller: &str) -> PathBuf {
        dir_of(self.version, &self.rel, controller)
    }

    /// The cgroup of container `id` in this scope.
    pub fn task(&self, id: &ContainerId) -> TaskCgroup {
        TaskCgroup { version: self.version, rel: format!("{}/{id}", self.rel) }
    }

    /// Ids of the containers that have a cgroup in this scope (any hierarchy).
    pub fn containers(&self) -> Vec<ContainerId> {
        let mut ids: Vec<ContainerId> = all_dirs_of(self.version, &self.rel)
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.filter_map(Result::ok).filter(|e| e.path().is_dir()))
            .filter_map(|e| ContainerId::parse(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Removes the scope's directories that are empty (no container
    /// cgroup); never the shared `/meseta` parent, which other agents use.
    /// Callers hold the work dir's cgroup lock exclusively, so no container
    /// of this agent is being placed in the scope meanwhile.
    pub fn remove_if_empty(&self) {
        for dir in all_dirs_of(self.version, &self.rel) {
            // rmdir refuses a cgroup with children or processes: nothing live is lost.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// One container's cgroup.
#[derive(Debug, Clone)]
pub struct TaskCgroup {
    version: CgroupVersion,
    rel: String,
}

impl TaskCgroup {
    /// The cgroup at OCI `cgroups_path` (e.g. a checkpoint's) under `version`.
    pub fn at(version: CgroupVersion, cgroups_path: &str) -> Self {
        TaskCgroup { version, rel: cgroups_path.trim_start_matches('/').to_string() }
    }

    /// The cgroup at OCI `cgroups_path` on this host, or `None` without a cgroup fs.
    pub fn of(cgroups_path: &str) -> Option<Self> {
        Some(TaskCgroup::at(detect()?, cgroups_path))
    }

    /// Which hierarchy it lives in.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory holding `controller`'s files (v2: the one directory).
    pub fn dir(&self, controller: &str) -> PathBuf {
        dir_of(self.version, &self.rel, controller)
    }

    /// Every directory of this cgroup that exists.
    fn dirs(&self) -> Vec<PathBuf> {
        all_dirs_of(self.version, &self.rel).into_iter().filter(|d| d.is_dir()).collect()
    }

    /// Reads one file of `controller`, trimmed.
    pub fn read(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(controller).join(file)).ok().map(|s| s.trim().to_string())
    }

    fn read_u64(&self, controller: &str, file: &str) -> Option<u64> {
        self.read(controller, file)?.parse().ok()
    }

    /// Pids of every process in the cgroup (any hierarchy).
    pub fn procs(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs()
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<u32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Whether the cgroup exists in any hierarchy.
    pub fn exists(&self) -> bool {
        !self.dirs().is_empty()
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = match self.version {
            CgroupVersion::V1 => ("memory.oom_control", "oom_kill"),
            CgroupVersion::V2 => ("memory.events", "oom_kill"),
        };
        let Some(text) = self.read("memory", file) else { return false };
        keyed(&text, key).is_some_and(|n| n > 0)
    }

    /// CPU and memory use now.
    pub fn usage(&self) -> Option<Usage> {
        const MIB: f64 = 1024.0 * 1024.0;
        match self.version {
            CgroupVersion::V1 => Some(Usage {
                cpu_seconds: self.read_u64("cpuacct", "cpuacct.usage")? as f64 / 1e9,
                mem_mib: self.read_u64("memory", "memory.usage_in_bytes")? as f64 / MIB,
                mem_peak_mib: self.read_u64("memory", "memory.max_usage_in_bytes").unwrap_or(0) as f64 / MIB,
            }),
            CgroupVersion::V2 => Some(Usage {
                cpu_seconds: keyed(&self.read("", "cpu.stat")?, "usage_usec")? as f64 / 1e6,
                mem_mib: self.read_u64("", "memory.current")? as f64 / MIB,
                mem_peak_mib: self.read_u64("", "memory.peak").unwrap_or(0) as f64 / MIB,
            }),
        }
    }

    /// SIGKILLs every process left in the cgroup and removes its
    /// directories; returns whether nothing is left.
    pub fn kill_all_and_remove(&self) -> bool {
        for _ in 0..100 {
            let pids = self.procs();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for dir in self.dirs() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove cgroup");
            }
        }
        !self.exists()
    }
}

/// The value of `key` in a `key value` per line file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Usage of the container whose OCI `cgroupsPath` is `cgroups_path`;
/// `None` if it has no cgroup now.
pub fn usage(cgroups_path: &str) -> Option<Usage> {
    let cg = TaskCgroup::of(cgroups_path)?;
    cg.exists().then(|| cg.usage()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_are_parsed_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(text, "oom_kill"), Some(2));
        assert_eq!(keyed(text, "under_oom"), Some(0));
        assert_eq!(keyed(text, "missing"), None);
    }

    #[test]
    fn the_scope_is_a_stable_hash_of_the_canonical_work_dir() {
        let a = scope_of_canonical(Path::new("/var/lib/meseta-agentd"));
        assert_eq!(a, scope_of_canonical(Path::new("/var/lib/meseta-agentd")));
        assert_ne!(a, scope_of_canonical(Path::new("/var/lib/meseta-agentd-2")));
        // FNV-1a 64 of the empty string: the hash does not change between builds.
        assert_eq!(scope_of_canonical(Path::new("")), "agent-cbf29ce484222325");
        assert!(a.starts_with("agent-") && a.len() == 22, "{a}");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert_eq!(scope_of(&link).unwrap(), scope_of(dir.path()).unwrap(), "symlinks are resolved");
    }

    #[test]
    fn container_cgroups_live_under_their_scope_in_v1_and_v2_alike() {
        let id = ContainerId::new("web", "t1").unwrap();
        let path = cgroups_path("agent-00000000000000ab", &id);
        assert_eq!(path, "/meseta/agent-00000000000000ab/web_t1");
        for version in [CgroupVersion::V1, CgroupVersion::V2] {
            let scope = ScopeCgroups::new(version, "agent-00000000000000ab");
            let from_scope = scope.task(&id);
            let from_path = TaskCgroup::at(version, &path);
            assert_eq!(from_scope.dir("memory"), from_path.dir("memory"), "{version:?}");
            assert!(from_scope.dir("memory").starts_with(scope.dir("memory")), "{version:?}");
        }
        let v1 = TaskCgroup::at(CgroupVersion::V1, &path);
        assert_eq!(v1.dir("memory"), Path::new("/sys/fs/cgroup/memory/meseta/agent-00000000000000ab/web_t1"));
        assert_eq!(
            ScopeCgroups::new(CgroupVersion::V1, "agent-00000000000000ab").dir("pids"),
            Path::new("/sys/fs/cgroup/pids/meseta/agent-00000000000000ab")
        );
        let v2 = TaskCgroup::at(CgroupVersion::V2, &path);
        assert_eq!(v2.dir("memory"), Path::new("/sys/fs/cgroup/meseta/agent-00000000000000ab/web_t1"));
        assert_eq!(v2.dir(""), v2.dir("cpu"), "v2 has one directory for every controller");
        let scope = ScopeCgroups::containing(CgroupVersion::V2, &path).unwrap();
        assert_eq!(scope.dir(""), Path::new("/sys/fs/cgroup/meseta/agent-00000000000000ab"));
        assert!(ScopeCgroups::containing(CgroupVersion::V1, "/meseta/web_t1").is_none(), "never /meseta itself");
        assert!(ScopeCgroups::containing(CgroupVersion::V1, "/other/s/web_t1").is_none());
        assert_eq!(all_dirs_of(CgroupVersion::V1, "meseta/x").len(), V1_CONTROLLERS.len());
        assert_eq!(all_dirs_of(CgroupVersion::V2, "meseta/x"), vec![PathBuf::from("/sys/fs/cgroup/meseta/x")]);
    }
}
