//! Allocation cycle scenarios: the DRF paper's example, weights, fairness,
//! and one table-style test per rule (reservations, revocable, filters,
//! suppression, quota, headroom, min_allocatable, GPUs).

mod allocation_sim;

use std::collections::BTreeMap;

use allocation_sim::{now, Sim};
use meseta_schemas::allocation::{allocate, AgentInput, AllocationInput, FrameworkInput, QuotaInput, RoleInput};
use meseta_schemas::{PortRange, Resources};
use proptest::prelude::*;

const GIB: f64 = 1024.0;

fn res(cpus: f64, mem: f64) -> Resources {
    Resources::scalars(cpus, mem, 0.0, 0.0)
}

fn agent(name: &str, cpus: f64, mem: f64) -> AgentInput {
    AgentInput { name: name.into(), hostname: format!("{name}.local"), total: res(cpus, mem), ..Default::default() }
}

fn fw(name: &str, role: &str) -> FrameworkInput {
    FrameworkInput { name: name.into(), role: role.into(), ..Default::default() }
}

fn input(agents: Vec<AgentInput>, frameworks: Vec<FrameworkInput>) -> AllocationInput {
    AllocationInput { agents, frameworks, ..Default::default() }
}

#[test]
fn drf_paper_example_as_roles_gives_a_three_tasks_and_b_two() {
    // 9 CPUs / 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>.
    let mut sim = Sim::default();
    sim.agent("node", res(9.0, 18.0 * GIB));
    sim.user("a", "user-a", res(1.0, 4.0 * GIB), 100);
    sim.user("b", "user-b", res(3.0, GIB), 100);
    sim.run();
    assert_eq!(sim.launched("user-a"), 3);
    assert_eq!(sim.launched("user-b"), 2);
    let shares = sim.role_shares();
    assert!((shares["a"] - 2.0 / 3.0).abs() < 1e-9, "{shares:?}");
    assert!((shares["b"] - 2.0 / 3.0).abs() < 1e-9, "{shares:?}");
}

#[test]
fn drf_paper_example_as_frameworks_of_one_role() {
    let mut sim = Sim::default();
    sim.agent("node", res(9.0, 18.0 * GIB));
    sim.user("users", "user-a", res(1.0, 4.0 * GIB), 100);
    sim.user("users", "user-b", res(3.0, GIB), 100);
    sim.run();
    assert_eq!((sim.launched("user-a"), sim.launched("user-b")), (3, 2));
}

#[test]
fn one_offer_holds_the_whole_agent_and_names_its_hostname() {
    let inp = input(vec![agent("a0", 4.0, 4096.0)], vec![fw("f", "r")]);
    let plan = allocate(&inp, now(), 1);
    assert_eq!(plan.offers.len(), 1);
    let o = &plan.offers[0];
    assert_eq!((o.framework, o.role, o.agent), ("f", "r", "a0"));
    assert_eq!(o.hostname, "a0.local");
    assert_eq!(o.resources, res(4.0, 4096.0));
    assert!(o.reserved.is_empty() && o.revocable.is_empty());
    assert_eq!(plan.framework_shares[&("r", "f")], 1.0);
    assert_eq!(plan.role_shares["r"], 1.0);
}

#[test]
fn reserved_resources_go_only_to_their_role_and_ports_follow() {
    let mut a = agent("a0", 8.0, 8192.0);
    a.total.ports = vec![PortRange { begin: 31000, end: 31099 }];
    a.static_reservations
        .insert("web".into(), Resources { ports: vec![PortRange { begin: 31000, end: 31009 }], ..res(2.0, 2048.0) });
    a.dynamic_reservations.insert("web".into(), res(1.0, 0.0));
    a.dynamic_reservations.insert("db".into(), res(1.0, 1024.0));
    // "batch" sorts first and takes the unreserved part; "web" still gets its reservation.
    let inp = input(vec![a], vec![fw("b", "batch"), fw("w", "web")]);
    let plan = allocate(&inp, now(), 7);
    let by_role: BTreeMap<_, _> = plan.offers.iter().map(|o| (o.role, o)).collect();
    assert_eq!(plan.offers.len(), 2);
    let batch = by_role["batch"];
    assert!(batch.reserved.is_empty());
    assert_eq!(batch.resources.scalar_values(), res(4.0, 5120.0).scalar_values());
    assert_eq!(batch.resources.ports, vec![PortRange { begin: 31010, end: 31099 }]);
    let web = by_role["web"];
    assert!(web.resources.is_empty());
    assert_eq!(web.reserved, Resources { ports: vec![PortRange { begin: 31000, end: 31009 }], ..res(3.0, 2048.0) });
}

