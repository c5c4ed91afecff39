use std::collections::HashMap;

use meseta_schemas::kinds::{Constraint, ConstraintOperator};
use meseta_schemas::resources::{round_scalar, PortRange, Resources};
use proptest::prelude::*;

use super::*;

fn offer(name: &str, host: &str, rack: &str, cpus: f64, mem: f64, ports: Vec<PortRange>) -> OfferView {
    OfferView {
        name: name.into(),
        agent: host.into(),
        attributes: AgentAttributes {
            hostname: host.into(),
            attributes: [("rack".to_string(), rack.to_string())].into(),
        },
        resources: Resources { cpus, mem, ports, ..Default::default() },
        revocable: Resources::default(),
        load: 0,
    }
}

fn task(name: &str, group: &str, cpus: f64, mem: f64) -> PendingTask {
    PendingTask {
        name: name.into(),
        group: group.into(),
        resources: Resources::scalars(cpus, mem, 0.0, 0.0),
        ..Default::default()
    }
}

fn unique_host() -> Vec<Constraint> {
    vec![Constraint { attribute: "hostname".into(), operator: ConstraintOperator::Unique, value: None }]
}

#[test]
fn fills_offers_spreads_and_declines_unused_ones() {
    let offers = vec![offer("o1", "h1", "a", 2.0, 1024.0, vec![]), offer("o2", "h2", "a", 2.0, 1024.0, vec![])];
    let tasks: Vec<_> = (0..3).map(|i| task(&format!("t{i}"), "j", 1.0, 100.0)).collect();
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 1);
    assert_eq!(plan.accepts.len(), 2);
    assert_eq!(plan.accepts[0].tasks, vec!["t0", "t2"]);
    assert_eq!(plan.accepts[1].tasks, vec!["t1"]);
    assert!(plan.declines.is_empty());
    assert!(plan.unplaced.is_empty());

    // Two a turn: the first offer takes two tasks before the second one's turn.
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 2);
    assert_eq!(plan.accepts[0].tasks, vec!["t0", "t1"]);
    assert_eq!(plan.accepts[1].tasks, vec!["t2"]);

    let plan = plan_launches(&offers, &[task("big", "j", 3.0, 1.0)], &mut ConstraintContext::new(), 1);
    assert!(plan.accepts.is_empty());
    assert_eq!(plan.declines, vec!["o1", "o2"]);
    assert_eq!(plan.unplaced[0].0, "big");
}

#[test]
fn unique_hostname_puts_one_instance_per_agent_even_within_one_round() {
    let offers = vec![offer("o1", "h1", "a", 8.0, 8192.0, vec![]), offer("o2", "h2", "a", 8.0, 8192.0, vec![])];
    let tasks: Vec<_> =
        (0..3).map(|i| PendingTask { constraints: unique_host(), ..task(&format!("t{i}"), "j", 1.0, 1.0) }).collect();
    for per_offer in [1, 8] {
        let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), per_offer);
        let placed: usize = plan.accepts.iter().map(|a| a.tasks.len()).sum();
        assert_eq!(placed, 2);
        assert!(plan.accepts.iter().all(|a| a.tasks.len() == 1));
        assert!(plan.unplaced[0].1.contains("hostname"), "{:?}", plan.unplaced);
    }
}

#[test]
fn least_loaded_agents_take_the_first_turns() {
    let mut offers: Vec<_> =
        (1..=3).map(|i| offer(&format!("o{i}"), &format!("h{i}"), "a", 8.0, 8192.0, vec![])).collect();
    offers[0].load = 3;
    offers[2].load = 1;
    let tasks: Vec<_> = (0..5).map(|i| task(&format!("t{i}"), "j", 1.0, 1.0)).collect();
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 2);
    let by_offer: HashMap<_, _> = plan.accepts.iter().map(|a| (a.offer.as_str(), a.tasks.clone())).collect();
    assert_eq!(by_offer["o2"], vec!["t0", "t1"]);
    assert_eq!(by_offer["o3"], vec!["t2", "t3"]);
    assert_eq!(by_offer["o1"], vec!["t4"]);

    // Equal loads: the offer with more free cpus first.
    offers[0].load = 0;
    offers[2].load = 0;
    offers[1].resources.cpus = 4.0;
    offers[2].resources.cpus = 16.0;
    let plan = plan_launches(&offers, &tasks[..1], &mut ConstraintContext::new(), 2);
    assert_eq!(plan.accepts[0].offer, "o3");
}

#[test]
fn a_task_that_skips_an_offer_starts_the_next_offers_turn() {
    let mut offers = vec![offer("o1", "h1", "a", 1.0, 8192.0, vec![]), offer("o2", "h2", "a", 8.0, 8192.0, vec![])];
    offers[1].load = 1;
    let tasks = vec![task("small", "j", 0.5, 1.0), task("big", "j", 2.0, 1.0), task("next", "j", 0.5, 1.0)];
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 2);
    let by_offer: HashMap<_, _> = plan.accepts.iter().map(|a| (a.offer.as_str(), a.tasks.clone())).collect();
    assert_eq!(by_offer["o2"], vec!["big", "next"]);
    assert_eq!(by_offer["o1"], vec!["small"]);
}

