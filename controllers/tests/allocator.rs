//! The allocator controller against a real apiserver: simulated agents are
//! `Agent` objects with `Ready=True`, frameworks are test clients that
//! heartbeat a Lease and answer offers.

use std::future::Future;
use std::time::Duration;

use meseta_apiserver::testing::TestServer;
use meseta_client::{Api, Client, DeleteParams, ListParams};
use meseta_controllers::allocator::{self, AllocatorConfig};
use meseta_schemas::kinds::{
    Agent, AgentSpec, AgentStatus, Condition, Framework, FrameworkSpec, Lease, LeaseSpec, Offer, Quota, QuotaSpec,
    Reservation, ReservationSpec, ReservationState, Role, RoleSpec, Task, TaskSpec, TaskState, TaskStatus,
};
use meseta_schemas::{PortRange, Resources};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Cluster {
    _server: TestServer,
    client: Client,
    cancel: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn cluster() -> Cluster {
    let server = TestServer::start().await;
    let client = Client::new(server.url()).unwrap();
    Cluster { _server: server, client, cancel: CancellationToken::new() }
}

impl Cluster {
    fn start_allocator(&self, offer_timeout: Duration) {
        let config = AllocatorConfig {
            interval: Duration::from_millis(200),
            min_interval: Duration::from_millis(20),
            offer_timeout,
            ..Default::default()
        };
        tokio::spawn(allocator::run(self.client.clone(), config, self.cancel.clone()));
    }

    async fn agent(&self, name: &str, cpus: f64) {
        let spec = AgentSpec {
            resources: Resources {
                ports: vec![PortRange { begin: 31000, end: 31010 }],
                ..Resources::scalars(cpus, cpus * 1024.0, 0.0, 0.0)
            },
            ..Default::default()
        };
        let api: Api<Agent> = Api::all(self.client.clone());
        let mut a = api.create(&Agent::new(name, spec)).await.unwrap();
        self.set_ready(&mut a, true).await;
    }

    async fn set_ready(&self, a: &mut Agent, ready: bool) {
        let api: Api<Agent> = Api::all(self.client.clone());
        let status = if ready { "True" } else { "False" };
        a.status = Some(AgentStatus {
            conditions: vec![Condition { type_: "Ready".into(), status: status.into(), ..Default::default() }],
            ..Default::default()
        });
        *a = api.replace_status(a).await.unwrap();
    }

    async fn framework(&self, role: &str, name: &str, spec: FrameworkSpec) {
        let api: Api<Framework> = Api::namespaced(self.client.clone(), role);
        api.create(&Framework::new(name, spec)).await.unwrap();
        self.lease(role, name, chrono::Utc::now(), 3600).await;
    }

    async fn lease(&self, role: &str, name: &str, renewed: chrono::DateTime<chrono::Utc>, secs: u32) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), role);
        let spec = LeaseSpec {
            holder_identity: Some(name.into()),
            renew_time: Some(renewed),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        };
        api.create(&Lease::new(format!("framework-{name}"), spec)).await.unwrap();
    }

    async fn offers(&self, role: &str, framework: &str) -> Vec<Offer> {
        let api: Api<Offer> = Api::namespaced(self.client.clone(), role);
        let lp = ListParams { label_selector: Some(format!("meseta.io/framework={framework}")), ..Default::default() };
        api.list(&lp).await.unwrap().items
    }

    async fn accept(&self, role: &str, offer: &str, body: Value) -> meseta_client::Result<Value> {
        let api: Api<Offer> = Api::namespaced(self.client.clone(), role);
        api.post_subresource(offer, "accept", &body).await
    }
}

/// Polls `check` until it returns `Some` (bounded, so a broken controller fails the test).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn one_offer(c: &Cluster, role: &str, fw: &str) -> Offer {
    eventually(&format!("an offer for {fw}"), || async {
        let mut o = c.offers(role, fw).await;
        (o.len() == 1).then(|| o.remove(0))
    })
    .await
}

