//! The OCI runtime spec (`config.json`) of a task on the host filesystem,
//! with the hardening every task gets: its own pid, mount, ipc and uts
//! namespaces, no new privileges, a reduced capability set, the seccomp
//! allow-list of [`super::seccomp`], Docker's masked and read-only paths, and cgroup limits from
//! its resources. Pure: it builds JSON and must not touch the disk.

use serde_json::{json, Value};

use super::config::SANDBOX_MOUNT;
use super::layout::Checkpoint;
use super::{seccomp, seccomp_bpf};
use meseta_schemas::kinds::task::NetworkMode;

/// Host top-level directories that are not bound into a container: the
/// container gets its own `/proc`, `/sys`, `/dev`, `/tmp`, and `/mnt` holds
/// the sandbox mount point.
pub(crate) const NOT_BOUND: [&str; 6] = ["proc", "sys", "dev", "tmp", "mnt", "lost+found"];

/// Capabilities a root task keeps (and the bounding set of every task):
/// Docker's default set without `NET_RAW`, `MKNOD`, `AUDIT_WRITE`,
/// `SYS_CHROOT` and `SETFCAP`.
const CAPABILITIES: [&str; 9] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
];

/// Docker's masked paths: hidden from the task.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READ_ONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What the spec depends on besides the checkpoint.
pub(crate) struct HostFeatures {
    /// Host top-level directories to bind read-only (names under `/`).
    pub(crate) host_dirs: Vec<String>,
    /// Whether to install the seccomp profile (compiled, when the
    /// checkpoint names a filter: see `seccomp_bpf`).
    pub(crate) seccomp: bool,
    /// Whether v1 memory+swap can be limited.
    pub(crate) memsw: bool,
    /// Host path of the sandbox.
    pub(crate) sandbox: String,
    /// Host path of the root filesystem's directory of mount points.
    pub(crate) rootfs: String,
}

/// CFS period used for CPU quotas, microseconds.
pub(crate) const CFS_PERIOD_US: u64 = 100_000;

