//! The run loop driven by a plain trigger channel, a map as the store, and a
//! paused clock.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures::channel::mpsc;
use meseta_schemas::{ObjectMeta, Role};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("boom")]
struct Boom;

/// The "store": objects by reference, with a generation to tell versions apart.
#[derive(Clone, Default)]
struct World(Arc<Mutex<HashMap<ObjectRef, Arc<Role>>>>);

impl World {
    fn set(&self, name: &str, generation: i64) -> ObjectRef {
        let role = Role {
            metadata: ObjectMeta { name: name.into(), generation: Some(generation), ..Default::default() },
            ..Default::default()
        };
        let key = ObjectRef::from_obj(&role);
        self.0.lock().unwrap().insert(key.clone(), Arc::new(role));
        key
    }

    fn lookup(&self) -> impl Fn(&ObjectRef) -> Option<Arc<Role>> + Send + 'static {
        let world = self.clone();
        move |key| world.0.lock().unwrap().get(key).cloned()
    }
}

/// Records every reconcile and checks the serialisation guarantees.
#[derive(Default)]
struct Probe {
    work: Duration,
    on_success: Option<Action>,
    fail: HashSet<usize>,
    panic: HashSet<usize>,
    calls: Mutex<Vec<(String, i64, Instant)>>,
    per_key: Mutex<HashMap<String, usize>>,
    max_per_key: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    started: Notify,
}

impl Probe {
    fn calls(&self) -> Vec<(String, i64, Instant)> {
        self.calls.lock().unwrap().clone()
    }

    fn gaps_ms(&self) -> Vec<u128> {
        self.calls().windows(2).map(|w| (w[1].2 - w[0].2).as_millis()).collect()
    }
}

async fn reconcile(obj: Arc<Role>, probe: Arc<Probe>) -> Result<Action, Boom> {
    let name = obj.metadata.name.clone();
    let attempt = {
        let mut calls = probe.calls.lock().unwrap();
        calls.push((name.clone(), obj.metadata.generation.unwrap_or(0), Instant::now()));
        calls.len()
    };
    {
        let mut per_key = probe.per_key.lock().unwrap();
        let n = per_key.entry(name.clone()).or_default();
        *n += 1;
        probe.max_per_key.fetch_max(*n, Ordering::SeqCst);
    }
    let running = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.max_running.fetch_max(running, Ordering::SeqCst);
    probe.started.notify_one();
    tokio::time::sleep(probe.work).await;
    probe.running.fetch_sub(1, Ordering::SeqCst);
    *probe.per_key.lock().unwrap().get_mut(&name).unwrap() -= 1;
    if probe.panic.contains(&attempt) {
        panic!("reconcile attempt {attempt} panics on purpose");
    }
    if probe.fail.contains(&attempt) {
        return Err(Boom);
    }
    Ok(probe.on_success.unwrap_or_else(Action::await_change))
}

type Trigger = Result<Vec<ObjectRef>, watcher::Error>;
type Out = Result<(ObjectRef, Action), Error<Boom>>;

fn start(
    world: &World,
    probe: &Arc<Probe>,
    config: Config,
    policy: Action,
    shutdown: BoxFuture<'static, ()>,
) -> (mpsc::UnboundedSender<Trigger>, impl Stream<Item = Out>) {
    let (tx, rx) = mpsc::unbounded();
    let stream = runner::run(
        rx.boxed(),
        world.lookup(),
        reconcile,
        move |_, _: &Boom, _| policy,
        probe.clone(),
        config,
        shutdown,
    );
    (tx, stream)
}

