//! `meseta wait`: block until named or selected objects meet a condition
//! (`--for=delete`, `--for=jsonpath=...`, `--for=condition=...`), or time out.
//!
//! Lists the objects, then follows a watch from the list's resourceVersion
//! (relisting when the watch ends) and re-checks every target on each event.
//! It owns parsing `--for` and `--timeout`; it must not write to the server.
//!
//! # The JSONPath subset
//!
//! `--for=jsonpath='{PATH}'=VALUE` accepts dotted field paths with optional
//! array indexes: `{.status.state}`, `{.status.taskEvents[0].state}`,
//! `{.spec.containers[1].image}`. Wildcards, recursive descent (`..`),
//! filters, slices and several expressions are not supported and are a usage
//! error. The value found is compared as text: strings as they are, numbers
//! and booleans as JSON writes them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use meseta_schemas::registry::KindInfo;
use serde_json::Value;
use tokio::time::Instant;

use crate::cli::DEFAULT_NAMESPACE;
use crate::conn::{selectors, Conn, ConnError, Scope};
use crate::failure::Usage;
use crate::kinds;
use crate::watch_lines::WatchLines;

/// Arguments of `meseta wait`.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// Kind: `tasks`, `task`, `tk`, `Task`, ... (or `KIND/NAME`).
    pub(crate) kind: String,
    /// Names of the objects to wait for.
    pub(crate) names: Vec<String>,
    /// Namespace (role) to use [default: default].
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
    /// Label selector choosing the objects, e.g. `app=web` (instead of names).
    #[arg(short = 'l', long)]
    pub(crate) selector: Option<String>,
    /// The condition: `delete`, `jsonpath='{.status.state}'=RUNNING` or `condition=Ready[=True]`.
    #[arg(long = "for", value_name = "CONDITION")]
    pub(crate) for_: String,
    /// How long to wait: e.g. `30s`, `2m`, `500ms`, `1h` (a bare number is seconds).
    #[arg(long, default_value = "30s")]
    pub(crate) timeout: String,
}

/// What `--for` asks for.
#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    /// The object is gone.
    Delete,
    /// The field at `path` has the text `value`.
    JsonPath { expr: String, path: Vec<Segment>, value: String },
    /// `status.conditions[]` has `type` with `status` (both compared ignoring case).
    Condition { type_: String, status: String },
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(usize),
}

/// Runs `meseta wait`; the result is the exit code.
pub(crate) async fn run(conn: &Conn, args: &WaitArgs) -> anyhow::Result<u8> {
    let wanted = parse_for(&args.for_)?;
    let timeout = parse_timeout(&args.timeout)?;
    let (kind_arg, inline_name) = kinds::split_kind_name(&args.kind);
    let kind = kinds::resolve(kind_arg)?;
    let mut names = args.names.clone();
    if let Some(n) = inline_name {
        names.insert(0, n.to_string());
    }
    let labels = args.selector.as_deref().filter(|s| !s.is_empty());
    match (names.is_empty(), labels) {
        (true, None) => {
            return Err(Usage("give the names of the objects to wait for, or a selector with -l".into()).into())
        }
        (false, Some(_)) => return Err(Usage("give names or a selector (-l), not both".into()).into()),
        _ => {}
    }
    let scope = Scope::new(kind, Some(args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)));
    let deadline = Instant::now() + timeout;
    let mut waiter = Waiter { kind, wanted, targets: names, live: HashMap::new(), progress: None };

    let mut first = true;
    loop {
        let list = conn.list(scope, labels, None).await?;
        waiter.live = list.items.into_iter().filter_map(|o| Some((name_of(&o)?, o))).collect();
        if first {
            first = false;
            if labels.is_some() {
                waiter.targets = waiter.live.keys().cloned().collect();
                waiter.targets.sort();
                if waiter.targets.is_empty() && waiter.wanted != Wanted::Delete {
                    anyhow::bail!("no matching {} found", kind.plural);
                }
            }
        }
        if waiter.check() {
            return Ok(waiter.succeed());
        }
        let mut query = selectors(labels, None);
        query.push(("watch", "true".into()));
        query.push(("allowWatchBookmarks", "true".into()));
        query.push(("resourceVersion", list.resource_version));
        let mut body = match tokio::time::timeout_at(deadline, conn.stream(&scope.collection(), &query)).await {
            Ok(body) => body?,
            Err(_) => return Err(waiter.timed_out()),
        };
        let mut lines = WatchLines::default();
        loop {
            let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
                Err(_) => return Err(waiter.timed_out()),
                Ok(None) | Ok(Some(Err(ConnError::Transport { .. }))) => break,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(c))) => c,
            };
            let mut restart = false;
            for event in lines.push(&chunk)? {
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        if let Some(name) = name_of(&event.object) {
                            waiter.live.insert(name, event.object);
                        }
                    }
                    "DELETED" => {
                        if let Some(name) = name_of(&event.object) {
                            waiter.live.remove(&name);
                        }
                    }
                    "ERROR" => restart = true,
                    _ => {}
                }
            }
            if waiter.check() {
                return Ok(waiter.succeed());
            }
            if restart {
                // E.g. the resourceVersion expired: list again after a pause.
                if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_secs(1))).await.is_err() {
                    return Err(waiter.timed_out());
                }
                break;
            }
        }
    }
}