/// The OCI `config.json` of a container.
pub(crate) fn build(cp: &Checkpoint, host: &HostFeatures) -> Value {
    let cfg = &cp.config;
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let held: Vec<&str> = if cp.uid == 0 { caps.clone() } else { Vec::new() };
    let env: Vec<String> = cfg.env.iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for dir in &host.host_dirs {
        mounts.push(json!({"destination": format!("/{dir}"), "type": "bind", "source": format!("/{dir}"),
                           "options": ["rbind", "ro", "rro"]}));
    }
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777"]}));
    mounts.push(json!({"destination": SANDBOX_MOUNT, "type": "bind", "source": host.sandbox,
                       "options": ["rbind", "rw", "nosuid", "nodev"]}));

    let mut namespaces =
        vec![json!({"type": "pid"}), json!({"type": "mount"}), json!({"type": "ipc"}), json!({"type": "uts"})];
    if cfg.network == NetworkMode::None {
        namespaces.push(json!({"type": "network"}));
    }

    let mut resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        ],
        "pids": {"limit": cfg.pids_limit},
    });
    if cfg.cpus > 0.0 {
        resources["cpu"] = json!({
            "shares": ((cfg.cpus * 1024.0).round() as u64).max(2),
            "quota": ((cfg.cpus * CFS_PERIOD_US as f64).round() as i64).max(1000),
            "period": CFS_PERIOD_US,
        });
    }
    if cfg.mem_mib > 0.0 {
        let limit = (cfg.mem_mib * 1024.0 * 1024.0).round() as i64;
        resources["memory"] = if host.memsw { json!({"limit": limit, "swap": limit}) } else { json!({"limit": limit}) };
    }

    let mut linux = json!({
        "cgroupsPath": cp.cgroups_path,
        "namespaces": namespaces,
        "resources": resources,
        "maskedPaths": MASKED.to_vec(),
        "readonlyPaths": READ_ONLY.to_vec(),
        "rootfsPropagation": "private",
    });
    let mut annotations = json!({});
    // A compiled filter is named by an annotation instead of the profile itself.
    match (&cp.seccomp_bpf, host.seccomp) {
        (Some(bpf), true) => annotations[seccomp_bpf::ANNOTATION] = json!(bpf.display().to_string()),
        (None, true) => linux["seccomp"] = seccomp::profile(),
        (_, false) => {}
    }

    json!({
        "ociVersion": "1.0.2",
        "root": {"path": host.rootfs, "readonly": true},
        "hostname": cfg.id.name().chars().take(63).collect::<String>(),
        "process": {
            "terminal": false,
            "user": {"uid": cp.uid, "gid": cp.gid},
            "args": cfg.argv,
            "env": env,
            "cwd": SANDBOX_MOUNT,
            "noNewPrivileges": true,
            "capabilities": {"bounding": caps, "effective": held, "permitted": held, "inheritable": [], "ambient": []},
        },
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    })
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::task::TaskSpec;

    use super::*;
    use crate::runtime::ContainerConfig;

    fn checkpoint(cpus: f64, mem: f64, network: NetworkMode) -> Checkpoint {
        let mut spec = TaskSpec { command: Some("true".into()), ..Default::default() };
        spec.resources.cpus = cpus;
        spec.resources.mem = mem;
        let mut config = ContainerConfig::from_task("ns", "t", &spec, &[]).unwrap();
        config.network = network;
        let cgroups_path = "/meseta/agent-0123456789abcdef/ns_t".into();
        Checkpoint { config, uid: 65534, gid: 65534, cgroups_path, seccomp_bpf: None }
    }

    fn host() -> HostFeatures {
        HostFeatures {
            host_dirs: vec!["usr".into()],
            seccomp: true,
            memsw: true,
            sandbox: "/w/s".into(),
            rootfs: "/w/rootfs".into(),
        }
    }

    #[test]
    fn the_spec_is_a_valid_oci_runtime_spec() {
        let v = build(&checkpoint(1.5, 64.0, NetworkMode::None), &host());
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(std::path::Path::new("/meseta/agent-0123456789abcdef/ns_t")));
        let seccomp = linux.seccomp().as_ref().unwrap();
        assert_eq!(seccomp.default_action(), oci_spec::runtime::LinuxSeccompAction::ScmpActErrno);
    }

    #[test]
    fn a_compiled_filter_replaces_the_profile_by_an_annotation() {
        let cp = Checkpoint { seccomp_bpf: Some("/w/seccomp/1.bpf".into()), ..checkpoint(0.0, 0.0, NetworkMode::Host) };
        let v = build(&cp, &host());
        assert!(v["linux"].get("seccomp").is_none(), "libcontainer must not compile it again");
        assert_eq!(v["annotations"][seccomp_bpf::ANNOTATION], "/w/seccomp/1.bpf");
        let off = HostFeatures { seccomp: false, ..host() };
        let v = build(&cp, &off);
        assert!(v["linux"].get("seccomp").is_none() && v["annotations"].get(seccomp_bpf::ANNOTATION).is_none());
    }

    #[test]
    fn limits_follow_the_resources() {
        let v = build(&checkpoint(1.5, 64.0, NetworkMode::Host), &host());
        let r = &v["linux"]["resources"];
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 1536);
        assert_eq!(r["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(r["memory"]["swap"], 64 * 1024 * 1024);
    }

    #[test]
    fn a_task_without_resources_gets_no_cpu_or_memory_limit() {
        let v = build(&checkpoint(0.0, 0.0, NetworkMode::Host), &host());
        assert!(v["linux"]["resources"].get("cpu").is_none());
        assert!(v["linux"]["resources"].get("memory").is_none());
    }

    #[test]
    fn only_network_none_gets_a_private_network_namespace() {
        let has_net = |v: &Value| v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "network");
        assert!(has_net(&build(&checkpoint(0.0, 0.0, NetworkMode::None), &host())));
        assert!(!has_net(&build(&checkpoint(0.0, 0.0, NetworkMode::Host), &host())));
    }

    #[test]
    fn an_unprivileged_user_holds_no_capability() {
        let v = build(&checkpoint(0.0, 0.0, NetworkMode::Host), &host());
        assert_eq!(v["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert!(!v["process"]["capabilities"]["bounding"].as_array().unwrap().contains(&json!("CAP_SYS_ADMIN")));
    }
}
