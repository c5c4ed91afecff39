//! Joining the cluster: what this machine offers (detection minus what the
//! agent keeps for itself, or the operator's overrides), the `Agent` object
//! (spec upserted, `Ready` / `SeccompAvailable` conditions), and the
//! heartbeat `Lease` `meseta-system/agent-<name>`.
//!
//! It must not touch fields operators own (`unschedulable`, `maintenance`)
//! nor the `Ready=False/Unreachable` verdict of the liveness controller
//! beyond setting `Ready=True` when the agent (re)joins.

use std::path::Path;

use meseta_client::{Api, Client};
use meseta_schemas::kinds::{Agent, AgentStatus, Condition, Lease, LeaseSpec};
use meseta_schemas::resources::{PortRange, Resources};

use super::AgentConfig;

/// Namespace of agents' leases.
pub const LEASE_NAMESPACE: &str = "meseta-system";
/// Ports offered when `--resources` names none.
pub const DEFAULT_PORTS: PortRange = PortRange { begin: 31000, end: 32000 };

/// What this machine has: cpus, memory (MiB), disk of `work_dir` (MiB), and
/// GPUs (`/dev/nvidia<N>` devices; zero when none).
pub fn detect_resources(work_dir: &Path) -> Resources {
    let cpus = std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0).floor())
        .unwrap_or(0.0);
    let disk = nix::sys::statvfs::statvfs(work_dir)
        .map(|s| (s.blocks() as f64 * s.fragment_size() as f64 / (1024.0 * 1024.0)).floor())
        .unwrap_or(0.0);
    let gpus = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.strip_prefix("nvidia")
                        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as f64
        })
        .unwrap_or(0.0);
    Resources { cpus, mem, disk, gpus, ports: vec![DEFAULT_PORTS] }
}

/// The resources to advertise: `overrides` where given (per resource),
/// otherwise what was `detected` minus `keep`.
pub fn advertised(detected: &Resources, keep: &Resources, overrides: Option<&Resources>) -> Resources {
    let base = detected.saturating_sub(keep);
    let Some(o) = overrides else { return base };
    let pick = |over: f64, det: f64| if over > 0.0 { over } else { det };
    Resources {
        cpus: pick(o.cpus, base.cpus),
        mem: pick(o.mem, base.mem),
        disk: pick(o.disk, base.disk),
        gpus: pick(o.gpus, base.gpus),
        ports: if o.ports.is_empty() { base.ports } else { o.ports.clone() },
    }
}

/// The agent name derived from the hostname: lower-cased, DNS-1123.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "agent".into());
    let mut name: String = host
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect();
    name = name.trim_matches(|c| c == '-' || c == '.').to_string();
    if name.is_empty() {
        "agent".into()
    } else {
        name
    }
}

/// This machine's hostname (empty if it cannot be read).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Checks a hostname given in place of the machine's (DNS-1123): at most
/// 253 characters of dot-separated labels, each 1 to 63 lower-case letters,
/// digits or `-`, neither starting nor ending with `-`. Returns why not.
pub fn validate_hostname(hostname: &str) -> Result<(), String> {
    if hostname.is_empty() {
        return Err("must not be empty".into());
    }
    if hostname.len() > 253 {
        return Err(format!("is {} characters long; at most 253 are allowed", hostname.len()));
    }
    for label in hostname.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?} must be 1 to 63 characters long"));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("label {label:?} may hold only lower-case letters, digits and '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
    }
    Ok(())
}

/// The hostname an agent with `config` presents: its own, or the machine's.
pub fn hostname_of(config: &AgentConfig) -> String {
    config.hostname.clone().unwrap_or_else(machine_hostname)
}

/// Sets condition `type_` in `conds`, keeping its transition time when the status is unchanged.
pub(crate) fn set_condition(conds: &mut Vec<Condition>, type_: &str, status: bool, reason: &str, message: &str) {
    let status = if status { "True" } else { "False" };
    let now = chrono::Utc::now();
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now);
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
        }
        None => conds.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Some(now),
            observed_generation: None,
        }),
    }
}

/// Creates or updates this agent's `Agent` object and marks it Ready.
pub(crate) async fn upsert_agent(client: &Client, config: &AgentConfig, seccomp: bool) -> meseta_client::Result<Agent> {
    let api: Api<Agent> = Api::all(client.clone());
    loop {
        let existing = api.get_opt(&config.name).await?;
        let mut agent = existing.clone().unwrap_or_else(|| Agent::new(&config.name, Default::default()));
        agent.spec.address = config.address.clone();
        agent.spec.hostname = hostname_of(config);
        agent.spec.attributes = config.attributes.clone();
        agent.spec.resources = config.resources.clone();
        agent.spec.reservations = config.reservations.clone();
        let written = match existing {
            None => match api.create(&agent).await {
                Err(e) if e.is_already_exists() => continue,
                other => other?,
            },
            Some(ref old) if old.spec == agent.spec => old.clone(),
            Some(_) => match api.replace(&agent).await {
                Err(e) if e.is_conflict() => continue,
                other => other?,
            },
        };
        let mut with_status = written.clone();
        let mut status = with_status.status.take().unwrap_or_default();
        set_condition(
            &mut status.conditions,
            "Ready",
            true,
            "AgentJoined",
            "the agent is running and renews its lease",
        );
        let (sc_reason, sc_msg) = if seccomp {
            ("Available", "tasks run under a seccomp filter")
        } else {
            ("Unavailable", "this kernel cannot filter system calls; tasks run without seccomp")
        };
        set_condition(&mut status.conditions, "SeccompAvailable", seccomp, sc_reason, sc_msg);
        status.agent_version = env!("CARGO_PKG_VERSION").to_string();
        with_status.status = Some(status);
        match api.replace_status(&with_status).await {
            Err(e) if e.is_conflict() => continue,
            other => return other,
        }
    }
}

