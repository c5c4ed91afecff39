//! The apiserver over HTTP: durable writes, watch latency, big lists, RSS.
//!
//! `cargo build --release -p meseta-apiserver && cargo run --release -p meseta-bench --bin apiserver [-- --quick]`
//!
//! Starts the release `meseta-apiserver` binary (found next to this one in
//! `target/release`, or `--apiserver PATH`) on a temporary data directory on
//! 127.0.0.1 and drives it with HTTP/1.1 keep-alive clients, one connection
//! per client task:
//!
//! - writes: closed-loop `POST` (create) and `PUT` with `resourceVersion`
//!   (update) at each concurrency for a fixed duration; every write counted
//!   was acknowledged, i.e. fsynced.
//! - peer: the same write runs against a real etcd (the store Kubernetes
//!   keeps its objects in) on the same machine and disk, through its
//!   HTTP/JSON gateway, as the transactions kube-apiserver sends for a create
//!   and an update; each figure is also printed as a ratio to etcd's
//!   (without `etcd` on `PATH` it is skipped with a note saying how to
//!   install it).
//! - floor: the same write runs against `floor` (built beside this binary),
//!   a server with the apiserver's HTTP stack and group-committed
//!   `fdatasync` that does nothing else: the ceiling of durable HTTP writes on
//!   this machine, printed as `<figure>.vs_floor`. `--peer etcd`, `--peer
//!   floor` or `--peer none` picks the peers.
//! - watch: one watcher on an empty collection, one writer creating Tasks at
//!   a modest rate, each stamped with its send time; latency is send → event.
//! - list: a fresh server filled with `--list-count` Tasks; the server's RSS
//!   (`/proc/<pid>/status`), then a full `GET` and a `limit=500` paged list.
//!
//! Prints a table and `bench apiserver.<figure> <value> <unit>` lines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use meseta_bench::apiserver::load::{self, Target, WriteFigures, WriteKind, WriteRun};
use meseta_bench::apiserver::{etcd, find_binary, task, tasks_url, watch, Server};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the apiserver over HTTP")]
struct Args {
    /// Small counts and short runs (CI smoke).
    #[arg(long)]
    quick: bool,
    /// The `meseta-apiserver` binary (default: next to this one).
    #[arg(long)]
    apiserver: Option<PathBuf>,
    /// Concurrent clients of the write runs.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per write run (default 5; 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Tasks stored for the list and RSS figures (default 100,000; 2,000 with --quick).
    #[arg(long)]
    list_count: Option<usize>,
    /// Watch events measured (default 2,000; 200 with --quick).
    #[arg(long)]
    watch_events: Option<usize>,
    /// Creates per second while measuring watch latency.
    #[arg(long, default_value_t = 200)]
    watch_rate: u32,
    /// Ends each write run after this many writes in all (default: only `--seconds`).
    #[arg(long)]
    count: Option<u64>,
    /// Write runs: create, update (default both).
    #[arg(long, value_delimiter = ',', default_value = "create,update")]
    kinds: Vec<String>,
    /// The peers of the write runs: etcd, floor (the least a durable HTTP
    /// store does: see `meseta_bench::apiserver::floor`), or none.
    #[arg(long, value_delimiter = ',', default_value = "etcd,floor")]
    peer: Vec<String>,
    /// The `etcd` binary of the peer (default: `etcd` on PATH).
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// Sections to run: writes, watch, list (default all).
    #[arg(long, value_delimiter = ',', default_value = "writes,watch,list")]
    only: Vec<String>,
}