/// The objects waited for and what is known of them.
struct Waiter {
    kind: &'static KindInfo,
    wanted: Wanted,
    targets: Vec<String>,
    live: HashMap<String, Value>,
    /// The last progress shown on stderr (number not yet met).
    progress: Option<usize>,
}

impl Waiter {
    /// Whether every target meets the condition; shows progress on a terminal.
    fn check(&mut self) -> bool {
        let unmet = self.targets.iter().filter(|n| !self.met(n)).count();
        if unmet > 0 && std::io::stderr().is_terminal() && self.progress != Some(unmet) {
            eprint!("\r\x1b[2Kwaiting for {unmet} of {}...", self.targets.len());
            self.progress = Some(unmet);
        }
        unmet == 0
    }

    fn met(&self, name: &str) -> bool {
        let obj = self.live.get(name);
        match (&self.wanted, obj) {
            (Wanted::Delete, obj) => obj.is_none(),
            (_, None) => false,
            (Wanted::JsonPath { path, value, .. }, Some(obj)) => lookup(obj, path).map(text).as_deref() == Some(value),
            (Wanted::Condition { type_, status }, Some(obj)) => {
                condition_status(obj, type_).is_some_and(|s| s.eq_ignore_ascii_case(status))
            }
        }
    }

    /// Prints the `condition met` lines; the exit code.
    fn succeed(&self) -> u8 {
        if self.progress.is_some() {
            eprint!("\r\x1b[2K");
        }
        let qualified = kinds::qualified(self.kind);
        for name in &self.targets {
            println!("{qualified}/{name} condition met");
        }
        crate::failure::EXIT_OK
    }

    /// The timeout error, naming each object not there yet and what it has now.
    fn timed_out(&self) -> anyhow::Error {
        if self.progress.is_some() {
            eprintln!();
        }
        let parts: Vec<String> = self
            .targets
            .iter()
            .filter(|n| !self.met(n))
            .map(|n| format!("{}/{n} ({})", self.kind.plural, self.current(n)))
            .collect();
        anyhow::anyhow!("timed out waiting for the condition on {}", parts.join(", "))
    }

    /// What a target has now, in the terms of the condition.
    fn current(&self, name: &str) -> String {
        let Some(obj) = self.live.get(name) else { return "not found".into() };
        match &self.wanted {
            Wanted::Delete => "still exists".into(),
            Wanted::JsonPath { expr, path, value } => match lookup(obj, path) {
                Some(v) => format!("{expr} is {}, want {value:?}", serde_json::to_string(v).unwrap_or_default()),
                None => format!("{expr} is not set, want {value:?}"),
            },
            Wanted::Condition { type_, status } => match condition_status(obj, type_) {
                Some(s) => format!("condition {type_} is {s}, want {status}"),
                None => format!("condition {type_} is not set, want {status}"),
            },
        }
    }
}

fn name_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string)
}

/// The value at `path` in `obj`.
fn lookup<'a>(obj: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| match seg {
        Segment::Field(f) => v.get(f.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}

/// A value as text: strings bare, everything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status of the condition `type_` (any case) in `status.conditions`.
fn condition_status<'a>(obj: &'a Value, type_: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(type_)))?
        .get("status")?
        .as_str()
}