#[tokio::test]
async fn offers_accept_decline_filters_and_revive() {
    let c = cluster().await;
    c.start_allocator(Duration::from_secs(30));
    c.agent("a1", 4.0).await;
    c.framework("web", "fw1", FrameworkSpec::default()).await;
    let offer = one_offer(&c, "web", "fw1").await;
    assert_eq!(offer.spec.agent, "a1");
    assert_eq!(offer.spec.resources.cpus, 4.0);
    assert!(offer.spec.expires_at.is_some());
    assert_eq!(offer.metadata.labels.get("meseta.io/agent").map(String::as_str), Some("a1"));

    let task = json!({"metadata": {"name": "t1"},
        "spec": {"command": "sleep 10", "resources": {"cpus": 1, "mem": 512}, "ports": [{"name": "http"}]}});
    let body = json!({"operations": [{"type": "Launch", "tasks": [task]}], "filters": {"refuseSeconds": 0}});
    let r = c.accept("web", &offer.metadata.name, body).await.unwrap();
    assert_eq!(r["tasks"][0]["status"]["state"], "ASSIGNED");
    assert_eq!(r["tasks"][0]["status"]["ports"], json!([31000]));
    // The rest is offered again, minus what the task holds.
    let again = one_offer(&c, "web", "fw1").await;
    assert_ne!(again.metadata.name, offer.metadata.name);
    assert_eq!(again.spec.resources.cpus, 3.0);
    assert_eq!(again.spec.resources.ports, vec![PortRange { begin: 31001, end: 31010 }]);

    // Decline with a long filter: fw1 gets nothing more, fw2 gets the agent.
    let api: Api<Offer> = Api::namespaced(c.client.clone(), "web");
    let _: Value = api
        .post_subresource(&again.metadata.name, "decline", &json!({"filters": {"refuseSeconds": 3600}}))
        .await
        .unwrap();
    c.framework("web", "fw2", FrameworkSpec::default()).await;
    let other = one_offer(&c, "web", "fw2").await;
    assert_eq!(other.spec.agent, "a1");
    assert!(c.offers("web", "fw1").await.is_empty());

    // fw2 suppresses: its offer is rescinded; fw1 is still filtered.
    let fws: Api<Framework> = Api::namespaced(c.client.clone(), "web");
    fws.patch_merge("fw2", &json!({"spec": {"suppressed": true}})).await.unwrap();
    eventually("fw2's offer rescinded", || async { c.offers("web", "fw2").await.is_empty().then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.offers("web", "fw1").await.is_empty(), "a declined agent was re-offered under its filter");
    assert!(c.offers("web", "fw2").await.is_empty(), "a suppressed framework got an offer");

    // REVIVE: fw1's filters are cleared and it is offered the agent again.
    fws.patch_merge("fw1", &json!({"spec": {"reviveGeneration": 1}})).await.unwrap();
    one_offer(&c, "web", "fw1").await;
    let fw1 = eventually("fw1 status", || async {
        let f = fws.get("fw1").await.unwrap();
        f.status.clone().filter(|s| s.observed_revive_generation == 1 && s.allocated.cpus == 4.0).map(|_| f)
    })
    .await;
    let status = fw1.status.unwrap();
    assert!(status.filters.is_empty());
    assert!(status.registered);
    assert!(status.dominant_share > 0.99, "{status:?}");
}

#[tokio::test]
async fn offers_expire_and_are_rescinded_on_agent_loss() {
    let c = cluster().await;
    c.start_allocator(Duration::from_millis(700));
    c.agent("a1", 2.0).await;
    c.framework("web", "fw", FrameworkSpec::default()).await;
    let first = one_offer(&c, "web", "fw").await;
    let second = eventually("a fresh offer after expiry", || async {
        c.offers("web", "fw").await.into_iter().find(|o| o.metadata.name != first.metadata.name)
    })
    .await;
    assert_eq!(second.spec.agent, "a1");
    let api: Api<Offer> = Api::namespaced(c.client.clone(), "web");
    assert!(api.get_opt(&first.metadata.name).await.unwrap().is_none(), "the expired offer still exists");

    let agents: Api<Agent> = Api::all(c.client.clone());
    let mut a1 = agents.get("a1").await.unwrap();
    c.set_ready(&mut a1, false).await;
    eventually("offers rescinded", || async { c.offers("web", "fw").await.is_empty().then_some(()) }).await;
    c.set_ready(&mut a1, true).await;
    one_offer(&c, "web", "fw").await;
    agents.delete("a1", &DeleteParams::default()).await.unwrap();
    eventually("offers rescinded", || async { c.offers("web", "fw").await.is_empty().then_some(()) }).await;
}

#[tokio::test]
async fn weights_two_to_one_split_the_agents_two_to_one() {
    let c = cluster().await;
    let roles: Api<Role> = Api::all(c.client.clone());
    roles.create(&Role::new("gold", RoleSpec { weight: 2.0 })).await.unwrap();
    roles.create(&Role::new("bronze", RoleSpec { weight: 1.0 })).await.unwrap();
    for i in 0..6 {
        c.agent(&format!("a{i}"), 2.0).await;
    }
    c.framework("gold", "g", FrameworkSpec::default()).await;
    c.framework("bronze", "b", FrameworkSpec::default()).await;
    c.start_allocator(Duration::from_secs(30));
    let (gold, bronze) = eventually("every agent offered", || async {
        let (g, b) = (c.offers("gold", "g").await.len(), c.offers("bronze", "b").await.len());
        (g + b == 6).then_some((g, b))
    })
    .await;
    assert_eq!((gold, bronze), (4, 2));
    let role = eventually("role status", || async {
        roles.get("gold").await.unwrap().status.filter(|s| s.allocated.cpus == 8.0)
    })
    .await;
    assert!((role.dominant_share - 4.0 / 6.0).abs() < 1e-3, "{role:?}");
}

#[tokio::test]
async fn reservations_are_admitted_or_fail_and_quota_status_follows() {
    let c = cluster().await;
    c.agent("a1", 4.0).await;
    c.start_allocator(Duration::from_secs(30));
    let quotas: Api<Quota> = Api::namespaced(c.client.clone(), "web");
    let limit = Resources::scalars(3.0, 8192.0, 0.0, 0.0);
    quotas.create(&Quota::new("q", QuotaSpec { guarantee: Resources::default(), limit: Some(limit) })).await.unwrap();
    let rsvs: Api<Reservation> = Api::namespaced(c.client.clone(), "web");
    let spec = |cpus| ReservationSpec { agent: "a1".into(), resources: Resources::scalars(cpus, 0.0, 0.0, 0.0) };
    rsvs.create(&Reservation::new("small", spec(3.0))).await.unwrap();
    let state = |name: &'static str| {
        let rsvs = rsvs.clone();
        async move { rsvs.get(name).await.unwrap().status.filter(|s| s.state != ReservationState::Pending) }
    };
    let small = eventually("small admitted", || state("small")).await;
    assert_eq!(small.state, ReservationState::Ready, "{small:?}");
    rsvs.create(&Reservation::new("big", spec(2.0))).await.unwrap();
    let big = eventually("big decided", || state("big")).await;
    assert_eq!(big.state, ReservationState::Failed);
    assert!(big.message.contains("cpus"), "{}", big.message);

    // The framework is offered its reservation plus the rest up to its limit.
    c.framework("web", "fw", FrameworkSpec::default()).await;
    let offer = one_offer(&c, "web", "fw").await;
    assert_eq!(offer.spec.reserved.cpus, 3.0);
    let q =
        eventually("quota status", || async { quotas.get("q").await.unwrap().status.filter(|s| s.used.cpus > 0.0) })
            .await;
    assert_eq!(q.used.cpus, offer.spec.resources.cpus + 3.0);
    assert_eq!(q.headroom.unwrap().cpus, 3.0 - q.used.cpus);
}