fn never() -> BoxFuture<'static, ()> {
    futures::future::pending().boxed()
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_during_a_reconcile_is_one_more_reconcile_with_the_latest_state() {
    let world = World::default();
    let probe = Arc::new(Probe { work: Duration::from_secs(1), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), never());
    let run = tokio::spawn(stream.collect::<Vec<_>>());

    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    probe.started.notified().await;
    for generation in 2..=50 {
        tx.unbounded_send(Ok(vec![world.set("a", generation)])).unwrap();
    }
    drop(tx);
    let out = run.await.unwrap();

    let seen: Vec<_> = probe.calls().iter().map(|(n, g, _)| (n.clone(), *g)).collect();
    assert_eq!(seen, vec![("a".to_string(), 1), ("a".to_string(), 50)]);
    assert_eq!(out.len(), 2);
    assert_eq!(probe.max_per_key.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn one_object_never_runs_twice_at_once_and_concurrency_is_bounded() {
    let world = World::default();
    let probe = Arc::new(Probe { work: Duration::from_millis(700), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default().concurrency(2), Action::await_change(), never());
    let run = tokio::spawn(stream.collect::<Vec<_>>());

    let names = ["a", "b", "c", "d", "e"];
    for round in 1..=10 {
        for (i, name) in names.iter().enumerate() {
            if (round + i) % 2 == 0 || round == 10 {
                tx.unbounded_send(Ok(vec![world.set(name, round as i64)])).unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(tx);
    run.await.unwrap();

    assert_eq!(probe.max_per_key.load(Ordering::SeqCst), 1);
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 2);
    let calls = probe.calls();
    for name in names {
        let last = calls.iter().rev().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(last.1, 10, "{name} was not reconciled at its latest state");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_success_resets() {
    let world = World::default();
    let probe = Arc::new(Probe { fail: HashSet::from([1, 2, 3, 4, 6]), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::requeue(Duration::ZERO), never());
    let mut stream = pin!(stream);

    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    for _ in 0..4 {
        assert!(matches!(stream.next().await, Some(Err(Error::ReconcileFailed { .. }))));
    }
    assert!(matches!(stream.next().await, Some(Ok(_))));
    tx.unbounded_send(Ok(vec![world.set("a", 2)])).unwrap();
    assert!(matches!(stream.next().await, Some(Err(Error::ReconcileFailed { .. }))));
    assert!(matches!(stream.next().await, Some(Ok(_))));
    drop(tx);
    assert!(stream.next().await.is_none());

    assert_eq!(probe.gaps_ms(), vec![100, 200, 400, 800, 0, 100]);
}

#[tokio::test(start_paused = true)]
async fn the_error_policy_sets_a_floor_or_disables_retries() {
    let world = World::default();
    let probe = Arc::new(Probe { fail: HashSet::from([1]), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::requeue(Duration::from_secs(5)), never());
    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    drop(tx);
    let out: Vec<_> = stream.collect().await;
    assert_eq!(out.len(), 2);
    assert_eq!(probe.gaps_ms(), vec![5000]);

    let probe = Arc::new(Probe { fail: HashSet::from([1]), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), never());
    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    drop(tx);
    let out: Vec<_> = stream.collect().await;
    assert_eq!(out.len(), 1);
    assert_eq!(probe.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn requeue_reconciles_again_without_a_change() {
    let world = World::default();
    let probe = Arc::new(Probe { on_success: Some(Action::requeue(Duration::from_secs(10))), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), never());
    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    let out: Vec<_> = stream.take(3).collect().await;
    drop(tx);
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(probe.gaps_ms(), vec![10_000, 10_000]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_running_reconciles_finish_and_starts_nothing_new() {
    let world = World::default();
    let probe = Arc::new(Probe { work: Duration::from_secs(5), ..Default::default() });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    }
    .boxed();
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), shutdown);
    let run = tokio::spawn(stream.collect::<Vec<_>>());

    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    probe.started.notified().await;
    stop.send(()).unwrap();
    tokio::task::yield_now().await;
    tx.unbounded_send(Ok(vec![world.set("b", 1), world.set("a", 2)])).unwrap();
    let out = run.await.unwrap();

    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], Ok((key, _)) if key.name == "a"));
    assert_eq!(probe.calls().len(), 1);
    assert_eq!(probe.running.load(Ordering::SeqCst), 0, "the running reconcile was not allowed to finish");
}

#[tokio::test(start_paused = true)]
async fn deleted_objects_are_skipped_and_panics_are_retried() {
    let world = World::default();
    let probe = Arc::new(Probe { panic: HashSet::from([1]), ..Default::default() });
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), never());
    tx.unbounded_send(Ok(vec![ObjectRef::new("ghost")])).unwrap();
    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    drop(tx);
    let out: Vec<_> = stream.collect().await;

    assert!(matches!(&out[0], Err(Error::ReconcilerPanicked { object }) if object.name == "a"));
    assert!(matches!(&out[1], Ok((key, _)) if key.name == "a"));
    assert_eq!(out.len(), 2);
    assert_eq!(probe.gaps_ms(), vec![100]);
}

#[tokio::test(start_paused = true)]
async fn watch_errors_are_reported_and_the_loop_goes_on() {
    let world = World::default();
    let probe = Arc::new(Probe::default());
    let (tx, stream) = start(&world, &probe, Config::default(), Action::await_change(), never());
    let source = crate::Error::InvalidRequest("test".into());
    tx.unbounded_send(Err(watcher::Error::InitialList { kind: "Role", source })).unwrap();
    tx.unbounded_send(Ok(vec![world.set("a", 1)])).unwrap();
    drop(tx);
    let out: Vec<_> = stream.collect().await;
    assert!(matches!(&out[0], Err(Error::Watch(_))));
    assert!(out[1].is_ok());
}
