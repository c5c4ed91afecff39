//! Property tests of one allocation cycle over random clusters: the plan
//! never over-commits a bucket, keeps reservations, limits, revocable
//! resources, suppression, filters and cordons, makes one offer per
//! (framework, agent), and meets guarantees the cluster can meet.

use std::collections::{BTreeMap, HashSet};

use chrono::TimeZone;
use meseta_schemas::allocation::{
    allocate, AgentInput, AgentUsage, AllocationInput, AllocationPlan, FrameworkInput, QuotaInput, RoleInput,
};
use meseta_schemas::resources::{ports_contain, subtract_ports};
use meseta_schemas::{PortRange, Resources, Time};
use proptest::prelude::*;

const EPS: f64 = 1e-6;

fn now() -> Time {
    chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn res(cpus: f64, mem: f64) -> Resources {
    Resources::scalars(cpus, mem, 0.0, 0.0)
}

/// `part` of `whole`'s scalars, rounded to the 1/1000 grid.
fn frac(whole: &Resources, part: f64) -> Resources {
    let [c, m, d, g] = whole.scalar_values().map(|v| (v * part * 1000.0).floor() / 1000.0);
    Resources::scalars(c, m, d, g)
}

fn le(a: &Resources, b: &Resources) -> bool {
    let (a, b) = (a.scalar_values(), b.scalar_values());
    (0..4).all(|i| a[i] <= b[i] + EPS)
}

prop_compose! {
    fn agent_input(i: usize, roles: usize)(
        cpus in 1u32..=16, mem in 1u32..=64, disk in 0u32..=2, gpus in 0u32..=1, nports in 0u16..=20,
        static_rsv in prop::option::of((0..roles, 0.0f64..0.5)),
        dynamic_rsv in prop::option::of((0..roles, 0.0f64..0.3)),
        revocable in 0u32..=4,
        unschedulable in prop::bool::weighted(0.15),
        used in (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
    ) -> AgentInput {
        let total = Resources {
            ports: if nports > 0 { vec![PortRange { begin: 31000, end: 31000 + nports - 1 }] } else { Vec::new() },
            ..Resources::scalars(f64::from(cpus), f64::from(mem) * 512.0, f64::from(disk) * 1000.0, f64::from(gpus))
        };
        let mut a = AgentInput { name: format!("a{i}"), total: total.clone(), ..Default::default() };
        if let Some((r, f)) = static_rsv {
            let mut reserved = frac(&total, f);
            if nports > 2 {
                reserved.ports = vec![PortRange { begin: 31000, end: 31001 }];
            }
            a.static_reservations.insert(format!("r{r}"), reserved);
        }
        if let Some((r, f)) = dynamic_rsv {
            a.dynamic_reservations.insert(format!("r{r}"), frac(&total, f));
        }
        a.revocable = res(f64::from(revocable), f64::from(revocable) * 256.0);
        a.unschedulable = unschedulable;
        // Use part of every bucket.
        let mut usage = AgentUsage::default();
        let mut reserved_total = Resources::default();
        for role in a.static_reservations.keys().chain(a.dynamic_reservations.keys()) {
            let bucket = a.static_reservations.get(role).cloned().unwrap_or_default()
                .add(a.dynamic_reservations.get(role).unwrap_or(&Resources::default()));
            reserved_total = reserved_total.add(&bucket);
            usage.reserved.insert(role.clone(), frac(&bucket, used.0));
        }
        usage.unreserved = frac(&total.saturating_sub(&reserved_total), used.1);
        if nports > 5 {
            usage.unreserved.ports = vec![PortRange { begin: 31004, end: 31004 }];
        }
        usage.revocable = frac(&a.revocable, used.2);
        a.used = usage;
        a
    }
}

prop_compose! {
    fn framework_input(i: usize, roles: usize, agents: usize)(
        role in 0..roles, suppressed in prop::bool::weighted(0.2), revocable in any::<bool>(), gpu in any::<bool>(),
        filters in prop::collection::vec((0..agents.max(1), -10i64..10), 0..3),
        allocated in 0u32..=8,
    ) -> FrameworkInput {
        FrameworkInput {
            name: format!("f{i}"),
            role: format!("r{role}"),
            suppressed,
            revocable,
            gpu,
            filters: filters.into_iter().map(|(a, s)| (format!("a{a}"), now() + chrono::Duration::seconds(s))).collect(),
            allocated: res(f64::from(allocated), f64::from(allocated) * 512.0),
        }
    }
}

prop_compose! {
    fn role_input()(
        weight in 1u32..=3,
        quota in prop::option::of((0u32..=8, 0u32..=16, prop::option::of((0u32..=8, 0u32..=24)))),
        allocated in 0u32..=8,
    ) -> RoleInput {
        RoleInput {
            weight: f64::from(weight),
            quota: quota.map(|(c, m, limit)| {
                let guarantee = res(f64::from(c), f64::from(m) * 512.0);
                QuotaInput {
                    limit: limit.map(|(lc, lm)| guarantee.add(&res(f64::from(lc), f64::from(lm) * 512.0))),
                    guarantee,
                }
            }),
            allocated: res(f64::from(allocated), f64::from(allocated) * 512.0),
        }
    }
}

fn cluster() -> impl Strategy<Value = AllocationInput> {
    (1usize..=4, 1usize..=12, 1usize..=8)
        .prop_flat_map(|(roles, agents, fws)| {
            let agents_s: Vec<_> = (0..agents).map(|i| agent_input(i, roles)).collect();
            let fws_s: Vec<_> = (0..fws).map(|i| framework_input(i, roles, agents)).collect();
            let roles_s = prop::collection::vec(role_input(), roles);
            (agents_s, fws_s, roles_s)
        })
        .prop_map(|(agents, frameworks, roles)| AllocationInput {
            agents,
            frameworks,
            roles: roles.into_iter().enumerate().map(|(i, r)| (format!("r{i}"), r)).collect(),
            ..Default::default()
        })
}

fn sum<'a>(it: impl Iterator<Item = &'a Resources>) -> Resources {
    it.fold(Resources::default(), |acc, r| acc.add(r))
}

fn check_buckets(input: &AllocationInput, plan: &AllocationPlan) -> Result<(), TestCaseError> {
    for a in &input.agents {
        let offers: Vec<_> = plan.offers.iter().filter(|o| o.agent == a.name).collect();
        let mut reserved_total = Resources::default();
        let roles: HashSet<&String> = a.static_reservations.keys().chain(a.dynamic_reservations.keys()).collect();
        for role in &roles {
            let bucket = a
                .static_reservations
                .get(*role)
                .cloned()
                .unwrap_or_default()
                .add(a.dynamic_reservations.get(*role).unwrap_or(&Resources::default()));
            reserved_total = reserved_total.add(&bucket);
            let used = a.used.reserved.get(*role).cloned().unwrap_or_default();
            let offered = sum(offers.iter().filter(|o| o.role == role.as_str()).map(|o| &o.reserved));
            prop_assert!(le(&used.add(&offered), &bucket), "agent {} role {} over-committed", a.name, role);
            let free_ports = subtract_ports(&bucket.ports, &used.ports);
            prop_assert!(offered.ports.iter().all(|p| ports_contain(&free_ports, p)));
        }
        for o in &offers {
            prop_assert!(
                o.reserved.is_empty() || roles.contains(&o.role.to_string()),
                "reserved reached role {}",
                o.role
            );
        }
        let unreserved = a.total.saturating_sub(&reserved_total);
        let offered = sum(offers.iter().map(|o| &o.resources));
        prop_assert!(le(&a.used.unreserved.add(&offered), &unreserved), "agent {} unreserved over-committed", a.name);
        let free_ports =
            subtract_ports(&subtract_ports(&a.total.ports, &reserved_total.ports), &a.used.unreserved.ports);
        let port_count: u32 = offers.iter().map(|o| o.resources.port_count()).sum();
        prop_assert_eq!(port_count, offered.port_count(), "ports offered twice on {}", a.name);
        prop_assert!(offered.ports.iter().all(|p| ports_contain(&free_ports, p)), "ports not free on {}", a.name);
        let offered_rev = sum(offers.iter().map(|o| &o.revocable));
        prop_assert!(
            le(&a.used.revocable.add(&offered_rev), &a.revocable),
            "agent {} revocable over-committed",
            a.name
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_rule_holds_on_random_clusters(input in cluster(), seed in any::<u64>()) {
        let plan = allocate(&input, now(), seed);
        check_buckets(&input, &plan)?;
        let fws: BTreeMap<(&str, &str), &FrameworkInput> =
            input.frameworks.iter().map(|f| ((f.role.as_str(), f.name.as_str()), f)).collect();
        let agents: BTreeMap<&str, &AgentInput> = input.agents.iter().map(|a| (a.name.as_str(), a)).collect();
        let mut pairs = HashSet::new();
        let mins = [res(0.01, 0.0), res(0.0, 32.0)];
        for o in &plan.offers {
            let f = fws[&(o.role, o.framework)];
            let a = agents[o.agent];
            prop_assert!(pairs.insert((o.role, o.framework, o.agent)), "two offers for one pair");
            prop_assert!(!f.suppressed, "offer to suppressed {}", f.name);
            prop_assert!(f.filters.get(o.agent).is_none_or(|until| *until <= now()), "offer despite filter");
            prop_assert!(!a.unschedulable, "offer on unschedulable {}", a.name);
            prop_assert!(o.revocable.is_empty() || f.revocable, "revocable to {}", f.name);
            prop_assert!(a.total.gpus == 0.0 || f.gpu, "gpu agent to {}", f.name);
            let all = o.resources.add(&o.reserved).add(&o.revocable);
            prop_assert!(mins.iter().any(|m| m.fits(&all)), "offer below min_allocatable: {:?}", o);
        }
        for (name, role) in &input.roles {
            let Some(limit) = role.quota.as_ref().and_then(|q| q.limit.as_ref()) else { continue };
            let offered = sum(plan.offers.iter().filter(|o| o.role == name.as_str()).flat_map(|o| [&o.resources, &o.reserved]));
            let room = limit.saturating_sub(&role.allocated);
            prop_assert!(le(&offered, &room), "role {} past its limit: offered {:?}, room {:?}", name, offered, room);
        }
        // Deterministic for a given seed.
        prop_assert_eq!(allocate(&input, now(), seed), plan);
    }

    /// Guarantees are met whenever the free unreserved resources cover them.
    #[test]
    fn guarantees_are_met_when_the_cluster_can(
        agents in prop::collection::vec((1u32..=16, 1u32..=32, 0u32..=100), 1..16),
        guarantees in prop::collection::vec((0u32..=12, 0u32..=24), 1..4),
        others in 0usize..=3,
        seed in any::<u64>(),
    ) {
        let mut input = AllocationInput::default();
        for (i, (c, m, u)) in agents.iter().enumerate() {
            let total = res(f64::from(*c), f64::from(*m) * 1024.0);
            let used = res((f64::from(*c) * f64::from(*u) / 100.0).floor(), (f64::from(*m) * f64::from(*u) / 100.0).floor() * 1024.0);
            input.agents.push(AgentInput { name: format!("a{i}"), total, used: AgentUsage { unreserved: used, ..Default::default() }, ..Default::default() });
        }
        let free = sum(input.agents.iter().map(|a| a.total.saturating_sub(&a.used.unreserved)).collect::<Vec<_>>().iter());
        let need = sum(guarantees.iter().map(|(c, m)| res(f64::from(*c), f64::from(*m) * 1024.0)).collect::<Vec<_>>().iter());
        prop_assume!(le(&need, &free));
        for (i, (c, m)) in guarantees.iter().enumerate() {
            let guarantee = res(f64::from(*c), f64::from(*m) * 1024.0);
            // Low weight so that stage 2 alone would not favour these roles.
            input.roles.insert(format!("q{i}"), RoleInput { weight: 0.1, quota: Some(QuotaInput { guarantee, limit: None }), ..Default::default() });
            input.frameworks.push(FrameworkInput { name: format!("qf{i}"), role: format!("q{i}"), ..Default::default() });
        }
        for i in 0..others {
            input.frameworks.push(FrameworkInput { name: format!("of{i}"), role: format!("o{i}"), ..Default::default() });
        }
        let plan = allocate(&input, now(), seed);
        check_buckets(&input, &plan)?;
        for (i, (c, m)) in guarantees.iter().enumerate() {
            let role = format!("q{i}");
            let got = sum(plan.offers.iter().filter(|o| o.role == role).map(|o| &o.resources));
            let want = res(f64::from(*c), f64::from(*m) * 1024.0);
            prop_assert!(le(&want, &got), "role {} got {:?}, guaranteed {:?}", role, got, want);
        }
    }
}
