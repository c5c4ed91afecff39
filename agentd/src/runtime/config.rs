//! [`ContainerConfig`]: everything a runtime needs to run one task, derived
//! from the task's spec. Pure data and its derivation; no I/O.

use std::collections::BTreeMap;

use meseta_schemas::kinds::task::{NetworkMode, TaskSpec};
use serde::{Deserialize, Serialize};

use super::{ContainerId, RuntimeError};

/// Where the sandbox appears inside the container (its working directory).
pub const SANDBOX_MOUNT: &str = "/mnt/sandbox";
/// Process limit of a container when nothing else is said.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;
/// `PATH` given to a task that sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run and with which limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's id.
    pub id: ContainerId,
    /// The argv of the first process (`/bin/sh -c CMD` for a shell command).
    pub argv: Vec<String>,
    /// The full environment of the first process.
    pub env: BTreeMap<String, String>,
    /// CPU cores (fractional); 0 means no limit.
    pub cpus: f64,
    /// Memory limit in MiB; 0 means no limit.
    pub mem_mib: f64,
    /// Maximum number of processes.
    pub pids_limit: i64,
    /// User name to run as; `None` means `nobody`.
    pub user: Option<String>,
    /// Network namespace mode.
    pub network: NetworkMode,
    /// OCI image; runtimes today reject any.
    pub image: Option<String>,
}

impl ContainerConfig {
    /// Derives the config of task `namespace/name` from its spec, with
    /// `ports` the host ports assigned to it (in the order of `spec.ports`,
    /// then of `spec.resources.ports`).
    pub fn from_task(namespace: &str, name: &str, spec: &TaskSpec, ports: &[u16]) -> Result<Self, RuntimeError> {
        let id = ContainerId::new(namespace, name)?;
        let argv = match (&spec.command, spec.args.is_empty()) {
            (Some(cmd), _) if !cmd.trim().is_empty() => vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
            (_, false) => spec.args.clone(),
            _ => {
                return Err(RuntimeError::InvalidConfig {
                    field: "command",
                    reason: "neither command nor args is set".into(),
                })
            }
        };
        if argv[0].is_empty() {
            return Err(RuntimeError::InvalidConfig { field: "args", reason: "args[0] is empty".into() });
        }
        for (field, v) in [("resources.cpus", spec.resources.cpus), ("resources.mem", spec.resources.mem)] {
            if !v.is_finite() || v < 0.0 {
                return Err(RuntimeError::InvalidConfig { field, reason: format!("{v} is not a non-negative number") });
            }
        }
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
        env.insert("HOME".to_string(), SANDBOX_MOUNT.to_string());
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("MESETA_TASK_ID".into(), format!("{namespace}/{name}"));
        env.insert("MESETA_SANDBOX".into(), SANDBOX_MOUNT.into());
        for (i, port) in ports.iter().enumerate() {
            env.insert(format!("PORT{i}"), port.to_string());
        }
        for (req, port) in spec.ports.iter().zip(ports) {
            if !req.name.is_empty() {
                let key: String = req
                    .name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                    .collect();
                env.insert(format!("PORT_{key}"), port.to_string());
            }
        }
        if !ports.is_empty() {
            env.insert("PORTS".into(), ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
        }
        let container = spec.container.clone().unwrap_or_default();
        Ok(ContainerConfig {
            id,
            argv,
            env,
            cpus: spec.resources.cpus,
            mem_mib: spec.resources.mem,
            pids_limit: DEFAULT_PIDS_LIMIT,
            user: spec.user.clone().filter(|u| !u.is_empty()),
            network: container.network,
            image: container.image.filter(|i| !i.is_empty()),
        })
    }

    /// Rejects what no runtime can run yet (an image).
    pub fn check_supported(&self) -> Result<(), RuntimeError> {
        match &self.image {
            Some(image) => Err(RuntimeError::ImagesNotSupported { image: image.clone() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use meseta_schemas::kinds::task::{ContainerSpec, PortRequest};

    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec { command: Some("echo hi".into()), ..Default::default() }
    }

    #[test]
    fn a_shell_command_runs_through_bin_sh() {
        let c = ContainerConfig::from_task("web", "t1", &spec(), &[]).unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.id.as_str(), "web_t1");
        assert_eq!(c.env["MESETA_TASK_ID"], "web/t1");
        assert_eq!(c.env["MESETA_SANDBOX"], SANDBOX_MOUNT);
    }

    #[test]
    fn exec_form_args_are_used_when_there_is_no_command() {
        let s = TaskSpec { args: vec!["/bin/echo".into(), "a b".into()], ..Default::default() };
        let c = ContainerConfig::from_task("web", "t1", &s, &[]).unwrap();
        assert_eq!(c.argv, ["/bin/echo", "a b"]);
    }

    #[test]
    fn a_task_without_command_or_args_is_rejected_naming_the_field() {
        let err = ContainerConfig::from_task("web", "t1", &TaskSpec::default(), &[]).unwrap_err();
        assert!(err.to_string().contains("command"), "{err}");
    }

    #[test]
    fn ports_are_exported_by_index_by_name_and_as_a_list() {
        let mut s = spec();
        s.ports = vec![PortRequest { name: "http-api".into(), port: 0 }, PortRequest::default()];
        let c = ContainerConfig::from_task("web", "t1", &s, &[31000, 31001]).unwrap();
        assert_eq!(c.env["PORT0"], "31000");
        assert_eq!(c.env["PORT1"], "31001");
        assert_eq!(c.env["PORT_HTTP_API"], "31000");
        assert_eq!(c.env["PORTS"], "31000,31001");
    }

    #[test]
    fn the_task_env_overrides_defaults_but_not_meseta_variables() {
        let mut s = spec();
        s.env.insert("PATH".into(), "/x".into());
        s.env.insert("MESETA_SANDBOX".into(), "/y".into());
        let c = ContainerConfig::from_task("web", "t1", &s, &[]).unwrap();
        assert_eq!(c.env["PATH"], "/x");
        assert_eq!(c.env["MESETA_SANDBOX"], SANDBOX_MOUNT);
    }

    #[test]
    fn an_image_is_refused_with_a_clear_error() {
        let mut s = spec();
        s.container = Some(ContainerSpec { image: Some("alpine:3".into()), ..Default::default() });
        let c = ContainerConfig::from_task("web", "t1", &s, &[]).unwrap();
        let err = c.check_supported().unwrap_err();
        assert!(err.to_string().contains("images are not supported yet"), "{err}");
    }

    #[test]
    fn names_that_are_not_dns_subdomains_are_rejected() {
        assert!(ContainerId::new("web", "a_b").is_err());
        assert!(ContainerId::new("", "a").is_err());
        assert!(ContainerId::new("Web", "a").is_err());
        let id = ContainerId::new("web", "a.b-1").unwrap();
        assert_eq!(ContainerId::parse(id.as_str()), Some(id.clone()));
        assert_eq!((id.namespace(), id.name()), ("web", "a.b-1"));
    }
}
