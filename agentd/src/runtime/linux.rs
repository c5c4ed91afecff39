//! [`LinuxRuntime`]: real Linux containers through youki's `libcontainer`,
//! on the host filesystem (read-only) with cgroup limits.
//!
//! The agent process never calls libcontainer's `build` / `start` (they fork
//! and change the cwd, unsafe in a multi-threaded tokio process): `start`
//! has one shim per container ([`crate::shim`]) forked by the runtime's
//! fork server ([`super::forkserver`]: the agent's own binary with the hidden
//! `fork-server` subcommand, started with the first container and kept
//! while the runtime lives). Signals go through
//! `Container::load(..).kill(..)` on a blocking thread, which is safe.
//!
//! Everything is kept on disk (see `layout`), so a new `LinuxRuntime` on the
//! same work dir lists and follows the containers of an earlier one.
//!
//! Container cgroups live in the runtime's own scope, `/meseta/<scope>/<id>`
//! with the scope derived from the work dir ([`cgroups::scope_of`]), and
//! libcontainer's state root is `<work>/run`: a runtime on another work dir
//! (another agent on the host, another test run) never lists, kills nor
//! removes this one's containers or cgroups.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use libcontainer::container::Container;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use super::attach_primer::AttachPrimer;
use super::cgroups::{self, CgroupVersion, ScopeCgroups, TaskCgroup};
use super::forkserver::ForkServer;
use super::host::{lookup_user, prepare_rootfs};
use super::layout::{self, Checkpoint, ExitRecord, Layout, ShimRecord};
use super::seccomp_bpf;
use super::spec::{self, HostFeatures};
use super::{ContainerConfig, ContainerId, ContainerRuntime, ContainerState, RuntimeError, Signal, Usage};

