//! The jobs controller: the built-in framework `meseta` of every role.
//!
//! Owns the `Framework` `meseta` and its heartbeat lease in each role that
//! has Jobs or framework-less Tasks, keeping each Job's instances (create,
//! replace with backoff, retry, cron, scale, rolling update), placing its
//! PENDING and new tasks on its offers (accept / decline), preemption for
//! production jobs, and Job status. It must not bind tasks itself (the
//! apiserver's accept does), nor run them, nor decide LOST (liveness) or
//! transient timeouts (tasks controller).
//!
//! # Layout
//! - `instances`: the pure job planner ([`instances::plan_job`]).
//! - `plan`: the pure launch planner ([`plan::plan_launches`]).
//! - `constraints`, `cron`, `update`, `preempt`, `demand`: pure rules.
//! - `reconcile`: the job plans' writes (status, creates, kills).
//! - `place`: accepts, declines and offer demand.
//! - `apply`: registration, preemption.
//!
//! A Task created without `spec.framework` (and without a Job) belongs to
//! `meseta` and is placed like a one-instance adhoc job: placed once, never
//! replaced.

mod apply;
pub mod constraints;
pub mod cron;
pub mod demand;
pub mod instances;
mod place;
pub mod plan;
pub mod preempt;
mod reconcile;
pub mod update;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use meseta_client::reflector::Store;
use meseta_client::{Api, Client, WatchParams};
use meseta_schemas::kinds::{Agent, Job, Offer, Task, TaskState};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::tasks::cache;
use crate::watches::Watches;
pub use instances::PlanConfig;

/// Name of the built-in framework in every role.
pub const FRAMEWORK: &str = "meseta";

/// Settings of the jobs controller.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Backoff, retention and stability tuning of the job planner.
    pub plan: PlanConfig,
    /// How long a production task stays PENDING before it may preempt. Default 3 min.
    pub preemption_delay: Duration,
    /// `refuseSeconds` of declines of offers nothing fits. Default 5 s.
    pub decline_refuse_seconds: f64,
    /// How long a role has no task waiting for an offer before its
    /// framework suppresses offers. Default 5 s.
    pub idle_suppress_after: Duration,
    /// How often everything is looked at even without a change. Default 1 s.
    pub resync: Duration,
    /// How long a burst of changes is coalesced. Default 20 ms; a pass is
    /// not started sooner after the last than that one's planning took.
    pub settle: Duration,
    /// How many writes run at once. Default 64.
    pub concurrency: usize,
    /// How many tasks one pass creates at most (Kubernetes' `burstReplicas`);
    /// the next pass creates more. Default 10,000.
    pub max_creates_per_pass: usize,
    /// The shortest time between two status writes of one Job, so a Job
    /// whose tasks change all the time is not written every pass (like the
    /// Kubernetes job controller's sync batch period). Default 1 s.
    pub status_period: Duration,
    /// How many tasks the launch planner puts on one offer before the next
    /// offer gets its turn (like Marathon's `max_tasks_per_offer`, but an
    /// offer gets another turn once every offer had one). More makes fewer,
    /// larger accepts (each accept consumes the agent's whole offer, which
    /// the allocator then makes again); fewer spreads a small batch over
    /// more agents. Default 8.
    pub tasks_per_offer: usize,
    /// Where "now" comes from (cron, backoff, preemption delay).
    pub clock: Clock,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            plan: PlanConfig::default(),
            preemption_delay: Duration::from_secs(180),
            decline_refuse_seconds: 5.0,
            idle_suppress_after: Duration::from_secs(5),
            resync: Duration::from_secs(1),
            settle: Duration::from_millis(20),
            concurrency: 64,
            max_creates_per_pass: 10_000,
            status_period: Duration::from_secs(1),
            tasks_per_offer: 8,
            clock: Clock::system(),
        }
    }
}

/// The caches the loop plans from.
#[derive(Clone)]
pub(crate) struct Caches {
    pub(crate) jobs: Store<Job>,
    pub(crate) tasks: Store<Task>,
    pub(crate) offers: Store<Offer>,
    pub(crate) agents: Store<Agent>,
}

/// What the loop remembers from one pass to the next.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) in_flight: InFlight,
    pub(crate) demand: demand::Demand,
}

/// Objects acted on whose change the caches have not shown yet.
#[derive(Default)]
pub(crate) struct InFlight {
    pub(crate) offers: HashMap<(String, String), Instant>,
    pub(crate) tasks: HashMap<(String, String), Instant>,
}

impl InFlight {
    fn prune(&mut self, now: Instant) {
        self.offers.retain(|_, t| now.duration_since(*t) < Duration::from_secs(30));
        self.tasks.retain(|_, t| now.duration_since(*t) < Duration::from_secs(10));
    }
}