#[test]
fn equals_and_like_choose_the_matching_agents() {
    let offers = vec![offer("o1", "h1", "a", 8.0, 8192.0, vec![]), offer("o2", "h2", "b", 8.0, 8192.0, vec![])];
    let eq =
        vec![Constraint { attribute: "rack".into(), operator: ConstraintOperator::Equals, value: Some("b".into()) }];
    let like =
        vec![Constraint { attribute: "hostname".into(), operator: ConstraintOperator::Like, value: Some("h1".into()) }];
    let tasks = vec![
        PendingTask { constraints: eq, ..task("t-eq", "j", 1.0, 1.0) },
        PendingTask { constraints: like, ..task("t-like", "k", 1.0, 1.0) },
    ];
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 1);
    let by_offer: HashMap<_, _> = plan.accepts.iter().map(|a| (a.offer.as_str(), a.tasks.clone())).collect();
    assert_eq!(by_offer["o2"], vec!["t-eq"]);
    assert_eq!(by_offer["o1"], vec!["t-like"]);
}

#[test]
fn ports_fixed_and_any_are_taken_once() {
    let ports = vec![PortRange { begin: 31000, end: 31001 }];
    let offers = vec![offer("o1", "h1", "a", 8.0, 8192.0, ports)];
    let tasks = vec![
        PendingTask { ports: vec![31000], ..task("fixed", "j", 0.1, 1.0) },
        PendingTask { ports: vec![31000], ..task("fixed-again", "k", 0.1, 1.0) },
        PendingTask { ports: vec![0], ..task("any", "l", 0.1, 1.0) },
        PendingTask { ports: vec![0], ..task("any-again", "m", 0.1, 1.0) },
    ];
    let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), 1);
    assert_eq!(plan.accepts[0].tasks, vec!["fixed", "any"]);
    let unplaced: Vec<_> = plan.unplaced.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(unplaced, vec!["fixed-again", "any-again"]);
}

#[test]
fn revocable_tasks_use_only_revocable_resources() {
    let mut o = offer("o1", "h1", "a", 0.0, 0.0, vec![]);
    o.revocable = Resources::scalars(1.0, 100.0, 0.0, 0.0);
    let tasks = vec![task("plain", "j", 0.5, 10.0), PendingTask { revocable: true, ..task("rev", "k", 0.5, 10.0) }];
    let plan = plan_launches(&[o], &tasks, &mut ConstraintContext::new(), 1);
    assert_eq!(plan.accepts[0].tasks, vec!["rev"]);
}

proptest! {
    #[test]
    fn never_over_commits_and_never_breaks_unique(
        offers in prop::collection::vec((0.0f64..8.0, 0.0f64..4096.0, 0u8..4), 1..8),
        tasks in prop::collection::vec((0.1f64..3.0, 1.0f64..1024.0, 0u8..3, any::<bool>()), 0..40),
        per_offer in 1usize..6,
    ) {
        let offers: Vec<OfferView> = offers.iter().enumerate()
            .map(|(i, (c, m, rack))| offer(&format!("o{i}"), &format!("h{i}"), &format!("r{rack}"), *c, *m, vec![]))
            .collect();
        let tasks: Vec<PendingTask> = tasks.iter().enumerate().map(|(i, (c, m, g, unique))| PendingTask {
            constraints: if *unique { unique_host() } else { vec![] },
            ..task(&format!("t{i}"), &format!("g{g}{unique}"), *c, *m)
        }).collect();
        let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), per_offer);
        let by_name: HashMap<_, _> = tasks.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut seen = std::collections::HashSet::new();
        let mut unique_hosts = std::collections::HashSet::new();
        for a in &plan.accepts {
            let o = offers.iter().find(|o| o.name == a.offer).unwrap();
            let (mut cpus, mut mem) = (0.0, 0.0);
            for t in &a.tasks {
                prop_assert!(seen.insert(t.clone()), "{t} placed twice");
                let t = by_name[t.as_str()];
                cpus += round_scalar(t.resources.cpus);
                mem += round_scalar(t.resources.mem);
                if !t.constraints.is_empty() {
                    prop_assert!(unique_hosts.insert((t.group.clone(), a.agent.clone())), "UNIQUE broken");
                }
            }
            // Scalars live on the 1/1000 grid: `Resources` rounds each need and
            // each remainder to it, so the needs rounded add up to the offer
            // rounded, give or take the one step of the first remainder.
            let slack = 0.001 + 1e-6;
            prop_assert!(cpus <= round_scalar(o.resources.cpus) + slack && mem <= round_scalar(o.resources.mem) + slack);
            prop_assert!(!plan.declines.contains(&a.offer));
        }
        prop_assert_eq!(plan.accepts.len() + plan.declines.len(), offers.len());
        prop_assert_eq!(seen.len() + plan.unplaced.len(), tasks.len());
    }
}

proptest! {
    #[test]
    fn equal_offers_take_turns_of_per_offer_tasks(n_offers in 1usize..30, n_tasks in 0usize..300, per_offer in 1usize..12) {
        let offers: Vec<OfferView> = (0..n_offers)
            .map(|i| offer(&format!("o{i}"), &format!("h{i:02}"), "a", 1000.0, 1e6, vec![]))
            .collect();
        let tasks: Vec<PendingTask> = (0..n_tasks).map(|i| task(&format!("t{i}"), "j", 0.1, 32.0)).collect();
        let plan = plan_launches(&offers, &tasks, &mut ConstraintContext::new(), per_offer);
        prop_assert!(plan.unplaced.is_empty());
        prop_assert_eq!(plan.accepts.len(), n_offers.min(n_tasks.div_ceil(per_offer)));
        let mut counts: Vec<usize> = plan.accepts.iter().map(|a| a.tasks.len()).collect();
        counts.resize(n_offers, 0);
        let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
        prop_assert!(max - min <= per_offer, "{counts:?}");
        prop_assert!(max <= n_tasks.div_ceil(n_offers) + per_offer, "{counts:?}");
        if n_tasks <= n_offers * per_offer {
            prop_assert!(max <= per_offer, "{counts:?}");
        }
        prop_assert_eq!(counts.iter().sum::<usize>(), n_tasks);
    }
}