#[test]
fn revocable_resources_go_only_to_revocable_frameworks() {
    let mut a = agent("a0", 4.0, 4096.0);
    a.revocable = res(2.0, 1024.0);
    let mut rev = fw("z-rev", "r");
    rev.revocable = true;
    let inp = input(vec![a], vec![fw("a-plain", "r"), rev]);
    let plan = allocate(&inp, now(), 3);
    assert_eq!(plan.offers.len(), 2);
    assert_eq!(plan.offers[0].framework, "a-plain");
    assert!(plan.offers[0].revocable.is_empty());
    assert_eq!(plan.offers[1].framework, "z-rev");
    assert_eq!(plan.offers[1].revocable, res(2.0, 1024.0));
    assert!(plan.offers[1].resources.is_empty());
}

#[test]
fn suppressed_filtered_and_unschedulable_get_nothing() {
    let mut cordoned = agent("cordoned", 4.0, 4096.0);
    cordoned.unschedulable = true;
    let mut quiet = fw("quiet", "r");
    quiet.suppressed = true;
    let mut picky = fw("picky", "r");
    picky.filters.insert("a0".into(), now() + chrono::Duration::seconds(5));
    picky.filters.insert("a1".into(), now());
    let inp = input(vec![agent("a0", 4.0, 4096.0), agent("a1", 4.0, 4096.0), cordoned], vec![quiet, picky]);
    let plan = allocate(&inp, now(), 11);
    let got: Vec<(&str, &str)> = plan.offers.iter().map(|o| (o.framework, o.agent)).collect();
    assert_eq!(got, vec![("picky", "a1")]);
}

#[test]
fn gpu_agents_are_offered_only_to_gpu_frameworks() {
    let mut g = agent("gpu", 4.0, 4096.0);
    g.total.gpus = 1.0;
    let mut gpu_fw = fw("z-gpu", "r");
    gpu_fw.gpu = true;
    let inp = input(vec![g], vec![fw("a-cpu", "r"), gpu_fw]);
    let plan = allocate(&inp, now(), 0);
    assert_eq!(plan.offers.len(), 1);
    assert_eq!(plan.offers[0].framework, "z-gpu");
    assert_eq!(plan.offers[0].resources.gpus, 1.0);
}

#[test]
fn agents_below_min_allocatable_are_skipped() {
    let mut a = agent("tiny", 1.0, 1024.0);
    a.used.unreserved = res(0.995, 1000.0);
    let inp = input(vec![a, agent("big", 1.0, 1024.0)], vec![fw("f", "r")]);
    let plan = allocate(&inp, now(), 0);
    assert_eq!(plan.offers.len(), 1);
    assert_eq!(plan.offers[0].agent, "big");
}

#[test]
fn quota_limit_trims_the_offer() {
    let mut inp = input(vec![agent("a0", 8.0, 8192.0), agent("a1", 8.0, 8192.0)], vec![fw("f", "capped")]);
    inp.roles.insert(
        "capped".into(),
        RoleInput {
            quota: Some(QuotaInput { guarantee: Resources::default(), limit: Some(res(5.0, 6144.0)) }),
            allocated: res(1.0, 0.0),
            ..Default::default()
        },
    );
    let plan = allocate(&inp, now(), 5);
    let total = plan.offers.iter().fold(Resources::default(), |acc, o| acc.add(&o.resources));
    assert_eq!(total.scalar_values(), res(4.0, 6144.0).scalar_values());
}