#[tokio::test]
async fn a_framework_past_its_failover_timeout_has_its_tasks_killed() {
    let c = cluster().await;
    c.agent("a1", 4.0).await;
    let fws: Api<Framework> = Api::namespaced(c.client.clone(), "web");
    fws.create(&Framework::new("old", FrameworkSpec { failover_timeout_seconds: 1.0, ..Default::default() }))
        .await
        .unwrap();
    c.lease("web", "old", chrono::Utc::now() - chrono::Duration::seconds(60), 10).await;
    let tasks: Api<Task> = Api::namespaced(c.client.clone(), "web");
    let spec = TaskSpec { framework: Some("old".into()), command: Some("sleep 100".into()), ..Default::default() };
    let mut t = tasks.create(&Task::new("t", spec)).await.unwrap();
    t.status = Some(TaskStatus { state: TaskState::Pending, ..Default::default() });
    tasks.replace_status(&t).await.unwrap();
    c.start_allocator(Duration::from_secs(30));
    eventually("kill requested", || async { tasks.get("t").await.unwrap().spec.kill_requested.then_some(()) }).await;
    let status = eventually("status written", || async { fws.get("old").await.unwrap().status }).await;
    assert!(!status.registered);
    assert!(c.offers("web", "old").await.is_empty());
}
