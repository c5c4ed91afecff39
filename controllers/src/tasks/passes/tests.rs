//! The incremental passes against a reflector store fed by hand, the way the
//! shared watch feeds it: the store applies an event, then the observer sees it.

use meseta_client::reflector::{self, Writer};
use meseta_schemas::kinds::{TaskEvent, TaskSpec, TaskState, TaskStatus};

use super::*;

fn wall(secs: i64) -> Time {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("a valid time")
}

/// Task `uid` (also its name) in `state` since `since`, killed when `kill`.
fn task(uid: &str, state: TaskState, since: i64, kill: bool) -> Task {
    let mut t = Task::new(uid, TaskSpec { kill_requested: kill, ..Default::default() }).in_namespace("r");
    t.metadata.uid = Some(uid.into());
    t.metadata.creation_timestamp = Some(wall(0));
    let mut task_events = vec![TaskEvent { timestamp: wall(0), state: TaskState::Pending, message: String::new() }];
    if state != TaskState::Pending {
        task_events.push(TaskEvent { timestamp: wall(since), state, message: String::new() });
    }
    t.status = Some(TaskStatus { state, task_events, ..Default::default() });
    t
}

struct Rig {
    writer: Writer<Task>,
    store: Store<Task>,
    observe: crate::tasks::cache::Observer<Task>,
    passes: Passes,
    registry: prometheus::Registry,
    metrics: TaskMetrics,
    start: Instant,
}

const RULES: Rules = Rules { transient_timeout: Duration::from_secs(300), retention: Duration::from_secs(3600) };

impl Rig {
    fn new() -> Rig {
        let (store, writer) = reflector::store::<Task>();
        let passes = Passes::new(Duration::from_secs(10));
        let observe = Box::new(passes.changes().observer());
        let registry = prometheus::Registry::new();
        let metrics = TaskMetrics::new(Some(&registry));
        Rig { writer, store, observe, passes, registry, metrics, start: Instant::now() }
    }

    fn event(&mut self, event: Event<Task>) {
        self.writer.apply(&event);
        (self.observe)(&event);
    }

    /// A pass at `now` (seconds of the wall clock), `secs` after the start.
    fn pass(&mut self, now: i64, secs: u64) -> (bool, usize, Vec<(String, TaskAction)>) {
        let at = self.start + Duration::from_secs(secs);
        let planned = self.passes.plan(&self.store, &self.metrics, RULES, wall(now), at);
        let work = planned.work.into_iter().map(|(t, a)| (t.metadata.name.clone(), a)).collect();
        (planned.full, planned.looked_at, work)
    }

    /// The `meseta_tasks` gauge of `state`.
    fn count(&self, state: TaskState) -> f64 {
        let family = self.registry.gather().into_iter().find(|m| m.name() == "meseta_tasks").expect("gauge");
        let metric = family.get_metric().iter().find(|m| m.get_label()[0].value() == state.as_str());
        metric.map_or(0.0, |m| m.get_gauge().get_value())
    }
}

#[test]
fn a_change_seen_is_planned_at_the_next_pass_without_a_full_one() {
    let mut rig = Rig::new();
    rig.event(Event::Restarted(vec![task("a", TaskState::Pending, 0, false), task("b", TaskState::Pending, 0, false)]));
    assert_eq!(rig.pass(1, 0), (true, 2, vec![]), "the first pass looks at every task");
    rig.event(Event::Applied(task("a", TaskState::Pending, 0, true)));
    assert_eq!(rig.pass(2, 1), (false, 1, vec![("a".into(), TaskAction::KillUnbound)]), "only the changed task");
    assert_eq!(rig.pass(3, 2), (false, 0, vec![]), "nothing changed: nothing looked at");
    // A failed action is looked at again next pass.
    let a = rig.store.get(Some("r"), "a").expect("cached");
    rig.passes.changes().retry(&a);
    assert_eq!(rig.pass(4, 3), (false, 1, vec![("a".into(), TaskAction::KillUnbound)]));
}

#[test]
fn a_timeout_without_an_event_is_caught_by_the_next_full_pass() {
    let mut rig = Rig::new();
    rig.event(Event::Restarted(vec![task("stuck", TaskState::Assigned, 100, false)]));
    assert_eq!(rig.pass(101, 0), (true, 1, vec![]));
    // Past the 300 s timeout, but no event came: the incremental pass does not look.
    assert_eq!(rig.pass(500, 5), (false, 0, vec![]));
    assert_eq!(rig.passes.until_full(rig.start + Duration::from_secs(5)), Duration::from_secs(5));
    let lost = TaskAction::Lost("stuck in ASSIGNED for more than 300s".into());
    assert_eq!(rig.pass(505, 10), (true, 1, vec![("stuck".into(), lost)]), "the full pass 10 s later does");
    assert_eq!(rig.passes.until_full(rig.start + Duration::from_secs(10)), Duration::from_secs(10));
}

#[test]
fn counts_follow_the_events_and_a_relist_forces_a_full_pass() {
    let mut rig = Rig::new();
    rig.event(Event::Restarted(vec![task("a", TaskState::Pending, 0, false), task("b", TaskState::Pending, 0, false)]));
    rig.pass(1, 0);
    assert_eq!((rig.count(TaskState::Pending), rig.count(TaskState::Assigned)), (2.0, 0.0));
    rig.event(Event::Applied(task("a", TaskState::Assigned, 1, false)));
    rig.event(Event::Applied(task("c", TaskState::Pending, 0, false)));
    let b = task("b", TaskState::Pending, 0, false);
    rig.event(Event::Deleted(b));
    assert!(!rig.pass(2, 1).0, "an incremental pass");
    assert_eq!((rig.count(TaskState::Pending), rig.count(TaskState::Assigned)), (1.0, 1.0), "a moved, b gone, c came");
    let mtta = rig.metrics.mtta().with_label_values(&["r"]).get_sample_count();
    assert_eq!(mtta, 1, "MTTA of a observed from its event");
    // A re-list (deletions while the watch was down are not reported) is a full pass.
    rig.event(Event::Restarted(vec![task("d", TaskState::Running, 2, false)]));
    assert_eq!(rig.pass(3, 2), (true, 1, vec![]));
    assert_eq!((rig.count(TaskState::Pending), rig.count(TaskState::Assigned)), (0.0, 0.0));
    assert_eq!(rig.count(TaskState::Running), 1.0);
}