#[test]
fn guarantee_first_then_headroom_is_held_back() {
    // Two agents of 4 cpus. "prod" is guaranteed 6 cpus but has no framework yet:
    // the others may only get what its guarantee does not need.
    let mut inp = input(vec![agent("a0", 4.0, 4096.0), agent("a1", 4.0, 4096.0)], vec![fw("f", "dev")]);
    let prod_quota = QuotaInput { guarantee: res(6.0, 0.0), limit: None };
    inp.roles.insert("prod".into(), RoleInput { quota: Some(prod_quota), ..Default::default() });
    let plan = allocate(&inp, now(), 2);
    let dev = plan.offers.iter().fold(Resources::default(), |acc, o| acc.add(&o.resources));
    assert_eq!(dev.cpus, 2.0);
    assert_eq!(dev.mem, 8192.0);

    // With a framework, prod gets its guarantee in stage 1 although "dev" sorts first by share.
    inp.frameworks.push(fw("p", "prod"));
    inp.roles.get_mut("prod").unwrap().weight = 0.01;
    let plan = allocate(&inp, now(), 2);
    let prod =
        plan.offers.iter().filter(|o| o.role == "prod").fold(Resources::default(), |acc, o| acc.add(&o.resources));
    assert!(prod.cpus >= 6.0, "{plan:?}");
}

