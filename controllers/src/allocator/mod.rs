//! The allocator controller: level one of two-level scheduling. Keeps
//! reflector caches of agents, tasks, offers, frameworks, reservations,
//! quotas, roles and leases; every allocation interval, and soon after a
//! change (coalesced), plans a cycle ([`plan::plan_cycle`]) and applies it:
//! creates `Offer`s, rescinds (deletes) offers that may no longer stand,
//! admits Reservations, kills the tasks of frameworks past their failover
//! timeout, and writes Framework / Role / Quota status where it changed.
//!
//! It must not decide anything itself: decisions are in [`plan`],
//! [`crate::frameworks`], [`crate::reservations`] and
//! `meseta_schemas::allocation`.
//!
//! # Caveats
//!
//! - The caches are separate watches, so right after an accept the offer
//!   may be gone from the cache before the bound tasks arrive. An offer that
//!   disappears without this controller deleting it (including one accepted
//!   or declined before any cycle saw it, which the offers watch reports)
//!   stays charged, never rescinded, until the tasks cache has applied the
//!   revision that deleted it (at most [`AllocatorConfig::consumed_grace`]),
//!   so its resources are not offered twice meanwhile (see `ledger`).
//! - Writes that lose a race (409) are dropped: the next cycle plans again
//!   from fresher caches.

mod ledger;
pub mod plan;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meseta_client::reflector::Store;
use meseta_client::watcher::Event;
use meseta_client::{Api, Client, ObjectRef, WatchParams};
use meseta_schemas::kinds::{Agent, Framework, Lease, Offer, Quota, Reservation, Role, Task};
use meseta_schemas::Resource;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::Clock;
use crate::tasks::cache::{spawn_cache, spawn_cache_observing, wait_tick};
use crate::watches::Watches;

pub use plan::{plan_cycle, CyclePlan, Snapshot, LABEL_AGENT, LABEL_FRAMEWORK};

/// Settings of the allocator controller.
#[derive(Clone)]
pub struct AllocatorConfig {
    /// Longest time between cycles. Default 1 s (Mesos' allocation interval).
    pub interval: Duration,
    /// Shortest time between cycles, so bursts of changes coalesce. Default 100 ms.
    pub min_interval: Duration,
    /// How long an offer stands before it expires. Default 30 s.
    pub offer_timeout: Duration,
    /// The longest an offer that vanished (accepted, declined) stays charged
    /// while the tasks cache catches up with its deletion. Default 2 s.
    pub consumed_grace: Duration,
    /// Concurrent writes per cycle. Default 16.
    pub write_concurrency: usize,
    /// Wall clock (tests may use a manual one).
    pub clock: Clock,
    /// Where to register metrics, if anywhere.
    pub registry: Option<prometheus::Registry>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            interval: Duration::from_secs(1),
            min_interval: Duration::from_millis(100),
            offer_timeout: Duration::from_secs(30),
            consumed_grace: Duration::from_secs(2),
            write_concurrency: 16,
            clock: Clock::system(),
            registry: None,
        }
    }
}

struct Caches {
    agents: Store<Agent>,
    tasks: Store<Task>,
    offers: Store<Offer>,
    frameworks: Store<Framework>,
    reservations: Store<Reservation>,
    quotas: Store<Quota>,
    roles: Store<Role>,
    leases: Store<Lease>,
}

impl Caches {
    fn ready(&self) -> bool {
        self.agents.is_ready()
            && self.tasks.is_ready()
            && self.offers.is_ready()
            && self.frameworks.is_ready()
            && self.reservations.is_ready()
            && self.quotas.is_ready()
            && self.roles.is_ready()
            && self.leases.is_ready()
    }
}

fn owned<K: Resource + Clone>(store: &Store<K>) -> Vec<K> {
    store.list().iter().map(|k| (**k).clone()).collect()
}

/// Owned copies of a cache's objects, copied again only when the cache changed
/// (agents change seldom; a cycle runs up to ten times a second).
struct Owned<K> {
    /// The cached objects the copies were made from, in name order.
    from: Vec<Arc<K>>,
    copies: Vec<K>,
}

impl<K> Default for Owned<K> {
    fn default() -> Self {
        Owned { from: Vec::new(), copies: Vec::new() }
    }
}

impl<K: Resource + Clone> Owned<K> {
    /// Copies of every object of `store` (taken out: hand them back with [`Owned::keep`]).
    fn current(&mut self, store: &Store<K>) -> Vec<K> {
        let mut now = store.list();
        now.sort_unstable_by(|a, b| (&a.meta().namespace, &a.meta().name).cmp(&(&b.meta().namespace, &b.meta().name)));
        let same = now.len() == self.from.len()
            && self.copies.len() == now.len()
            && now.iter().zip(&self.from).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            self.copies = now.iter().map(|k| (**k).clone()).collect();
            self.from = now;
        }
        std::mem::take(&mut self.copies)
    }

    /// Takes back the copies [`Owned::current`] handed out.
    fn keep(&mut self, copies: Vec<K>) {
        self.copies = copies;
    }
}

