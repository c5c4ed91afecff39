//! Launch latency of `/bin/true` tasks on a real agent, beside `crun run`
//! (and `runc run`) of an equivalent OCI bundle, plus a bulk launch.
//!
//! `cargo build --release -p meseta-apiserver -p meseta-agentd && cargo run --release -p meseta-bench --bin launch [-- --quick]`
//!
//! Needs root. Starts the release `meseta-apiserver` and `meseta-agentd`
//! binaries (found next to this one in `target/release`) on temporary
//! directories, then:
//!
//! - sequential: `--tasks` tasks one after another; each is created, then
//!   bound (ASSIGNED written through the status subresource); latency runs
//!   from that write's acknowledgement to RUNNING and to FINISHED as a watch
//!   first shows them, and (agent view) to the `taskEvents` timestamps the
//!   agent wrote.
//! - peer: after each of those tasks, one `crun run` and one `runc run` of
//!   the agent's own bundle config (see `meseta_bench::launch::oci`), end
//!   to end. Interleaving the two keeps the ratio fair on a machine whose
//!   load drifts during the run.
//! - gap: every measured run (agent task, crun, runc) starts after the
//!   machine has had `--gap-ms` (default 50) without a launch. A cgroup
//!   attach (every runtime writes its process into `cgroup.procs`) takes
//!   the kernel's cgroup threadgroup lock, whose first writer waits a full
//!   RCU grace period (about 10 ms here) and whose later writers within
//!   about one more grace period do not. Back to back, each peer rode the
//!   grace period the run before it had paid; with the gap every run pays
//!   its own, as an isolated launch on a node does. `--gap-ms 0` runs them
//!   back to back.
//! - bulk: `--bulk` tasks created, then all bound at once; time from the
//!   first bind to the last FINISHED seen.
//!
//! Prints a table and `bench launch.<figure> <value> <unit>` lines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use meseta_bench::apiserver::{find_binary as find_apiserver, Server};
use meseta_bench::launch::agent::{find_binary as find_agentd, AgentProc};
use meseta_bench::launch::oci::{self, Bundle, PrivateMounts};
use meseta_bench::launch::tasks::{self, Tracker};
use meseta_bench::launch::Summary;
use meseta_bench::procstat::ProcCpu;
use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Task, TaskState};

#[derive(Parser, Debug)]
#[command(about = "Benchmark task launch on a real agent against crun")]
struct Args {
    /// 10 sequential tasks and a bulk of 50 (CI smoke).
    #[arg(long)]
    quick: bool,
    /// Sequential tasks (and peer runs) measured (default 100; 10 with --quick).
    #[arg(long)]
    tasks: Option<usize>,
    /// Tasks bound at once in the bulk phase (default 1,000; 50 with --quick; 0 skips it).
    #[arg(long)]
    bulk: Option<usize>,
    /// Idle milliseconds before each measured run (see the module docs).
    #[arg(long, default_value_t = 50)]
    gap_ms: u64,
    /// The `meseta-agentd` binary (default: next to this one).
    #[arg(long)]
    agentd: Option<PathBuf>,
    /// The `meseta-apiserver` binary (default: next to this one).
    #[arg(long)]
    apiserver: Option<PathBuf>,
}

/// Namespace of the bench's tasks.
const NS: &str = "launch";
/// The agent's name.
const AGENT: &str = "bench-launch";
/// Writes in flight while creating and binding the bulk.
const BULK_CONCURRENCY: usize = 16;