/// How long `start` waits for the shim to report.
const SHIM_REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the kernel can filter system calls with seccomp (the runtime
/// then installs its profile in every container).
pub fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

/// Real containers under one work dir.
#[derive(Debug, Clone)]
pub struct LinuxRuntime {
    layout: Layout,
    shim: PathBuf,
    cgroup_version: CgroupVersion,
    /// This runtime's cgroup scope (see [`cgroups::scope_of`]).
    scope: String,
    seccomp: bool,
    /// The seccomp profile compiled once (see [`seccomp_bpf`]); `None`
    /// when seccomp is off, or when compiling failed (libcontainer then
    /// compiles the profile in every container).
    seccomp_bpf: Option<PathBuf>,
    /// Starts the cgroup attach grace period when a container is created
    /// (see [`super::attach_primer`]); `None` if its thread did not start.
    primer: Option<AttachPrimer>,
    /// The fork server that forks this runtime's shims, started with the
    /// first container (see [`super::forkserver`]).
    forks: Arc<Mutex<Option<ForkServer>>>,
    /// Containers this runtime started, each with what its shim's pipe said
    /// so far, and whether [`ContainerRuntime::exited`] has told it.
    exits: Arc<Mutex<HashMap<ContainerId, ShimPipe>>>,
}

/// A started shim's reports, and whether `exited` has passed them on.
type ShimPipe = (watch::Receiver<ShimProgress>, bool);

/// What a started shim has said on its pipe.
#[derive(Debug, Clone, Default)]
struct ShimProgress {
    /// How the process ended (its `ended` line), before the cleanup.
    ended: Option<ContainerState>,
    /// The shim is done: `exit.json` is written and the container is gone
    /// (its `exited` line, or the pipe closed).
    done: bool,
}

/// How long `delete` waits for a shim to finish cleaning up after its
/// process ended.
const SHIM_CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

impl LinuxRuntime {
    /// A runtime keeping its state under `work_dir` and running `shim_binary
    /// shim ...` per container (normally `/proc/self/exe`, the agent itself).
    /// Fails with [`RuntimeError::Unavailable`] unless run as root on a host
    /// with a cgroup filesystem.
    ///
    /// Container cgroups go under `/meseta/<scope>/`, the scope being
    /// [`cgroups::scope_of`] the work dir. Cgroups left in that scope without
    /// a container on disk (e.g. by a shim killed mid-cleanup) are killed
    /// and removed here; other scopes are never looked at.
    pub fn new(work_dir: impl Into<PathBuf>, shim_binary: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Unavailable("the agent must run as root to create containers".into()));
        }
        let cgroup_version = cgroups::detect()
            .ok_or_else(|| RuntimeError::Unavailable("no cgroup filesystem under /sys/fs/cgroup".into()))?;
        let shim = shim_binary.into();
        if !shim.exists() {
            return Err(RuntimeError::Unavailable(format!("shim binary {} does not exist", shim.display())));
        }
        let work_dir = std::path::absolute(work_dir.into()).map_err(|e| RuntimeError::io("work dir", e))?;
        let layout = Layout::new(&work_dir);
        for dir in [layout.containers(), layout.libcontainer_root()] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        }
        let scope = cgroups::scope_of(&work_dir).map_err(|e| RuntimeError::io(&work_dir, e))?;
        let seccomp = seccomp_available();
        let seccomp_bpf = seccomp
            .then(|| match seccomp_bpf::compile_cached(&layout.seccomp(), &super::seccomp_profile()) {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot precompile the seccomp profile; every container compiles it");
                    None
                }
            })
            .flatten();
        let primer = AttachPrimer::start(cgroup_version)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot start the cgroup primer thread"))
            .ok();
        let runtime = LinuxRuntime {
            layout,
            primer,
            shim,
            cgroup_version,
            scope,
            seccomp,
            seccomp_bpf,
            forks: Arc::default(),
            exits: Arc::default(),
        };
        runtime.remove_leftover_cgroups()?;
        Ok(runtime)
    }

    /// The cgroup version containers are placed in.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.cgroup_version
    }

    /// This runtime's cgroup scope: `/meseta/<scope>/` holds its containers' cgroups.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The cgroups of this runtime's scope.
    pub fn scope_cgroups(&self) -> ScopeCgroups {
        ScopeCgroups::new(self.cgroup_version, &self.scope)
    }

    /// The cgroup of container `id`: the one its checkpoint recorded, or
    /// where this runtime would place it.
    pub fn cgroup(&self, id: &ContainerId) -> TaskCgroup {
        match self.checkpoint(id) {
            Ok(cp) => TaskCgroup::at(self.cgroup_version, &cp.cgroups_path),
            Err(_) => self.scope_cgroups().task(id),
        }
    }

    /// Kills and removes the cgroups of this scope that belong to no
    /// container on disk, then the scope itself if it is left empty.
    fn remove_leftover_cgroups(&self) -> Result<(), RuntimeError> {
        let scope = self.scope_cgroups();
        for id in scope.containers() {
            if !self.layout.checkpoint(&id).exists() {
                tracing::info!(%id, scope = %self.scope, "removing a leftover container cgroup");
                scope.task(&id).kill_all_and_remove();
            }
        }
        let _lock = layout::lock_cgroups(&self.layout, true)?;
        scope.remove_if_empty();
        Ok(())
    }

    /// Host path of a container's sandbox (its stdout, stderr and files).
    pub fn sandbox_dir(&self, id: &ContainerId) -> PathBuf {
        self.layout.sandbox(id)
    }

    /// Resource usage of a running container.
    pub fn usage(&self, id: &ContainerId) -> Option<Usage> {
        let cg = self.cgroup(id);
        cg.exists().then(|| cg.usage()).flatten()
    }

    /// Reads the rest of a started shim's stdout: its `ended <record>` line
    /// (how the process ended, sent before the cleanup), then its `exited`
    /// line (written after `exit.json`) or the end of the pipe.
    /// [`ContainerRuntime::exited`] waits for the first, `delete` for the last.
    fn follow_exit<R: AsyncRead + Unpin + Send + 'static>(&self, id: &ContainerId, mut reader: BufReader<R>) {
        let (tx, rx) = watch::channel(ShimProgress::default());
        self.exits.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), (rx, false));
        tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.trim() == "exited" => break,
                    Ok(_) => {
                        if let Some(record) = line.trim().strip_prefix("ended ") {
                            match serde_json::from_str::<ExitRecord>(record) {
                                Ok(e) => tx.send_modify(|p| {
                                    p.ended =
                                        Some(ContainerState::Exited { code: e.code, oom: e.oom, message: e.message })
                                }),
                                Err(e) => tracing::warn!(error = %e, "the shim's ended line is not an exit record"),
                            }
                        }
                    }
                }
            }
            tx.send_modify(|p| p.done = true);
        });
    }

    /// Waits (a bounded time) for the shim of a container this runtime
    /// started to finish its cleanup, then forgets the shim.
    async fn shim_done(&self, id: &ContainerId) {
        let rx = self.exits.lock().unwrap_or_else(|e| e.into_inner()).get(id).map(|(rx, _)| rx.clone());
        if let Some(mut rx) = rx {
            if tokio::time::timeout(SHIM_CLEANUP_TIMEOUT, rx.wait_for(|p| p.done)).await.is_err() {
                tracing::warn!(%id, "the container's shim is still cleaning up");
            }
        }
        self.exits.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Has the fork server fork the shim of `id` (reporting on `stdout`,
    /// logging to `log`), starting the server first if it is not running;
    /// one more try with a new server if the request fails. Returns the
    /// shim's pid.
    fn fork_shim(
        &self,
        id: &ContainerId,
        stdout: std::os::fd::OwnedFd,
        log: std::fs::File,
    ) -> Result<u32, RuntimeError> {
        let mut server = self.forks.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if !server.as_mut().is_some_and(ForkServer::alive) {
                let path = self.layout.fork_server_log();
                let server_log = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|e| RuntimeError::io(&path, e))?;
                let started = ForkServer::spawn(&self.shim, self.layout.root(), server_log)
                    .map_err(|e| RuntimeError::io(&self.shim, e))?;
                *server = Some(started);
            }
            let Some(s) = server.as_ref() else { continue };
            match s.fork_shim(id.as_str(), stdout.as_fd(), log.as_fd()) {
                Ok(pid) => return Ok(pid),
                Err(e) => {
                    tracing::warn!(error = %e, "the shim fork server failed; starting a new one");
                    *server = None;
                    last = Some(e);
                }
            }
        }
        let message = format!(
            "forking the shim: {} (the fork server's own errors are in {}; is `{}` a binary that knows the hidden `{}` subcommand?)",
            last.map(|e| e.to_string()).unwrap_or_default(),
            self.layout.fork_server_log().display(),
            self.shim.display(),
            super::forkserver::SUBCOMMAND,
        );
        Err(RuntimeError::Container { id: id.clone(), message })
    }

    fn checkpoint(&self, id: &ContainerId) -> Result<Checkpoint, RuntimeError> {
        layout::read_json(&self.layout.checkpoint(id))?.ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    /// The state from the records on disk and the processes alive.
    fn state_blocking(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        self.checkpoint(id)?;
        if let Some(exit) = layout::read_json::<ExitRecord>(&self.layout.exit_record(id))? {
            return Ok(ContainerState::Exited { code: exit.code, oom: exit.oom, message: exit.message });
        }
        let Some(shim) = layout::read_json::<ShimRecord>(&self.layout.shim_record(id))? else {
            return Ok(ContainerState::Created);
        };
        let shim_alive = layout::process_alive(shim.shim_pid)
            && layout::process_start_time(shim.shim_pid) == Some(shim.shim_start_time);
        if shim_alive || layout::process_alive(shim.init_pid) {
            return Ok(ContainerState::Running { pid: shim.init_pid });
        }
        // The shim may have written exit.json between the two reads above.
        match layout::read_json::<ExitRecord>(&self.layout.exit_record(id))? {
            Some(exit) => Ok(ContainerState::Exited { code: exit.code, oom: exit.oom, message: exit.message }),
            None => Ok(ContainerState::Unknown),
        }
    }

    fn create_blocking(&self, config: &ContainerConfig) -> Result<(), RuntimeError> {
        config.check_supported()?;
        let id = &config.id;
        if self.layout.checkpoint(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.clone()));
        }
        let (uid, gid) = lookup_user(config.user.as_deref())?;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| RuntimeError::io(p, e)
        };
        let sandbox = self.layout.sandbox(id);
        std::fs::create_dir_all(&sandbox).map_err(io(&sandbox))?;
        for name in ["stdout", "stderr"] {
            let f = sandbox.join(name);
            std::fs::OpenOptions::new().append(true).create(true).open(&f).map_err(io(&f))?;
            nix::unistd::chown(&f, Some(uid.into()), Some(gid.into())).map_err(|e| io(&f)(e.into()))?;
        }
        nix::unistd::chown(&sandbox, Some(uid.into()), Some(gid.into())).map_err(|e| io(&sandbox)(e.into()))?;

        let rootfs = self.layout.rootfs();
        let host_dirs = prepare_rootfs(&rootfs)?;
        let checkpoint = Checkpoint {
            config: config.clone(),
            uid,
            gid,
            cgroups_path: cgroups::cgroups_path(&self.scope, id),
            seccomp_bpf: self.seccomp_bpf.clone(),
        };
        let host = HostFeatures {
            host_dirs,
            seccomp: self.seccomp,
            memsw: self.cgroup_version == CgroupVersion::V1 && cgroups::memsw_available(),
            sandbox: sandbox.display().to_string(),
            rootfs: rootfs.display().to_string(),
        };
        let oci = spec::build(&checkpoint, &host);
        let bundle = self.layout.bundle(id);
        std::fs::create_dir_all(&bundle).map_err(io(&bundle))?;
        layout::write_json(&bundle.join("config.json"), &oci)?;
        // Last: its presence means "created".
        layout::write_json(&self.layout.checkpoint(id), &checkpoint)
    }

    fn kill_blocking(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        if !matches!(self.state_blocking(id)?, ContainerState::Running { .. }) {
            return Ok(());
        }
        let root = self.layout.libcontainer_root().join(id.as_str());
        let result = Container::load(root).and_then(|mut c| c.kill(signal, true));
        match result {
            Ok(()) => Ok(()),
            // It may have exited in between: its shim may be cleaning up
            // (libcontainer's state is gone, `exit.json` not yet written).
            Err(_) if !matches!(self.state_blocking(id)?, ContainerState::Running { .. }) => Ok(()),
            Err(_) if !self.init_alive(id) => Ok(()),
            Err(e) => Err(RuntimeError::Container { id: id.clone(), message: format!("kill {signal}: {e}") }),
        }
    }

    /// Whether the container's first process is alive, per its shim's record.
    fn init_alive(&self, id: &ContainerId) -> bool {
        matches!(layout::read_json::<ShimRecord>(&self.layout.shim_record(id)), Ok(Some(shim)) if layout::process_alive(shim.init_pid))
    }

    fn delete_blocking(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let state = match self.state_blocking(id) {
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            other => other?,
        };
        if let ContainerState::Running { .. } = state {
            return Err(RuntimeError::InvalidState { id: id.clone(), op: "delete", state: format!("{state:?}") });
        }
        let root = self.layout.libcontainer_root().join(id.as_str());
        if root.exists() {
            if let Ok(mut c) = Container::load(root.clone()) {
                let _ = c.delete(true);
            }
            let _ = std::fs::remove_dir_all(&root);
        }
        let cg = self.cgroup(id);
        if !cg.kill_all_and_remove() {
            return Err(RuntimeError::Container { id: id.clone(), message: "its cgroup could not be removed".into() });
        }
        let dir = self.layout.container(id);
        std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        let _lock = layout::lock_cgroups(&self.layout, true)?;
        self.scope_cgroups().remove_if_empty();
        Ok(())
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LinuxRuntime) -> Result<T, RuntimeError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, RuntimeError>> {
        let me = self.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&me))
                .await
                .map_err(|e| RuntimeError::Unavailable(format!("blocking task failed: {e}")))?
        }
    }
}

