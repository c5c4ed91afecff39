//! `meseta describe KIND NAME`: one object for a person: metadata, spec,
//! status, conditions, a task's `taskEvents` timeline, and the Events that
//! name the object.

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use crate::cli::NamespaceArgs;
use crate::conn::{Conn, Scope};
use crate::failure::Usage;
use crate::kinds;
use crate::merge::LAST_APPLIED;
use crate::output::fields::{age, text};
use crate::output::table::{Cell, Table};
use crate::output::yaml;

/// Arguments of `meseta describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// Kind (or `KIND/NAME`).
    pub(crate) kind: String,
    /// Name of the object.
    pub(crate) name: Option<String>,
    /// Namespace (role) [default: default].
    #[arg(short = 'n', long)]
    pub(crate) namespace: Option<String>,
}

/// Runs `meseta describe`.
pub(crate) async fn run(conn: &Conn, args: &DescribeArgs) -> anyhow::Result<()> {
    let (kind_arg, inline) = kinds::split_kind_name(&args.kind);
    let kind = kinds::resolve(kind_arg)?;
    let Some(name) = args.name.as_deref().or(inline) else {
        return Err(Usage(format!("describe needs a name: meseta describe {} NAME", kind.singular)).into());
    };
    let ns = NamespaceArgs { namespace: args.namespace.clone(), all_namespaces: false };
    let scope = Scope::new(kind, ns.scope());
    let obj = conn.get(scope, name).await?;
    let events_scope = Scope::new(kinds::resolve("events")?, if kind.namespaced { ns.scope() } else { None });
    let selector = format!("involvedObject.name={name},involvedObject.kind={}", kind.kind);
    let events = conn.list(events_scope, None, Some(&selector)).await?.items;
    print!("{}", render(&obj, &events, Utc::now()));
    Ok(())
}

/// The whole description (pure, for tests).
pub(crate) fn render(obj: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let line =
        |out: &mut String, key: &str, value: String| out.push_str(&format!("{:<14}{value}\n", format!("{key}:")));
    line(&mut out, "Name", text(obj, "/metadata/name"));
    if obj.pointer("/metadata/namespace").is_some() {
        line(&mut out, "Namespace", text(obj, "/metadata/namespace"));
    }
    line(&mut out, "Kind", text(obj, "/kind"));
    line(&mut out, "Labels", map_lines(obj.pointer("/metadata/labels"), &[]));
    line(&mut out, "Annotations", map_lines(obj.pointer("/metadata/annotations"), &[LAST_APPLIED]));
    line(
        &mut out,
        "Created",
        format!("{} ({} ago)", text(obj, "/metadata/creationTimestamp"), age(obj, "/metadata/creationTimestamp", now)),
    );
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        line(&mut out, "Deleting", format!("since {}", text(obj, "/metadata/deletionTimestamp")));
    }
    if let Some(spec) = obj.get("spec").filter(|s| !is_empty(s)) {
        out.push_str("Spec:\n");
        out.push_str(&indent(&yaml(spec), 2));
    }
    if let Some(Value::Object(status)) = obj.get("status") {
        let mut rest = status.clone();
        rest.remove("conditions");
        rest.remove("taskEvents");
        if !rest.is_empty() {
            out.push_str("Status:\n");
            out.push_str(&indent(&yaml(&Value::Object(rest)), 2));
        }
    }
    if let Some(Value::Array(conditions)) = obj.pointer("/status/conditions") {
        if !conditions.is_empty() {
            out.push_str("Conditions:\n");
            let rows = conditions
                .iter()
                .map(|c| {
                    vec![
                        Cell::from(text(c, "/type")),
                        text(c, "/status").into(),
                        text(c, "/reason").into(),
                        age(c, "/lastTransitionTime", now).into(),
                        text(c, "/message").into(),
                    ]
                })
                .collect();
            out.push_str(&indent(&table(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows), 2));
        }
    }
    let history = obj.pointer("/status/taskEvents").and_then(Value::as_array);
    if history.is_some() || text(obj, "/kind") == "Task" {
        let history = history.map(Vec::as_slice).unwrap_or_default();
        out.push_str("Task events:\n");
        if history.is_empty() {
            out.push_str("  <none>\n");
        } else {
            let rows = history
                .iter()
                .map(|e| {
                    vec![Cell::from(age(e, "/timestamp", now)), text(e, "/state").into(), text(e, "/message").into()]
                })
                .collect();
            out.push_str(&indent(&table(&["AGE", "STATE", "MESSAGE"], rows), 2));
        }
    }
    out.push_str("Events:");
    if events.is_empty() {
        out.push_str("       <none>\n");
    } else {
        out.push('\n');
        let rows = events
            .iter()
            .map(|e| {
                let seen = if e.get("lastTimestamp").is_some_and(|t| !t.is_null()) {
                    age(e, "/lastTimestamp", now)
                } else {
                    age(e, "/metadata/creationTimestamp", now)
                };
                vec![
                    Cell::from(text(e, "/type")),
                    text(e, "/reason").into(),
                    seen.into(),
                    text(e, "/source/component").into(),
                    text(e, "/message").into(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], rows), 2));
    }
    out
}

fn table(headers: &[&str], rows: Vec<Vec<Cell>>) -> String {
    Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows }.render(false)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// `k=v` pairs, one per line aligned under the first; `<none>` when empty.
fn map_lines(map: Option<&Value>, skip: &[&str]) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or(v.to_string())))
        .collect();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(&format!("\n{}", " ".repeat(14)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_task_shows_its_timeline_and_events() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z").unwrap().with_timezone(&Utc);
        let task = json!({
            "kind": "Task",
            "metadata": {"name": "t", "namespace": "web", "creationTimestamp": "2024-01-01T00:00:00Z",
                         "annotations": {LAST_APPLIED: "{}", "team": "a"}},
            "spec": {"command": "true"},
            "status": {"state": "RUNNING", "taskEvents": [
                {"timestamp": "2024-01-01T00:00:00Z", "state": "PENDING", "message": "created"},
                {"timestamp": "2024-01-01T00:09:00Z", "state": "RUNNING", "message": "started"}]}
        });
        let event = json!({"type": "Normal", "reason": "Scheduled", "lastTimestamp": "2024-01-01T00:09:30Z",
                           "source": {"component": "allocator"}, "message": "placed on a1"});
        let out = render(&task, &[event], now);
        assert!(out.contains("Annotations:  team=a\n"), "{out}");
        assert!(!out.contains(LAST_APPLIED));
        assert!(
            out.contains(
                "Task events:\n  AGE   STATE     MESSAGE\n  10m   PENDING   created\n  60s   RUNNING   started\n"
            ),
            "{out}"
        );
        assert!(out.contains("Normal   Scheduled   30s   allocator   placed on a1"), "{out}");
        assert!(out.contains("Status:\n  state: RUNNING\n"), "{out}");
    }
}
