//! The peer: `crun run` / `runc run` of the same container the agent runs.
//!
//! The bundle's `config.json` is the agent's own, captured from a running
//! task's bundle (same namespaces, seccomp profile, capabilities, masked
//! paths, cgroup limits, user `nobody`), with only the process (`/bin/true`),
//! the cgroup path, the sandbox bind source and the rootfs path changed, and
//! the agent's seccomp profile put back where its `config.json` names the
//! precompiled filter its shims install instead. The
//! rootfs is built the agent's way: an empty directory of mount points, the
//! host's top-level directories bound read-only, its top-level symlinks
//! copied. Runs happen inside one private mount namespace without the
//! cgroup2 mount (`/sys/fs/cgroup/unified`): Debian's crun 1.8.1 refuses the
//! hybrid layout otherwise. Each run enters it through `nsenter` (one more
//! `exec`, timed with the run; [`time_nsenter`] measures it alone).
//!
//! It must not touch the agent's work dir beyond reading the captured file.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Cgroup parent of the peer's containers.
pub const CGROUP_PARENT: &str = "meseta-bench-peer";
/// Where the bundle's sandbox is mounted (the agent's `SANDBOX_MOUNT`).
const SANDBOX_MOUNT: &str = "/mnt/sandbox";
/// Host top-level directories the agent does not bind (its `NOT_BOUND`).
const NOT_BOUND: [&str; 6] = ["proc", "sys", "dev", "tmp", "mnt", "lost+found"];

/// A bundle on disk.
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
}

impl Bundle {
    /// Writes a bundle under `dir` from the agent's `config.json` (`agent_config`).
    pub fn from_agent_config(dir: &Path, agent_config: &Value) -> anyhow::Result<Bundle> {
        let rootfs = dir.join("rootfs");
        let sandbox = dir.join("sandbox");
        prepare_rootfs(&rootfs)?;
        std::fs::create_dir_all(&sandbox)?;
        let mut config = agent_config.clone();
        let uid = config["process"]["user"]["uid"].as_u64().context("config.json has no process.user.uid")? as u32;
        let gid = config["process"]["user"]["gid"].as_u64().context("config.json has no process.user.gid")? as u32;
        std::os::unix::fs::chown(&sandbox, Some(uid), Some(gid)).context("chown the peer's sandbox")?;
        config["process"]["args"] = json!(["/bin/true"]);
        config["root"]["path"] = json!(rootfs.display().to_string());
        config["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/peer"));
        // The agent's shim installs its precompiled filter itself; a peer compiles the profile.
        if let Some(a) = config["annotations"].as_object_mut() {
            if a.remove(meseta_agentd::runtime::seccomp_bpf::ANNOTATION).is_some() {
                config["linux"]["seccomp"] = meseta_agentd::runtime::seccomp_profile();
            }
        }
        let mounts = config["mounts"].as_array_mut().context("config.json has no mounts")?;
        let sandbox_mount = mounts
            .iter_mut()
            .find(|m| m["destination"] == SANDBOX_MOUNT)
            .context("config.json does not mount the sandbox")?;
        sandbox_mount["source"] = json!(sandbox.display().to_string());
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        Ok(Bundle { dir: dir.to_path_buf() })
    }

    /// Sets the cgroup path of the next run (each run gets its own).
    fn set_cgroup(&self, id: &str) -> anyhow::Result<()> {
        let path = self.dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{id}"));
        std::fs::write(&path, serde_json::to_vec(&config)?)?;
        Ok(())
    }
}

/// The agent's rootfs recipe (`prepare_rootfs` in the agent's Linux runtime).
fn prepare_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(rootfs)?;
    for entry in std::fs::read_dir("/")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let target = rootfs.join(&name);
        if NOT_BOUND.contains(&name.as_str()) {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        }
    }
    std::fs::create_dir_all(rootfs.join(SANDBOX_MOUNT.trim_start_matches('/')))?;
    Ok(())
}

/// A process holding a private mount namespace without the cgroup2 mount;
/// killed when dropped.
pub struct PrivateMounts {
    holder: Child,
}

impl PrivateMounts {
    /// `unshare -m` a `sleep` after unmounting `/sys/fs/cgroup/unified` (if mounted).
    pub fn start() -> anyhow::Result<PrivateMounts> {
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified 2>/dev/null; echo ready; exec sleep 1000000")
            .stdout(Stdio::piped())
            .spawn()
            .context("running unshare (util-linux) for a private mount namespace")?;
        let mut line = String::new();
        BufReader::new(holder.stdout.take().context("unshare stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = holder.kill();
            bail!("the private mount namespace did not start (unshare printed {line:?})");
        }
        Ok(PrivateMounts { holder })
    }

    /// A command that runs `program` inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id())).arg("--").arg(program);
        cmd
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Where `program` is on `PATH`, if anywhere.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/sbin"].map(|d| Path::new(d).join(program)))
        .find(|p| p.is_file())
}

/// Times `runtime run --bundle B id` end to end once (ms); the run must
/// exit 0. `round` makes the container id (and its cgroup) unique.
pub fn time_run(mounts: &PrivateMounts, runtime: &Path, bundle: &Bundle, round: usize) -> anyhow::Result<f64> {
    let name = runtime.file_name().map_or("runtime".into(), |n| n.to_string_lossy().to_string());
    let id = format!("bench-{name}-{}-{round}", std::process::id());
    bundle.set_cgroup(&id)?;
    let begin = Instant::now();
    let out = mounts
        .command(runtime)
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", runtime.display()))?;
    let ms = begin.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!("{name} run {id} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(ms)
}

/// Times `nsenter` into the namespace running `/bin/true` once (ms): the
/// share of a peer run that is not the runtime's.
pub fn time_nsenter(mounts: &PrivateMounts) -> anyhow::Result<f64> {
    let begin = Instant::now();
    let status = mounts.command(Path::new("/bin/true")).status().context("running nsenter")?;
    let ms = begin.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("nsenter into the private mount namespace failed: {status}");
    }
    Ok(ms)
}

/// Removes the peer's (empty) cgroup parent from every hierarchy.
pub fn remove_cgroup_parent() {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    for e in entries.flatten() {
        let dir = e.path().join(CGROUP_PARENT);
        if let Ok(children) = std::fs::read_dir(&dir) {
            for c in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(c.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}