#[test]
fn weights_split_the_cluster() {
    let mut sim = Sim::default();
    for i in 0..12 {
        sim.agent(&format!("a{i}"), res(8.0, 8.0 * GIB));
    }
    sim.role("gold", 2.0);
    sim.role("silver", 1.0);
    let task = res(1.0, 0.5 * GIB);
    sim.user("gold", "g", task.clone(), 1000);
    sim.user("silver", "s", task.clone(), 1000);
    sim.run();
    let shares = sim.role_shares();
    let t = sim.task_share(&task);
    assert!((shares["gold"] - 2.0 * shares["silver"]).abs() <= 2.0 * t + 1e-9, "{shares:?}");
    assert_eq!(sim.launched("g") + sim.launched("s"), 96);
    assert_eq!(sim.launched("g"), 64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Equal weights and equal demand: dominant shares end within one task's share.
    #[test]
    fn equal_demand_ends_within_one_task(
        agents in prop::collection::vec((1u32..=8, 1u32..=16), 1..8),
        roles in 2usize..=4,
        cpus in 1u32..=3,
        mem_gib in 1u32..=4,
    ) {
        let mut sim = Sim::default();
        for (i, (c, m)) in agents.iter().enumerate() {
            sim.agent(&format!("a{i}"), res(f64::from(*c), f64::from(*m) * GIB));
        }
        let task = res(f64::from(cpus), f64::from(mem_gib) * GIB);
        for r in 0..roles {
            sim.user(&format!("r{r}"), &format!("f{r}"), task.clone(), 10_000);
        }
        sim.run();
        let shares = sim.role_shares();
        let t = sim.task_share(&task);
        let max = shares.values().cloned().fold(0.0, f64::max);
        let min = shares.values().cloned().fold(f64::INFINITY, f64::min);
        prop_assert!(max - min <= t + 1e-9, "shares {:?}, one task {}", shares, t);
    }

    /// With weights 2 and 1 and equal demand, the heavier role ends with twice the share, within a task.
    #[test]
    fn weight_two_gets_twice_the_share(agents in prop::collection::vec((1u32..=8, 1u32..=16), 1..8)) {
        let mut sim = Sim::default();
        for (i, (c, m)) in agents.iter().enumerate() {
            sim.agent(&format!("a{i}"), res(f64::from(*c), f64::from(*m) * GIB));
        }
        sim.role("heavy", 2.0);
        let task = res(1.0, 0.5 * GIB);
        sim.user("heavy", "h", task.clone(), 10_000);
        sim.user("light", "l", task.clone(), 10_000);
        sim.run();
        let shares = sim.role_shares();
        let t = sim.task_share(&task);
        prop_assert!((shares["heavy"] - 2.0 * shares["light"]).abs() <= 2.0 * t + 1e-9, "{:?}", shares);
    }
}

#[test]
fn from_objects_charges_tasks_offers_and_reservations_to_the_right_buckets() {
    use meseta_schemas::allocation::ClusterObjects;
    use meseta_schemas::{
        Agent, AgentSpec, AgentStatus, Condition, Framework, FrameworkSpec, FrameworkStatus, Offer, OfferFilter,
        OfferSpec, OfferState, OfferStatus, Quota, QuotaSpec, Reservation, ReservationSpec, ReservationState,
        ReservationStatus, Task, TaskSpec, TaskState, TaskStatus,
    };
    let mut spec = AgentSpec { resources: res(8.0, 8192.0), ..Default::default() };
    spec.reservations.insert("web".into(), res(2.0, 1024.0));
    let a0 = Agent::new("a0", spec);
    let mut gone = Agent::new("gone", AgentSpec { resources: res(4.0, 4096.0), ..Default::default() });
    gone.status = Some(AgentStatus {
        conditions: vec![Condition { type_: "Unreachable".into(), status: "True".into(), ..Default::default() }],
        ..Default::default()
    });
    let reservation = |state| {
        let mut r = Reservation::new("rsv", ReservationSpec { agent: "a0".into(), resources: res(1.0, 0.0) })
            .in_namespace("web");
        r.status = Some(ReservationStatus { state, ..Default::default() });
        r
    };
    let task = |name: &str, cpus: f64, state, revocable| {
        let mut t = Task::new(
            name,
            TaskSpec {
                framework: Some("w".into()),
                agent: Some("a0".into()),
                resources: res(cpus, 512.0),
                revocable,
                ..Default::default()
            },
        )
        .in_namespace("web");
        t.status = Some(TaskStatus { state, ports: vec![31000], ..Default::default() });
        t
    };
    let offer = |state| {
        let mut o = Offer::new(
            "o",
            OfferSpec { framework: "w".into(), agent: "a0".into(), resources: res(1.0, 0.0), ..Default::default() },
        )
        .in_namespace("web");
        o.status = Some(OfferStatus { state, ..Default::default() });
        o
    };
    let until = now() + chrono::Duration::seconds(30);
    let mut revived =
        Framework::new("w", FrameworkSpec { revive_generation: 2, ..Default::default() }).in_namespace("web");
    revived.status = Some(FrameworkStatus {
        filters: vec![OfferFilter { agent: "a0".into(), until }],
        observed_revive_generation: 1,
        ..Default::default()
    });
    let mut filtered = Framework::new("x", FrameworkSpec::default()).in_namespace("batch");
    filtered.status =
        Some(FrameworkStatus { filters: vec![OfferFilter { agent: "a0".into(), until }], ..Default::default() });
    let quota =
        Quota::new("q", QuotaSpec { guarantee: res(1.0, 0.0), limit: Some(res(6.0, 6144.0)) }).in_namespace("web");

    let agents = [a0, gone];
    let tasks = [
        task("in-reservation", 4.0, TaskState::Running, false),
        task("pending", 4.0, TaskState::Pending, false),
        task("revocable", 1.0, TaskState::Running, true),
    ];
    let offers = [offer(OfferState::Outstanding), offer(OfferState::Declined)];
    let frameworks = [revived, filtered];
    let reservations = [reservation(ReservationState::Ready), reservation(ReservationState::Pending)];
    let quotas = [quota];
    let input = AllocationInput::from_objects(&ClusterObjects {
        agents: &agents,
        tasks: &tasks,
        offers: &offers,
        frameworks: &frameworks,
        quotas: &quotas,
        reservations: &reservations,
        ..Default::default()
    });

    let a0 = &input.agents[0];
    assert_eq!(a0.dynamic_reservations["web"], res(1.0, 0.0), "only the Ready reservation counts");
    // The 4-cpu task fills web's 3-cpu reservation first, then 1 cpu of unreserved; the offer adds 1 more.
    assert_eq!(a0.used.reserved["web"].scalar_values(), res(3.0, 512.0).scalar_values());
    assert!(a0.used.reserved["web"].ports.is_empty(), "the reservation holds no ports");
    assert_eq!(a0.used.unreserved.scalar_values(), res(2.0, 0.0).scalar_values());
    assert_eq!(a0.used.unreserved.ports, vec![PortRange { begin: 31000, end: 31000 }]);
    assert_eq!(a0.used.revocable.scalar_values(), res(1.0, 512.0).scalar_values());
    assert!(input.agents[1].unschedulable, "an unreachable agent is unschedulable");
    assert!(!a0.unschedulable);
    assert_eq!(input.roles["web"].allocated.scalar_values(), res(5.0, 512.0).scalar_values());
    assert_eq!(input.roles["web"].quota.as_ref().unwrap().limit, Some(res(6.0, 6144.0)));
    let w = input.frameworks.iter().find(|f| f.name == "w").unwrap();
    assert_eq!(w.allocated.scalar_values(), res(5.0, 512.0).scalar_values());
    assert!(w.filters.is_empty(), "a new revive generation clears filters");
    let x = input.frameworks.iter().find(|f| f.name == "x").unwrap();
    assert_eq!(x.filters["a0"], until);
}