/// One figure: name, value, unit.
struct Figure(String, f64, &'static str);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = find_binary(args.apiserver.as_deref())?;
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
    let list_count = args.list_count.unwrap_or(if args.quick { 2_000 } else { 100_000 });
    let watch_events = args.watch_events.unwrap_or(if args.quick { 200 } else { 2_000 });
    for section in &args.only {
        if !["writes", "watch", "list"].contains(&section.as_str()) {
            bail!("unknown section {section:?}: expected writes, watch or list");
        }
    }
    let mut kinds = Vec::new();
    for k in &args.kinds {
        kinds.push(match k.as_str() {
            "create" => WriteKind::Create,
            "update" => WriteKind::Update,
            other => bail!("unknown write kind {other:?}: expected create or update"),
        });
    }
    for peer in &args.peer {
        if !["etcd", "floor", "none"].contains(&peer.as_str()) {
            bail!("unknown peer {peer:?}: expected etcd, floor or none");
        }
    }
    let floor_binary = meseta_bench::apiserver::sibling("floor")?;
    if args.peer.iter().any(|p| p == "floor") && !floor_binary.is_file() {
        bail!(
            "the floor server is not at {}: build it with `cargo build --release -p meseta-bench`, or pass --peer etcd",
            floor_binary.display()
        );
    }
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let mut figures = Vec::new();

    if wants("watch") || wants("writes") {
        let server = Server::start(&binary)?;
        if wants("watch") {
            let w = watch::latency(&server.base, "watch", watch_events, args.watch_rate).await?;
            println!(
                "watch: {} events at {}/s: send→event p50 {:.2} ms p99 {:.2} ms max {:.2} ms (create ack p50 {:.2} ms p99 {:.2} ms)",
                w.delivery_ms.len(),
                args.watch_rate,
                w.delivery(0.5),
                w.delivery(0.99),
                w.delivery(1.0),
                w.ack(0.5),
                w.ack(0.99)
            );
            figures.push(Figure("watch.p50".into(), w.delivery(0.5), "ms"));
            figures.push(Figure("watch.p99".into(), w.delivery(0.99), "ms"));
        }
        if wants("writes") {
            let etcd_binary = match args.peer.iter().any(|p| p == "etcd") {
                false => None,
                true => {
                    match etcd::find_binary(args.etcd.as_deref())? {
                        Some(binary) => Some(binary),
                        None => {
                            println!("peer: no etcd on PATH, so no etcd ratios (apt-get install etcd-server, or --etcd PATH)");
                            None
                        }
                    }
                }
            };
            // What the peer stores per write: the bytes of a Task as the apiserver stored it.
            let sample = load::create(
                &meseta_bench::apiserver::client()?,
                &tasks_url(&server.base, "sample"),
                &task("sample", "sample", serde_json::json!({})),
            )
            .await?;
            let spec = Table { kinds: &kinds, clients: &args.clients, seconds, count: args.count };
            println!(
                "{:<12} {:>8} {:>12} {:>10} {:>10} {:>10} {:>14} {:>14}",
                "write", "clients", "writes/s", "p50 ms", "p99 ms", "writes", "server µs/wr", "client µs/wr"
            );
            let ours = spec.run("", &server.base, Target::Meseta, &|| server.cpu_seconds(), &mut figures).await?;
            drop(server);
            if let Some(binary) = etcd_binary {
                let etcd = etcd::Etcd::start(&binary).await?;
                let target = Target::Etcd { value: std::sync::Arc::new(serde_json::to_vec(&sample)?) };
                let theirs = spec.run("etcd.", &etcd.base, target, &|| etcd.cpu_seconds(), &mut figures).await?;
                ratios("etcd", &ours, &theirs, &mut figures);
            }
            if args.peer.iter().any(|p| p == "floor") {
                let floor = Server::start(&floor_binary)?;
                let theirs =
                    spec.run("floor.", &floor.base, Target::Floor, &|| floor.cpu_seconds(), &mut figures).await?;
                ratios("floor", &ours, &theirs, &mut figures);
            }
        }
    }

    if wants("list") {
        let server = Server::start(&binary)?;
        let (idle_rss, _) = server.rss_mib()?;
        let fill_s = load::fill(&server.base, "list", list_count, 64).await?;
        println!("list: stored {list_count} tasks in {fill_s:.1} s ({:.0} creates/s)", list_count as f64 / fill_s);
        let (rss, _) = server.rss_mib()?;
        println!("rss: {idle_rss:.0} MiB idle, {rss:.0} MiB with {list_count} tasks stored");
        let mut full = Vec::new();
        for _ in 0..3 {
            let (ms, items, bytes) = load::list_full(&server.base, "list").await?;
            if items != list_count {
                bail!("the full list returned {items} items, expected {list_count}");
            }
            println!("list: full GET {ms:.0} ms, {items} items, {:.1} MiB", bytes as f64 / (1 << 20) as f64);
            full.push(ms);
        }
        let (paged_ms, items, pages) = load::list_paged(&server.base, "list", 500).await?;
        if items != list_count {
            bail!("the paged list returned {items} items, expected {list_count}");
        }
        println!("list: limit=500 {paged_ms:.0} ms over {pages} pages");
        let (rss_after, hwm) = server.rss_mib()?;
        println!("rss: {rss_after:.0} MiB after listing (peak {hwm:.0} MiB)");
        full.sort_by(f64::total_cmp);
        let tag = count_tag(list_count);
        figures.push(Figure(format!("list.{tag}"), full[full.len() / 2], "ms"));
        figures.push(Figure(format!("list.{tag}.paged500"), paged_ms, "ms"));
        figures.push(Figure(format!("rss.{tag}"), rss, "MiB"));
        figures.push(Figure(format!("rss.{tag}.peak"), hwm, "MiB"));
    }

    for Figure(name, value, unit) in &figures {
        let shown = if *value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") };
        println!("bench apiserver.{name} {shown} {unit}");
    }
    Ok(())
}

