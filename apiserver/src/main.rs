//! `meseta-apiserver`: serves the Meseta API from an embedded sled store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use meseta_apiserver::store::sled::SledOptions;
use meseta_apiserver::{open_sled_with, serve, shutdown_signal, AppState};

/// mimalloc instead of the system allocator: request handling allocates many
/// small JSON values, and glibc's malloc both spends more time on them and
/// keeps far more memory resident after a large list.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where objects are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// Embedded sled database in the data directory.
    Sled,
    /// An etcd cluster.
    Etcd,
}

/// The Meseta apiserver.
#[derive(Debug, Parser)]
#[command(name = "meseta-apiserver", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MESETA_LISTEN", default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Data directory of the embedded store.
    #[arg(long, env = "MESETA_DATA_DIR", default_value = "./meseta-data")]
    data_dir: PathBuf,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "sled")]
    store: StoreKind,
    /// The embedded store's page cache, in MiB. Object bytes beyond it are
    /// read back through the kernel's page cache.
    #[arg(long, env = "MESETA_STORE_CACHE_MIB", default_value_t = SledOptions::default().cache_capacity >> 20)]
    store_cache_mib: u64,
    /// The objects this apiserver last wrote are kept decoded for their next
    /// update: up to this many MiB of their stored bytes, several times that
    /// in memory. More saves decodes when many objects are written again a
    /// while later, such as tasks bound in bursts.
    #[arg(long, env = "MESETA_STORE_MEMO_MIB", default_value_t = SledOptions::default().memo_capacity >> 20)]
    store_memo_mib: usize,
    /// etcd endpoints (with `--store etcd`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Log filter, e.g. `info` or `meseta_apiserver=debug`.
    #[arg(long, env = "MESETA_LOG", default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    // The allocator setting (see `allocator`), made before any thread starts.
    meseta_apiserver::allocator::block_on(run()).context("starting the async runtime")?
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level).context("invalid --log-level")?)
        .with_writer(std::io::stderr)
        .init();
    if args.store == StoreKind::Etcd {
        bail!("--store etcd is not available in this build yet; use --store sled (the default)");
    }
    let opts = SledOptions {
        cache_capacity: args.store_cache_mib << 20,
        memo_capacity: args.store_memo_mib << 20,
        ..SledOptions::default()
    };
    let store = open_sled_with(&args.data_dir, opts)
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("meseta-apiserver listening on http://{addr}");
    serve(listener, AppState::new(store), shutdown_signal()).await.context("serving")?;
    Ok(())
}