/// One figure: name, value, unit.
struct Figure(String, f64, &'static str);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!("the launch bench runs real containers (agent, crun, runc) and must run as root");
    }
    let n = args.tasks.unwrap_or(if args.quick { 10 } else { 100 });
    let bulk = args.bulk.unwrap_or(if args.quick { 50 } else { 1_000 });
    let agentd = find_agentd(args.agentd.as_deref())?;
    let apiserver = find_apiserver(args.apiserver.as_deref())?;
    let crun = oci::which("crun").context("crun not found: install Debian's crun (`apt-get install -y crun`)")?;
    let runc = oci::which("runc");
    if runc.is_none() {
        eprintln!("runc not found (`apt-get install -y runc`): its column is left out");
    }

    let server = Server::start(&apiserver)?;
    let client = Client::new(&server.base)?;
    let tmp = tempfile::Builder::new().prefix("meseta-bench-launch").tempdir()?;
    let work = tmp.path().join("agent");
    std::fs::create_dir_all(&work)?;
    let mut agent = AgentProc::start(&agentd, &server.base, &work, AGENT, "cpus:1000;mem:1000000;disk:100000")?;
    agent.ready(&client).await?;
    let tracker = Tracker::start(&client, NS).await?;
    let api: Api<Task> = Api::namespaced(client.clone(), NS);

    // The agent's own bundle config, from a running task (also a warm-up).
    let probe = tasks::create(&api, NS, "probe", tasks::sleep_spec(AGENT)).await?;
    tasks::assign(&api, probe).await?;
    tracker.wait(Duration::from_secs(60), |t| t.get("probe").running.is_some()).await.context("probe RUNNING")?;
    let config_path = work.join(format!("containers/{NS}_probe/bundle/config.json"));
    let agent_config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&config_path).with_context(|| format!("reading {}", config_path.display()))?,
    )?;
    api.patch_merge("probe", &serde_json::json!({"spec": {"killRequested": true}})).await?;
    tracker.wait(Duration::from_secs(60), |t| t.get("probe").terminal.is_some()).await.context("probe killed")?;

    println!("sequential: {n} tasks `/bin/true` (exec form, cpus 0.1, mem 32 MiB) on agent {AGENT}, each followed by");
    println!("  one run of each peer: the agent's bundle config with /bin/true (host root bound read-only);");
    println!("  {} ms idle before each run", args.gap_ms);
    let mut peers = Peers {
        mounts: PrivateMounts::start()?,
        bundle: Bundle::from_agent_config(&tmp.path().join("bundle"), &agent_config)?,
        crun,
        runc,
        gap: Duration::from_millis(args.gap_ms),
        samples: Default::default(),
        crun_cpu_ms: 0.0,
        nsenter_cpu_ms: 0.0,
    };
    let (agent_before, server_before) = (agent.cpu()?, ProcCpu::of(&server.pid().to_string())?);
    let seq = sequential(&api, &tracker, n, &mut peers).await;
    let agent_cpu_ms = (agent.cpu()?.total_ms() - agent_before.total_ms()) / n as f64;
    let server_cpu_ms = (ProcCpu::of(&server.pid().to_string())?.own_ms - server_before.own_ms) / n as f64;
    // crun's own share: nsenter is measured alone too.
    let crun_cpu_ms = (peers.crun_cpu_ms - peers.nsenter_cpu_ms) / n as f64;
    let [crun_ms, runc_ms, nsenter_ms] = peers.samples.each_ref().map(|v| Summary::of(v));
    let has_runc = peers.runc.is_some();
    drop(peers);
    oci::remove_cgroup_parent();
    let seq = seq?;

    let bulk_s = if bulk > 0 { Some(bulk_launch(&api, &tracker, bulk).await?) } else { None };
    tracker.stop();

    let mut figures = Vec::new();
    println!();
    println!("{:<40} {:>6} {:>9} {:>9} {:>9}", "ms", "n", "p50", "p99", "max");
    let mut row = |label: &str, fig: Option<&str>, s: Summary| {
        println!("{label:<40} {:>6} {:>9.1} {:>9.1} {:>9.1}", s.n, s.p50, s.p99, s.max);
        if let Some(f) = fig {
            figures.push(Figure(format!("{f}.p50"), s.p50, "ms"));
            figures.push(Figure(format!("{f}.p99"), s.p99, "ms"));
        }
    };
    row("ASSIGNED ack → RUNNING (watch)", Some("running"), seq.running_watch);
    row("ASSIGNED ack → FINISHED (watch)", Some("finished"), seq.finished_watch);
    row("ASSIGNED ack → RUNNING (taskEvents)", Some("running.agent"), seq.running_agent);
    row("ASSIGNED ack → FINISHED (taskEvents)", Some("finished.agent"), seq.finished_agent);
    row("  ack → STARTING (taskEvents)", None, seq.starting_agent);
    row("  STARTING → RUNNING (taskEvents)", None, seq.start_step);
    row("  RUNNING → FINISHED (taskEvents)", None, seq.exit_step);
    row("  FINISHED (taskEvents) → watch", None, seq.report_step);
    row("crun run (end to end, via nsenter)", Some("crun"), crun_ms);
    if has_runc {
        row("runc run (end to end, via nsenter)", Some("runc"), runc_ms);
    }
    row("  nsenter alone (/bin/true)", Some("nsenter"), nsenter_ms);
    let ratio = seq.finished_watch.p50 / crun_ms.p50;
    let ratio99 = seq.finished_watch.p99 / crun_ms.p99;
    let ratio_running = seq.running_watch.p50 / crun_ms.p50;
    println!("FINISHED (watch) / crun: p50 {ratio:.2}x, p99 {ratio99:.2}x (goal ≤ 1.2x); RUNNING / crun p50 {ratio_running:.2}x");
    println!(
        "CPU per launch: agent, shim and container {agent_cpu_ms:.1} ms (apiserver {server_cpu_ms:.1} ms more); \
         crun run {crun_cpu_ms:.1} ms (without nsenter's); agent / crun {:.2}x",
        agent_cpu_ms / crun_cpu_ms
    );
    figures.push(Figure("cpu.agent".into(), agent_cpu_ms, "ms"));
    figures.push(Figure("cpu.apiserver".into(), server_cpu_ms, "ms"));
    figures.push(Figure("cpu.crun".into(), crun_cpu_ms, "ms"));
    figures.push(Figure("ratio.cpu_agent_vs_crun".into(), agent_cpu_ms / crun_cpu_ms, "x"));
    figures.push(Figure("ratio.finished_vs_crun.p50".into(), ratio, "x"));
    figures.push(Figure("ratio.finished_vs_crun.p99".into(), ratio99, "x"));
    figures.push(Figure("ratio.running_vs_crun.p50".into(), ratio_running, "x"));
    if let Some(s) = bulk_s {
        println!("bulk: {bulk} tasks bound at once, all FINISHED after {s:.1} s ({:.0} tasks/s)", bulk as f64 / s);
        figures.push(Figure(format!("bulk.{bulk}"), s, "s"));
        figures.push(Figure(format!("bulk.{bulk}.rate"), bulk as f64 / s, "tasks/s"));
    }
    for Figure(name, value, unit) in &figures {
        let shown = if *value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") };
        println!("bench launch.{name} {shown} {unit}");
    }
    drop(agent);
    Ok(())
}

