//! Scheduling throughput of the whole control plane: Jobs totalling
//! `--instances` instances placed on `--agents` simulated agents through the
//! real apiserver, allocator, jobs controller and agent loop.
//!
//! `cargo run --release -p meseta-bench --bin schedule [-- --quick] [--agents N] [--instances N] [--jobs N]`
//!
//! Everything runs in this one process (mimalloc, like the apiserver
//! binary): an apiserver on a temporary sled directory on 127.0.0.1, the
//! controllers through `meseta_controllers::manager::run_all` with their
//! default settings and no leader election, and simulated agents, each the
//! real `meseta_agentd::Agent` loop with its own task watch (one shared HTTP connection pool) and its own
//! `FakeRuntime` (containers start at once and run until killed).
//!
//! Once every agent is `Ready`, `--jobs` service Jobs (0.1 cpu / 32 MiB per
//! instance) are created at once. Every 2 s the bench prints progress from
//! the Jobs' status; once that counts every instance running (or, every
//! 16 s, no task is found that is not RUNNING:
//! `fieldSelector=status.state!=RUNNING&limit=1`), every task is listed, and
//! when every instance runs, the figures are
//! taken from their `taskEvents`: total time from the first Job create to the last
//! RUNNING, tasks/s, and per task PENDING → ASSIGNED (MTTA) and PENDING →
//! RUNNING (MTTR).
//!
//! The apiserver and the controllers run on runtimes of their own, so the
//! CPU time of each part (apiserver, controllers, agents with the bench,
//! other threads such as the store's) is read from this process's threads
//! and printed per task (`schedule.cpu_per_task.<part>`, ms), with the
//! kernel's part of it all (`cpu_per_task.system`) and the process's peak
//! resident set (`peak_rss`, MiB): the cluster's memory is the kernel's
//! work too, as each page touched first is zeroed.
//!
//! Prints `bench schedule.<figure> <value> <unit>` lines; progress goes to
//! stderr, and so do the control plane's logs at the level
//! `MESETA_BENCH_LOG` asks for (an `EnvFilter`; default `warn`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use meseta_apiserver::store::sled::SledOptions;
use meseta_bench::procstat;
use meseta_bench::schedule::cluster::{AgentShape, SimCluster};
use meseta_bench::schedule::cpu::PartsCpu;
use meseta_bench::schedule::stats::{quantile, Timings, PHASES};
use meseta_bench::schedule::txns::TxnCounts;
use meseta_client::{Api, Client, ListParams};
use meseta_schemas::{Job, JobSpec, JobType, Resources, Task, TaskSpec};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Namespace (role) of the bench's Jobs.
const NS: &str = "bench";