/// Runs the jobs controller until `cancel`.
pub async fn run(client: Client, config: JobsConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    let watches = Watches::new(client.clone(), cancel.clone());
    run_shared(client, config, &watches, cancel).await
}

/// [`run`], with the Task cache of `watches`.
pub async fn run_shared(
    client: Client,
    config: JobsConfig,
    watches: &Watches,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let wp = WatchParams::default;
    let caches = Caches {
        jobs: cache::spawn_cache(Api::<Job>::all(client.clone()), wp(), changed.clone(), cancel.clone()),
        tasks: watches.tasks(changed.clone(), |_| {}),
        offers: cache::spawn_cache(
            Api::<Offer>::all(client.clone()),
            wp().fields(format!("spec.framework={FRAMEWORK}")),
            changed.clone(),
            cancel.clone(),
        ),
        agents: watches.agents(changed.clone()),
    };
    let mut memory = Memory::default();
    let mut registered: HashMap<String, Instant> = HashMap::new();
    let mut creating: HashMap<(String, String), Instant> = HashMap::new();
    let mut status_at: HashMap<(String, String), Instant> = HashMap::new();
    // The task writes of an earlier pass (creates, kills) while they run,
    // and how many tasks they create.
    let mut job_writes: Option<(JoinHandle<()>, usize)> = None;
    let mut busy = Duration::ZERO;
    while cache::wait_tick(&changed, config.resync, cache::paced_settle(config.settle, busy), &cancel).await {
        if !(caches.jobs.is_ready() && caches.tasks.is_ready() && caches.offers.is_ready() && caches.agents.is_ready())
        {
            continue;
        }
        let started = Instant::now();
        memory.in_flight.prune(started);
        let tasks = caches.tasks.list();
        let roles: HashSet<String> = caches
            .jobs
            .list()
            .iter()
            .filter_map(|j| j.metadata.namespace.clone())
            .chain(tasks.iter().filter(|t| is_ours(t)).filter_map(|t| t.metadata.namespace.clone()))
            .collect();
        let mut cpu = started.elapsed();
        apply::register(&client, &roles, &mut registered).await;
        let registered_at = Instant::now();
        // The Jobs are planned again once the task writes of the last plan
        // are done; meanwhile passes place the tasks the cache shows, so
        // creating and placing run side by side.
        let mut created = 0;
        let mut writes = None;
        if job_writes.as_ref().is_none_or(|(h, _)| h.is_finished()) {
            let planned =
                reconcile::reconcile_jobs(&client, &caches, &tasks, &config, &mut creating, &mut status_at).await;
            created = planned.created;
            writes = Some(planned);
        }
        let planned_at = Instant::now();
        // Tasks being created are not in `tasks`: offers are not declined
        // for want of them.
        let decline = !job_writes.as_ref().is_some_and(|(h, n)| *n > 0 && !h.is_finished());
        // New tasks are launched straight from the offers that fit them (as
        // Marathon and Aurora launch from offers); only the rest are created
        // PENDING, to be placed as offers come.
        // The other task writes (kills, releases, deletes, creates with a
        // count to record) start at once, as before.
        let mut fresh = Vec::new();
        let early = writes.map(|mut w| {
            fresh = std::mem::take(&mut w.fresh);
            tokio::spawn(w.run(config.concurrency))
        });
        cpu += place::place(&client, &caches, &tasks, &config, &mut memory, &roles, decline, &mut fresh).await;
        if let Some(early) = early {
            let rest = reconcile::JobWrites::creates_of(&client, fresh);
            let concurrency = config.concurrency;
            job_writes = Some((
                tokio::spawn(async move {
                    let (_, ()) = futures::join!(early, rest.run(concurrency));
                }),
                created,
            ));
        }
        let placed_at = Instant::now();
        apply::preempt(&client, &caches, &tasks, &config).await;
        busy = cpu;
        let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1e3;
        tracing::debug!(
            tasks = tasks.len(),
            created,
            register_ms = ms(started, registered_at),
            jobs_ms = ms(registered_at, planned_at),
            place_ms = ms(planned_at, placed_at),
            preempt_ms = ms(placed_at, Instant::now()),
            busy_ms = busy.as_secs_f64() * 1e3,
            "jobs pass"
        );
    }
    if let Some((writes, _)) = job_writes {
        writes.abort();
    }
    Ok(())
}

/// Whether `task` belongs to the built-in framework.
pub fn is_ours(task: &Task) -> bool {
    task.spec.framework.as_deref().is_none_or(|f| f == FRAMEWORK || f.is_empty())
}

/// Whether the task waits for an offer.
fn waits_for_offer(task: &Task) -> bool {
    task.state() == TaskState::Pending && task.spec.agent.is_none() && !task.spec.kill_requested && is_ours(task)
}