/// Runs the allocator until `cancel`.
pub async fn run(client: Client, config: AllocatorConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let watches = Watches::new(client.clone(), cancel.clone());
    run_shared(client, config, &watches, cancel).await
}

/// [`run`], with the Task cache of `watches`.
pub async fn run_shared(
    client: Client,
    config: AllocatorConfig,
    watches: &Watches,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let w = WatchParams::default();
    // Offers the watch reported deleted since the last cycle, with the
    // revision that deleted them.
    let gone: Arc<Mutex<Vec<ledger::Gone>>> = Arc::default();
    let gone_w = gone.clone();
    let record_gone = move |ev: &Event<Offer>| {
        if let Event::Deleted(o) = ev {
            gone_w.lock().expect("gone offers lock").push((ledger::key(o), o.revision()));
        }
    };
    // The newest revision the tasks cache has applied.
    let tasks_seen = Arc::new(AtomicU64::new(0));
    let tasks_seen_w = tasks_seen.clone();
    let record_tasks = move |ev: &Event<Task>| {
        let newest = ev.objects().map(Resource::revision).max().unwrap_or(0);
        tasks_seen_w.fetch_max(newest, Ordering::AcqRel);
    };
    let caches = Caches {
        agents: watches.agents(changed.clone()),
        tasks: watches.tasks(changed.clone(), record_tasks),
        offers: spawn_cache_observing(
            Api::all(client.clone()),
            w.clone(),
            changed.clone(),
            cancel.clone(),
            record_gone,
        ),
        frameworks: watches.frameworks(changed.clone()),
        reservations: spawn_cache(Api::all(client.clone()), w.clone(), changed.clone(), cancel.clone()),
        quotas: spawn_cache(Api::all(client.clone()), w.clone(), changed.clone(), cancel.clone()),
        roles: spawn_cache(Api::all(client.clone()), w.clone(), changed.clone(), cancel.clone()),
        leases: spawn_cache(Api::all(client.clone()), w, changed.clone(), cancel.clone()),
    };
    let metrics = write::Metrics::new(config.registry.as_ref());
    let mut ledger = ledger::Ledger::default();
    let mut agents = Owned::default();
    let offer_timeout = chrono::Duration::from_std(config.offer_timeout).unwrap_or(chrono::Duration::seconds(30));
    while wait_tick(&changed, config.interval, config.min_interval, &cancel).await {
        if !caches.ready() {
            continue;
        }
        let started = Instant::now();
        // Drain before reading the cache: a deletion applied after this
        // drain is reported next cycle, never lost.
        let gone_now = std::mem::take(&mut *gone.lock().expect("gone offers lock"));
        // Read before the tasks below: every task at or below it is in them.
        let tasks_seen = tasks_seen.load(Ordering::Acquire);
        let believed = ledger.believe(
            caches.offers.list(),
            &gone_now,
            tasks_seen,
            started,
            config.offer_timeout,
            config.consumed_grace,
        );
        let snap = Snapshot {
            agents: agents.current(&caches.agents),
            tasks: caches.tasks.list(),
            offers: believed.standing,
            consumed: believed.consumed,
            frameworks: owned(&caches.frameworks),
            reservations: owned(&caches.reservations),
            quotas: owned(&caches.quotas),
            roles: owned(&caches.roles),
            // Framework leases only: the agents' heartbeats are many and not read here.
            leases: caches
                .leases
                .list()
                .iter()
                .filter(|l| l.metadata.name.starts_with("framework-"))
                .map(|l| (**l).clone())
                .collect(),
        };
        let seed = rand::random::<u64>();
        let plan = plan_cycle(&snap, config.clock.now(), offer_timeout, seed);
        agents.keep(snap.agents);
        let (offered, rescinded) = (plan.create.len(), plan.rescind.len());
        let span = tracing::debug_span!("allocation_cycle", offers = offered, rescinds = rescinded);
        let now = Instant::now();
        for (ns, name, _) in &plan.rescind {
            ledger.rescinded(ObjectRef { namespace: Some(ns.clone()), name: name.clone() }, now);
        }
        for o in &plan.create {
            ledger.created(o, now);
        }
        let failed = write::apply(&client, plan, config.write_concurrency, &metrics).instrument(span).await;
        let failed_count = failed.len();
        for k in failed {
            ledger.create_failed(&k);
        }
        metrics.cycle(started.elapsed());
        tracing::debug!(
            offered,
            rescinded,
            failed = failed_count,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "allocation cycle"
        );
    }
    Ok(())
}