#[derive(Parser, Debug)]
#[command(about = "Benchmark scheduling throughput through the whole control plane")]
struct Args {
    /// 50 agents and 2,000 instances (CI smoke).
    #[arg(long)]
    quick: bool,
    /// Simulated agents (default 1,000; 50 with --quick).
    #[arg(long)]
    agents: Option<usize>,
    /// Instances over all Jobs (default 100,000; 2,000 with --quick).
    #[arg(long)]
    instances: Option<usize>,
    /// Jobs the instances are split over (default one per 1,000 instances).
    #[arg(long)]
    jobs: Option<usize>,
    /// CPUs per agent.
    #[arg(long, default_value_t = 16.0)]
    agent_cpus: f64,
    /// Memory per agent, MiB.
    #[arg(long, default_value_t = 65536.0)]
    agent_mem: f64,
    /// How often an agent's runner looks at its fake container, ms. Tasks run
    /// until killed, so this only costs CPU; the agent's default is 100 ms.
    #[arg(long, default_value_t = 10_000)]
    poll_ms: u64,
    /// The jobs controller's `max_creates_per_pass` (default: the controller's).
    #[arg(long)]
    max_creates_per_pass: Option<usize>,
    /// The jobs controller's `tasks_per_offer` (default: the controller's).
    #[arg(long)]
    tasks_per_offer: Option<usize>,
    /// The apiserver's memo, MiB of stored bytes (`--store-memo-mib`;
    /// default: the apiserver's).
    #[arg(long)]
    store_memo_mib: Option<usize>,
    /// Give up after this many seconds from the first Job create.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

fn main() -> anyhow::Result<()> {
    // The allocator setting of `meseta-apiserver`, made before any thread starts.
    meseta_apiserver::allocator::block_on(run()).context("starting the async runtime")?
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs of the in-process control plane, off unless asked for.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESETA_BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let agents = args.agents.unwrap_or(if args.quick { 50 } else { 1_000 });
    let instances = args.instances.unwrap_or(if args.quick { 2_000 } else { 100_000 });
    let jobs = args.jobs.unwrap_or(instances.div_ceil(1_000)).max(1);
    if agents == 0 || instances == 0 {
        bail!("--agents and --instances must be positive");
    }
    if jobs > instances {
        bail!("--jobs ({jobs}) must not exceed --instances ({instances})");
    }
    let (cpu, mem) = (0.1, 32.0);
    if instances as f64 * cpu > agents as f64 * args.agent_cpus
        || instances as f64 * mem > agents as f64 * args.agent_mem
    {
        bail!("{instances} instances of {cpu} cpu / {mem} MiB do not fit on {agents} agents");
    }

    let setup = Instant::now();
    let mut config = meseta_controllers::manager::ManagerConfig::default();
    if let Some(n) = args.max_creates_per_pass {
        config.jobs.max_creates_per_pass = n.max(1);
    }
    if let Some(n) = args.tasks_per_offer {
        config.jobs.tasks_per_offer = n.max(1);
    }
    let mut store = SledOptions::default();
    if let Some(mib) = args.store_memo_mib {
        store.memo_capacity = mib << 20;
    }
    let mut cluster = SimCluster::start(config, store).await?;
    let shape =
        AgentShape { cpus: args.agent_cpus, mem: args.agent_mem, poll_interval: Duration::from_millis(args.poll_ms) };
    cluster.add_agents(agents, &shape)?;
    cluster.wait_ready(agents, Duration::from_secs(120)).await?;
    eprintln!(
        "schedule: apiserver {} and {agents} agents ready in {:.1} s",
        cluster.url,
        setup.elapsed().as_secs_f64()
    );

    let client = Client::new(&cluster.url)?;
    let http = reqwest::Client::new();
    let txns_before = TxnCounts::scrape(&http, &cluster.url).await?;
    let result = measure(&client, &args, instances, jobs, (cpu, mem)).await;
    let txns = match result.is_ok() {
        true => TxnCounts::scrape(&http, &cluster.url).await?.since(&txns_before),
        false => TxnCounts::default(),
    };
    cluster.stop().await;
    let m = result?;

    let tag = format!("{instances}x{agents}");
    println!(
        "schedule: {instances} instances in {jobs} jobs on {agents} agents: all RUNNING {:.2} s after the first create ({:.0} tasks/s)",
        m.total_s,
        instances as f64 / m.total_s
    );
    let t = &m.timings;
    println!(
        "schedule: MTTA p50 {:.3} s p99 {:.3} s max {:.3} s; MTTR p50 {:.3} s p99 {:.3} s max {:.3} s",
        quantile(&t.assign_s, 0.5),
        quantile(&t.assign_s, 0.99),
        quantile(&t.assign_s, 1.0),
        quantile(&t.run_s, 0.5),
        quantile(&t.run_s, 0.99),
        quantile(&t.run_s, 1.0)
    );
    // MTTA and MTTR count from each task's creation, and a task launched
    // straight from an offer is created ASSIGNED: how long the instances
    // waited since the Jobs were created is this.
    let (assigned, running) = (t.since(m.started, 1), t.since(m.started, 2));
    println!(
        "schedule: after the first Job create: ASSIGNED p50 {:.3} s p99 {:.3} s, RUNNING p50 {:.3} s p99 {:.3} s",
        quantile(&assigned, 0.5),
        quantile(&assigned, 0.99),
        quantile(&running, 0.5),
        quantile(&running, 0.99)
    );
    println!("schedule: Jobs created in {:.2} s", m.create_s);
    let cpu_total: f64 = m.cpu.0.values().sum();
    println!(
        "schedule: CPU from the first create to the look that saw all RUNNING: {cpu_total:.1} s ({})",
        m.cpu.0.iter().map(|(part, s)| format!("{part} {s:.1} s")).collect::<Vec<_>>().join(", ")
    );
    let peak_rss_mib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(procstat::peak_rss_kib)
        .map_or(0.0, |k| k as f64 / 1024.0);
    // The kernel's share: system calls, and zeroing each page the process
    // touches first (slow where a virtual machine's memory is backed lazily).
    println!(
        "schedule: of it in the kernel: {:.1} s ({:.0} %); peak RSS of the whole cluster {peak_rss_mib:.0} MiB",
        m.system_s,
        100.0 * m.system_s / cpu_total.max(f64::EPSILON)
    );
    let per_task_count = |n: f64| n / instances as f64;
    println!(
        "schedule: store transactions per task, committed / failed a compare: {}",
        txns.resources()
            .iter()
            .map(|r| format!(
                "{r} {:.2} / {:.2}",
                per_task_count(txns.get(r, "committed")),
                per_task_count(txns.get(r, "failed"))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (state, (n, message)) in &t.by_state {
        println!("schedule: {n:>7} tasks {state} (last message: {message:?})");
    }
    for (phase, [first, median, last]) in PHASES.iter().zip(t.timeline(m.started)) {
        println!("schedule: {phase:>8} from {first:>7.3} s, half by {median:>7.3} s, all by {last:>7.3} s");
    }
    let figures = [
        (format!("tasks_per_s.{tag}"), instances as f64 / m.total_s, "tasks/s"),
        ("total_s".into(), m.total_s, "s"),
        ("mtta.p50".into(), quantile(&t.assign_s, 0.5), "s"),
        ("mtta.p99".into(), quantile(&t.assign_s, 0.99), "s"),
        ("mttr.p50".into(), quantile(&t.run_s, 0.5), "s"),
        ("mttr.p99".into(), quantile(&t.run_s, 0.99), "s"),
        ("assigned_after_create.p50".into(), quantile(&assigned, 0.5), "s"),
        ("assigned_after_create.p99".into(), quantile(&assigned, 0.99), "s"),
    ];
    let per_task = |s: f64| s * 1e3 / instances as f64;
    let cpu_figures = m.cpu.0.iter().map(|(part, s)| (format!("cpu_per_task.{part}"), per_task(*s), "ms"));
    let txn_figures = txns.resources().into_iter().flat_map(|r| {
        ["committed", "failed"]
            .map(|outcome| (format!("txns_per_task.{r}.{outcome}"), per_task_count(txns.get(r, outcome)), "txns"))
    });
    let figures = figures
        .into_iter()
        .chain(cpu_figures)
        .chain([
            ("cpu_per_task.all".into(), per_task(cpu_total), "ms"),
            ("cpu_per_task.system".into(), per_task(m.system_s), "ms"),
            ("peak_rss".into(), peak_rss_mib, "MiB"),
        ])
        .chain(txn_figures);
    for (name, value, unit) in figures {
        let shown = if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.3}") };
        println!("bench schedule.{name} {shown} {unit}");
    }
    Ok(())
}

/// What one run measured.
struct Measured {
    /// First Job create → last task RUNNING, seconds.
    total_s: f64,
    /// First Job create → last Job created, seconds.
    create_s: f64,
    /// When the first Job create was sent.
    started: meseta_schemas::Time,
    timings: Timings,
    /// CPU seconds per part of the process over the same span (to the
    /// look at the tasks that found them all RUNNING).
    cpu: PartsCpu,
    /// The system part of that CPU, seconds (all parts together).
    system_s: f64,
}

/// Creates the Jobs, follows their status until every instance runs (or the
/// timeout), then reads the tasks' history.
async fn measure(
    client: &Client,
    args: &Args,
    instances: usize,
    jobs: usize,
    (cpu, mem): (f64, f64),
) -> anyhow::Result<Measured> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    let per_job = |i: usize| instances / jobs + usize::from(i < instances % jobs);
    let started_wall = chrono::Utc::now();
    tracing::info!(at = %started_wall, "first Job create");
    let started = Instant::now();
    let cpu_before = PartsCpu::now();
    let system_before = procstat::system_ms("self")?;
    futures::stream::iter(0..jobs)
        .map(|i| {
            let api = api.clone();
            async move {
                let spec = JobSpec {
                    type_: JobType::Service,
                    instances: u32::try_from(per_job(i)).context("instances per job")?,
                    template: TaskSpec {
                        command: Some("sleep infinity".into()),
                        resources: Resources::scalars(cpu, mem, 0.0, 0.0),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                api.create(&Job::new(format!("job-{i}"), spec)).await.with_context(|| format!("creating job-{i}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let create_s = started.elapsed().as_secs_f64();

    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut last_print = (Instant::now(), 0usize);
    let mut looks = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = Instant::now();
        let running = running_by_job_status(client).await?;
        let rate = (running - last_print.1.min(running)) as f64 / now.duration_since(last_print.0).as_secs_f64();
        eprintln!(
            "schedule: {:>6.1} s  running {:>7}/{instances} (Jobs' status)  {:>7.0} tasks/s now, {:>7.0} overall",
            started.elapsed().as_secs_f64(),
            running,
            rate,
            running as f64 / started.elapsed().as_secs_f64()
        );
        last_print = (now, running);
        // Every task is read only once the Jobs' status counts every
        // instance running, or, should the status lag, no task is found
        // that is not RUNNING (a scan of the tasks on the apiserver, so
        // only every 16 s).
        looks += 1;
        if running >= instances || (looks.is_multiple_of(8) && !any_task_not_running(client).await?) {
            let timings = read_tasks(client).await?;
            if timings.running >= instances {
                let last = timings.last_running.context("no task has a RUNNING event")?;
                let total_s = (last - started_wall).num_microseconds().unwrap_or(0) as f64 / 1e6;
                let cpu = PartsCpu::now().since(&cpu_before);
                let system_s = (procstat::system_ms("self")? - system_before) / 1e3;
                return Ok(Measured { total_s, create_s, started: started_wall, timings, cpu, system_s });
            }
        }
        if now >= deadline {
            let timings = read_tasks(client).await?;
            bail!(
                "timed out after {} s: {} of {instances} instances RUNNING, {} tasks created, {} ever assigned",
                args.timeout_s,
                timings.running,
                timings.tasks,
                timings.assign_s.len()
            );
        }
    }
}

/// Instances running by the Jobs' status (a second or so behind the tasks):
/// for the progress line only.
async fn running_by_job_status(client: &Client) -> anyhow::Result<usize> {
    let jobs = Api::<Job>::namespaced(client.clone(), NS).list(&ListParams::default()).await.context("listing jobs")?;
    Ok(jobs.items.iter().filter_map(|j| j.status.as_ref()).map(|s| s.running as usize).sum())
}

/// Whether some task of the bench is not RUNNING: one object at most comes
/// back, and the apiserver decides the selector on the stored bytes.
async fn any_task_not_running(client: &Client) -> anyhow::Result<bool> {
    let api: Api<Task> = Api::namespaced(client.clone(), NS);
    let page = api
        .list(&ListParams::default().fields("status.state!=RUNNING").limit(1))
        .await
        .context("listing tasks that are not RUNNING")?;
    Ok(!page.items.is_empty())
}

/// Every task of the bench, read in pages, folded into [`Timings`].
async fn read_tasks(client: &Client) -> anyhow::Result<Timings> {
    let api: Api<Task> = Api::namespaced(client.clone(), NS);
    let mut timings = Timings::default();
    let mut params = ListParams::default().limit(5_000);
    loop {
        let page = api.list(&params).await.context("listing tasks")?;
        page.items.iter().for_each(|t| timings.add(t));
        match page.metadata.r#continue {
            Some(token) if !token.is_empty() => params = ListParams::default().limit(5_000).continue_from(token),
            _ => break,
        }
    }
    timings.finish();
    Ok(timings)
}
