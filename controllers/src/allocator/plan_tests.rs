//! Table tests of [`plan_cycle`]: what is rescinded and why, and that
//! offers already standing are not offered twice.

use meseta_schemas::kinds::{
    AgentSpec, AgentStatus, Condition, FrameworkSpec, LeaseSpec, OfferSpec, ReservationSpec, ReservationStatus,
};

use super::*;

fn now() -> Time {
    chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn snapshot() -> Snapshot {
    let mut agent =
        Agent::new("a1", AgentSpec { resources: Resources::scalars(4.0, 4096.0, 0.0, 0.0), ..Default::default() });
    agent.status = Some(AgentStatus {
        conditions: vec![Condition { type_: "Ready".into(), status: "True".into(), ..Default::default() }],
        ..Default::default()
    });
    let fw = Framework::new("fw", FrameworkSpec::default()).in_namespace("web");
    let lease = Lease::new(
        "framework-fw",
        LeaseSpec { renew_time: Some(now()), lease_duration_seconds: Some(60), ..Default::default() },
    )
    .in_namespace("web");
    Snapshot { agents: vec![agent], frameworks: vec![fw], leases: vec![lease], ..Default::default() }
}

fn offer(cpus: f64) -> Offer {
    let spec = OfferSpec {
        framework: "fw".into(),
        agent: "a1".into(),
        resources: Resources::scalars(cpus, 0.0, 0.0, 0.0),
        expires_at: Some(now() + chrono::Duration::seconds(30)),
        ..Default::default()
    };
    Offer::new("o", spec).in_namespace("web")
}

fn plan(s: &Snapshot) -> CyclePlan {
    plan_cycle(s, now(), chrono::Duration::seconds(30), 7)
}

#[test]
fn a_fresh_cluster_gets_one_offer_per_agent() {
    let p = plan(&snapshot());
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].spec.resources.cpus, 4.0);
    assert_eq!(p.create[0].spec.expires_at, Some(now() + chrono::Duration::seconds(30)));
    assert!(p.create[0].metadata.name.starts_with("fw-a1-"));
    // The same cycle with that offer standing offers nothing more.
    let mut s = snapshot();
    s.offers = p.create.iter().cloned().map(Arc::new).collect();
    let again = plan(&s);
    assert!(again.create.is_empty() && again.rescind.is_empty(), "{again:?}");
}

#[test]
fn rescind_reasons() {
    type Edit = fn(&mut Snapshot);
    let cases: [(&str, Edit, &str); 6] = [
        ("expired", |s| Arc::make_mut(&mut s.offers[0]).spec.expires_at = Some(now()), "expired"),
        ("agent gone", |s| s.agents.clear(), "gone"),
        ("agent not ready", |s| s.agents[0].status = None, "not Ready"),
        ("suppressed", |s| s.frameworks[0].spec.suppressed = true, "suppressed"),
        ("lease lapsed", |s| s.leases.clear(), "not connected"),
        (
            "reservation took it",
            |s| {
                let spec = ReservationSpec { agent: "a1".into(), resources: Resources::scalars(2.0, 0.0, 0.0, 0.0) };
                let mut r = Reservation::new("r", spec).in_namespace("batch");
                r.status = Some(ReservationStatus { state: ReservationState::Ready, ..Default::default() });
                s.reservations.push(r);
            },
            "no longer free",
        ),
    ];
    for (name, edit, why) in cases {
        let mut s = snapshot();
        s.frameworks[0].metadata.creation_timestamp = Some(now() - chrono::Duration::seconds(10));
        s.offers = vec![Arc::new(offer(4.0))];
        edit(&mut s);
        let p = plan(&s);
        assert_eq!(p.rescind.len(), 1, "{name}: {p:?}");
        assert!(p.rescind[0].2.contains(why), "{name}: {}", p.rescind[0].2);
    }
}

#[test]
fn status_is_listed_only_when_it_changes() {
    let s = snapshot();
    let p = plan(&s);
    assert_eq!(p.frameworks.len(), 1);
    let mut s2 = s.clone();
    s2.offers = p.create.iter().cloned().map(Arc::new).collect();
    s2.frameworks = p.frameworks.clone();
    assert!(plan(&s2).frameworks.is_empty(), "an unchanged status was written again");
}

#[test]
fn consumed_offers_are_charged_but_never_rescinded() {
    let mut s = snapshot();
    let mut gone = offer(4.0);
    gone.spec.expires_at = Some(now() - chrono::Duration::seconds(1));
    gone.spec.resources = Resources::scalars(4.0, 4096.0, 0.0, 0.0);
    s.consumed = vec![Arc::new(gone)];
    let p = plan(&s);
    assert!(p.rescind.is_empty(), "a consumed offer was rescinded: {:?}", p.rescind);
    assert!(p.create.is_empty(), "the agent was offered twice: {:?}", p.create);
    assert_eq!(p.frameworks[0].status.as_ref().unwrap().allocated.cpus, 4.0);
}

#[test]
fn a_reservation_made_ready_takes_in_what_its_roles_tasks_hold_before_offers_are_made() {
    let mut s = snapshot();
    let spec = meseta_schemas::kinds::TaskSpec {
        framework: Some("fw".into()),
        agent: Some("a1".into()),
        resources: Resources::scalars(1.0, 0.0, 0.0, 0.0),
        ..Default::default()
    };
    let mut task = Task::new("t", spec).in_namespace("web");
    task.status = Some(meseta_schemas::kinds::TaskStatus {
        state: meseta_schemas::kinds::TaskState::Running,
        ..Default::default()
    });
    s.tasks = vec![Arc::new(task)];
    let spec = ReservationSpec { agent: "a1".into(), resources: Resources::scalars(2.0, 0.0, 0.0, 0.0) };
    s.reservations.push(Reservation::new("r", spec).in_namespace("web"));
    let p = plan(&s);
    assert_eq!(p.reservations.len(), 1);
    assert_eq!(p.reservations[0].status.as_ref().unwrap().state, ReservationState::Ready);
    // Of the 2 reserved cpus the role's task holds 1; the 2 outside it are free.
    assert_eq!(p.create.len(), 1, "{p:?}");
    assert_eq!(p.create[0].spec.reserved.cpus, 1.0, "{:?}", p.create[0].spec);
    assert_eq!(p.create[0].spec.resources.cpus, 2.0, "{:?}", p.create[0].spec);
}
