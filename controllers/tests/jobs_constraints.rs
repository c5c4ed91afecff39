//! Placement constraints of the built-in framework end to end: real
//! apiserver, allocator, tasks, liveness and jobs controllers, simulated
//! agents. Offers the framework cannot use must be declined, not hoarded,
//! so the remaining instances keep getting offers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{eventually, job, summary, SimCluster, Stack};
use meseta_agentd::runtime::fake::FakeBehavior;
use meseta_client::Api;
use meseta_schemas::kinds::{Agent, Constraint, ConstraintOperator, Framework, Job, JobType, Offer, Task, TaskState};
use serde_json::json;

/// Waits until every agent has joined, presenting its own hostname.
async fn distinct_hostnames(c: &SimCluster) {
    let api: Api<Agent> = Api::all(c.client.clone());
    for name in c.agents.keys() {
        eventually(&format!("agent {name} joined as host-{name}"), 20, || async {
            let a = api.get(name).await.map_err(|e| e.to_string())?;
            (a.spec.hostname == format!("host-{name}")).then_some(()).ok_or(a.spec.hostname)
        })
        .await;
    }
}

fn constraint(attribute: &str, operator: ConstraintOperator, value: Option<&str>) -> Constraint {
    Constraint { attribute: attribute.into(), operator, value: value.map(str::to_string) }
}

/// Waits until exactly `n` tasks run and nothing else is live, saying what
/// is outstanding (offers, the framework's allocation) if it never happens.
async fn settled(c: &SimCluster, n: usize) -> Vec<Task> {
    eventually(&format!("exactly {n} tasks RUNNING"), 40, || async {
        let all = c.list_tasks("r").await;
        let run: Vec<Task> = all.iter().filter(|t| t.state() == TaskState::Running).cloned().collect();
        let live = all.iter().filter(|t| !t.state().is_terminal()).count();
        if run.len() == n && live == n {
            return Ok(run);
        }
        let offers = Api::<Offer>::namespaced(c.client.clone(), "r").list(&Default::default()).await;
        let offers: Vec<_> = offers
            .map(|l| l.items.iter().map(|o| format!("{}:{}cpu", o.spec.agent, o.spec.resources.cpus)).collect())
            .unwrap_or_default();
        let fw = Api::<Framework>::namespaced(c.client.clone(), "r").get("meseta").await.ok().and_then(|f| f.status);
        Err(format!("{} offers {offers:?} fw {fw:?}", summary(&all)))
    })
    .await
}

fn instance(t: &Task) -> u32 {
    t.metadata.labels.get("meseta.io/instance").expect("instance label").parse().expect("instance label")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_hostname_puts_each_instance_on_its_own_agent_and_scaling_down_drops_the_highest() {
    let mut c = SimCluster::start().await;
    c.add_agents(4, 8.0, 8192.0, &["a"], FakeBehavior::default()).await;
    distinct_hostnames(&c).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut j = job("uniq", JobType::Service, 4);
    j.spec.constraints = vec![constraint("hostname", ConstraintOperator::Unique, None)];
    jobs.create(&j).await.unwrap();

    let run = settled(&c, 4).await;
    let agents: BTreeSet<_> = run.iter().filter_map(|t| t.spec.agent.clone()).collect();
    assert_eq!(agents.len(), 4, "one instance per agent: {}", summary(&run));

    jobs.patch_merge("uniq", &json!({"spec": {"instances": 2}})).await.unwrap();
    let left = settled(&c, 2).await;
    let instances: BTreeSet<u32> = left.iter().map(instance).collect();
    assert_eq!(instances, BTreeSet::from([0, 1]), "instances 2 and 3 went: {}", summary(&left));
    let agents: BTreeSet<_> = left.iter().filter_map(|t| t.spec.agent.clone()).collect();
    assert_eq!(agents.len(), 2, "still one instance per agent: {}", summary(&left));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_hostname_leaves_instances_beyond_the_agents_pending_and_places_them_when_one_joins() {
    let mut c = SimCluster::start().await;
    c.add_agents(3, 8.0, 8192.0, &["a"], FakeBehavior::default()).await;
    distinct_hostnames(&c).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut j = job("uniq", JobType::Service, 4);
    j.spec.constraints = vec![constraint("hostname", ConstraintOperator::Unique, None)];
    jobs.create(&j).await.unwrap();
    eventually("three running, one pending", 40, || async {
        let all = c.list_tasks("r").await;
        let run = all.iter().filter(|t| t.state() == TaskState::Running).count();
        let pending = all.iter().filter(|t| t.state() == TaskState::Pending).count();
        (run == 3 && pending == 1).then_some(()).ok_or_else(|| summary(&all))
    })
    .await;
    c.add_agent("a3", meseta_schemas::Resources::scalars(8.0, 8192.0, 0.0, 0.0), &[], FakeBehavior::default()).await;
    distinct_hostnames(&c).await;
    let run = settled(&c, 4).await;
    let agents: BTreeSet<_> = run.iter().filter_map(|t| t.spec.agent.clone()).collect();
    assert_eq!(agents.len(), 4, "{}", summary(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn equals_and_max_per_keep_instances_on_matching_agents_a_few_per_host() {
    let mut c = SimCluster::start().await;
    // a0 and a2 are in rack x, a1 and a3 in rack y.
    c.add_agents(4, 8.0, 8192.0, &["x", "y"], FakeBehavior::default()).await;
    distinct_hostnames(&c).await;
    c.start_control_plane(Stack::default());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "r");
    let mut j = job("racked", JobType::Service, 4);
    j.spec.constraints = vec![
        constraint("rack", ConstraintOperator::Equals, Some("x")),
        constraint("hostname", ConstraintOperator::MaxPer, Some("2")),
    ];
    jobs.create(&j).await.unwrap();

    let run = settled(&c, 4).await;
    let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
    for t in &run {
        *per_agent.entry(t.spec.agent.clone().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(per_agent, BTreeMap::from([("a0".into(), 2), ("a2".into(), 2)]), "{}", summary(&run));
}