/// The sequential phase's samples.
struct Sequential {
    running_watch: Summary,
    finished_watch: Summary,
    running_agent: Summary,
    finished_agent: Summary,
    starting_agent: Summary,
    start_step: Summary,
    exit_step: Summary,
    report_step: Summary,
}

/// The peers run after each agent task, so both see the same load.
struct Peers {
    mounts: PrivateMounts,
    bundle: Bundle,
    crun: PathBuf,
    runc: Option<PathBuf>,
    /// Idle time before each measured run.
    gap: Duration,
    /// crun, runc and nsenter alone, ms.
    samples: [Vec<f64>; 3],
    /// CPU ms of the crun runs (crun and nsenter, as this process' waited-for children).
    crun_cpu_ms: f64,
    /// CPU ms of nsenter alone.
    nsenter_cpu_ms: f64,
}

impl Peers {
    /// One run of each peer.
    fn round(&mut self, i: usize) -> anyhow::Result<()> {
        std::thread::sleep(self.gap);
        let before = ProcCpu::of("self")?.children_ms;
        self.samples[0].push(oci::time_run(&self.mounts, &self.crun, &self.bundle, i)?);
        self.crun_cpu_ms += ProcCpu::of("self")?.children_ms - before;
        if let Some(runc) = &self.runc {
            std::thread::sleep(self.gap);
            self.samples[1].push(oci::time_run(&self.mounts, runc, &self.bundle, i)?);
        }
        let before = ProcCpu::of("self")?.children_ms;
        self.samples[2].push(oci::time_nsenter(&self.mounts)?);
        self.nsenter_cpu_ms += ProcCpu::of("self")?.children_ms - before;
        Ok(())
    }
}

