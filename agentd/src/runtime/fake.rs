//! [`FakeRuntime`]: the [`ContainerRuntime`] of simulated agents. Containers
//! live in memory and "run" on `tokio::time`: each starts after a delay,
//! runs for a while and exits with a chosen code, or runs until killed.
//! Nothing is executed and nothing touches the disk, so thousands of
//! simulated agents fit in one test process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{ContainerConfig, ContainerId, ContainerRuntime, ContainerState, RuntimeError, Signal};

/// How fake containers behave.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBehavior {
    /// How long `start` takes.
    pub start_delay: Duration,
    /// How long the process runs before it exits by itself; `None`: until killed.
    pub run_for: Option<Duration>,
    /// Exit code when it exits by itself.
    pub exit_code: i32,
    /// Whether SIGTERM is ignored (like a shell as PID 1), so only SIGKILL ends it.
    pub ignore_sigterm: bool,
}

impl Default for FakeBehavior {
    /// Starts at once, runs until killed, honours SIGTERM.
    fn default() -> Self {
        FakeBehavior { start_delay: Duration::ZERO, run_for: None, exit_code: 0, ignore_sigterm: false }
    }
}

#[derive(Debug)]
struct FakeContainer {
    behavior: FakeBehavior,
    started: Option<(Instant, u32)>,
    exited: Option<ContainerState>,
}

impl FakeContainer {
    /// The state, with a self-exit applied once its run time has passed.
    fn refresh(&mut self, now: Instant) -> ContainerState {
        if let Some(exited) = &self.exited {
            return exited.clone();
        }
        let Some((at, pid)) = self.started else { return ContainerState::Created };
        match self.behavior.run_for {
            Some(run_for) if now >= at + run_for => {
                let state =
                    ContainerState::Exited { code: self.behavior.exit_code, oom: false, message: String::new() };
                self.exited = Some(state.clone());
                state
            }
            _ => ContainerState::Running { pid },
        }
    }
}

/// An in-memory [`ContainerRuntime`].
#[derive(Debug, Default)]
pub struct FakeRuntime {
    default: FakeBehavior,
    inner: Mutex<FakeInner>,
}

#[derive(Debug, Default)]
struct FakeInner {
    overrides: BTreeMap<ContainerId, FakeBehavior>,
    containers: BTreeMap<ContainerId, FakeContainer>,
    next_pid: u32,
}

impl FakeRuntime {
    /// A fake runtime whose containers behave as `default`.
    pub fn new(default: FakeBehavior) -> Self {
        FakeRuntime { default, inner: Mutex::new(FakeInner { next_pid: 1000, ..Default::default() }) }
    }

    /// Makes container `id` (when created later) behave as `behavior`.
    pub fn set_behavior(&self, id: ContainerId, behavior: FakeBehavior) {
        self.lock().overrides.insert(id, behavior);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn create(&self, config: &ContainerConfig) -> Result<(), RuntimeError> {
        config.check_supported()?;
        let mut inner = self.lock();
        if inner.containers.contains_key(&config.id) {
            return Err(RuntimeError::AlreadyExists(config.id.clone()));
        }
        let behavior = inner.overrides.get(&config.id).cloned().unwrap_or_else(|| self.default.clone());
        inner.containers.insert(config.id.clone(), FakeContainer { behavior, started: None, exited: None });
        Ok(())
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let delay = {
            let inner = self.lock();
            let c = inner.containers.get(id).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
            if c.started.is_some() {
                return Err(RuntimeError::InvalidState { id: id.clone(), op: "start", state: "started".into() });
            }
            c.behavior.start_delay
        };
        tokio::time::sleep(delay).await;
        let mut inner = self.lock();
        inner.next_pid += 1;
        let pid = inner.next_pid;
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        c.started = Some((Instant::now(), pid));
        Ok(())
    }

    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if !matches!(c.refresh(Instant::now()), ContainerState::Running { .. }) {
            return Ok(());
        }
        let ignored = matches!(signal, Signal::SIGTERM) && c.behavior.ignore_sigterm;
        let ends = matches!(signal, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP);
        if ends && !ignored {
            let message = format!("killed by signal {}", signal.as_str().trim_start_matches("SIG"));
            c.exited = Some(ContainerState::Exited { code: 128 + signal as i32, oom: false, message });
        }
        Ok(())
    }

