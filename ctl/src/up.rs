//! `meseta up`: a whole single-machine cluster in the foreground.
//!
//! Opens the embedded sled store under `--data-dir`, serves the apiserver on
//! `--listen`, writes `DIR/kubeconfig` (so `KUBECONFIG=DIR/kubeconfig kubectl
//! get tasks -A` works), prints the URL, and stops cleanly on ctrl-c or
//! SIGTERM. Beside the apiserver run every controller (no leader election:
//! this is the only manager) and one agent running real containers under
//! `DIR/agent`, its shim being this binary's hidden `shim` subcommand.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Arguments of `meseta up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where the cluster keeps its state (store, kubeconfig).
    #[arg(long, default_value = "./meseta-data")]
    pub(crate) data_dir: PathBuf,
    /// Address the apiserver listens on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub(crate) listen: SocketAddr,
    /// Address of the agent's HTTP server (task logs, metrics); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:5051")]
    pub(crate) agent_listen: SocketAddr,
    /// Resources the agent advertises instead of detected ones, e.g. 'cpus:2;mem:4096'.
    #[arg(long)]
    pub(crate) agent_resources: Option<String>,
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
    let components = start_components(args, &url, token, stop_rx.clone())?;
    println!("apiserver listening on {url}");
    println!("kubeconfig written to {}", kubeconfig.display());
    for c in &components {
        println!("{} started", c.name);
    }
    println!(
        "try: MESETA_SERVER={url} meseta get tasks -A   or   KUBECONFIG={} kubectl get tasks -A",
        kubeconfig.display()
    );
    let _ = std::io::stdout().flush();

    tokio::spawn(async move {
        meseta_apiserver::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    // Components stop first (the agent reports itself not Ready on the way
    // out), then the apiserver.
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = stop_rx.clone();
    let stopper = tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        for c in components {
            match c.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("error: {} stopped with: {e:#}", c.name),
                Err(e) => eprintln!("error: {} failed: {e}", c.name),
            }
        }
        let _ = server_stop.send(());
    });
    let served = meseta_apiserver::serve(listener, meseta_apiserver::AppState::new(store), async move {
        let _ = server_stopped.await;
    })
    .await;
    stopper.await.context("stopping the components")?;
    served.context("serving the apiserver")?;
    println!("stopped");
    Ok(())
}

/// Starts the controllers and one agent beside the apiserver, each told to
/// stop through `stop`. The agent runs real containers, so it needs root.
fn start_components(
    args: &UpArgs,
    server_url: &str,
    token: Option<&str>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<Component>> {
    let mut client = meseta_client::Client::new(server_url)?;
    if let Some(t) = token {
        client = client.with_token(t);
    }
    let cancel = CancellationToken::new();
    let on_stop = cancel.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        on_stop.cancel();
    });

    let agent = build_agent(args, client.clone())?;
    let controllers = Component {
        name: "controllers",
        task: tokio::spawn(meseta_controllers::manager::run_all(
            client,
            meseta_controllers::manager::ManagerConfig::default(),
            cancel.clone(),
        )),
    };
    let agent = Component { name: "agent", task: tokio::spawn(async move { agent.run(cancel).await }) };
    Ok(vec![controllers, agent])
}

/// The node agent of `meseta up`: real containers under `DIR/agent`, the
/// shim being this very binary (`meseta shim`).
fn build_agent(args: &UpArgs, client: meseta_client::Client) -> anyhow::Result<meseta_agentd::Agent> {
    use meseta_agentd::agent::join;
    use meseta_agentd::runtime::linux::{seccomp_available, LinuxRuntime};

    let work_dir = std::path::absolute(args.data_dir.join("agent"))?;
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let detected = join::detect_resources(&work_dir);
    let keep = meseta_agentd::flags::parse_resources("cpus:0.5;mem:512").expect("a valid literal");
    let overrides = args
        .agent_resources
        .as_deref()
        .map(meseta_agentd::flags::parse_resources)
        .transpose()
        .context("--agent-resources")?;
    let resources = join::advertised(&detected, &keep, overrides.as_ref());
    let runtime = LinuxRuntime::new(&work_dir, "/proc/self/exe").context(
        "starting the container runtime (meseta up runs tasks in real containers: run it as root, \
         with libseccomp installed — ./scripts/install-deps does that)",
    )?;
    let listen = free_port_if_zero(args.agent_listen)?;
    let mut config = meseta_agentd::AgentConfig::new(join::default_name(), resources);
    config.address = format!("http://{listen}");
    config.listen = Some(listen);
    config.work_dir = Some(work_dir);
    config.usage_interval = Some(std::time::Duration::from_secs(10));
    config.seccomp = seccomp_available();
    Ok(meseta_agentd::Agent::new(client, config, Arc::new(runtime))?)
}

/// `addr`, or `addr` with a free port when its port is 0.
fn free_port_if_zero(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr).with_context(|| format!("finding a free port on {addr}"))?;
    Ok(probe.local_addr()?)
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
