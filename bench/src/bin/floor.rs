//! `floor`: the write runs' floor server (see `meseta_bench::apiserver::floor`).
//!
//! Started by `bench apiserver` itself, the way it starts `meseta-apiserver`:
//! it takes the same `--listen`, `--data-dir` and `--log-level` flags and
//! prints `floor listening on http://ADDR` once it accepts connections.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// The same allocator as `meseta-apiserver`, so the floor pays what it pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A durable HTTP write server that does nothing else: the floor of `bench apiserver`.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory of the file every write is appended to.
    #[arg(long)]
    data_dir: PathBuf,
    /// Accepted for the same command line as the apiserver's; the floor logs nothing.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    println!("floor listening on http://{}", listener.local_addr()?);
    meseta_bench::apiserver::floor::serve(listener, &args.data_dir).await
}
