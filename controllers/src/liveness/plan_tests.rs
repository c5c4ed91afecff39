//! Tables and properties of the liveness plan.

use meseta_schemas::kinds::{LeaseSpec, TaskStatus};
use proptest::prelude::*;

use super::*;

fn at(s: i64) -> Time {
    chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn agent(name: &str, unreachable: bool) -> Arc<Agent> {
    let mut a = Agent::default();
    a.metadata.name = name.into();
    a.metadata.creation_timestamp = Some(at(0));
    if unreachable {
        a.status = Some(Default::default());
        a.status.as_mut().unwrap().conditions.push(Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: UNREACHABLE.into(),
            ..Default::default()
        });
    }
    Arc::new(a)
}

fn lease(agent: &str, renewed: i64) -> (String, Arc<Lease>) {
    let mut l = Lease::default();
    l.metadata.name = format!("agent-{agent}");
    l.spec = LeaseSpec { renew_time: Some(at(renewed)), lease_duration_seconds: Some(15), ..Default::default() };
    (l.metadata.name.clone(), Arc::new(l))
}

fn task(name: &str, agent: &str, state: TaskState, fw: Option<&str>) -> Arc<Task> {
    let mut t = Task::default();
    t.metadata.name = name.into();
    t.metadata.namespace = Some("r".into());
    t.spec.agent = Some(agent.into());
    t.spec.framework = fw.map(str::to_string);
    t.status = Some(TaskStatus { state, ..Default::default() });
    Arc::new(t)
}

fn offer(name: &str, agent: &str) -> Arc<Offer> {
    let mut o = Offer::default();
    o.metadata.name = name.into();
    o.metadata.namespace = Some("r".into());
    o.spec.agent = agent.into();
    Arc::new(o)
}

fn snap<'a>(
    agents: &'a [Arc<Agent>],
    leases: &'a HashMap<String, Arc<Lease>>,
    tasks: &'a [Arc<Task>],
    offers: &'a [Arc<Offer>],
    partition_aware: &'a HashSet<(String, String)>,
) -> Snapshot<'a> {
    Snapshot { agents, leases, tasks, offers, partition_aware }
}

const UNLIMITED: Limits = Limits {
    default_duration: Duration::from_secs(15),
    lost_agents_per_second: f64::INFINITY,
    max_unreachable_fraction: 1.0,
};