    async fn delete(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        let Some(c) = inner.containers.get_mut(id) else { return Ok(()) };
        if let state @ ContainerState::Running { .. } = c.refresh(Instant::now()) {
            return Err(RuntimeError::InvalidState { id: id.clone(), op: "delete", state: format!("{state:?}") });
        }
        inner.containers.remove(id);
        Ok(())
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        let mut inner = self.lock();
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        Ok(c.refresh(Instant::now()))
    }

    async fn list(&self) -> Result<Vec<ContainerId>, RuntimeError> {
        Ok(self.lock().containers.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::task::TaskSpec;

    use super::*;
    use crate::runtime::kill_with_grace;

    fn config(name: &str) -> ContainerConfig {
        let spec = TaskSpec { command: Some("true".into()), ..Default::default() };
        ContainerConfig::from_task("ns", name, &spec, &[]).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_runs_for_its_run_time_then_exits_with_its_code() {
        let rt = FakeRuntime::new(FakeBehavior {
            start_delay: Duration::from_millis(500),
            run_for: Some(Duration::from_secs(10)),
            exit_code: 3,
            ignore_sigterm: false,
        });
        let c = config("a");
        rt.create(&c).await.unwrap();
        assert_eq!(rt.state(&c.id).await.unwrap(), ContainerState::Created);
        let before = Instant::now();
        rt.start(&c.id).await.unwrap();
        assert_eq!(before.elapsed(), Duration::from_millis(500));
        assert!(matches!(rt.state(&c.id).await.unwrap(), ContainerState::Running { .. }));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            rt.state(&c.id).await.unwrap(),
            ContainerState::Exited { code: 3, oom: false, message: String::new() }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_ignoring_containers_end_only_after_the_grace_period() {
        let rt = FakeRuntime::new(FakeBehavior { ignore_sigterm: true, ..Default::default() });
        let c = config("b");
        rt.create(&c).await.unwrap();
        rt.start(&c.id).await.unwrap();
        let before = Instant::now();
        let state = kill_with_grace(&rt, &c.id, Duration::from_secs(2)).await.unwrap();
        assert!(before.elapsed() >= Duration::from_secs(2));
        assert!(matches!(state, ContainerState::Exited { code: 137, .. }), "{state:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_honouring_containers_end_without_sigkill() {
        let rt = FakeRuntime::default();
        let c = config("c");
        rt.create(&c).await.unwrap();
        rt.start(&c.id).await.unwrap();
        let state = kill_with_grace(&rt, &c.id, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(state, ContainerState::Exited { code: 143, .. }), "{state:?}");
    }

    #[tokio::test]
    async fn list_create_twice_and_delete_behave_like_the_real_runtime() {
        let rt = FakeRuntime::default();
        let (a, b) = (config("a"), config("b"));
        rt.create(&a).await.unwrap();
        rt.create(&b).await.unwrap();
        assert!(matches!(rt.create(&a).await, Err(RuntimeError::AlreadyExists(_))));
        assert_eq!(rt.list().await.unwrap(), vec![a.id.clone(), b.id.clone()]);
        rt.start(&a.id).await.unwrap();
        assert!(matches!(rt.delete(&a.id).await, Err(RuntimeError::InvalidState { .. })));
        rt.kill(&a.id, Signal::SIGKILL).await.unwrap();
        rt.delete(&a.id).await.unwrap();
        assert_eq!(rt.list().await.unwrap(), vec![b.id.clone()]);
        assert!(matches!(rt.state(&a.id).await, Err(RuntimeError::NotFound(_))));
    }

    #[tokio::test]
    async fn per_container_behavior_overrides_the_default() {
        let rt = FakeRuntime::default();
        let c = config("d");
        rt.set_behavior(
            c.id.clone(),
            FakeBehavior { run_for: Some(Duration::ZERO), exit_code: 7, ..Default::default() },
        );
        rt.create(&c).await.unwrap();
        rt.start(&c.id).await.unwrap();
        assert!(matches!(rt.state(&c.id).await.unwrap(), ContainerState::Exited { code: 7, .. }));
    }
}