/// Prints and records Meseta's write figures over a peer's, as
/// `<name>.vs_<peer>` (writes/s) and `<name>.server_cpu.vs_<peer>`.
fn ratios(peer: &str, ours: &[(String, WriteFigures)], theirs: &[(String, WriteFigures)], figures: &mut Vec<Figure>) {
    println!("{:<12} {:>8} {:>12} {:>24} {:>14}", format!("vs {peer}"), "clients", "writes/s ×", "", "server CPU ×");
    for ((name, ours), (_, theirs)) in ours.iter().zip(theirs) {
        let (speed, cpu) = (ours.per_s / theirs.per_s, ours.server_cpu_us / theirs.server_cpu_us);
        let (kind, clients) = name.split_once(".c").unwrap_or((name, ""));
        println!("{kind:<12} {clients:>8} {speed:>12.2} {:>24} {cpu:>14.2}", "");
        figures.push(Figure(format!("{name}.vs_{peer}"), speed, "x"));
        figures.push(Figure(format!("{name}.server_cpu.vs_{peer}"), cpu, "x"));
    }
}

/// The write runs of one target: every kind at every concurrency.
struct Table<'a> {
    kinds: &'a [WriteKind],
    clients: &'a [usize],
    seconds: f64,
    count: Option<u64>,
}

impl Table<'_> {
    /// Runs the table against `base` and prints a row per run; records the
    /// figures as `<prefix><kind>.c<clients>` and returns them by that name
    /// without the prefix.
    async fn run(
        &self,
        prefix: &str,
        base: &str,
        target: Target,
        cpu: &dyn Fn() -> anyhow::Result<f64>,
        figures: &mut Vec<Figure>,
    ) -> anyhow::Result<Vec<(String, WriteFigures)>> {
        let mut measured = Vec::new();
        for &kind in self.kinds {
            let label = if kind == WriteKind::Create { "create" } else { "update" };
            for &c in self.clients {
                let ns = format!("{label}-c{c}");
                let duration = Duration::from_secs_f64(self.seconds);
                let run = WriteRun { target: target.clone(), kind, clients: c, duration, count: self.count };
                let f = load::writes(base, &ns, run, cpu).await?;
                println!(
                    "{:<12} {c:>8} {:>12.0} {:>10.2} {:>10.2} {:>10} {:>14.1} {:>14.1}",
                    format!("{prefix}{label}"),
                    f.per_s,
                    f.p50_ms,
                    f.p99_ms,
                    f.writes,
                    f.server_cpu_us,
                    f.client_cpu_us
                );
                let name = format!("{label}.c{c}");
                figures.push(Figure(format!("{prefix}{name}"), f.per_s, "writes/s"));
                figures.push(Figure(format!("{prefix}{name}.server_cpu"), f.server_cpu_us, "us/write"));
                figures.push(Figure(format!("{prefix}{name}.client_cpu"), f.client_cpu_us, "us/write"));
                measured.push((name, f));
            }
        }
        Ok(measured)
    }
}

/// `100k` for 100,000; counts that are not whole thousands verbatim.
fn count_tag(n: usize) -> String {
    if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