fn lost_names(actions: &[LivenessAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            LivenessAction::LoseTask { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn silence_past_the_lease_loses_tasks_rescinds_offers_and_a_renewal_restores() {
    let agents = vec![agent("a1", false), agent("a2", true), agent("a3", false)];
    let tasks = vec![
        task("t1", "a1", TaskState::Running, None),
        task("t2", "a1", TaskState::Finished, None),
        task("t3", "a1", TaskState::Starting, Some("pa")),
        task("t4", "a3", TaskState::Running, None),
    ];
    let aware: HashSet<_> = [("r".to_string(), "pa".to_string())].into();
    let offers = [offer("o1", "a1")];
    let mut memory = Memory::default();
    // First sight at 0: nobody is judged before a full lease of silence.
    let leases: HashMap<_, _> = [lease("a1", -100), lease("a2", -100), lease("a3", -100)].into();
    let first = plan(&mut memory, snap(&agents, &leases, &tasks, &offers, &aware), at(0), UNLIMITED);
    assert_eq!(first, vec![LivenessAction::MarkReachable("a2".into())], "an old renewTime alone proves nothing");
    // a2 and a3 renew; a1 stays silent past its 15 s.
    let leases: HashMap<_, _> = [lease("a1", -100), lease("a2", 10), lease("a3", 12)].into();
    let actions = plan(&mut memory, snap(&agents, &leases, &tasks, &offers, &aware), at(16), UNLIMITED);
    assert_eq!(
        actions,
        vec![
            LivenessAction::MarkUnreachable("a1".into()),
            LivenessAction::MarkReachable("a2".into()),
            LivenessAction::LoseTask { namespace: "r".into(), name: "t1".into(), partitioned: false },
            LivenessAction::LoseTask { namespace: "r".into(), name: "t3".into(), partitioned: true },
            LivenessAction::Rescind("r".into(), "o1".into()),
        ]
    );
}

#[test]
fn a_renewal_seen_late_still_counts_from_when_it_was_seen() {
    // The agent's clock is 10 minutes behind: its renewTime always looks
    // ancient, yet it changes, so the agent is alive.
    let agents = vec![agent("a", false)];
    let tasks = vec![task("t", "a", TaskState::Running, None)];
    let mut memory = Memory::default();
    for s in (0..120).step_by(5) {
        let leases: HashMap<_, _> = [lease("a", s - 600)].into();
        let actions = plan(&mut memory, snap(&agents, &leases, &tasks, &[], &HashSet::new()), at(s), UNLIMITED);
        assert!(actions.is_empty(), "at {s}: {actions:?}");
    }
}

#[test]
fn an_agent_without_a_lease_counts_from_when_it_was_first_seen() {
    let agents = vec![agent("a", false)];
    let mut memory = Memory::default();
    let none = HashMap::new();
    assert!(plan(&mut memory, snap(&agents, &none, &[], &[], &HashSet::new()), at(100), UNLIMITED).is_empty());
    assert!(plan(&mut memory, snap(&agents, &none, &[], &[], &HashSet::new()), at(115), UNLIMITED).is_empty());
    let late = plan(&mut memory, snap(&agents, &none, &[], &[], &HashSet::new()), at(116), UNLIMITED);
    assert_eq!(late, vec![LivenessAction::MarkUnreachable("a".into())]);
}

#[test]
fn an_agent_that_left_and_came_back_counts_from_when_it_was_seen_again() {
    let both = vec![agent("a", false), agent("b", false)];
    let only_b = vec![agent("b", false)];
    let none = HashMap::new();
    let mut memory = Memory::default();
    plan(&mut memory, snap(&both, &none, &[], &[], &HashSet::new()), at(0), UNLIMITED);
    plan(&mut memory, snap(&only_b, &none, &[], &[], &HashSet::new()), at(10), UNLIMITED);
    // `a` was forgotten while gone: back at 12, it has a full lease duration from then.
    let back = plan(&mut memory, snap(&both, &none, &[], &[], &HashSet::new()), at(20), UNLIMITED);
    assert_eq!(back, vec![LivenessAction::MarkUnreachable("b".into())], "only b is silent since 0");
    let later = plan(&mut memory, snap(&both, &none, &[], &[], &HashSet::new()), at(36), UNLIMITED);
    assert_eq!(later, vec![LivenessAction::MarkUnreachable("a".into()), LivenessAction::MarkUnreachable("b".into())]);
}

#[test]
fn the_steps_skip_tasks_and_offers_when_no_agent_is_unreachable() {
    let agents = vec![agent("a", false)];
    let ls: HashMap<_, _> = [lease("a", 0)].into_iter().collect();
    let mut memory = Memory::default();
    let verdict = plan_agents(&mut memory, &agents, &ls, at(1), UNLIMITED);
    assert_eq!(verdict, AgentsVerdict::default());
    assert!(!memory.loses_tasks());
    let verdict = plan_agents(&mut memory, &agents, &ls, at(17), UNLIMITED);
    assert_eq!(verdict.unreachable, vec!["a".to_string()]);
    assert!(memory.loses_tasks(), "admitted at once without a rate limit");
    let tasks = vec![task("t", "a", TaskState::Running, None), task("u", "b", TaskState::Running, None)];
    assert_eq!(lost_names(&plan_lost_tasks(&memory, &tasks, &HashSet::new())), vec!["t".to_string()]);
    let offers = vec![offer("o1", "a"), offer("o2", "b")];
    assert_eq!(plan_rescinds(&verdict.unreachable, &offers), vec![LivenessAction::Rescind("r".into(), "o1".into())]);
    assert!(plan_rescinds(&[], &offers).is_empty());
}

#[test]
fn unreachable_agents_lose_their_tasks_one_at_a_time_longest_silent_first() {
    let limits = Limits { lost_agents_per_second: 0.1, max_unreachable_fraction: 0.55, ..UNLIMITED };
    let agents: Vec<_> = (0..10).map(|i| agent(&format!("a{i}"), false)).collect();
    let tasks: Vec<_> = (0..10).map(|i| task(&format!("t{i}"), &format!("a{i}"), TaskState::Running, None)).collect();
    let mut memory = Memory::default();
    let leases = |silent: &[usize], s: i64| -> HashMap<String, Arc<Lease>> {
        (0..10).map(|i| lease(&format!("a{i}"), if silent.contains(&i) { 0 } else { s })).collect()
    };
    plan(&mut memory, snap(&agents, &leases(&[], 0), &tasks, &[], &HashSet::new()), at(0), limits);
    // a3 is silent from 0 on; a7 renews once more at 1 (its last change seen at 1), then is silent too.
    let mut lost_at = Vec::new();
    for s in 1..40 {
        let mut silent = vec![3];
        if s > 1 {
            silent.push(7);
        }
        let mut ls = leases(&silent, s);
        if s > 1 {
            ls.insert("agent-a7".into(), lease("a7", 1).1);
        }
        let actions = plan(&mut memory, snap(&agents, &ls, &tasks, &[], &HashSet::new()), at(s), limits);
        for name in lost_names(&actions) {
            if !lost_at.iter().any(|(n, _)| *n == name) {
                lost_at.push((name, s));
            }
        }
    }
    assert_eq!(lost_at, vec![("t3".to_string(), 16), ("t7".to_string(), 26)], "one agent per 10 s, oldest first");
}

#[test]
fn most_agents_unreachable_at_once_is_a_disruption_and_loses_nothing() {
    let agents: Vec<_> = (0..4).map(|i| agent(&format!("a{i}"), false)).collect();
    let tasks: Vec<_> = (0..4).map(|i| task(&format!("t{i}"), &format!("a{i}"), TaskState::Running, None)).collect();
    let limits = Limits { max_unreachable_fraction: 0.55, ..UNLIMITED };
    let mut memory = Memory::default();
    let leases = |fresh: &[usize], s: i64| -> HashMap<String, Arc<Lease>> {
        (0..4).map(|i| lease(&format!("a{i}"), if fresh.contains(&i) { s } else { 0 })).collect()
    };
    plan(&mut memory, snap(&agents, &leases(&[], 0), &tasks, &[], &HashSet::new()), at(0), limits);
    // Three of four silent: marked unreachable, but no task lost.
    let actions = plan(&mut memory, snap(&agents, &leases(&[0], 20), &tasks, &[], &HashSet::new()), at(20), limits);
    assert!(memory.disrupted);
    assert_eq!(actions.iter().filter(|a| matches!(a, LivenessAction::MarkUnreachable(_))).count(), 3);
    assert!(lost_names(&actions).is_empty(), "{actions:?}");
    // Two come back: one of four is silent, its tasks go lost.
    let back = [agent("a0", false), agent("a1", true), agent("a2", true), agent("a3", true)];
    let actions = plan(&mut memory, snap(&back, &leases(&[0, 1, 2], 21), &tasks, &[], &HashSet::new()), at(21), limits);
    assert!(!memory.disrupted);
    assert_eq!(lost_names(&actions), vec!["t3".to_string()]);
}

#[test]
fn a_single_agent_cluster_still_loses_its_tasks() {
    let agents = vec![agent("only", false)];
    let tasks = vec![task("t", "only", TaskState::Running, None)];
    let limits = Limits { lost_agents_per_second: 0.1, max_unreachable_fraction: 0.55, ..UNLIMITED };
    let mut memory = Memory::default();
    let leases: HashMap<_, _> = [lease("only", 0)].into();
    plan(&mut memory, snap(&agents, &leases, &tasks, &[], &HashSet::new()), at(0), limits);
    let actions = plan(&mut memory, snap(&agents, &leases, &tasks, &[], &HashSet::new()), at(16), limits);
    assert_eq!(lost_names(&actions), vec!["t".to_string()]);
}

proptest! {
    /// Over any history of renewals: an agent seen renewing within its
    /// lease never loses a task; across any window no more agents are
    /// admitted than the rate allows (plus the burst of one); and no task
    /// is lost in a round that is a disruption.
    #[test]
    fn plan_invariants(
        renews in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 6), 1..60),
        rate in prop_oneof![Just(0.1f64), Just(0.5), Just(2.0)],
    ) {
        let limits = Limits { default_duration: Duration::from_secs(15), lost_agents_per_second: rate, max_unreachable_fraction: 0.55 };
        let names: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
        let agents: Vec<_> = names.iter().map(|n| agent(n, false)).collect();
        let tasks: Vec<_> = names.iter().map(|n| task(&format!("t-{n}"), n, TaskState::Running, None)).collect();
        let mut memory = Memory::default();
        let mut renewal: Vec<i64> = vec![0; 6];
        let mut last_change: Vec<i64> = vec![0; 6];
        let mut admissions: Vec<i64> = Vec::new();
        for (round, pattern) in renews.iter().enumerate() {
            let s = round as i64 * 4;
            for (i, renew) in pattern.iter().enumerate() {
                if *renew {
                    renewal[i] = s;
                    last_change[i] = s;
                }
            }
            let leases: HashMap<_, _> = names.iter().enumerate().map(|(i, n)| lease(n, renewal[i])).collect();
            let before = memory.admitted.clone();
            let actions = plan(&mut memory, snap(&agents, &leases, &tasks, &[], &HashSet::new()), at(s), limits);
            admissions.extend(memory.admitted.difference(&before).map(|_| s));
            let lost = lost_names(&actions);
            if memory.disrupted {
                prop_assert!(lost.is_empty());
            }
            for name in lost {
                let i: usize = name.trim_start_matches("t-a").parse().unwrap();
                prop_assert!(s - last_change[i] > 15, "agent a{} renewed at {} and lost a task at {}", i, last_change[i], s);
            }
        }
        // Admissions within any window of w seconds ≤ 1 + rate × w.
        for (k, first) in admissions.iter().enumerate() {
            for (j, last) in admissions.iter().enumerate().skip(k) {
                let count = (j - k + 1) as f64;
                prop_assert!(count <= 1.0 + rate * (last - first) as f64 + 1e-9, "{:?}", admissions);
            }
        }
    }
}