#[async_trait]
impl ContainerRuntime for LinuxRuntime {
    #[tracing::instrument(skip_all, fields(id = %config.id))]
    async fn create(&self, config: &ContainerConfig) -> Result<(), RuntimeError> {
        // First: the container's cgroup attach comes a few milliseconds from now.
        if let Some(primer) = &self.primer {
            primer.prime();
        }
        let config = config.clone();
        self.blocking(move |rt| rt.create_blocking(&config)).await
    }

    #[tracing::instrument(skip(self))]
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let log_path = self.layout.shim_log(id);
        let (shim, ours) = {
            let (id, log_path) = (id.clone(), log_path.clone());
            self.blocking(move |rt| {
                let state = rt.state_blocking(&id)?;
                if state != ContainerState::Created {
                    return Err(RuntimeError::InvalidState { id, op: "start", state: format!("{state:?}") });
                }
                let log = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log_path)
                    .map_err(|e| RuntimeError::io(&log_path, e))?;
                let (ours, theirs) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| RuntimeError::io(&log_path, e.into()))?;
                Ok((rt.fork_shim(&id, theirs, log)?, ours))
            })
            .await?
        };
        tracing::debug!(shim, "shim forked");
        let stdout =
            tokio::net::unix::pipe::Receiver::from_owned_fd(ours).map_err(|e| RuntimeError::io(&log_path, e))?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(SHIM_REPORT_TIMEOUT, reader.read_line(&mut line)).await;
        match read {
            Ok(Ok(_)) if line.starts_with("started ") => {
                tracing::debug!(report = line.trim(), "shim reported");
                self.follow_exit(id, reader);
                Ok(())
            }
            Ok(Ok(_)) if line.trim() == "exited" => {
                tracing::debug!(report = line.trim(), "shim reported");
                Ok(())
            }
            _ => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: String =
                    log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("; ");
                Err(RuntimeError::Container {
                    id: id.clone(),
                    message: format!("shim failed to start the container: {tail}"),
                })
            }
        }
    }

    /// Resolves once the shim of a container this runtime started says how
    /// its process ended (its `ended` line), or is done (its `exited` line,
    /// or its pipe closing: `None`, read the state), then no more.
    async fn exited(&self, id: &ContainerId) -> Option<ContainerState> {
        let rx = self
            .exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|(_, told)| !told)
            .map(|(rx, _)| rx.clone());
        let Some(mut rx) = rx else { return std::future::pending().await };
        let ended = match rx.wait_for(|p| p.ended.is_some() || p.done).await {
            Ok(p) => p.ended.clone(),
            Err(_) => None,
        };
        if let Some((_, told)) = self.exits.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            *told = true;
        }
        ended
    }

    #[tracing::instrument(skip(self))]
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        let id = id.clone();
        self.blocking(move |rt| rt.kill_blocking(&id, signal)).await
    }

    #[tracing::instrument(skip(self))]
    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        // A shim that reported its process' end may still be cleaning up.
        self.shim_done(id).await;
        let id = id.clone();
        self.blocking(move |rt| rt.delete_blocking(&id)).await
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        let id = id.clone();
        self.blocking(move |rt| rt.state_blocking(&id)).await
    }

    async fn usage(&self, id: &ContainerId) -> Option<Usage> {
        let id = id.clone();
        self.blocking(move |rt| Ok(LinuxRuntime::usage(rt, &id))).await.ok().flatten()
    }

    async fn list(&self) -> Result<Vec<ContainerId>, RuntimeError> {
        self.blocking(|rt| {
            let dir = rt.layout.containers();
            let entries = std::fs::read_dir(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
            let mut ids: Vec<ContainerId> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| ContainerId::parse(&e.file_name().to_string_lossy()))
                .filter(|id| rt.layout.checkpoint(id).exists())
                .collect();
            ids.sort();
            Ok(ids)
        })
        .await
    }
}