/// Parses `--for`.
fn parse_for(arg: &str) -> Result<Wanted, Usage> {
    if arg == "delete" {
        return Ok(Wanted::Delete);
    }
    if let Some(rest) = arg.strip_prefix("condition=") {
        let (type_, status) = rest.split_once('=').unwrap_or((rest, "True"));
        if type_.is_empty() || status.is_empty() {
            return Err(Usage(format!("--for={arg}: want condition=TYPE or condition=TYPE=STATUS")));
        }
        return Ok(Wanted::Condition { type_: type_.to_string(), status: status.to_string() });
    }
    if let Some(rest) = arg.strip_prefix("jsonpath=") {
        let Some(close) = rest.strip_prefix('{').and_then(|r| r.find('}')) else {
            return Err(Usage(format!("--for={arg}: want jsonpath='{{.field.path}}'=VALUE")));
        };
        let expr = &rest[1..=close];
        let Some(value) = rest[close + 2..].strip_prefix('=') else {
            return Err(Usage(format!("--for={arg}: want jsonpath='{{.field.path}}'=VALUE (the value is missing)")));
        };
        let path = parse_path(expr).map_err(|why| Usage(format!("--for: unsupported JSONPath {{{expr}}}: {why}")))?;
        return Ok(Wanted::JsonPath { expr: format!("{{{expr}}}"), path, value: value.to_string() });
    }
    Err(Usage(format!(
        "--for={arg} is not supported: use delete, jsonpath='{{.status.state}}'=VALUE or condition=TYPE[=STATUS]"
    )))
}

/// Parses `.a.b[0].c` (the supported subset) into segments.
fn parse_path(expr: &str) -> Result<Vec<Segment>, String> {
    if !expr.starts_with('.') {
        return Err("a path must start with '.'".into());
    }
    let mut path = Vec::new();
    for part in expr[1..].split('.') {
        let (field, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if field.is_empty() || !field.chars().all(plain) {
            return Err(format!("{part:?} is not a field name (only .field and [N] are supported)"));
        }
        path.push(Segment::Field(field.to_string()));
        while !indexes.is_empty() {
            let Some((index, rest)) = indexes.strip_prefix('[').and_then(|r| r.split_once(']')) else {
                return Err(format!("{indexes:?} is not an index [N]"));
            };
            let n = index.parse::<usize>().map_err(|_| format!("[{index}] is not supported (only [N])"))?;
            path.push(Segment::Index(n));
            indexes = rest;
        }
    }
    Ok(path)
}

/// Parses `--timeout`: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
fn parse_timeout(arg: &str) -> Result<Duration, Usage> {
    let bad = || Usage(format!("--timeout {arg:?} is not a duration: want e.g. 30s, 2m, 500ms"));
    let split = arg.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_forms_parse() {
        assert_eq!(parse_for("delete").unwrap(), Wanted::Delete);
        assert_eq!(
            parse_for("condition=Ready").unwrap(),
            Wanted::Condition { type_: "Ready".into(), status: "True".into() }
        );
        assert_eq!(
            parse_for("condition=Ready=False").unwrap(),
            Wanted::Condition { type_: "Ready".into(), status: "False".into() }
        );
        let Wanted::JsonPath { path, value, .. } = parse_for("jsonpath={.status.taskEvents[0].state}=RUNNING").unwrap()
        else {
            panic!("not a jsonpath")
        };
        assert_eq!(value, "RUNNING");
        assert_eq!(
            path,
            vec![
                Segment::Field("status".into()),
                Segment::Field("taskEvents".into()),
                Segment::Index(0),
                Segment::Field("state".into())
            ]
        );
    }

    #[test]
    fn unsupported_for_is_a_usage_error_naming_it() {
        for bad in ["jsonpath={.items[*].x}=1", "jsonpath={..name}=a", "jsonpath={.a}", "ready", "condition="] {
            let err = parse_for(bad).unwrap_err().to_string();
            assert!(err.contains("--for"), "{bad}: {err}");
        }
        assert!(parse_for("jsonpath={.items[*].x}=1").unwrap_err().to_string().contains("[*]"));
    }

    #[test]
    fn lookups_follow_fields_and_indexes() {
        let obj = serde_json::json!({"status": {"a": [{"b": 3}, {"b": true}]}});
        let path = parse_path(".status.a[1].b").unwrap();
        assert_eq!(lookup(&obj, &path).map(text).as_deref(), Some("true"));
        assert!(lookup(&obj, &parse_path(".status.a[5].b").unwrap()).is_none());
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert!(parse_timeout("soon").is_err() && parse_timeout("5d").is_err());
    }
}
