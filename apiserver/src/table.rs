//! Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that
//! ask with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what
//! `kubectl get` sends), for lists, single objects and watch events.
//!
//! Owns the columns of each kind (`priority: 1` columns show with
//! `kubectl get -o wide`) and how cells are rendered: cells are strings as
//! kubectl prints them as sent, AGE in kubectl's short form computed here
//! ([`crate::age::short_age`]), a missing value as `<none>`. Each row
//! carries the object's metadata as a `PartialObjectMetadata`, which
//! `kubectl get -A`, `--show-labels` and `-L` need. It must not read the
//! store or decide anything about which objects are listed.

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use meseta_schemas::registry::KindInfo;
use serde_json::{json, Value};

/// One column: header, OpenAPI type, priority (0 = always, 1 = wide) and the cell.
struct Column {
    name: &'static str,
    priority: u8,
    description: &'static str,
    cell: fn(&Value) -> String,
}

const fn col(name: &'static str, priority: u8, description: &'static str, cell: fn(&Value) -> String) -> Column {
    Column { name, priority, description, cell }
}

/// Whether the request asks for a `Table` (`as=Table` in `Accept`, group `meta.k8s.io`).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let params: Vec<String> = t.split(';').map(|p| p.trim().replace(' ', "")).collect();
        params.iter().any(|p| p == "as=Table") && !params.iter().any(|p| p.starts_with("g=") && p != "g=meta.k8s.io")
    })
}

/// A `Table` of `objects` of `kind`; `resource_version` and `continue_token`
/// go to the table's metadata.
pub fn table(
    kind: &KindInfo,
    objects: &[Value],
    resource_version: Option<&str>,
    continue_token: Option<&str>,
) -> Value {
    let cols = columns(kind);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|c| {
            let mut d = json!({"name": c.name, "type": "string", "format": "", "description": c.description, "priority": c.priority});
            if c.name == "Name" {
                d["format"] = json!("name");
            }
            d
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(&cols, o)).collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}

/// A one-row `Table` of a single object (GET of one object, watch events).
pub fn single(kind: &KindInfo, object: &Value) -> Value {
    let rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str);
    table(kind, std::slice::from_ref(object), rv, None)
}

fn row(cols: &[Column], obj: &Value) -> Value {
    let cells: Vec<String> = cols.iter().map(|c| (c.cell)(obj)).collect();
    let mut metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
    })
}

/// The value at a dotted path under the object.
fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |cur, part| cur.get(part)).filter(|v| !v.is_null())
}