/// Writes `Ready=False` with `reason` (on shutdown).
pub(crate) async fn mark_not_ready(client: &Client, name: &str, reason: &str, message: &str) {
    let api: Api<Agent> = Api::all(client.clone());
    for _ in 0..3 {
        let Ok(Some(mut agent)) = api.get_opt(name).await else { return };
        let mut status: AgentStatus = agent.status.take().unwrap_or_default();
        set_condition(&mut status.conditions, "Ready", false, reason, message);
        agent.status = Some(status);
        match api.replace_status(&agent).await {
            Err(e) if e.is_conflict() => continue,
            _ => return,
        }
    }
}

/// Renews (or creates) the agent's lease once.
pub(crate) async fn renew_lease(client: &Client, name: &str, duration_s: u32) -> meseta_client::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease_name = format!("agent-{name}");
    let now = chrono::Utc::now();
    // The usual case in one request: the lease exists, renew it in place.
    let renew = serde_json::json!({
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_s, "renewTime": now}
    });
    match api.patch_merge(&lease_name, &renew).await {
        Err(e) if e.is_not_found() => {}
        other => return other.map(|_| ()),
    }
    for _ in 0..3 {
        match api.get_opt(&lease_name).await? {
            None => {
                let spec = LeaseSpec {
                    holder_identity: Some(name.to_string()),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: 0,
                };
                match api.create(&Lease::new(&lease_name, spec).in_namespace(LEASE_NAMESPACE)).await {
                    Err(e) if e.is_already_exists() => continue,
                    other => return other.map(|_| ()),
                }
            }
            Some(mut lease) => {
                lease.spec.holder_identity = Some(name.to_string());
                lease.spec.lease_duration_seconds = Some(duration_s);
                lease.spec.renew_time = Some(now);
                match api.replace(&lease).await {
                    Err(e) if e.is_conflict() => continue,
                    other => return other.map(|_| ()),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_finds_cpus_memory_and_the_default_ports() {
        let r = detect_resources(Path::new("/"));
        assert!(r.cpus >= 1.0 && r.mem > 0.0 && r.disk > 0.0, "{r:?}");
        assert_eq!(r.ports, vec![DEFAULT_PORTS]);
    }

    #[test]
    fn kept_resources_are_subtracted_and_overrides_win() {
        let detected = Resources { ports: vec![DEFAULT_PORTS], ..Resources::scalars(8.0, 16000.0, 1000.0, 0.0) };
        let keep = Resources::scalars(1.0, 1000.0, 0.0, 0.0);
        let a = advertised(&detected, &keep, None);
        assert_eq!((a.cpus, a.mem, a.disk), (7.0, 15000.0, 1000.0));
        let over =
            Resources { ports: vec![PortRange { begin: 40000, end: 40010 }], ..Resources::scalars(2.0, 0.0, 0.0, 0.0) };
        let a = advertised(&detected, &keep, Some(&over));
        assert_eq!((a.cpus, a.mem), (2.0, 15000.0));
        assert_eq!(a.ports, over.ports);
    }

    #[test]
    fn hostnames_must_be_dns_1123() {
        for ok in ["node-1", "a", "node-1.rack-a.example", &"a".repeat(63)] {
            assert_eq!(validate_hostname(ok), Ok(()), "{ok}");
        }
        let bad = [
            ("", "empty"),
            ("Node1", "lower-case"),
            ("node_1", "lower-case"),
            ("-node", "start or end"),
            ("node-", "start or end"),
            ("a..b", "1 to 63"),
            (&"a".repeat(64), "1 to 63"),
        ];
        for (hostname, why) in bad {
            let err = validate_hostname(hostname).unwrap_err();
            assert!(err.contains(why), "{hostname:?}: {err}");
        }
        assert!(validate_hostname(&["a"; 130].join(".")).unwrap_err().contains("253"));
    }

    #[test]
    fn the_configured_hostname_wins_over_the_machines() {
        let mut config = AgentConfig::new("a1", Resources::default());
        assert_eq!(hostname_of(&config), machine_hostname());
        config.hostname = Some("host-a1".into());
        assert_eq!(hostname_of(&config), "host-a1");
    }
}