async fn sequential(api: &Api<Task>, tracker: &Tracker, n: usize, peers: &mut Peers) -> anyhow::Result<Sequential> {
    let mut v: [Vec<f64>; 8] = Default::default();
    for i in 0..n {
        let name = format!("seq-{i}");
        let task = tasks::create(api, NS, &name, tasks::true_spec(AGENT)).await?;
        tokio::time::sleep(peers.gap).await;
        let (acked, acked_wall) = tasks::assign(api, task).await?;
        tracker
            .wait(Duration::from_secs(60), |t| t.get(&name).terminal.is_some())
            .await
            .with_context(|| format!("{NS}/{name} did not end"))?;
        let seen = tracker.get(&name);
        let last = seen.last.context("no task seen")?;
        if last.state() != TaskState::Finished {
            bail!("{NS}/{name} ended {} instead of FINISHED: {:?}", last.state(), last.status.map(|s| s.message));
        }
        let ms = |at: Option<Instant>| at.map_or(f64::NAN, |t| t.duration_since(acked).as_secs_f64() * 1000.0);
        let ev = |s| tasks::event_time(&last, s);
        let (starting, running, finished) = (ev(TaskState::Starting), ev(TaskState::Running), ev(TaskState::Finished));
        let (Some(starting), Some(running), Some(finished)) = (starting, running, finished) else {
            bail!("{NS}/{name} lacks a STARTING, RUNNING or FINISHED task event");
        };
        let finished_watch = ms(seen.terminal);
        let finished_agent = tasks::wall_ms(acked_wall, finished);
        let samples = [
            ms(seen.running),
            finished_watch,
            tasks::wall_ms(acked_wall, running),
            finished_agent,
            tasks::wall_ms(acked_wall, starting),
            tasks::wall_ms(starting, running),
            tasks::wall_ms(running, finished),
            finished_watch - finished_agent,
        ];
        for (vec, s) in v.iter_mut().zip(samples) {
            vec.push(s);
        }
        tokio::task::block_in_place(|| peers.round(i))?;
    }
    let s = |i: usize| Summary::of(&v[i]);
    Ok(Sequential {
        running_watch: s(0),
        finished_watch: s(1),
        running_agent: s(2),
        finished_agent: s(3),
        starting_agent: s(4),
        start_step: s(5),
        exit_step: s(6),
        report_step: s(7),
    })
}

/// Creates `n` tasks, binds them all at once, and returns the seconds from
/// the first bind to the last FINISHED seen.
async fn bulk_launch(api: &Api<Task>, tracker: &Tracker, n: usize) -> anyhow::Result<f64> {
    let names: Vec<String> = (0..n).map(|i| format!("bulk-{i}")).collect();
    let created: Vec<Task> = futures::stream::iter(names.iter())
        .map(|name| tasks::create(api, NS, name, tasks::true_spec(AGENT)))
        .buffer_unordered(BULK_CONCURRENCY)
        .try_collect()
        .await?;
    println!("bulk: {n} tasks created; binding them all at once");
    let begin = Instant::now();
    futures::stream::iter(created)
        .map(|task| tasks::assign(api, task))
        .buffer_unordered(BULK_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let bound = begin.elapsed().as_secs_f64();
    let waited = tracker.wait(Duration::from_secs(900), |t| t.terminal_count(&names) == n).await;
    let elapsed = begin.elapsed().as_secs_f64();
    if waited.is_err() {
        bail!("bulk: only {} of {n} tasks ended within 900 s", tracker.terminal_count(&names));
    }
    let failed: Vec<&String> =
        names.iter().filter(|name| tracker.get(name).last.is_none_or(|t| t.state() != TaskState::Finished)).collect();
    if !failed.is_empty() {
        bail!("bulk: {} tasks did not finish cleanly, e.g. {}", failed.len(), failed[0]);
    }
    println!("bulk: bound in {bound:.1} s, all FINISHED after {elapsed:.1} s");
    Ok(elapsed)
}