/// A scalar as kubectl would print it; absent or empty is `<none>`.
fn text(v: Option<&Value>) -> String {
    match v {
        None => "<none>".into(),
        Some(Value::String(s)) if s.is_empty() => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => number(n.as_f64().unwrap_or_default()),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        let s = format!("{f:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn field(obj: &Value, path: &str) -> String {
    text(at(obj, path))
}

/// `cpus=1,mem=1024` of a `Resources` value (`<none>` when empty).
fn resources(obj: &Value, path: &str) -> String {
    let Some(r) = at(obj, path).and_then(Value::as_object) else { return "<none>".into() };
    let parts: Vec<String> = ["cpus", "mem", "disk", "gpus"]
        .iter()
        .filter_map(|k| r.get(*k).and_then(Value::as_f64).filter(|v| *v != 0.0).map(|v| format!("{k}={}", number(v))))
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn age_of(obj: &Value, path: &str) -> String {
    let Some(ts) = at(obj, path).and_then(Value::as_str) else { return "<unknown>".into() };
    match ts.parse::<DateTime<Utc>>() {
        Ok(t) => crate::age::short_age(Utc::now() - t),
        Err(_) => "<unknown>".into(),
    }
}

fn name(o: &Value) -> String {
    field(o, "metadata.name")
}

fn age(o: &Value) -> String {
    age_of(o, "metadata.creationTimestamp")
}

/// `Ready` / `NotReady` / `Unknown` from the `Ready` condition, with
/// `,SchedulingDisabled` when the agent is cordoned (like `kubectl get nodes`).
fn agent_status(o: &Value) -> String {
    let ready = at(o, "status.conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut s = match ready {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if at(o, "spec.unschedulable").and_then(Value::as_bool) == Some(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

fn task_agent(o: &Value) -> String {
    let status = field(o, "status.agent");
    if status == "<none>" {
        field(o, "spec.agent")
    } else {
        status
    }
}

fn columns(kind: &KindInfo) -> Vec<Column> {
    const NAME: Column = col("Name", 0, "Name of the object.", name);
    const AGE: Column = col("Age", 0, "Time since the object was created.", age);
    let mut cols = vec![NAME];
    cols.extend(match kind.kind {
        "Task" => vec![
            col("State", 0, "Aurora state.", |o| field(o, "status.state")),
            col("Agent", 0, "Agent the task is bound to.", task_agent),
            col("CPUs", 0, "Requested CPUs.", |o| field(o, "spec.resources.cpus")),
            col("Mem", 0, "Requested memory (MiB).", |o| field(o, "spec.resources.mem")),
            AGE,
            col("Framework", 1, "Owning framework.", |o| field(o, "spec.framework")),
            col("Exit Code", 1, "Exit code of the process.", |o| field(o, "status.exitCode")),
            col("Message", 1, "Last status message.", |o| field(o, "status.message")),
        ],
        "Job" => vec![
            col("Type", 0, "service, adhoc or cron.", |o| field(o, "spec.type")),
            col("Instances", 0, "Desired instances.", |o| field(o, "spec.instances")),
            col("Running", 0, "Running instances.", |o| field(o, "status.running")),
            col("Pending", 0, "Pending instances.", |o| field(o, "status.pending")),
            col("Failures", 0, "Failures so far.", |o| field(o, "status.failures")),
            AGE,
            col("Starting", 1, "Instances assigned or starting.", |o| field(o, "status.starting")),
            col("Throttled", 1, "Instances waiting out a restart backoff.", |o| field(o, "status.throttled")),
            col("Lost", 1, "Instances lost with their agent.", |o| field(o, "status.lost")),
            col("Killing", 1, "Instances being killed.", |o| field(o, "status.killing")),
            col("Priority", 1, "Scheduling priority.", |o| field(o, "spec.priority")),
            col("Production", 1, "Production tier.", |o| field(o, "spec.production")),
            col("Schedule", 1, "Cron schedule.", |o| field(o, "spec.cron.schedule")),
        ],
        "Agent" => vec![
            col("Status", 0, "Readiness and schedulability.", agent_status),
            col("CPUs", 0, "Total CPUs.", |o| field(o, "spec.resources.cpus")),
            col("Mem", 0, "Total memory (MiB).", |o| field(o, "spec.resources.mem")),
            col("Allocated", 0, "Allocated resources.", |o| resources(o, "status.allocated")),
            AGE,
            col("Address", 1, "Agent address.", |o| field(o, "spec.address")),
            col("Hostname", 1, "Agent hostname.", |o| field(o, "spec.hostname")),
            col("Version", 1, "Agent version.", |o| field(o, "status.agentVersion")),
        ],
        "Role" => vec![
            col("Weight", 0, "DRF weight.", |o| field(o, "spec.weight")),
            col("Dominant Share", 0, "Current dominant share.", |o| field(o, "status.dominantShare")),
            AGE,
            col("Allocated", 1, "Allocated resources.", |o| resources(o, "status.allocated")),
        ],
        "Lease" => vec![
            col("Holder", 0, "Current holder.", |o| field(o, "spec.holderIdentity")),
            col("Duration", 0, "Lease duration (seconds).", |o| field(o, "spec.leaseDurationSeconds")),
            AGE,
            col("Renewed", 1, "Last renewal.", |o| field(o, "spec.renewTime")),
        ],
        "Framework" => vec![
            col("Registered", 0, "Whether the framework is registered.", |o| field(o, "status.registered")),
            col("Suppressed", 0, "Whether offers are suppressed.", |o| field(o, "spec.suppressed")),
            col("Dominant Share", 0, "Current dominant share.", |o| field(o, "status.dominantShare")),
            AGE,
            col("Allocated", 1, "Allocated resources.", |o| resources(o, "status.allocated")),
        ],
        "Offer" => vec![
            col("Framework", 0, "Framework offered to.", |o| field(o, "spec.framework")),
            col("Agent", 0, "Agent offered from.", |o| field(o, "spec.agent")),
            col("Resources", 0, "Unreserved resources.", |o| resources(o, "spec.resources")),
            col("State", 0, "Offer state.", |o| field(o, "status.state")),
            AGE,
            col("Reserved", 1, "Reserved resources.", |o| resources(o, "spec.reserved")),
            col("Expires", 1, "Expiry time.", |o| field(o, "spec.expiresAt")),
        ],
        "Reservation" => vec![
            col("Agent", 0, "Agent the resources are reserved on.", |o| field(o, "spec.agent")),
            col("Resources", 0, "Reserved resources.", |o| resources(o, "spec.resources")),
            col("State", 0, "Reservation state.", |o| field(o, "status.state")),
            AGE,
            col("Message", 1, "Status message.", |o| field(o, "status.message")),
        ],
        "Quota" => vec![
            col("Guarantee", 0, "Guaranteed resources.", |o| resources(o, "spec.guarantee")),
            col("Limit", 0, "Resource limit.", |o| resources(o, "spec.limit")),
            col("Used", 0, "Resources in use.", |o| resources(o, "status.used")),
            AGE,
            col("Headroom", 1, "Resources still available.", |o| resources(o, "status.headroom")),
        ],
        "Event" => vec![
            col("Type", 0, "Normal or Warning.", |o| field(o, "type")),
            col("Reason", 0, "Why.", |o| field(o, "reason")),
            col("Object", 0, "The object the event is about.", |o| {
                format!("{}/{}", field(o, "involvedObject.kind").to_lowercase(), field(o, "involvedObject.name"))
            }),
            col("Message", 0, "What happened.", |o| field(o, "message")),
            col("Last Seen", 0, "Last occurrence.", |o| age_of(o, "lastTimestamp")),
            col("Count", 1, "Occurrences.", |o| field(o, "count")),
        ],
        _ => vec![AGE],
    });
    cols
}

#[cfg(test)]
mod tests {
    use meseta_schemas::registry::by_kind;

    use super::*;

    #[test]
    fn task_rows_have_the_documented_columns_and_metadata() {
        let created = (Utc::now() - chrono::Duration::seconds(200)).to_rfc3339();
        let t = json!({"metadata": {"name": "t1", "namespace": "default", "creationTimestamp": created, "managedFields": []},
            "spec": {"resources": {"cpus": 0.5, "mem": 64.0}}, "status": {"state": "RUNNING", "agent": "a1"}});
        let table = table(by_kind("Task").unwrap(), &[t], Some("7"), None);
        let names: Vec<&str> =
            table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(&names[..6], ["Name", "State", "Agent", "CPUs", "Mem", "Age"]);
        assert_eq!(table["columnDefinitions"][6]["priority"], 1);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["t1", "RUNNING", "a1", "0.5", "64", "3m20s", "<none>", "<none>", "<none>"])
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(table["rows"][0]["object"]["metadata"].get("managedFields").is_none());
        assert_eq!(table["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn job_rows_show_every_count_of_its_status() {
        let j = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "service", "instances": 10, "priority": 5, "production": true},
            "status": {"running": 4, "pending": 1, "starting": 2, "throttled": 1, "lost": 1, "killing": 1, "failures": 3}});
        let table = table(by_kind("Job").unwrap(), &[j], None, None);
        let cells = &table["rows"][0]["cells"];
        let by_name = |name: &str| {
            let i = table["columnDefinitions"].as_array().unwrap().iter().position(|c| c["name"] == name).unwrap();
            cells[i].as_str().unwrap().to_string()
        };
        let shown: Vec<String> =
            ["Running", "Pending", "Starting", "Throttled", "Lost", "Killing", "Failures"].map(by_name).to_vec();
        assert_eq!(shown, ["4", "1", "2", "1", "1", "1", "3"]);
        assert_eq!(by_name("Production"), "true");
    }

    #[test]
    fn accept_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json".parse().unwrap());
        assert!(wants_table(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_table(&h));
    }

    #[test]
    fn resource_summaries_and_agent_status() {
        let a = json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocated": {"cpus": 1.5, "mem": 0}}});
        assert_eq!(agent_status(&a), "Ready,SchedulingDisabled");
        assert_eq!(resources(&a, "status.allocated"), "cpus=1.5");
        assert_eq!(resources(&a, "status.used"), "<none>");
    }
}
