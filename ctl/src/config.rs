//! Which apiserver to talk to, and with which token.
//!
//! Order of precedence, for the server and the token separately: the flag,
//! the environment (`MESETA_SERVER`, `MESETA_TOKEN`; clap reads both into the
//! flag), the config file `$XDG_CONFIG_HOME/meseta/config.yaml` (else
//! `~/.config/meseta/config.yaml`) with keys `server` and `token`, and for the
//! server `http://127.0.0.1:5050`. This module must not send requests.

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::conn::Conn;

/// The server used when nothing else names one.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:5050";

/// The contents of `config.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// The server and token a command uses.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Base URL of the apiserver.
    pub(crate) server: String,
    /// Bearer token, if any.
    pub(crate) token: Option<String>,
}

impl Settings {
    /// Resolves the settings from flags/environment, then the config file.
    pub(crate) fn resolve(global: &GlobalArgs) -> anyhow::Result<Settings> {
        let file = match config_path() {
            Some(path) if path.exists() => read_config(&path)?,
            _ => ConfigFile::default(),
        };
        let server = global.server.clone().filter(|s| !s.is_empty()).or(file.server).unwrap_or(DEFAULT_SERVER.into());
        let token = global.token.clone().filter(|t| !t.is_empty()).or(file.token);
        Ok(Settings { server, token })
    }

    /// Opens a connection with these settings.
    pub(crate) fn connect(&self) -> anyhow::Result<Conn> {
        Conn::new(&self.server, self.token.as_deref())
    }
}

/// `$XDG_CONFIG_HOME/meseta/config.yaml`, else `$HOME/.config/meseta/config.yaml`.
pub(crate) fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("meseta").join("config.yaml"))
}

fn read_config(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_yaml::from_str(&text)
        .with_context(|| format!("{}: expected `server: URL` and optionally `token: TOKEN`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys_are_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "server: http://h:1\ntoken: t\n").unwrap();
        let c = read_config(&path).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://h:1"));
        assert_eq!(c.token.as_deref(), Some("t"));
        std::fs::write(&path, "sever: http://h:1\n").unwrap();
        let err = format!("{:#}", read_config(&path).unwrap_err());
        assert!(err.contains("sever"), "{err}");
    }
}
