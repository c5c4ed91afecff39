//! The cgroups of containers: where they are (v1 or v2), what they use, and
//! whether the OOM killer visited them. Reads and cleans up; it must not set
//! limits (libcontainer writes those from the OCI spec).

use std::path::{Path, PathBuf};

use super::{ContainerId, Usage};

/// Root of the cgroup filesystem.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (under every hierarchy) that holds every container's cgroup.
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

/// The OCI `cgroupsPath` of a container.
pub fn cgroups_path(id: &ContainerId) -> String {
    format!("/{PARENT}/{id}")
}

/// One container's cgroup.
#[derive(Debug, Clone)]
pub struct TaskCgroup {
    version: CgroupVersion,
    rel: String,
}

impl TaskCgroup {
    /// The cgroup of container `id`, or `None` without a cgroup fs.
    pub fn of(id: &ContainerId) -> Option<Self> {
        Some(TaskCgroup { version: detect()?, rel: format!("{PARENT}/{id}") })
    }

    /// Which hierarchy it lives in.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory holding `controller`'s files (v2: the one directory).
    pub fn dir(&self, controller: &str) -> PathBuf {
        match self.version {
            CgroupVersion::V1 => Path::new(CGROUP_ROOT).join(controller).join(&self.rel),
            CgroupVersion::V2 => Path::new(CGROUP_ROOT).join(&self.rel),
        }
    }

    /// Every directory of this cgroup that exists.
    fn dirs(&self) -> Vec<PathBuf> {
        let dirs: Vec<PathBuf> = match self.version {
            CgroupVersion::V1 => V1_CONTROLLERS.iter().map(|c| self.dir(c)).collect(),
            CgroupVersion::V2 => vec![self.dir("")],
        };
        dirs.into_iter().filter(|d| d.is_dir()).collect()
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

/// Usage of container `id` from its cgroup; `None` if it has none now.
pub fn usage(id: &ContainerId) -> Option<Usage> {
    let cg = TaskCgroup::of(id)?;
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
}
