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
use meseta_bench::apiserver::load::{self, WriteKind, WriteRun};
use meseta_bench::apiserver::{find_binary, watch, Server};

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
            println!(
                "{:<8} {:>8} {:>12} {:>10} {:>10} {:>10} {:>14} {:>14}",
                "write", "clients", "writes/s", "p50 ms", "p99 ms", "writes", "server µs/wr", "client µs/wr"
            );
            for &kind in &kinds {
                let label = if kind == WriteKind::Create { "create" } else { "update" };
                for &c in &args.clients {
                    let ns = format!("{label}-c{c}");
                    let run =
                        WriteRun { kind, clients: c, duration: Duration::from_secs_f64(seconds), count: args.count };
                    let f = load::writes(&server.base, &ns, run, &|| server.cpu_seconds()).await?;
                    println!(
                        "{label:<8} {c:>8} {:>12.0} {:>10.2} {:>10.2} {:>10} {:>14.1} {:>14.1}",
                        f.per_s, f.p50_ms, f.p99_ms, f.writes, f.server_cpu_us, f.client_cpu_us
                    );
                    figures.push(Figure(format!("{label}.c{c}"), f.per_s, "writes/s"));
                    figures.push(Figure(format!("{label}.c{c}.server_cpu"), f.server_cpu_us, "us/write"));
                    figures.push(Figure(format!("{label}.c{c}.client_cpu"), f.client_cpu_us, "us/write"));
                }
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

/// `100k` for 100,000; counts that are not whole thousands verbatim.
fn count_tag(n: usize) -> String {
    if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
