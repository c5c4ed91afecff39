//! One allocation cycle (pure logic, one core) over a grid of cluster sizes.
//!
//! `cargo run --release -p meseta-bench --bin allocator [-- --quick]`
//!
//! Each cell builds a cluster of agents (16 cpus, 64 GiB, 1,000 ports; a
//! quarter already running a task; a few with static reservations), and
//! frameworks spread evenly over roles (some with decline filters, one role
//! with a quota guarantee), then times `AllocationInput::from_objects` and
//! `allocate`: warm-up, then the median of several runs. Besides the table it
//! prints `bench allocator.cycle.<agents>x<frameworks>x<roles> <ms> ms`,
//! `bench allocator.offers_per_s.<cell> <n> offers/s` and
//! `bench allocator.snapshot.<cell> <ms> ms` per cell.
//!
//! The grid is ours ({1k, 10k, 50k} agents × {10, 100, 1000} frameworks in
//! {10, 100} roles) plus Mesos' allocator benchmark sizes ({1k, 5k, 10k, 20k}
//! agents × {1, 50, 100, 200, 500, 1000} frameworks, one role per
//! framework), so the figures compare with Mesos' published ones.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::TimeZone;
use clap::Parser;
use meseta_schemas::allocation::{allocate, AllocationInput, ClusterObjects};
use meseta_schemas::{
    Agent, AgentSpec, Framework, FrameworkCapability, FrameworkSpec, FrameworkStatus, OfferFilter, PortRange, Quota,
    QuotaSpec, Resources, Role, RoleSpec, Task, TaskSpec, TaskState, TaskStatus, Time,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Benchmark one allocation cycle")]
struct Args {
    /// Run a small subset of the grid (CI smoke).
    #[arg(long)]
    quick: bool,
    /// Timed runs per cell (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Run only the cells with this label, `<agents>x<frameworks>x<roles>` (repeatable).
    #[arg(long = "cell")]
    cells: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    agents: usize,
    frameworks: usize,
    roles: usize,
}

impl Cell {
    fn label(&self) -> String {
        format!("{}x{}x{}", self.agents, self.frameworks, self.roles)
    }
}

fn parse_cell(label: &str) -> anyhow::Result<Cell> {
    let parts: Vec<usize> = label
        .split('x')
        .map(|p| p.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--cell {label}: {e}"))?;
    match parts[..] {
        [agents, frameworks, roles] if agents > 0 && frameworks > 0 && roles > 0 => {
            Ok(Cell { agents, frameworks, roles })
        }
        _ => anyhow::bail!("--cell {label}: expected <agents>x<frameworks>x<roles>, each at least 1"),
    }
}

fn grid(quick: bool) -> Vec<Cell> {
    let cell = |agents, frameworks, roles| Cell { agents, frameworks, roles };
    if quick {
        return vec![cell(1_000, 10, 10), cell(1_000, 100, 10), cell(1_000, 1_000, 100)];
    }
    let mut cells = Vec::new();
    for agents in [1_000, 10_000, 50_000] {
        for frameworks in [10, 100, 1_000] {
            for roles in [10, 100] {
                cells.push(cell(agents, frameworks, roles));
            }
        }
    }
    for agents in [1_000, 5_000, 10_000, 20_000] {
        for frameworks in [1, 50, 100, 200, 500, 1_000] {
            cells.push(cell(agents, frameworks, frameworks));
        }
    }
    cells
}

fn now() -> Time {
    chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// The objects of one cluster.
struct Cluster {
    agents: Vec<Agent>,
    tasks: Vec<Task>,
    frameworks: Vec<Framework>,
    quotas: Vec<Quota>,
    roles: Vec<Role>,
}

fn build(cell: Cell) -> Cluster {
    let mut rng = StdRng::seed_from_u64(cell.agents as u64 * 31 + cell.frameworks as u64 * 7 + cell.roles as u64);
    let role_name = |r: usize| format!("role-{r:04}");
    let roles: Vec<Role> =
        (0..cell.roles).map(|r| Role::new(role_name(r), RoleSpec { weight: 1.0 + (r % 3) as f64 })).collect();
    let frameworks: Vec<Framework> = (0..cell.frameworks)
        .map(|f| {
            let mut spec = FrameworkSpec::default();
            if f % 4 == 0 {
                spec.capabilities.push(FrameworkCapability::Revocable);
            }
            let mut fw = Framework::new(format!("fw-{f:05}"), spec).in_namespace(role_name(f % cell.roles));
            if f % 10 == 3 {
                let filters = (0..20)
                    .map(|_| OfferFilter {
                        agent: format!("agent-{:06}", rng.random_range(0..cell.agents)),
                        until: now() + chrono::Duration::seconds(5),
                    })
                    .collect();
                fw.status = Some(FrameworkStatus { registered: true, filters, ..Default::default() });
            }
            fw
        })
        .collect();
    let mut agents = Vec::with_capacity(cell.agents);
    let mut tasks = Vec::new();
    for a in 0..cell.agents {
        let name = format!("agent-{a:06}");
        let mut spec = AgentSpec {
            hostname: format!("{name}.cluster.local"),
            resources: Resources {
                ports: vec![PortRange { begin: 31_000, end: 31_999 }],
                ..Resources::scalars(16.0, 65_536.0, 500_000.0, 0.0)
            },
            ..Default::default()
        };
        if a % 20 == 0 {
            spec.reservations.insert(role_name(a % cell.roles), Resources::scalars(4.0, 16_384.0, 0.0, 0.0));
        }
        let mut agent = Agent::new(name.clone(), spec);
        if a % 8 == 0 {
            agent.status = Some(meseta_schemas::AgentStatus {
                revocable: Resources::scalars(2.0, 4_096.0, 0.0, 0.0),
                ..Default::default()
            });
        }
        agents.push(agent);
        if a % 4 == 0 {
            let f = rng.random_range(0..cell.frameworks);
            let fw = &frameworks[f];
            let mut task = Task::new(
                format!("task-{a:06}"),
                TaskSpec {
                    framework: Some(fw.metadata.name.clone()),
                    agent: Some(name),
                    resources: Resources {
                        ports: vec![PortRange { begin: 31_000, end: 31_001 }],
                        ..Resources::scalars(f64::from(rng.random_range(1..=8u32)), 8_192.0, 1_000.0, 0.0)
                    },
                    ..Default::default()
                },
            )
            .in_namespace(fw.metadata.namespace.clone().unwrap_or_default());
            task.status = Some(TaskStatus { state: TaskState::Running, ..Default::default() });
            tasks.push(task);
        }
    }
    let quota = Quota::new(
        "quota",
        QuotaSpec { guarantee: Resources::scalars(cell.agents as f64 * 0.5, 0.0, 0.0, 0.0), limit: None },
    )
    .in_namespace(role_name(cell.roles - 1));
    Cluster { agents, tasks, frameworks, quotas: vec![quota], roles }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    cell: Cell,
    snapshot_ms: f64,
    cycle_ms: f64,
    offers: usize,
}

fn measure(cell: Cell, runs: usize) -> Row {
    let cluster = build(cell);
    let objects = ClusterObjects {
        agents: &cluster.agents,
        tasks: &cluster.tasks,
        frameworks: &cluster.frameworks,
        quotas: &cluster.quotas,
        roles: &cluster.roles,
        ..Default::default()
    };
    let mut snapshot = Vec::with_capacity(runs);
    let mut input = AllocationInput::from_objects(&objects);
    for _ in 0..runs {
        let t = Instant::now();
        input = AllocationInput::from_objects(&objects);
        snapshot.push(millis(t.elapsed()));
    }
    let mut offers = allocate(&input, now(), 0).offers.len();
    let mut cycle = Vec::with_capacity(runs);
    for run in 0..runs {
        let t = Instant::now();
        let plan = allocate(&input, now(), run as u64 + 1);
        cycle.push(millis(t.elapsed()));
        offers = plan.offers.len();
    }
    Row { cell, snapshot_ms: median(snapshot), cycle_ms: median(cycle), offers }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let mut cells = grid(args.quick);
    if !args.cells.is_empty() {
        cells = args.cells.iter().map(|label| parse_cell(label)).collect::<anyhow::Result<Vec<_>>>()?;
    }
    println!(
        "{:>7} {:>10} {:>6} {:>12} {:>10} {:>8} {:>12}",
        "agents", "frameworks", "roles", "snapshot ms", "cycle ms", "offers", "offers/s"
    );
    let mut machine = BTreeMap::new();
    for cell in cells {
        let row = measure(cell, args.runs);
        let per_s = row.offers as f64 / (row.cycle_ms / 1_000.0);
        println!(
            "{:>7} {:>10} {:>6} {:>12.2} {:>10.2} {:>8} {:>12.0}",
            row.cell.agents, row.cell.frameworks, row.cell.roles, row.snapshot_ms, row.cycle_ms, row.offers, per_s
        );
        let label = row.cell.label();
        machine.insert(format!("allocator.cycle.{label}"), format!("{:.3} ms", row.cycle_ms));
        machine.insert(format!("allocator.offers_per_s.{label}"), format!("{per_s:.0} offers/s"));
        machine.insert(format!("allocator.snapshot.{label}"), format!("{:.3} ms", row.snapshot_ms));
    }
    for (name, value) in machine {
        println!("bench {name} {value}");
    }
    Ok(())
}
