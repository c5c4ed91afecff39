//! `meseta up`: a whole single-machine cluster in the foreground.
//!
//! Opens the embedded sled store under `--data-dir`, serves the apiserver on
//! `--listen`, writes `DIR/kubeconfig` (so `KUBECONFIG=DIR/kubeconfig kubectl
//! get tasks -A` works), prints the URL, and stops cleanly on ctrl-c or
//! SIGTERM. Components that run beside the apiserver (controllers, one
//! agent) are started by [`start_components`]; it starts only what this
//! build has.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Arguments of `meseta up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where the cluster keeps its state (store, kubeconfig).
    #[arg(long, default_value = "./meseta-data")]
    pub(crate) data_dir: PathBuf,
    /// Address the apiserver listens on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub(crate) listen: SocketAddr,
}

/// A component running beside the apiserver, stopped by the shutdown signal.
struct Component {
    name: &'static str,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Runs `meseta up` until ctrl-c or SIGTERM.
pub(crate) async fn run(args: &UpArgs, token: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let store = meseta_apiserver::open_sled(&args.data_dir).with_context(|| {
        format!("opening the store in {} (is another `meseta up` using it?)", args.data_dir.display())
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("listening on {} (is the port already in use? pick another with --listen)", args.listen)
    })?;
    let url = server_url(listener.local_addr()?);
    let kubeconfig = args.data_dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &url, token)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let components = start_components(&url, stop_rx.clone());
    println!("apiserver listening on {url}");
    println!("kubeconfig written to {}", kubeconfig.display());
    for c in &components {
        println!("{} started", c.name);
    }
    if components.is_empty() {
        println!("this build runs the apiserver only (no controllers or agent yet): objects are stored and served");
    }
    println!(
        "try: MESETA_SERVER={url} meseta get tasks -A   or   KUBECONFIG={} kubectl get tasks -A",
        kubeconfig.display()
    );
    let _ = std::io::stdout().flush();

    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut stop = stop_rx.clone();
    let served = meseta_apiserver::serve(listener, meseta_apiserver::AppState::new(store), async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await;
    for c in components {
        match c.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("error: {} stopped with: {e:#}", c.name),
            Err(e) => eprintln!("error: {} failed: {e}", c.name),
        }
    }
    served.context("serving the apiserver")?;
    println!("stopped");
    Ok(())
}

/// Starts what runs beside the apiserver, each told to stop through `stop`.
///
/// This is where the controllers (`meseta_controllers`) and one agent
/// (`meseta_agentd`, working under the data directory) are to be spawned
/// once those crates expose their run functions; until then there is
/// nothing to start and `meseta up` says so.
fn start_components(_server_url: &str, _stop: watch::Receiver<bool>) -> Vec<Component> {
    Vec::new()
}

/// `http://ADDR`, with an unspecified address (`0.0.0.0`, `::`) replaced by loopback.
fn server_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// The kubeconfig text for `url`, with the token if any.
fn kubeconfig_text(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) if !t.is_empty() => format!("\n    token: {}\n", serde_json::Value::String(t.into())),
        _ => " {}\n".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: meseta\n  cluster:\n    server: {url}\ncontexts:\n- name: meseta\n  context:\n    cluster: meseta\n    user: meseta\n    namespace: default\ncurrent-context: meseta\nusers:\n- name: meseta\n  user:{user}preferences: {{}}\n"
    )
}

/// Writes the kubeconfig (mode 0600: it may hold the token) via a rename.
fn write_kubeconfig(path: &Path, url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(kubeconfig_text(url, token).as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_use_loopback_for_unspecified_addresses() {
        assert_eq!(server_url("0.0.0.0:5050".parse().unwrap()), "http://127.0.0.1:5050");
        assert_eq!(server_url("127.0.0.1:80".parse().unwrap()), "http://127.0.0.1:80");
        assert_eq!(server_url("[::]:1".parse().unwrap()), "http://[::1]:1");
    }

    #[test]
    fn kubeconfig_is_valid_yaml_with_server_and_token() {
        let v: serde_json::Value = serde_yaml::from_str(&kubeconfig_text("http://127.0.0.1:1", Some("s3"))).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1");
        assert_eq!(v["users"][0]["user"]["token"], "s3");
        assert_eq!(v["current-context"], "meseta");
        let v: serde_json::Value = serde_yaml::from_str(&kubeconfig_text("http://h:1", None)).unwrap();
        assert!(v["users"][0]["user"].as_object().unwrap().is_empty());
    }
}
